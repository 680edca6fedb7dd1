"""The console's CSS, JavaScript and images: NHS.UK frontend from node_modules (installed by `make install`
from package-lock.json), served from this app under /staff/assets/, never fetched from elsewhere."""

import functools
import logging
import re
from pathlib import Path

from flask import Response, abort, current_app, send_from_directory

from ivr.console.access import public
from ivr.console.blueprint import bp

log = logging.getLogger(__name__)

NHSUK_FRONTEND = Path("node_modules") / "nhsuk-frontend" / "dist" / "nhsuk"
STYLESHEET = "nhsuk-frontend.min.css"
SCRIPT = "nhsuk-frontend.min.js"
OWN_ASSETS = Path(__file__).resolve().parent / "assets"
MAX_AGE_SECONDS = 3600
# The compiled stylesheet loads the Frutiger font from assets.nhs.uk; the console uses the fallback
# (Arial) rather than reach another site, and the CSP would refuse the font anyway.
_REMOTE_FONT_FACE = re.compile(r"@font-face\{[^}]*url\(https?://[^}]*\}")


def nhsuk_frontend_dir() -> Path:
    return Path(current_app.root_path) / NHSUK_FRONTEND


@bp.get("/assets/<path:filename>")
@public
def asset(filename: str) -> Response:
    frontend = nhsuk_frontend_dir()
    if filename == STYLESHEET:
        return _stylesheet_response(frontend / STYLESHEET)
    if filename == SCRIPT:
        return send_from_directory(frontend, SCRIPT, max_age=MAX_AGE_SECONDS)
    if filename.startswith("images/") or filename == "manifest.json":
        return send_from_directory(frontend / "assets", filename, max_age=MAX_AGE_SECONDS)
    return send_from_directory(OWN_ASSETS, filename, max_age=MAX_AGE_SECONDS)


def _stylesheet_response(path: Path) -> Response:
    if not path.is_file():
        log.error("NHS.UK frontend is not installed (run `make install`): %s is missing", path.name)
        abort(404)
    response = Response(console_stylesheet(path), mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE_SECONDS
    return response


@functools.cache
def console_stylesheet(path: Path) -> str:
    """The NHS.UK stylesheet as the console serves it: without remote fonts, its images found beside it.

    The compiled file points at /assets/images/...; relative URLs resolve against the stylesheet's
    own URL, /staff/assets/, where the images are served.
    """
    css = path.read_text(encoding="utf-8")
    css = _REMOTE_FONT_FACE.sub("", css)
    return css.replace("url(/assets/", "url(")
