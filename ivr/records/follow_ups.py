"""Follow-ups: work the line hands to staff (call backs, callers who could not be verified, failed texts),
who each is about, and what staff do with them: take one on or give it to a colleague, add a note, reveal
the number to call, resolve it. The line notes on them too, when a number that blocked our texts texts
START again."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from ivr.db import Database
from ivr.records.audit import record_audit
from ivr.records.identity import code_accepted_at
from ivr.records.phone_numbers import mask_phone_number
from models import ChoiceEvent, Conversation, FollowUp, FollowUpNote, Person, StaffUser, utcnow
from models.time import UK

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


def note_texting_again(session: Session, number: str, word: str) -> int:
    """The number texted START (or `word`, its like) and its network lets our texts through again: say so, as
    the line and no member of staff, on each open "Texts blocked" follow-up for it; how many were noted."""
    now = utcnow()
    text = f"Texted {word} on {now.astimezone(UK):%-d %b %Y at %H:%M}: texts can be sent again."
    blocked = session.exec(
        select(FollowUp.id).where(FollowUp.kind == "network_stop", FollowUp.status == "open", FollowUp.phone == number)
    ).all()
    for follow_up_id in blocked:
        assert follow_up_id is not None
        session.add(FollowUpNote(follow_up_id=follow_up_id, staff_user_id=None, at=now, text=text))
    session.flush()
    return len(blocked)


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


class NotTextingAgain(Exception):
    """Only a "Texts blocked" follow-up the line has noted START on (and not blocked again since) can be
    resolved from that note."""


@dataclass(frozen=True)
class PersonNamed:
    id: int
    name: str


@dataclass(frozen=True)
class About:
    """Who a follow-up is about, as far as the line knows; numbers masked."""

    channel: str | None  # of its conversation (voice or sms); None without one
    # Matched by an identity check: the follow-up's own person, or the person its conversation verified.
    person: PersonNamed | None
    number: str | None  # masked: "number ending 123"
    # Where the number comes from: "kept" (in full, on the follow-up, so it can be revealed), "conversation"
    # (only the last digits the conversation keeps), "withheld" (the conversation had none), "none" (no conversation).
    number_from: str
    mobile_of: tuple[PersonNamed, ...]  # the people whose mobile on record the kept number is


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
    about: About

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)


@dataclass(frozen=True)
class NoteRow:
    at: datetime
    staff_email: str | None  # None: the line's own note
    text: str


@dataclass(frozen=True)
class FollowUpDetail:
    follow_up: FollowUpRow
    notes: list[NoteRow]
    texting_again: NoteRow | None  # the line's note it can be resolved from in one step (_texting_again_note)


@dataclass(frozen=True)
class FollowUpPage:
    rows: list[FollowUpRow]
    older_than: int | None  # the id to continue from, when there are older follow-ups


_assignee = aliased(StaffUser)
_resolver = aliased(StaffUser)
MOBILE_OWNERS_SHOWN = 3  # a family may share a mobile; more than this many names would not help anyone ring


def _follow_up_query() -> Select[FollowUp, str, str]:
    return (
        select(FollowUp, _assignee.email, _resolver.email)
        .join(_assignee, col(FollowUp.assigned_to_id) == _assignee.id, isouter=True)
        .join(_resolver, col(FollowUp.resolved_by_id) == _resolver.id, isouter=True)
    )


@dataclass(frozen=True)
class _ConversationFacts:
    channel: str
    caller_last_digits: str
    person_id: int | None


def _conversation_facts(session: Session, conversation_ids: set[int]) -> dict[int, _ConversationFacts]:
    if not conversation_ids:
        return {}
    query = select(Conversation.id, Conversation.channel, Conversation.caller_last_digits, Conversation.person_id).where(
        col(Conversation.id).in_(conversation_ids)
    )
    return {row[0]: _ConversationFacts(*row[1:]) for row in session.exec(query).all() if row[0] is not None}


def _people_named(
    session: Session, person_ids: set[int], mobiles: set[str]
) -> tuple[dict[int, PersonNamed], dict[str, list[PersonNamed]]]:
    """The people with these ids, and the people whose mobile on record is each of these numbers, by name."""
    if not person_ids and not mobiles:
        return {}, {}
    query = (
        select(Person.id, Person.given_name, Person.family_name, Person.mobile)
        .where(or_(col(Person.id).in_(person_ids), col(Person.mobile).in_(mobiles)))
        .order_by(col(Person.family_name), col(Person.given_name), col(Person.id))
    )
    by_id: dict[int, PersonNamed] = {}
    by_mobile: dict[str, list[PersonNamed]] = {}
    for person_id, given_name, family_name, mobile in session.exec(query).all():
        assert person_id is not None
        by_id[person_id] = named = PersonNamed(person_id, f"{given_name} {family_name}")
        if mobile in mobiles:
            by_mobile.setdefault(mobile, []).append(named)
    return by_id, by_mobile


def _number(follow_up: FollowUp, conversation: _ConversationFacts | None) -> tuple[str | None, str]:
    """The follow-up's number, masked, and where it comes from (About.number_from)."""
    if follow_up.phone:
        return mask_phone_number(follow_up.phone), "kept"
    if conversation is None:
        return None, "none"
    if not conversation.caller_last_digits:
        return None, "withheld"
    return mask_phone_number(conversation.caller_last_digits), "conversation"


