"""Security headers on every response under /staff/: a CSP with a fresh nonce per request (scripts
only from this site or carrying the nonce; no inline styles; never framed), and no caching of pages."""

import secrets

from flask import g, request
from werkzeug.wrappers import Response

from ivr.console.blueprint import bp

ASSET_ENDPOINT = "staff.asset"


def csp_nonce() -> str:
    """This request's nonce, made on first use; the page's own inline script carries it."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def is_console_path(path: str) -> bool:
    prefix = bp.url_prefix or ""
    return path == prefix or path.startswith(prefix + "/")


@bp.after_app_request
def set_security_headers(response: Response) -> Response:
    """Applied app-wide but only to console paths, so a 404 or an error under /staff/ gets them too."""
    if not is_console_path(request.path):
        return response
    response.headers["Content-Security-Policy"] = content_security_policy(csp_nonce())
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    if request.endpoint != ASSET_ENDPOINT or response.status_code != 200:
        # Pages show people's details: never kept by the browser or anything between.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response
