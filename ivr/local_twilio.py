"""A local stand-in for Twilio's Messages endpoint, for the terminal phone, the tests and the drills.

Point the real Twilio REST client at it with TWILIO_API_BASE_URL; it answers as Twilio does and keeps
what it was sent. It can be told to fail (a status such as 503 or 429) or to stall for a while.
"""

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class ReceivedText:
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    sid: str


class LocalTwilio:
    def __init__(self) -> None:
        self.received: list[ReceivedText] = []
        self._failures: list[int] = []
        self._stall_seconds = 0.0
        self._lock = threading.Lock()
        self._new_text = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalTwilio":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalTwilio":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def stall(self, seconds: float) -> None:
        """Hold every answer this long (a timeout for a client that waits less)."""
        with self._lock:
            self._stall_seconds = seconds

    def texts_to(self, number: str) -> list[ReceivedText]:
        with self._lock:
            return [text for text in self.received if text.to == number]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:  # keep test and phone output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "2010-04-01" or parts[3] != "Messages.json":
                    return self._answer(404, {"code": 20404, "message": "The requested resource was not found"})
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with standin._lock:
                    failure = standin._failures.pop(0) if standin._failures else None
                    stall = standin._stall_seconds
                if stall:
                    threading.Event().wait(stall)
                if failure is not None:
                    code = 20429 if failure == 429 else 20500
                    return self._answer(failure, {"code": code, "message": "Stand-in told to fail", "status": failure})
                text = ReceivedText(
                    account_sid=parts[2],
                    to=form.get("To", ""),
                    from_=form.get("From", ""),
                    body=form.get("Body", ""),
                    status_callback=form.get("StatusCallback"),
                    sid="SM" + uuid.uuid4().hex,
                )
                with standin._new_text:
                    standin.received.append(text)
                    standin._new_text.notify_all()
                self._answer(
                    201,
                    {
                        "sid": text.sid,
                        "account_sid": text.account_sid,
                        "to": text.to,
                        "from": text.from_,
                        "body": text.body,
                        "status": "queued",
                        "num_segments": "1",
                        "direction": "outbound-api",
                        "api_version": "2010-04-01",
                        "uri": f"/2010-04-01/Accounts/{text.account_sid}/Messages/{text.sid}.json",
                    },
                )

            def _answer(self, status: int, payload: dict[str, object]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
