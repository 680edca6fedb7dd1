"""The staff console: a blueprint under /staff/ with sign-in, roles, CSRF and security headers,
rendered with the NHS.UK design system (nhsuk-frontend-jinja macros, NHS.UK frontend assets)."""

from collections.abc import Iterable

from flask import Blueprint, Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChainableUndefined, ChoiceLoader, PackageLoader

from ivr.console import (  # noqa: F401  routes
    assets,
    audit_pages,
    choice_pages,
    conversation_pages,
    follow_up_pages,
    headers,
    layout,
    overview_pages,
    people_import_pages,
    people_pages,
    register_run_pages,
    sign_in_pages,
    staff_user_pages,
    try_line_pages,
    understanding_pages,
)
from ivr.console.access import IDLE_LIMIT, login_manager
from ivr.console.blueprint import bp

csrf = CSRFProtect()


class _SessionCookieSecureOverHttps(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS (as a proxy's
    X-Forwarded-Proto says, through ProxyFix), not only when PUBLIC_BASE_URL says https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)


def init_app(app: Flask, csrf_exempt: Iterable[Blueprint] = ()) -> None:
    """Register the console; `csrf_exempt` are blueprints whose POSTs come from elsewhere (Twilio's webhooks)."""
    # The NHS.UK macros need ChainableUndefined, and their .jinja files must be escaped like .html.
    app.jinja_options = {
        **app.jinja_options,
        "undefined": ChainableUndefined,
        "autoescape": True,
        "loader": ChoiceLoader([app.create_global_jinja_loader(), PackageLoader("nhsuk_frontend_jinja")]),
    }
    secure_cookies = (app.extensions["settings"].public_base_url or "").startswith("https://")
    app.config.update(
        PERMANENT_SESSION_LIFETIME=IDLE_LIMIT,
        SESSION_REFRESH_EACH_REQUEST=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
    )
    app.session_interface = _SessionCookieSecureOverHttps()
    csrf.init_app(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)
    login_manager.init_app(app)
    app.register_blueprint(bp)
