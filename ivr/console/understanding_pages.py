"""Words not understood, for managers: what people said or texted that the line could not place, and its download."""

from datetime import datetime

from flask import Response, current_app, render_template, request, stream_with_context, url_for
from flask_login import current_user

from ivr.console import exports
from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.console.forms import ActionForm
from ivr.console.understanding import INTENT_NAMES, page_of_words_not_understood
from models.time import UK

MAX_PAGE_DIGITS = 6


@bp.get("/words-not-understood")
@requires_role("manager")
def words_not_understood() -> str:
    asked = request.args.get("page", "")
    number = int(asked) if asked.isascii() and asked.isdigit() and len(asked) <= MAX_PAGE_DIGITS else 1
    page = page_of_words_not_understood(current_app.extensions["database"], number)
    links = {}
    if page.number > 1:
        links["newer"] = url_for("staff.words_not_understood", page=page.number - 1)
    if page.more:
        links["older"] = url_for("staff.words_not_understood", page=page.number + 1)
    return render_template(
        "staff/words_not_understood.html",
        page=page,
        links=links,
        intent_names=INTENT_NAMES,
        action_form=ActionForm(formdata=None),
    )


@bp.post("/words-not-understood/download")
@requires_role("manager")
def download_words_not_understood() -> Response:
    """The phrases as lines for the examples file; a POST, since it is audited."""
    lines = exports.export_words_not_understood(current_app.extensions["database"], current_user.id)
    stamp = datetime.now(UK).strftime("%Y-%m-%d-%H%M")
    response = Response(stream_with_context(lines), mimetype="text/tab-separated-values")
    response.headers["Content-Disposition"] = f'attachment; filename="opt-out-line-words-not-understood-{stamp}.tsv"'
    return response
