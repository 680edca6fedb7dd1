"""`flask demo serve` (what `make run` runs): the line on loopback, with its outbox worker beside it, and
without a Twilio account a local Twilio stand-in for its texts, so that the terminal phone (`make call`,
`make text`) can ring it and read the texts it sends.

The stand-in is the one the tests use (ivr/standins/local_twilio.py): the outbox sends to it through the real
Twilio REST client, and it reports each text queued, sent and delivered to the line's status callback, signed
with the line's token, as Twilio would; so the console shows a demo day's texts as delivered.
"""

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from werkzeug.serving import run_simple

from ivr.settings import Settings
from ivr.standins.local_twilio import LocalTwilio

log = logging.getLogger(__name__)

LOCAL_ACCOUNT_SID = "AC" + "0" * 32
LOCAL_FROM_NUMBER = "+447700900999"
LOOPBACK = "127.0.0.1"
WORKER_STOP_SECONDS = 10.0

AppFactory = Callable[[Mapping[str, object]], Flask]


class TextsPortTaken(Exception):
    """The stand-in's port is in use (another `make run`, perhaps)."""


def local_settings(settings: Settings, instance_path: Path, port: int, texts_url: str | None) -> dict[str, object]:
    """The settings the line is served with: as configured, knowing itself by its loopback URL (so its texts
    ask for receipts there), and without a Twilio account sending texts to the stand-in at `texts_url`."""
    served: dict[str, object] = {
        **settings.model_dump(),
        "public_base_url": settings.public_base_url or f"http://{LOOPBACK}:{port}",
        "proxy_hops": 0,  # the terminal phone and the browser reach it directly
    }
    if texts_url is not None:
        served.update(
            twilio_account_sid=LOCAL_ACCOUNT_SID,
            twilio_auth_token=settings.webhook_auth_token(instance_path),  # the token the terminal phone signs with
            twilio_from_number=LOCAL_FROM_NUMBER,
            twilio_api_base_url=texts_url,
        )
    return served


@contextmanager
def _texts_standin(settings: Settings, instance_path: Path, texts_port: int) -> Iterator[LocalTwilio | None]:
    if settings.can_send_texts:
        yield None  # a Twilio account is configured: texts go to Twilio
        return
    try:
        standin = LocalTwilio(port=texts_port, auth_token=settings.webhook_auth_token(instance_path))
    except OSError as error:
        raise TextsPortTaken(f"port {texts_port} for the Twilio stand-in is taken ({error.strerror})") from None
    with standin:
        yield standin


def serve_locally(create_app: AppFactory, settings: Settings, instance_path: Path, port: int, texts_port: int) -> None:
    """Serve until Ctrl-C: the line on `port`, its outbox worker in a thread, the stand-in on `texts_port`."""
    with _texts_standin(settings, instance_path, texts_port) as standin:
        app = create_app(local_settings(settings, instance_path, port, standin.base_url if standin else None))
        stop = threading.Event()
        worker = threading.Thread(target=app.extensions["outbox"].watch, args=(stop,), name="outbox", daemon=True)
        worker.start()
        if standin is not None:
            log.info("Texts go to the local Twilio stand-in at %s, never to a phone", standin.base_url)
        try:
            run_simple(LOOPBACK, port, app, threaded=True)
        finally:
            stop.set()
            worker.join(WORKER_STOP_SECONDS)
