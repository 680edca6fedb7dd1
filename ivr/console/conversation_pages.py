"""Conversations: every call and text thread, filtered and paged, and one conversation's timeline."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Response, abort, current_app, render_template, request, stream_with_context, url_for
from flask_login import current_user

from ivr.console import exports
from ivr.console.access import requires_role
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.conversations import (
    ConversationFilter,
    ConversationNotFound,
    ConversationPage,
    PageKey,
    conversation_timeline,
    list_conversations,
    view_conversation,
)
from ivr.console.forms import ActionForm, ConversationFilterForm, error_list
from models.time import UK

FILTER_PARAMETERS = (
    "channel",
    "outcome",
    "caller_ending",
    "language",
    *(f"{name}-{part}" for name in ("started_from", "started_to") for part in ("day", "month", "year")),
)


def _filter(form: ConversationFilterForm) -> ConversationFilter:
    return ConversationFilter(
        channel=form.channel.data or None,
        outcome=form.outcome.data or None,
        started_from=form.started_from.data,
        started_to=form.started_to.data,
        caller_ending=form.caller_ending.data or None,
        language=form.language.data or None,
    )


@bp.get("/conversations")
@requires_role("viewer")
def conversations() -> str:
    form = ConversationFilterForm(request.args)
    if not form.validate():
        empty = ConversationPage([], None, None)
        return render_template("staff/conversations.html", form=form, errors=error_list(form), page=empty, links={})
    where = _filter(form)
    older_than = PageKey.from_token(request.args.get("older", ""))
    newer_than = PageKey.from_token(request.args.get("newer", "")) if older_than is None else None
    page = list_conversations(current_app.extensions["database"], where, older_than, newer_than)
    # Any, not str: url_for's own keyword arguments (_external: bool) would otherwise be thought at risk.
    kept: dict[str, Any] = {name: request.args[name] for name in FILTER_PARAMETERS if request.args.get(name)}
    return render_template(
        "staff/conversations.html",
        form=form,
        errors=[],
        page=page,
        links=_page_links(page, kept),
        filtered=where != ConversationFilter(),
        export_action=url_for("staff.export_conversations", **kept),
        action_form=ActionForm(formdata=None),
    )


@bp.post("/conversations/export")
@requires_role("manager")
def export_conversations() -> Response:
    """The conversations the filters in the address select, as CSV; a POST, since it is audited."""
    form = ConversationFilterForm(request.args)
    if not form.validate():
        abort(400)
    lines = exports.export_conversations(current_app.extensions["database"], _filter(form), current_user.id)
    return _csv_download(lines, "conversations")


@bp.post("/register/export")
@requires_role("manager")
def export_register() -> Response:
    """The opt-out register, whole, as CSV: NHS numbers in full, so audited."""
    return _csv_download(exports.export_register(current_app.extensions["database"], current_user.id), "register")


def _csv_download(lines: Iterator[str], name: str) -> Response:
    stamp = datetime.now(UK).strftime("%Y-%m-%d-%H%M")
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="opt-out-line-{name}-{stamp}.csv"'
    return response


def _page_links(page: ConversationPage, kept: dict[str, Any]) -> dict[str, str]:
    """Links to the newer and older pages, keeping the filters."""
    links = {}
    if page.newer is not None:
        links["newer"] = url_for("staff.conversations", **kept, newer=page.newer.token())
    if page.older is not None:
        links["older"] = url_for("staff.conversations", **kept, older=page.older.token())
    return links


@bp.get(f"/conversations/<{ROW_ID}:conversation_id>")
@requires_role("viewer")
def conversation(conversation_id: int) -> str:
    try:
        database = current_app.extensions["database"]
        # A HEAD request sees no page, so it is not a viewing to audit.
        if request.method == "HEAD":
            timeline = conversation_timeline(database, conversation_id)
        else:
            timeline = view_conversation(database, conversation_id, current_user.id)
    except ConversationNotFound:
        abort(404)
    return render_template("staff/conversation.html", timeline=timeline, conversation=timeline.conversation)
