"""GET /healthz: the app answers and the database can be reached. GET /: the way to the staff console."""

from flask import Blueprint, current_app, jsonify, redirect, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        with current_app.extensions["database"].engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        current_app.logger.error("Health check cannot reach the database: %s", type(error).__name__)
        return jsonify(app="up", database="down"), 503
    return jsonify(app="up", database="up")


@bp.get("/")
def home() -> ResponseReturnValue:
    """Someone who opens the line's address in a browser is led to the staff console (its sign-in), never to a
    bare "Not Found": the line itself answers Twilio's webhooks, not browsers."""
    return redirect(url_for("staff.index"))
