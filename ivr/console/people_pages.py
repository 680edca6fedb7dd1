"""People: search by full NHS number, mobile number or name, and one person's choice history and conversations.

The search box posts, so an NHS number or a phone number never goes into an address (nor, with it, into a
browser's history, a proxy's log or the server's request log). The answer is a redirect: a name to `?q=NAME`,
a number to `?found=TOKEN`, a signed token naming the people found (by row id), who searched, and what the
number was read as (for a mobile, its last three digits, as the console shows it), so Back and reloading
show the results again without a second search.
"""

from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from ivr.console.access import IDLE_LIMIT, requires_role
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.forms import ActionForm
from ivr.console.people_directory import (
    PeopleSearch,
    PersonNotFound,
    PersonRow,
    RevealedIdentifiers,
    SearchRejected,
    people_by_id,
    read_search,
    reveal_person_identifiers,
    search_people,
    view_person,
)
from ivr.records.choices import IDENTITY_SOURCE_NAMES, PROXY_ROLE_NAMES
from ivr.records.phone_numbers import format_for_people, last_digits

SEARCH_BY_NUMBER_IN_ADDRESS = "Search by NHS number or phone number with the search box below, not in the address"
SEARCH_EXPIRED = "Those search results are no longer available: search again"


@dataclass(frozen=True)
class NumberSearched:
    """What a search by number was read as, for its results page: never the number, at most a mobile's last digits."""

    kind: str  # "nhs_number" or "mobile"
    mobile_ending: str | None = None
    could_be_mobile: bool = False  # an NHS number whose digits are also a mobile without its leading 0

    @classmethod
    def of(cls, search: PeopleSearch) -> "NumberSearched":
        if search.mobile is not None:
            return cls("mobile", last_digits(search.mobile))
        return cls("nhs_number", could_be_mobile=search.could_be_mobile)

    @classmethod
    def from_token(cls, found: dict[str, Any]) -> "NumberSearched":
        """As a results token carries it (a token from before searches by mobile carries none: an NHS number)."""
        ending = found.get("ending")
        if found.get("as") == "mobile" and isinstance(ending, str) and ending.isdigit():
            return cls("mobile", ending)
        return cls("nhs_number", could_be_mobile=found.get("could_be_mobile") is True)


@bp.route("/people", methods=["GET", "POST"])
@requires_role("viewer")
def people() -> Response | tuple[str, int] | str:
    if request.method == "POST":
        return _search_from_form()
    if "found" in request.args:
        return _found_page(request.args["found"])
    if "q" not in request.args:
        return _search_page()
    query = request.args["q"]
    if any(ch.isdigit() for ch in query):  # never searched, nor shown again: it came in the address
        return _search_page(error=SEARCH_BY_NUMBER_IN_ADDRESS), 400
    try:
        search = read_search(query)
    except SearchRejected as rejected:
        return _search_page(query, error=str(rejected)), 400
    return _search_page(query, search_people(current_app.extensions["database"], search, current_user.id))


def _search_from_form() -> Response | tuple[str, int]:
    """The search box (its CSRF token checked before this runs): run a search by number here, audited."""
    query = request.form.get("q", "")
    try:
        search = read_search(query)
    except SearchRejected as rejected:
        return _search_page(query, error=str(rejected)), 400
    if search.name is not None:
        return redirect(url_for("staff.people", q=search.name))
    results = search_people(current_app.extensions["database"], search, current_user.id)
    searched = NumberSearched.of(search)
    token = _search_tokens().dumps(
        {
            "by": current_user.id,
            "ids": [found.id for found in results],
            "as": searched.kind,
            "ending": searched.mobile_ending,
            "could_be_mobile": searched.could_be_mobile,
        }
    )
    return redirect(url_for("staff.people", found=token))


def _search_tokens() -> URLSafeTimedSerializer:
    # create_app always sets the secret key; Flask types it as possibly None. The salt is from when only NHS
    # numbers were searched for here: kept, so results links made before still work.
    return URLSafeTimedSerializer(current_app.secret_key, salt="people-search-by-nhs-number")  # type: ignore[arg-type]


def _found_page(token: str) -> tuple[str, int] | str:
    """A search by number's results again, for the member of staff who searched, while their session could last."""
    try:
        found = _search_tokens().loads(token, max_age=int(IDLE_LIMIT.total_seconds()))
    except BadSignature:
        return _search_page(error=SEARCH_EXPIRED), 400
    if not isinstance(found, dict) or found.get("by") != current_user.id:
        return _search_page(error=SEARCH_EXPIRED), 400
    ids = [person_id for person_id in found.get("ids", []) if isinstance(person_id, int)]
    results = people_by_id(current_app.extensions["database"], ids)
    return _search_page(results=results, searched=NumberSearched.from_token(found))


def _search_page(
    query: str = "", results: list[PersonRow] | None = None, error: str | None = None, searched: NumberSearched | None = None
) -> str:
    return render_template(
        "staff/people.html",
        query=query,
        results=results,
        error=error,
        searched=searched,
        form=ActionForm(formdata=None),
    )


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
