"""Gunicorn's settings for running the line in production: `gunicorn -c python:ivr.operations.production`.

One command runs everything the line needs: it brings the database to the latest schema (creating the
PostgreSQL database if it does not exist yet), serves the webhooks and the console from several worker
processes, and keeps the outbox workers that send the texts running beside them, starting a new one
if one stops. Everything is set from the environment: DATABASE_URL and SECRET_KEY as for the app,
and PORT (8000), BIND_HOST (127.0.0.1), WEB_CONCURRENCY (2 per CPU + 1) and OUTBOX_WORKERS (1).
"""

import logging
import os
import subprocess
import sys
import threading

from gunicorn.arbiter import Arbiter

from ivr.logs import RequestContext, formatter_for
from ivr.settings import Settings

log = logging.getLogger("ivr.operations.production")

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
# Webhook steps are short; a step that runs past Twilio's own 15-second wait is of use to nobody.
timeout = 15
graceful_timeout = 15
wsgi_app = "app:serve_app()"  # the app, with the intent model learned before the first request
# Gunicorn's own log and its access log go out as the app's do (LOG_FORMAT: by default JSON lines off a
# terminal, readable lines on one). An access line names the request id the app put in its answer; paths
# carry no identifiers (the query string is left out). Words keep the status and the time apart, so the
# masking never reads them together as a grouped number.
accesslog = "-"
access_log_format = '%(m)s %(U)s status %(s)s in %(M)s ms, request %({x-request-id}o)s'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    # The app's own logging (ivr.logs.configure_logging) finds this on the root logger and keeps it, so it
    # carries the request's ids here as it would itself.
    "formatters": {"service": {"()": formatter_for(Settings().log_format)}},
    "filters": {"request": {"()": RequestContext}},
    "handlers": {
        "access": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stdout"},
        "errors": {
            "class": "logging.StreamHandler",
            "formatter": "service",
            "filters": ["request"],
            "stream": "ext://sys.stderr",
        },
    },
    "root": {"level": "INFO", "handlers": ["errors"]},
    "loggers": {
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "gunicorn.error": {"level": "INFO", "handlers": ["errors"], "propagate": False},
        "ivr.operations.production": {"level": "INFO", "handlers": ["errors"], "propagate": False},
    },
}

_outbox_workers: list["OutboxWorker"] = []


class OutboxWorker:
    """`flask outbox send --watch` in a process of its own, started again whenever it stops."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._run, name=f"outbox-worker-{number}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _run(self) -> None:
        while not self.stopping.is_set():
            command = [sys.executable, "-m", "flask", "--app", "app", "outbox", "send", "--watch"]
            self.process = subprocess.Popen(command)
            status = self.process.wait()
            # A second's grace first: when the whole service is stopping, its signal reaches this process too.
            if not self.stopping.wait(1.0):
                log.error("Outbox worker %s stopped (exit status %s); starting it again", self.number, status)


def on_starting(server: Arbiter) -> None:
    """Before any worker starts: the database exists and is at the latest schema."""
    import migrations

    settings = Settings()
    if not settings.database_url or not settings.database_url.startswith("postgresql"):
        raise SystemExit(
            "Error: set DATABASE_URL to the PostgreSQL database, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/optout"
        )
    if not settings.secret_key:
        raise SystemExit("Error: set SECRET_KEY (the same in every process, kept secret) before serving in production")
    migrations.create_database_if_missing(settings.database_url)
    migrations.upgrade(settings.database_url)


def when_ready(server: Arbiter) -> None:
    for number in range(1, int(os.environ.get("OUTBOX_WORKERS", "1")) + 1):
        worker = OutboxWorker(number)
        worker.start()
        _outbox_workers.append(worker)


def on_exit(server: Arbiter) -> None:
    for worker in _outbox_workers:
        worker.stop()
