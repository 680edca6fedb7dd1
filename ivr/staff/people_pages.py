"""People: search by full NHS number or name, and one person's choice history and conversations."""

from flask import abort, current_app, render_template, request
from flask_login import current_user

from ivr.choices import IDENTITY_SOURCE_NAMES, PROXY_ROLE_NAMES
from ivr.people_directory import PersonNotFound, SearchRejected, search_people, view_person
from ivr.staff.access import requires_role
from ivr.staff.blueprint import ROW_ID, bp


@bp.get("/people")
@requires_role("viewer")
def people() -> tuple[str, int] | str:
    query = request.args.get("q", "")
    if "q" not in request.args:
        return render_template("staff/people.html", query="", results=None, error=None)
    try:
        results = search_people(current_app.extensions["database"], query, current_user.id)
    except SearchRejected as rejected:
        return render_template("staff/people.html", query=query, results=None, error=str(rejected)), 400
    return render_template("staff/people.html", query=query, results=results, error=None)


@bp.get(f"/people/<{ROW_ID}:person_id>")
@requires_role("viewer")
def person(person_id: int) -> str:
    try:
        database = current_app.extensions["database"]
        record = view_person(database, person_id, current_user.id, audited=request.method != "HEAD")
    except PersonNotFound:
        abort(404)
    return render_template(
        "staff/person.html", record=record, source_names=IDENTITY_SOURCE_NAMES, proxy_role_names=PROXY_ROLE_NAMES
    )
