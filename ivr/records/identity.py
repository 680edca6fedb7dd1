"""Proving who someone is: NHS number and date of birth against the people records, one-time codes, lockouts.

Every failure is written as a row in identity_attempt and limits are counted from those rows, so
limits hold across calls, texts and any number of app processes. Checks for one NHS number, or from one
calling number, take turns (a transaction-scoped lock), so attempts that arrive together are counted
one after another and none slips past a limit that the one before it reached.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import text
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from models import IdentityAttempt, OneTimeCode, Person, utcnow

FAILURE_WINDOW = timedelta(hours=1)  # failures are counted over this long
LOCK_DURATION = timedelta(hours=1)  # and reaching a limit locks for this long from then
MAX_FAILURES_PER_NHS_NUMBER = 5  # across calls and texts
MAX_FAILURES_PER_CALLER = 10  # from one calling or texting number
# Callers who withhold their number cannot be told apart, so they are never locked out together (one person
# could then shut the line to all of them): past this many failures from all of them in FAILURE_WINDOW, each
# withheld call gets one try at its details instead of three. The NHS number's own lock stops guessing at
# one person, whoever calls.
MAX_FAILURES_WITHHELD = 30
MAX_CODES_PER_PERSON = 5  # texted within FAILURE_WINDOW, however asked for: no flooding anyone's phone
FAILURE_KINDS = ("details", "code")
LOCK_NHS_NUMBER = "lock_nhs"
LOCK_CALLER = "lock_caller"
CODE_LIFETIME = timedelta(minutes=10)
MAX_CODE_TRIES = 3

CodeCheck = Literal["accepted", "wrong", "expired", "exhausted", "locked"]


@dataclass(frozen=True)
class IdentityMatch:
    person: Person | None
    locked: bool
    last_try: bool = False  # no match, and this call may not try again (withheld callers failing often)


@dataclass(frozen=True)
class IssuedCode:
    code_id: int
    code: str  # the plain code, only to be put in the text; the table keeps its hash
    expires_at: datetime


def code_accepted_at(session: Session, person_id: int, conversation_id: int) -> datetime | None:
    """When the code that proved who someone is on this conversation was sent; None if no code did."""
    query = (
        select(OneTimeCode.created_at)
        .where(
            OneTimeCode.person_id == person_id,
            OneTimeCode.conversation_id == conversation_id,
            col(OneTimeCode.used_at).is_not(None),
        )
        .order_by(col(OneTimeCode.id).desc())
        .limit(1)
    )
    return session.exec(query).first()


class Identity:
    def __init__(self, secret_key: str) -> None:
        self._key = secret_key.encode()
        # Callers who withhold their number share one bucket: it slows them all when it fills, and never locks.
        self.withheld_caller_hash = self.keyed_hash("withheld caller")

    def keyed_hash(self, value: str) -> str:
        """A stable, secret-keyed hash: lets limits count by NHS number or caller without storing either."""
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def is_locked(self, session: Session, nhs_number: str, caller_hash: str = "") -> bool:
        """True while a lock taken for this NHS number, or for this calling number, is in force."""
        locked_for = IdentityAttempt.nhs_number_hash == self.keyed_hash(nhs_number)
        if caller_hash and caller_hash != self.withheld_caller_hash:
            caller_locked = (IdentityAttempt.caller_hash == caller_hash) & (IdentityAttempt.kind == LOCK_CALLER)
            locked_for = locked_for | caller_locked
        query = select(IdentityAttempt.id).where(
            col(IdentityAttempt.kind).in_((LOCK_NHS_NUMBER, LOCK_CALLER)),
            IdentityAttempt.at >= utcnow() - LOCK_DURATION,
            locked_for,
        )
        return session.exec(query.limit(1)).first() is not None

    def _lock_if_limit_reached(self, session: Session, nhs_number_hash: str, caller_hash: str) -> None:
        since = utcnow() - FAILURE_WINDOW
        failed = select(func.count()).where(
            col(IdentityAttempt.kind).in_(FAILURE_KINDS),
            IdentityAttempt.succeeded == False,  # noqa: E712
            IdentityAttempt.at >= since,
        )
        if session.exec(failed.where(IdentityAttempt.nhs_number_hash == nhs_number_hash)).one() >= (
            MAX_FAILURES_PER_NHS_NUMBER
        ):
            session.add(IdentityAttempt(nhs_number_hash=nhs_number_hash, kind=LOCK_NHS_NUMBER))
        if caller_hash and caller_hash != self.withheld_caller_hash:
            if session.exec(failed.where(IdentityAttempt.caller_hash == caller_hash)).one() >= MAX_FAILURES_PER_CALLER:
                session.add(IdentityAttempt(nhs_number_hash="", caller_hash=caller_hash, kind=LOCK_CALLER))

    def _withheld_callers_failing_often(self, session: Session, caller_hash: str) -> bool:
        if caller_hash != self.withheld_caller_hash:
            return False
        failed = select(func.count()).where(
            IdentityAttempt.caller_hash == caller_hash,
            col(IdentityAttempt.kind).in_(FAILURE_KINDS),
            IdentityAttempt.succeeded == False,  # noqa: E712
            IdentityAttempt.at >= utcnow() - FAILURE_WINDOW,
        )
        return session.exec(failed).one() >= MAX_FAILURES_WITHHELD

    def _take_turn(self, session: Session, nhs_number: str, caller_hash: str) -> None:
        """Wait for any other check of this NHS number or from this caller to finish (until this transaction
        ends). On SQLite every writing transaction takes turns already."""
        if session.get_bind().dialect.name != "postgresql":
            return
        keys = {f"nhs:{self.keyed_hash(nhs_number)}", *([f"caller:{caller_hash}"] if caller_hash else [])}
        for key in sorted(keys):  # always in the same order, so two checks never wait for each other
            lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    def match_details(
        self, session: Session, nhs_number: str, date_of_birth: date, caller_hash: str, conversation_id: int | None
    ) -> IdentityMatch:
        """The person with this NHS number and date of birth; no match and wrong details look the same."""
        self._take_turn(session, nhs_number, caller_hash)
        if self.is_locked(session, nhs_number, caller_hash):
            return IdentityMatch(None, locked=True)
        person = session.exec(select(Person).where(Person.nhs_number == nhs_number)).first()
        matched = person is not None and person.date_of_birth == date_of_birth
        self._record_attempt(session, nhs_number, caller_hash, conversation_id, "details", matched)
        if matched:
            return IdentityMatch(person, locked=False)
        return IdentityMatch(None, locked=False, last_try=self._withheld_callers_failing_often(session, caller_hash))

    def _record_attempt(
        self, session: Session, nhs_number: str, caller_hash: str, conversation_id: int | None, kind: str, ok: bool
    ) -> None:
        nhs_number_hash = self.keyed_hash(nhs_number)
        session.add(
            IdentityAttempt(
                nhs_number_hash=nhs_number_hash,
                caller_hash=caller_hash,
                conversation_id=conversation_id,
                kind=kind,
                succeeded=ok,
            )
        )
        session.flush()
        if not ok:
            self._lock_if_limit_reached(session, nhs_number_hash, caller_hash)
            session.flush()

    def _code_hash(self, person_id: int, code: str) -> str:
        return self.keyed_hash(f"one-time-code:{person_id}:{code}")

    def issue_code(self, session: Session, person: Person, conversation_id: int | None) -> IssuedCode | None:
        """A new 6-digit code for the person, which stops any code issued before it working; None when
        the person has been sent as many codes as an hour allows."""
        assert person.id is not None
        now = utcnow()
        recent = select(func.count()).where(
            OneTimeCode.person_id == person.id, OneTimeCode.created_at >= now - FAILURE_WINDOW
        )
        if session.exec(recent).one() >= MAX_CODES_PER_PERSON:
            return None
        for live in session.exec(self._live_codes(person.id)).all():
            live.withdrawn_at = now
        code = f"{secrets.randbelow(1_000_000):06d}"
        row = OneTimeCode(
            person_id=person.id,
            conversation_id=conversation_id,
            code_hash=self._code_hash(person.id, code),
            created_at=now,
            expires_at=now + CODE_LIFETIME,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return IssuedCode(row.id, code, row.expires_at)

    @staticmethod
    def _live_codes(person_id: int) -> SelectOfScalar[OneTimeCode]:
        return (
            select(OneTimeCode)
            .where(
                OneTimeCode.person_id == person_id,
                col(OneTimeCode.used_at).is_(None),
                col(OneTimeCode.withdrawn_at).is_(None),
            )
            .order_by(col(OneTimeCode.id).desc())
            .with_for_update()
        )

    def check_code(
        self, session: Session, person: Person, code: str, caller_hash: str, conversation_id: int | None
    ) -> CodeCheck:
        """Check a keyed or texted code: it works once, for 10 minutes, with 3 tries."""
        assert person.id is not None
        self._take_turn(session, person.nhs_number, caller_hash)
        if self.is_locked(session, person.nhs_number, caller_hash):
            return "locked"
        live = session.exec(self._live_codes(person.id)).first()
        now = utcnow()
        if live is None:
            return "exhausted"  # used, or withdrawn after its tries: no code is waiting
        if live.expires_at <= now:
            return "expired"
        if hmac.compare_digest(live.code_hash, self._code_hash(person.id, code)):
            live.used_at = now
            self._record_attempt(session, person.nhs_number, caller_hash, conversation_id, "code", True)
            return "accepted"
        # Every wrong code counts towards the locks, so new codes cannot buy endless guesses.
        live.attempts += 1
        if live.attempts >= MAX_CODE_TRIES:
            live.withdrawn_at = now
        self._record_attempt(session, person.nhs_number, caller_hash, conversation_id, "code", False)
        if self.is_locked(session, person.nhs_number, caller_hash):
            return "locked"
        return "wrong" if live.withdrawn_at is None else "exhausted"
