"""The Opt-Out Line Flask app: settings, database, blueprints and CLI commands; nothing else."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.middleware.proxy_fix import ProxyFix

from ivr import cli, console, health
from ivr.db import Database
from ivr.line import languages, sms, voice
from ivr.line.prompts import Prompts
from ivr.line.runner import Line
from ivr.line.understanding.model import languages_with_examples, shared_model
from ivr.logs import configure_logging, track_requests
from ivr.records.identity import Identity
from ivr.records.outbox import Outbox
from ivr.settings import Settings

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(Path(__file__).resolve().parent / "instance"))
    settings = Settings(**(config or {})).resolve_defaults(Path(app.instance_path))
    configure_logging(log_format=settings.log_format)
    track_requests(app)
    # Twilio's posts and the console's forms are small; only the people import takes more, and raises it.
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)

    database = Database(settings.database_url or "")
    prompts = Prompts(settings.org_name, retention_days=settings.retention_days)
    identity = Identity(settings.secret_key or "")
    outbox = Outbox(settings, database, identity.keyed_hash)
    app.extensions.update(
        settings=settings,
        database=database,
        prompts=prompts,
        identity=identity,
        outbox=outbox,
        line=Line(
            database, identity, outbox, prompts, settings.staff_transfer_number,
            trust_sms_sender=settings.sms_trust_sender_number,
            languages=languages.live(settings.line_languages),
        ),
        twilio_validator=RequestValidator(settings.webhook_auth_token(Path(app.instance_path))),
    )
    if settings.proxy_hops:
        # The client's address (the console's sign-in limits count by it) always comes from the proxies;
        # scheme and host only when PUBLIC_BASE_URL does not give them.
        hops = 0 if settings.public_base_url else settings.proxy_hops
        # Flask's documented way to add WSGI middleware; mypy takes any assignment to a method for a mistake.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    app.register_blueprint(voice.bp)
    app.register_blueprint(sms.bp)
    app.register_blueprint(health.bp)
    console.init_app(app, csrf_exempt=(voice.bp, sms.bp))
    cli.register(app, create_app)
    return app


def serve_app() -> Flask:
    """The app as production serves it (ivr/operations/production.py): each worker learns the intent model
    before its first request, so no caller waits while it does (every language with examples)."""
    app = create_app()
    for language in languages_with_examples():
        shared_model(language)
    return app
