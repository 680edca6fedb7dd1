"""People: search by full NHS number or name, and one person's choice history and conversations."""

from flask import abort, current_app, render_template, request
from flask_login import current_user

from ivr.choices import IDENTITY_SOURCE_NAMES, PROXY_ROLE_NAMES
from ivr.people_directory import (
    PersonNotFound,
    RevealedIdentifiers,
    SearchRejected,
    reveal_person_identifiers,
    search_people,
    view_person,
)
from ivr.phone_numbers import format_for_people
from ivr.staff.access import requires_role
from ivr.staff.blueprint import ROW_ID, bp
from ivr.staff.forms import ActionForm


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
    return _person_page(person_id, audited=request.method != "HEAD")


@bp.post(f"/people/<{ROW_ID}:person_id>/reveal")
@requires_role("manager")
def reveal_person(person_id: int) -> str:
    """The full NHS number and mobile, shown in this answer only (never kept in the session), and audited."""
    try:
        revealed = reveal_person_identifiers(current_app.extensions["database"], person_id, current_user.id)
    except PersonNotFound:
        abort(404)
    return _person_page(person_id, audited=False, revealed=revealed)


def _person_page(person_id: int, audited: bool, revealed: RevealedIdentifiers | None = None) -> str:
    try:
        record = view_person(current_app.extensions["database"], person_id, current_user.id, audited=audited)
    except PersonNotFound:
        abort(404)
    return render_template(
        "staff/person.html",
        record=record,
        source_names=IDENTITY_SOURCE_NAMES,
        proxy_role_names=PROXY_ROLE_NAMES,
        action_form=ActionForm(formdata=None),
        revealed_nhs_number=revealed.nhs_number if revealed else None,
        revealed_mobile=format_for_people(revealed.mobile) if revealed and revealed.mobile else None,
    )
