"""NHS England's local MESH (mesh-sandbox, a FastAPI app) run by the tests on loopback: a uvicorn process on a socket
the tests bound themselves (so no other process can take the port first), with mailboxes in a temporary folder and
full authentication (mailbox, password and the shared key, as real MESH checks them; no TLS on loopback)."""

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import requests

SHARED_KEY = "TestSharedKey"
PASSWORD = "password"  # the sandbox's password for every mailbox it finds as a folder
OUR_MAILBOX = "X26OPTOUT1"
NATIONAL_MAILBOX = "X26HC036"
STARTUP_SECONDS = 30.0
# The sandbox runs from a venv of its own (`make test` makes it from tests/requirements/mesh-sandbox.txt):
# it asks for a gunicorn the line's own pin rules out.
SANDBOX_PYTHON = Path(__file__).resolve().parent.parent / ".venv-mesh" / "bin" / "python"


class MeshSandbox:
    def __init__(self, folder: Path, mailboxes: tuple[str, ...] = (OUR_MAILBOX, NATIONAL_MAILBOX)) -> None:
        if not SANDBOX_PYTHON.exists():
            raise RuntimeError(f"mesh-sandbox is not installed in {SANDBOX_PYTHON.parent.parent}: run `make test` once")
        self.folder = folder
        self.mailboxes = mailboxes
        self._process: subprocess.Popen[bytes] | None = None
        self._log = folder / "sandbox.log"
        self.url = ""

    def __enter__(self) -> "MeshSandbox":
        store = self.folder / "mailboxes"
        for mailbox in self.mailboxes:
            (store / mailbox / "in").mkdir(parents=True, exist_ok=True)  # a folder is a mailbox to the sandbox
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        environment = {
            **os.environ,
            "STORE_MODE": "file",
            "MAILBOXES_DATA_DIR": str(store),
            "AUTH_MODE": "full",
            "SHARED_KEY": SHARED_KEY,
            "ENV": "test",
        }
        command = [str(SANDBOX_PYTHON), "-m", "uvicorn", "mesh_sandbox.api:app", "--fd", str(listener.fileno())]
        command += ["--log-level", "warning"]
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                command, env=environment, pass_fds=(listener.fileno(),), stdout=log, stderr=subprocess.STDOUT
            )
        listener.close()  # the sandbox has its own copy
        self._wait_until_it_answers()
        return self

    def _wait_until_it_answers(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mesh-sandbox stopped at start-up:\n{self._log.read_text()}")
            try:
                # The socket is listening already: the request waits in its queue until the app starts answering.
                if requests.get(f"{self.url}/health", timeout=max(deadline - time.monotonic(), 0.1)).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            self._process_wait(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"mesh-sandbox did not answer within {STARTUP_SECONDS:.0f} s:\n{self._log.read_text()}")

    def _process_wait(self, seconds: float) -> None:
        """Wait a little for the process to stop (it should not), rather than sleeping blind between polls."""
        assert self._process is not None
        try:
            self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            pass

    def reset(self) -> None:
        """Every mailbox emptied, for the next test."""
        for mailbox in self.mailboxes:
            requests.delete(f"{self.url}/admin/reset/{mailbox}", timeout=5).raise_for_status()

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
