"""The helper process: a second process, forked, that filters the runs of lines handed to it, so that two CPUs share each
block."""

import multiprocessing
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from multiprocessing.connection import Connection
from typing import Generic, TypeVar

Result = TypeVar("Result")  # what filtering one run of lines comes to


class HelperProcess(Generic[Result]):
    """A second process that filters runs of regular lines handed to it, one at a time, with `filter_lines`.

    It is forked, so it shares the register's memory (which `filter_lines` holds) instead of loading or copying it.
    """

    def __init__(self, filter_lines: Callable[[bytes], Result]) -> None:
        # A forked process flushes sys.stdout and sys.stderr as it exits: empty them first, or
        # what is waiting in their buffers would be written twice.
        sys.stdout.flush()
        sys.stderr.flush()
        context = multiprocessing.get_context("fork")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_help, args=(filter_lines, theirs, self._connection), daemon=True)
        self._process.start()
        theirs.close()

    def submit(self, plain: bytes | memoryview) -> None:
        self._connection.send_bytes(plain)

    def ready(self) -> bool:
        return self._connection.poll()

    def result(self) -> Result:
        return self._connection.recv()

    def close(self) -> None:
        with suppress(OSError):
            self._connection.send_bytes(b"")
        self._connection.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _help(filter_lines: Callable[[bytes], object], connection: Connection, parents_end: Connection) -> None:
    parents_end.close()  # so that if the parent dies, this end sees the pipe close
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then stops this
    try:
        while plain := connection.recv_bytes():
            connection.send(filter_lines(plain))
    except (EOFError, OSError):
        pass  # the parent stopped early (it had an error to report): so does this
