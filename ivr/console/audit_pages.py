"""The audit, for admins: read only; nothing in the console edits or removes an entry."""

from flask import current_app, render_template, request, url_for

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.records.audit import list_audit


@bp.get("/audit")
@requires_role("admin")
def audit() -> str:
    older = request.args.get("older", "")
    older_than = int(older) if older.isascii() and older.isdigit() and len(older) < 12 else None
    page = list_audit(current_app.extensions["database"], older_than)
    older_link = url_for("staff.audit", older=page.older_than) if page.older_than is not None else None
    return render_template("staff/audit.html", page=page, older_link=older_link)
