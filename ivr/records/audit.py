"""The audit: who in the console saw or changed what, and when; written alongside the change, never edited."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, select

from ivr.db import Database
from models import AuditEntry, StaffUser, utcnow

PAGE_SIZE = 50

# What each action is called on the audit page.
ACTION_NAMES = {
    "signed_in": "Signed in",
    "signed_out": "Signed out",
    "viewed_conversation": "Viewed a conversation",
    "searched_by_nhs_number": "Searched for an NHS number",
    "searched_by_phone_number": "Searched for a phone number",
    "viewed_person": "Viewed a person",
    "exported_conversations": "Downloaded conversations",
    "exported_register": "Downloaded the register",
    "exported_register_file": "Exported the register for other systems",
    "exported_words_not_understood": "Downloaded the words the line did not understand",
    "downloaded_national_request": "Downloaded a national check request file",
    "revealed_phone_number": "Revealed a phone number",
    "revealed_person_identifiers": "Revealed a person's NHS number and mobile",
    "assigned_follow_up": "Took on or handed on a follow-up",
    "noted_follow_up": "Added a note to a follow-up",
    "resolved_follow_up": "Resolved a follow-up",
    "imported_people": "Imported people",
    "changed_person_mobile": "Changed a person's mobile",
    "changed_person_date_of_birth": "Changed a person's date of birth",
    "recorded_choice": "Recorded a choice for a person",
    "added_staff_user": "Added a staff user",
    "changed_staff_role": "Changed a staff user's role",
    "deactivated_staff_user": "Deactivated a staff user",
    "reactivated_staff_user": "Reactivated a staff user",
    "set_staff_password": "Set a staff user's password",
    "changed_own_password": "Changed their own password",
    "made_trial_call": "Tried the line by phone",
    "sent_trial_text": "Tried the line by text",
    "applied_retention": "Removed old conversation steps and texts",
    "applied_register": "Applied the register to a data set",
}


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    staff_email: str | None  # None: the system
    action: str
    target_type: str
    target_id: str
    detail: str

    @property
    def action_name(self) -> str:
        return ACTION_NAMES.get(self.action, self.action.replace("_", " ").capitalize())


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    older_than: int | None  # the id to continue from, when there are older entries


def record_audit(
    session: Session, staff_user_id: int | None, action: str, target_type: str, target_id: object = "", detail: str = ""
) -> AuditEntry:
    """Add an entry in the caller's transaction, so the audit and the change it records commit together."""
    entry = AuditEntry(
        at=utcnow(),
        staff_user_id=staff_user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        detail=detail,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditNote:
    """One entry of many written at once (`record_audits`)."""

    action: str
    target_type: str
    target_id: object
    detail: str


def record_audits(session: Session, staff_user_id: int | None, notes: list[AuditNote]) -> None:
    """Add many entries in the caller's transaction in one statement (an import's changes, person by person)."""
    if not notes:
        return
    now = utcnow()
    rows = [
        {
            "at": now,
            "staff_user_id": staff_user_id,
            "action": note.action,
            "target_type": note.target_type,
            "target_id": str(note.target_id)[:64],
            "detail": note.detail,
        }
        for note in notes
    ]
    session.execute(insert(AuditEntry), rows)


def list_audit(database: Database, older_than: int | None = None, page_size: int | None = None) -> AuditPage:
    """Entries newest first, a page at a time; ids only grow, so the id alone is the page key."""
    page_size = page_size or PAGE_SIZE
    query = (
        select(AuditEntry, StaffUser.email)
        .join(StaffUser, col(AuditEntry.staff_user_id) == StaffUser.id, isouter=True)
        .order_by(col(AuditEntry.id).desc())
        .limit(page_size + 1)
    )
    if older_than is not None:
        query = query.where(col(AuditEntry.id) < older_than)
    with Session(database.engine) as session:
        found = session.exec(query).all()
    rows = [
        AuditRow(entry.id or 0, entry.at, email, entry.action, entry.target_type, entry.target_id, entry.detail)
        for entry, email in found[:page_size]
    ]
    return AuditPage(rows, rows[-1].id if len(found) > page_size else None)