def _about_each(session: Session, follow_ups: list[FollowUp]) -> dict[int, About]:
    """Who each follow-up is about, by its id: three queries for a whole page of them."""
    conversations = _conversation_facts(session, {f.conversation_id for f in follow_ups if f.conversation_id})
    person_of: dict[int | None, int | None] = {}
    for f in follow_ups:
        conversation = conversations.get(f.conversation_id or 0)
        person_of[f.id] = f.person_id or (conversation.person_id if conversation else None)
    person_ids = {person_id for person_id in person_of.values() if person_id is not None}
    names, owners = _people_named(session, person_ids, {f.phone for f in follow_ups if f.phone})
    about = {}
    for f in follow_ups:
        assert f.id is not None
        conversation = conversations.get(f.conversation_id or 0)
        person_id = person_of[f.id]
        number, number_from = _number(f, conversation)
        about[f.id] = About(
            channel=conversation.channel if conversation else None,
            person=names.get(person_id) if person_id is not None else None,
            number=number,
            number_from=number_from,
            mobile_of=tuple(owners.get(f.phone, [])[:MOBILE_OWNERS_SHOWN]) if f.phone else (),
        )
    return about


def _row(follow_up: FollowUp, assigned_to: str | None, resolved_by: str | None, about: About) -> FollowUpRow:
    assert follow_up.id is not None
    return FollowUpRow(
        id=follow_up.id,
        kind=follow_up.kind,
        status=follow_up.status,
        created_at=follow_up.created_at,
        detail=follow_up.detail,
        conversation_id=follow_up.conversation_id,
        phone=about.number,
        has_phone=bool(follow_up.phone),
        assigned_to=assigned_to,
        assigned_to_id=follow_up.assigned_to_id,
        resolved_at=follow_up.resolved_at,
        resolved_by=resolved_by,
        about=about,
    )


def _rows(session: Session, found: Sequence[tuple[FollowUp, str | None, str | None]]) -> list[FollowUpRow]:
    about = _about_each(session, [follow_up for follow_up, _, _ in found])
    return [_row(follow_up, assigned_to, resolved_by, about[follow_up.id or 0]) for follow_up, assigned_to, resolved_by in found]


def list_follow_ups(
    database: Database,
    status: str | None = "open",
    kind: str | None = None,
    older_than: int | None = None,
    page_size: int | None = None,
) -> FollowUpPage:
    """Follow-ups newest first (ids only grow), a page at a time, with who each is about; numbers masked."""
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
        found = session.exec(query).all()
        rows = _rows(session, found[:page_size])
    return FollowUpPage(rows, rows[-1].id if len(found) > page_size else None)


def follow_up_detail(database: Database, follow_up_id: int) -> FollowUpDetail:
    with Session(database.engine) as session:
        found = session.exec(_follow_up_query().where(FollowUp.id == follow_up_id)).first()
        if found is None:
            raise FollowUpNotFound(follow_up_id)
        notes = session.exec(
            select(FollowUpNote.at, StaffUser.email, FollowUpNote.text)
            .join(StaffUser, col(FollowUpNote.staff_user_id) == StaffUser.id, isouter=True)
            .where(FollowUpNote.follow_up_id == follow_up_id)
            .order_by(col(FollowUpNote.id))
        ).all()
        [row] = _rows(session, [found])
        again = _texting_again_note(session, found[0])
    texting_again = NoteRow(again.at, None, again.text) if again else None
    return FollowUpDetail(row, [NoteRow(*note) for note in notes], texting_again)


def _texting_again_note(session: Session, follow_up: FollowUp) -> FollowUpNote | None:
    """For an open "Texts blocked" follow-up, the line's latest note that the number texts again; None when
    there is none, or the number has blocked our texts again since (a newer follow-up says so)."""
    if follow_up.kind != "network_stop" or follow_up.status != "open" or not follow_up.phone:
        return None
    note = session.exec(
        select(FollowUpNote)
        .where(FollowUpNote.follow_up_id == follow_up.id, col(FollowUpNote.staff_user_id).is_(None))
        .order_by(col(FollowUpNote.id).desc())
    ).first()
    if note is None:
        return None
    blocked_again = session.exec(
        select(FollowUp.id).where(
            FollowUp.kind == "network_stop", FollowUp.phone == follow_up.phone, col(FollowUp.created_at) > note.at
        )
    ).first()
    return None if blocked_again is not None else note


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


def resolve_as_texting_again(database: Database, follow_up_id: int, staff_user_id: int) -> None:
    """Resolve a "Texts blocked" follow-up from the line's note that the number texts again, in one step:
    the member of staff's note says why, and the audit records it like any other resolving."""
    with database.transaction() as session:
        follow_up = _locked(session, follow_up_id)
        if follow_up.status != "open":
            raise FollowUpAlreadyResolved(follow_up_id)
        noted = _texting_again_note(session, follow_up)
        if noted is None:
            raise NotTextingAgain(follow_up_id)
        now = utcnow()
        text = f"Resolved: the number texts again, so our texts reach it. The line noted: {noted.text}"
        session.add(FollowUpNote(follow_up_id=follow_up_id, staff_user_id=staff_user_id, at=now, text=text))
        follow_up.status = "resolved"
        follow_up.resolved_at = now
        follow_up.resolved_by_id = staff_user_id
        record_audit(session, staff_user_id, "resolved_follow_up", "follow_up", follow_up_id, "texts again")
