"""Staff accounts: signing in with an email address and password, with failures limited per address."""

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, text
from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.audit import record_audit
from ivr.db import Database
from models import StaffSignInAttempt, StaffUser, utcnow
from models.staff import STAFF_ROLES

log = logging.getLogger(__name__)

FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class StaffAccount:
    """A signed-in member of staff, as pages need them: never the password hash."""

    id: int
    email: str
    role: str
    session_generation: int = 0

    def has_role(self, role: str) -> bool:
        """True when this account's role is `role` or above it (viewer < manager < admin)."""
        return STAFF_ROLES.index(self.role) >= STAFF_ROLES.index(role)


class SignInRefused(Exception):
    """The address and password did not sign anyone in; the reason never tells whether the address exists."""

    def __init__(self, locked: bool) -> None:
        super().__init__("too many failed sign-ins" if locked else "email address or password not recognised")
        self.locked = locked


def normalise_email(email: str) -> str:
    return email.strip().lower()


def sign_in(database: Database, email_hash: Callable[[str], str], email: str, password: str) -> StaffAccount:
    """The account these details sign in, or SignInRefused.

    After FAILURE_LIMIT failures for one address within FAILURE_WINDOW (since its last success),
    that address is refused whatever the password, until the window has passed them.
    """
    email = normalise_email(email)
    hashed = email_hash(email)
    attempt_id, user = _claim_attempt(database, hashed, email)
    # The password is checked outside any write transaction: hashing takes a while, and on SQLite
    # a write transaction holds the lock the line's webhooks need.
    matched = check_password_hash(user.password_hash if user else _no_account_hash(), password)
    account = None
    if user is not None and user.id is not None and user.active and matched:
        account = StaffAccount(user.id, user.email, user.role, user.session_generation)
    if account is None:
        raise SignInRefused(locked=False)
    now = utcnow()
    with database.transaction() as session:
        attempt = session.get(StaffSignInAttempt, attempt_id)
        if attempt is not None:
            attempt.succeeded = True
        signed_in = session.get(StaffUser, account.id)
        if signed_in is not None:
            signed_in.last_signed_in_at = now
        record_audit(session, account.id, "signed_in", "staff_user", account.id)
    return account


def _claim_attempt(database: Database, hashed: str, email: str) -> tuple[int, StaffUser | None]:
    """Count the address's recent failures and, under the limit, record this attempt as a failure
    before any password is checked (it becomes a success if the password is right), in one
    serialised transaction: attempts sent together cannot all slip under the limit."""
    with database.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"sign-in:{hashed}"})
        if _recent_failures(session, hashed) >= FAILURE_LIMIT:
            log.warning("Sign-in refused: too many recent failures for that address")
            raise SignInRefused(locked=True)
        attempt = StaffSignInAttempt(email_hash=hashed, at=utcnow(), succeeded=False)
        session.add(attempt)
        session.flush()
        user = session.exec(select(StaffUser).where(StaffUser.email == email)).first()
        if user is not None:
            session.expunge(user)
        assert attempt.id is not None
        return attempt.id, user


def record_sign_out(database: Database, account_id: int) -> None:
    with database.transaction() as session:
        record_audit(session, account_id, "signed_out", "staff_user", account_id)


def load_account(database: Database, account_id: int, session_generation: int | None = None) -> StaffAccount | None:
    """The account behind a session, or None when it is gone, no longer active, or the session
    began before its member of staff last signed out."""
    with Session(database.engine) as session:
        user = session.get(StaffUser, account_id)
        if user is None or not user.active or user.id is None:
            return None
        if session_generation is not None and session_generation != user.session_generation:
            return None
        return StaffAccount(user.id, user.email, user.role, user.session_generation)


def end_all_sessions(database: Database, account_id: int) -> None:
    """Sign the member of staff out everywhere: every session begun before now stops working."""
    with database.transaction() as session:
        user = session.get(StaffUser, account_id, with_for_update=True)
        if user is not None:
            user.session_generation += 1


def _recent_failures(session: Session, email_hash: str) -> int:
    """Failures for the address within the window, since its last successful sign-in."""
    since = utcnow() - FAILURE_WINDOW
    last_success = session.exec(
        select(func.max(StaffSignInAttempt.at)).where(
            StaffSignInAttempt.email_hash == email_hash,
            col(StaffSignInAttempt.succeeded).is_(True),
            StaffSignInAttempt.at > since,
        )
    ).one()
    if last_success is not None:
        since = max(since, last_success)
    return session.exec(
        select(func.count()).where(
            StaffSignInAttempt.email_hash == email_hash,
            col(StaffSignInAttempt.succeeded).is_(False),
            StaffSignInAttempt.at > since,
        )
    ).one()


@functools.cache
def _no_account_hash() -> str:
    """Checked against when no account has the address, so a miss takes as long as a wrong password."""
    return generate_password_hash("no staff user has this password")
