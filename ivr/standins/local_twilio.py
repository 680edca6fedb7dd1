"""A local stand-in for Twilio's Messages endpoint, for the terminal phone, the tests and the drills.

Point the real Twilio REST client at it with TWILIO_API_BASE_URL; it answers as Twilio does (sending a
message, and listing the messages sent to a number) and keeps what it was sent. It can be told to fail (a
status such as 503 or 429) or to stall for a while, and a stall can still take the message in (a send
whose answer never reaches the client).

Given the auth token of the app it stands in front of, it also reports each text's progress as Twilio does:
queued, sent, then delivered, each a form posted to the text's StatusCallback and signed with that token.
"""

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

# The statuses Twilio reports for a text that reaches the phone, in order.
DELIVERED_PROGRESS = ("queued", "sent", "delivered")
CALLBACK_TIMEOUT_SECONDS = 15.0  # as long as Twilio waits for a webhook's answer


@dataclass(frozen=True)
class ReceivedText:
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    sid: str
    created_at: datetime

    def resource(self) -> dict[str, object]:
        """The message as Twilio's API describes it."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": format_datetime(self.created_at),
            "date_sent": format_datetime(self.created_at),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}.json",
        }


@dataclass(frozen=True)
class PostedStatus:
    """A status callback the stand-in posted, and how the app answered it (None: no answer came)."""

    sid: str
    status: str
    answered: int | None


class LocalTwilio:
    def __init__(self, port: int = 0, auth_token: str | None = None) -> None:
        """On `port` of loopback (0: any free one); with `auth_token`, each text's progress is posted to its
        StatusCallback, signed with it, as Twilio does."""
        self.received: list[ReceivedText] = []
        self.posted_statuses: list[PostedStatus] = []
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._failures: list[int] = []
        self._stall_seconds = 0.0
        self._keep_stalled = False
        # Run before what was received is read: where the outbox worker runs in the same process (the
        # terminal phone, the tests), it sends what is due first, as the real worker would have by then.
        self.before_reading: Callable[[], object] | None = None
        self._lock = threading.Lock()
        self._new_text = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = cast(tuple[str, int], self._server.server_address[:2])  # an IPv4 server's address
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

    def stall(self, seconds: float, keep: bool = False) -> None:
        """Hold every request this long, then drop it unanswered and untaken (a request lost on the way);
        with `keep`, take each message in at once and only answer late (Twilio has it, the answer is lost)."""
        with self._lock:
            self._stall_seconds = seconds
            self._keep_stalled = keep

    def texts(self) -> list[ReceivedText]:
        """Every text received so far, oldest first."""
        if self.before_reading is not None:
            self.before_reading()
        with self._lock:
            return list(self.received)

    def texts_to(self, number: str) -> list[ReceivedText]:
        return [text for text in self.texts() if text.to == number]

    def wait_for_texts(self, count: int, timeout: float) -> list[ReceivedText]:
        """Block until `count` texts in all have been received (or `timeout` seconds pass): for a worker
        in another thread or process, which sends in its own time."""
        with self._new_text:
            self._new_text.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def _take(self, text: ReceivedText) -> None:
        with self._new_text:
            self.received.append(text)
            self._new_text.notify_all()
        if self._validator is not None and text.status_callback:
            threading.Thread(target=self._report_progress, args=(text,), daemon=True).start()

    def _report_progress(self, text: ReceivedText) -> None:
        """Post queued, sent and delivered to the text's StatusCallback, one after the other, as Twilio does
        once the network has the text (in a thread of its own: the receipts come after the send's answer)."""
        for status in DELIVERED_PROGRESS:
            answered = self._post_status(text, status)
            with self._lock:
                self.posted_statuses.append(PostedStatus(text.sid, status, answered))

    def _post_status(self, text: ReceivedText, status: str) -> int | None:
        assert self._validator is not None and text.status_callback is not None
        form = {
            "MessageSid": text.sid,
            "SmsSid": text.sid,
            "AccountSid": text.account_sid,
            "From": text.from_,
            "To": text.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": "2010-04-01",
        }
        signature = self._validator.compute_signature(text.status_callback, form)
        request = urllib.request.Request(
            text.status_callback,
            data=urlencode(form).encode(),
            headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT_SECONDS) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            log.warning("The app answered a %s status callback with HTTP %s", status, refused.code)
            return refused.code
        except OSError as error:
            log.warning("A %s status callback reached nothing: %s", status, type(error).__name__)
            return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:  # keep test and phone output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                """The messages sent to a number (To=...), newest first, on one page."""
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "2010-04-01" or parts[3] != "Messages.json":
                    return self._answer(404, {"code": 20404, "message": "The requested resource was not found"})
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with standin._lock:
                    failure = standin._failures.pop(0) if standin._failures else None
                    found = [text for text in reversed(standin.received) if text.to == query.get("To", text.to)]
                if failure is not None:
                    return self._answer(failure, {"code": 20500, "message": "Stand-in told to fail", "status": failure})
                self._answer(
                    200,
                    {
                        "messages": [text.resource() for text in found],
                        "next_page_uri": None,
                        "page": 0,
                        "page_size": len(found),
                        "uri": url.path,
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "2010-04-01" or parts[3] != "Messages.json":
                    return self._answer(404, {"code": 20404, "message": "The requested resource was not found"})
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with standin._lock:
                    failure = standin._failures.pop(0) if standin._failures else None
                    stall = standin._stall_seconds
                    keep = standin._keep_stalled
                text = ReceivedText(
                    account_sid=parts[2],
                    to=form.get("To", ""),
                    from_=form.get("From", ""),
                    body=form.get("Body", ""),
                    status_callback=form.get("StatusCallback"),
                    sid="SM" + uuid.uuid4().hex,
                    created_at=datetime.now(UTC),
                )
                if stall:
                    if keep and failure is None:
                        standin._take(text)  # taken in; only the answer is late
                    threading.Event().wait(stall)
                    if not keep:
                        self.close_connection = True  # lost on the way: nothing taken, no answer
                        return None
                if failure is not None:
                    code = 20429 if failure == 429 else 20500
                    return self._answer(failure, {"code": code, "message": "Stand-in told to fail", "status": failure})
                if not stall:
                    standin._take(text)
                self._answer(201, text.resource())

            def _answer(self, status: int, payload: dict[str, object]) -> None:
                body = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting (a stall longer than its timeout)

        return Handler
