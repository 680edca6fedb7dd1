"""Follow-ups: work the line hands to staff (call backs, callers who could not be verified, failed texts),
and what staff do with them: take one on or give it to a colleague, add a note, reveal the number to call,
resolve it."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from ivr.db import Database
from ivr.records.audit import record_audit
from ivr.records.identity import code_accepted_at
from ivr.records.phone_numbers import mask_phone_number
from models import ChoiceEvent, FollowUp, FollowUpNote, Person, StaffUser, utcnow

KINDS = ("callback", "unverified_caller", "failed_text", "network_stop", "proxy_request", "choice_after_mobile_change")
# A choice made with a code sent to a mobile this soon after an import changed it is checked by staff:
# whoever can change the mobile on record could otherwise change anyone's choice with no one noticing.
MOBILE_CHANGE_REVIEW = timedelta(hours=24)
ASSIGNABLE_ROLES = ("manager", "admin")  # who may act on a follow-up


def raise_follow_up(
    session: Session,
    kind: str,
    detail: str = "",
    conversation_id: int | None = None,
    person_id: int | None = None,
    phone: str | None = None,
) -> FollowUp:
    if kind not in KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    follow_up = FollowUp(kind=kind, detail=detail, conversation_id=conversation_id, person_id=person_id, phone=phone)
    session.add(follow_up)
    session.flush()
    return follow_up


def review_choice_after_mobile_change(session: Session, person: Person, event: ChoiceEvent | None) -> FollowUp | None:
    """A choice just recorded from the line (`event`; None when nothing changed) rests on the mobile on record:
    a code was sent to it, or by text a message came from it. When an import changed that mobile at most 24
    hours before (the code was sent, or the choice was made), a second member of staff is asked to check."""
    if event is None or event.conversation_id is None or person.mobile_changed_at is None or person.id is None:
        return None
    relied_on_at = code_accepted_at(session, person.id, event.conversation_id) or event.recorded_at
    since_change = relied_on_at - person.mobile_changed_at
    if not timedelta(0) <= since_change <= MOBILE_CHANGE_REVIEW:
        return None
    changed_by = session.get(StaffUser, person.mobile_changed_by_id) if person.mobile_changed_by_id else None
    by = changed_by.email if changed_by else "an import from the command line"
    how = {"voice": "by phone", "sms": "by text"}.get(event.channel, event.channel)
    hours = int(since_change.total_seconds() // 3600)
    after = "less than an hour" if hours < 1 else f"{hours} hour{'' if hours == 1 else 's'}"
    detail = (
        f"A choice was made {how} on the strength of the {mask_phone_number(person.mobile)}, {after} after "
        f"{by} changed the mobile on record. A second member of staff should check with the person, "
        "by post or a number they gave before the change, that they made this choice."
    )
    return raise_follow_up(session, "choice_after_mobile_change", detail, event.conversation_id, person.id)


# ---- Working on follow-ups in the staff console --------------------------------------------

PAGE_SIZE = 25
STATUSES = ("open", "resolved")
KIND_NAMES = {
    "callback": "Call back",
    "unverified_caller": "Caller not verified",
    "failed_text": "Text not delivered",
    "network_stop": "Texts blocked by the network",
    "proxy_request": "On behalf of someone else",
    "choice_after_mobile_change": "Choice soon after a mobile change",
}
NOTE_MAX_LENGTH = 2000


class FollowUpNotFound(Exception):
    pass


class FollowUpAlreadyResolved(Exception):
    pass


class SecondStaffNeeded(Exception):
    """A choice soon after a mobile change is checked by someone other than the member of staff who changed it."""


@dataclass(frozen=True)
class FollowUpRow:
    id: int
    kind: str
    status: str
    created_at: datetime
    detail: str
    conversation_id: int | None
    phone: str | None  # masked: "number ending 123"
    has_phone: bool
    assigned_to: str | None  # email
    assigned_to_id: int | None
    resolved_at: datetime | None
    resolved_by: str | None  # email

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)


@dataclass(frozen=True)
class NoteRow:
    at: datetime
    staff_email: str
    text: str


@dataclass(frozen=True)
class FollowUpDetail:
    follow_up: FollowUpRow
    notes: list[NoteRow]


@dataclass(frozen=True)
class FollowUpPage:
    rows: list[FollowUpRow]
    older_than: int | None  # the id to continue from, when there are older follow-ups


_assignee = aliased(StaffUser)
_resolver = aliased(StaffUser)


def _follow_up_query() -> Select[FollowUp, str, str]:
    return (
        select(FollowUp, _assignee.email, _resolver.email)
        .join(_assignee, col(FollowUp.assigned_to_id) == _assignee.id, isouter=True)
        .join(_resolver, col(FollowUp.resolved_by_id) == _resolver.id, isouter=True)
    )


def _row(follow_up: FollowUp, assigned_to: str | None, resolved_by: str | None) -> FollowUpRow:
    assert follow_up.id is not None
    return FollowUpRow(
        id=follow_up.id,
        kind=follow_up.kind,
        status=follow_up.status,
        created_at=follow_up.created_at,
        detail=follow_up.detail,
        conversation_id=follow_up.conversation_id,
        phone=mask_phone_number(follow_up.phone) if follow_up.phone else None,
        has_phone=bool(follow_up.phone),
        assigned_to=assigned_to,
        assigned_to_id=follow_up.assigned_to_id,
        resolved_at=follow_up.resolved_at,
        resolved_by=resolved_by,
    )


def list_follow_ups(
    database: Database,
    status: str | None = "open",
    kind: str | None = None,
    older_than: int | None = None,
    page_size: int | None = None,
) -> FollowUpPage:
    """Follow-ups newest first (ids only grow), a page at a time; phone numbers masked."""
    page_size = page_size or PAGE_SIZE
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown follow-up status {status!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown follow-up kind {kind!r}")
    query = _follow_up_query().order_by(col(FollowUp.id).desc()).limit(page_size + 1)
    if status is not None:
        query = query.where(FollowUp.status == status)
    if kind is not None:
        query = query.where(FollowUp.kind == kind)
    if older_than is not None:
        query = query.where(col(FollowUp.id) < older_than)
    with Session(database.engine) as session:
        found = [_row(*row) for row in session.exec(query).all()]
    rows = found[:page_size]
    return FollowUpPage(rows, rows[-1].id if len(found) > page_size else None)


def follow_up_detail(database: Database, follow_up_id: int) -> FollowUpDetail:
    with Session(database.engine) as session:
        found = session.exec(_follow_up_query().where(FollowUp.id == follow_up_id)).first()
        if found is None:
            raise FollowUpNotFound(follow_up_id)
        notes = session.exec(
            select(FollowUpNote.at, StaffUser.email, FollowUpNote.text)
            .join(StaffUser, col(FollowUpNote.staff_user_id) == StaffUser.id)
            .where(FollowUpNote.follow_up_id == follow_up_id)
            .order_by(col(FollowUpNote.id))
        ).all()
    return FollowUpDetail(_row(*found), [NoteRow(*note) for note in notes])


def _locked(session: Session, follow_up_id: int) -> FollowUp:
    follow_up = session.exec(select(FollowUp).where(FollowUp.id == follow_up_id).with_for_update()).first()
    if follow_up is None:
        raise FollowUpNotFound(follow_up_id)
    return follow_up


class AssigneeNotAllowed(Exception):
    """Follow-ups go only to active managers and admins: the staff who can act on them."""


def assignable_staff(database: Database) -> list[tuple[int, str]]:
    """(id, email) of every active manager and admin, by email."""
    with Session(database.engine) as session:
        query = (
            select(StaffUser.id, StaffUser.email)
            .where(col(StaffUser.active).is_(True), col(StaffUser.role).in_(ASSIGNABLE_ROLES))
            .order_by(col(StaffUser.email))
        )
        return [(staff_id, email) for staff_id, email in session.exec(query).all() if staff_id is not None]


def assign_follow_up(database: Database, follow_up_id: int, staff_user_id: int, assignee_id: int | None = None) -> str:
    """The member of staff takes the follow-up on, or gives it to `assignee_id`; the assignee's email."""
    assignee_id = staff_user_id if assignee_id is None else assignee_id
    with database.transaction() as session:
        follow_up = _locked(session, follow_up_id)
        if follow_up.status != "open":
            raise FollowUpAlreadyResolved(follow_up_id)
        assignee = session.get(StaffUser, assignee_id)
        if assignee is None or not assignee.active or assignee.role not in ASSIGNABLE_ROLES:
            raise AssigneeNotAllowed(assignee_id)
        follow_up.assigned_to_id = assignee_id
        detail = "" if assignee_id == staff_user_id else f"to {assignee.email}"
        record_audit(session, staff_user_id, "assigned_follow_up", "follow_up", follow_up_id, detail)
        return assignee.email


