"""The audit, for admins: read only; nothing in the console edits or removes an entry."""

from typing import Any

from flask import current_app, render_template, request, url_for

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.records.audit import AuditRow, list_audit

# The page each kind of subject has, by the endpoint and the argument its id goes in. A register run has
# no page of its own: its row on the register runs page is anchored (register_runs.html) instead.
SUBJECT_PAGES = {
    "person": ("staff.person", "person_id"),
    "conversation": ("staff.conversation", "conversation_id"),
    "follow_up": ("staff.follow_up", "follow_up_id"),
    "staff_user": ("staff.staff_user", "staff_user_id"),
}
REGISTER_RUN = "register_run"
LARGEST_ROW_ID = 2147483647  # as ROW_ID allows in a page's address


@bp.get("/audit")
@requires_role("admin")
def audit() -> str:
    older = request.args.get("older", "")
    older_than = int(older) if older.isascii() and older.isdigit() and len(older) < 12 else None
    page = list_audit(current_app.extensions["database"], older_than)
    older_link = url_for("staff.audit", older=page.older_than) if page.older_than is not None else None
    links = {row.id: link for row in page.rows if (link := subject_link(row)) is not None}
    return render_template("staff/audit.html", page=page, older_link=older_link, subject_links=links)


def subject_link(row: AuditRow) -> str | None:
    """Where the entry's subject can be seen, or None: a kind with no page (an export, the register), or an
    entry about many (an import, a search), has no one subject to show."""
    ident = row.target_id
    if not (ident.isascii() and ident.isdigit() and 0 < int(ident) <= LARGEST_ROW_ID):
        return None
    if row.target_type == REGISTER_RUN:
        return url_for("staff.register_runs", _anchor=f"register-run-{int(ident)}")
    page = SUBJECT_PAGES.get(row.target_type)
    if page is None:
        return None
    endpoint, argument = page
    # Any, not int: url_for's own keyword arguments (_external: bool) would otherwise be thought at risk.
    values: dict[str, Any] = {argument: int(ident)}
    return url_for(endpoint, **values)
