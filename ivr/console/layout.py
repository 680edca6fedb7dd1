"""What every console page shares: the values the base layout needs, how times read, and error pages."""

from datetime import datetime

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response
from wtforms import SelectField

from ivr.console.blueprint import bp
from ivr.console.forms import CHANNEL_NAMES, OUTCOME_NAMES
from ivr.console.headers import csp_nonce, is_console_path
from ivr.console.languages import language_name_html, words_as_said_html
from models.time import UK

SERVICE_NAME = "Opt-Out Line staff"
# Pages in the header's navigation: (endpoint, label, role needed to see the link, endpoints it covers).
NAVIGATION = (
    ("staff.index", "Overview", "viewer", {"staff.index"}),
    # Words not understood (managers) sits under Conversations: it reads their steps, and the header holds no more.
    (
        "staff.conversations",
        "Conversations",
        "viewer",
        {"staff.conversations", "staff.conversation", "staff.words_not_understood"},
    ),
    (
        "staff.follow_ups",
        "Follow-ups",
        "viewer",
        {"staff.follow_ups", "staff.follow_up", "staff.add_follow_up_note", "staff.reveal_follow_up_phone"},
    ),
    (
        "staff.people",
        "People",
        "viewer",
        {"staff.people", "staff.person", "staff.import_people", "staff.record_choice"},
    ),
    ("staff.register_runs", "Register runs", "manager", {"staff.register_runs"}),
    (
        "staff.try_line",
        "Try the line",
        "manager",
        {
            "staff.try_line",
            "staff.start_trial_call",
            "staff.press_trial_keys",
            "staff.say_trial_words",
            "staff.stay_silent_on_trial_call",
            "staff.end_trial_transfer",
            "staff.hang_up_trial_call",
            "staff.text_the_line",
        },
    ),
    (
        "staff.staff_users",
        "Staff users",
        "admin",
        {
            "staff.staff_users",
            "staff.add_staff_user",
            "staff.staff_user",
            "staff.change_staff_role",
            "staff.deactivate_staff_user",
            "staff.reactivate_staff_user",
            "staff.set_staff_password",
        },
    ),
    ("staff.audit", "Audit", "admin", {"staff.audit"}),
)
ERROR_TITLES = {
    400: "Sorry, there is a problem with the request",
    403: "You do not have permission to see this page",
    404: "Page not found",
    405: "Sorry, that cannot be done here",
    500: "Sorry, there is a problem with the service",
}


@bp.app_context_processor
def layout_values() -> dict[str, object]:
    """For console pages only; app-wide so that a page under /staff/ that matched no route gets them too."""
    if not is_console_path(request.path):
        return {}
    navigation = [
        {
            "href": url_for(endpoint),
            "text": label,
            "current": request.endpoint == endpoint,
            "active": request.endpoint in covers,
        }
        for endpoint, label, role, covers in NAVIGATION
        if current_user.has_role(role)
    ]
    return {
        "cspNonce": csp_nonce(),
        "assetPath": url_for("staff.asset", filename="manifest.json").rsplit("/", 1)[0],
        "org_name": current_app.extensions["settings"].org_name,
        "service_name": SERVICE_NAME,
        "navigation_items": navigation,
        "channel_names": CHANNEL_NAMES,
        "outcome_names": OUTCOME_NAMES,
        "language_name": language_name_html,
        "words_as_said": words_as_said_html,
    }


@bp.app_template_filter("uk_time")
def uk_time(moment: datetime | None, with_seconds: bool = False) -> str:
    """A stored time as people here read it: 26 Nov 2026, 14:03 (UK time)."""
    if moment is None:
        return ""
    local = moment.astimezone(UK)
    return local.strftime("%-d %b %Y, %H:%M:%S" if with_seconds else "%-d %b %Y, %H:%M")


@bp.app_template_global("select_items")
def select_items(field: SelectField) -> list[dict[str, object]]:
    """A WTForms select's options as the design system's select macro takes them."""
    return [
        {"value": choice.value, "text": choice.label, "selected": choice.value == field.data}
        for choice in field.choices
    ]


@bp.app_template_filter("duration")
def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def render_error(status: int, message: str | None = None) -> tuple[str, int]:
    title = ERROR_TITLES.get(status, ERROR_TITLES[500] if status >= 500 else ERROR_TITLES[400])
    return render_template("staff/error.html", title=title, message=message, status=status), status


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> Response | tuple[str, int]:
    if not current_user.is_authenticated:
        flash("Sign in again to carry on.", "signed_out")
        return redirect(url_for("staff.sign_in"))
    return render_error(
        400,
        "The form could not be checked, perhaps because it was open for a long time. "
        "Go back, reload the page and try again.",
    )


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[str, int]:
    return render_error(error.code or 500)


@bp.app_errorhandler(404)
def not_found(error: HTTPException) -> HTTPException | tuple[str, int]:
    """A page under /staff/ that does not exist gets the console's own page; elsewhere, Flask's."""
    if not is_console_path(request.path):
        return error
    return render_error(404)


@bp.errorhandler(Exception)
def unexpected_error(error: Exception) -> tuple[str, int]:
    current_app.logger.exception("Console page failed: %s", type(error).__name__)
    return render_error(500)