def add_follow_up_note(database: Database, follow_up_id: int, staff_user_id: int, text: str) -> None:
    text = text.strip()
    if not text or len(text) > NOTE_MAX_LENGTH:
        raise ValueError(f"a note has 1 to {NOTE_MAX_LENGTH} characters")
    with database.transaction() as session:
        _locked(session, follow_up_id)
        session.add(FollowUpNote(follow_up_id=follow_up_id, staff_user_id=staff_user_id, at=utcnow(), text=text))
        record_audit(session, staff_user_id, "noted_follow_up", "follow_up", follow_up_id)


def resolve_follow_up(database: Database, follow_up_id: int, staff_user_id: int) -> None:
    with database.transaction() as session:
        follow_up = _locked(session, follow_up_id)
        if follow_up.status != "open":
            raise FollowUpAlreadyResolved(follow_up_id)
        if follow_up.kind == "choice_after_mobile_change" and follow_up.person_id is not None:
            person = session.get(Person, follow_up.person_id)
            if person is not None and person.mobile_changed_by_id == staff_user_id:
                raise SecondStaffNeeded(follow_up_id)
        follow_up.status = "resolved"
        follow_up.resolved_at = utcnow()
        follow_up.resolved_by_id = staff_user_id
        record_audit(session, staff_user_id, "resolved_follow_up", "follow_up", follow_up_id)


def reveal_follow_up_phone(database: Database, follow_up_id: int, staff_user_id: int) -> str | None:
    """The follow-up's full phone number (None when it has none), with an audit entry saying who saw it."""
    with database.transaction() as session:
        follow_up = _locked(session, follow_up_id)
        if not follow_up.phone:
            return None
        record_audit(
            session,
            staff_user_id,
            "revealed_phone_number",
            "follow_up",
            follow_up_id,
            f"The {mask_phone_number(follow_up.phone)}",
        )
        return follow_up.phone
