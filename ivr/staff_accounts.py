"""Staff accounts: signing in with an email address and password, with failures limited per address;
and staff users added, changed, deactivated and given new passwords, each change audited."""

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.audit import record_audit
from ivr.db import Database
from models import StaffSignInAttempt, StaffUser, utcnow
from models.staff import STAFF_ROLES

log = logging.getLogger(__name__)

FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1000  # the sign-in form takes no more
MAX_EMAIL_LENGTH = 254


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


# ---- Managing staff users ------------------------------------------------------------------


class StaffUserNotFound(Exception):
    pass


class StaffUserRejected(ValueError):
    """What was typed breaks a rule: `field` names the box it came from, the message says what to do."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class StaffChangeRefused(Exception):
    """The change may not be made as asked (most often: it would lock the admins out); nothing changed."""


@dataclass(frozen=True)
class StaffUserRow:
    """A staff user as the admin pages show them: never the password hash."""

    id: int
    email: str
    role: str
    active: bool
    created_at: datetime
    last_signed_in_at: datetime | None


def check_email(email: str) -> str:
    """The address as it is kept (trimmed, lower case), or StaffUserRejected."""
    email = normalise_email(email)
    local, at, domain = email.partition("@")
    if not email:
        raise StaffUserRejected("email", "Enter an email address")
    if not (local and at and domain) or "@" in domain or any(char.isspace() for char in email):
        raise StaffUserRejected("email", "Enter an email address in the correct format, like name@example.org")
    if len(email) > MAX_EMAIL_LENGTH:
        raise StaffUserRejected("email", f"Email address must be {MAX_EMAIL_LENGTH} characters or fewer")
    return email


def check_password(password: str) -> None:
    """StaffUserRejected unless the password may be used to sign in."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffUserRejected("password", f"Password must be {MIN_PASSWORD_LENGTH} characters or more")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffUserRejected("password", f"Password must be {MAX_PASSWORD_LENGTH} characters or fewer")


def check_role(role: str) -> None:
    if role not in STAFF_ROLES:
        raise StaffUserRejected("role", "Select a role")


def create_staff_user(database: Database, email: str, role: str, password: str, by_staff_user_id: int | None) -> int:
    """Add an active staff user and return their id; `by_staff_user_id` None is the command line."""
    email = check_email(email)
    check_role(role)
    check_password(password)
    # Hashed before the transaction begins: scrypt takes a while, and a SQLite write holds the line's lock.
    password_hash = generate_password_hash(password)
    try:
        with database.transaction() as session:
            if _find_by_email(session, email) is not None:
                raise _already_exists()
            user = StaffUser(email=email, password_hash=password_hash, role=role)
            session.add(user)
            session.flush()
            assert user.id is not None
            record_audit(session, by_staff_user_id, "added_staff_user", "staff_user", user.id, f"{email} as {role}")
            return user.id
    except IntegrityError:
        raise _already_exists() from None  # added by someone else at the same moment


def list_staff_users(database: Database, newest_first: bool = False) -> list[StaffUserRow]:
    """Every staff user, active or not: by email address, or the most recently added first."""
    order = col(StaffUser.created_at).desc() if newest_first else col(StaffUser.email)
    with Session(database.engine) as session:
        users = session.exec(select(StaffUser).order_by(order, col(StaffUser.id).desc())).all()
        return [_row(user) for user in users]


def staff_user_detail(database: Database, staff_user_id: int) -> StaffUserRow:
    with Session(database.engine) as session:
        user = session.get(StaffUser, staff_user_id)
        if user is None:
            raise StaffUserNotFound(staff_user_id)
        return _row(user)


def change_staff_role(database: Database, staff_user_id: int, role: str, by_staff_user_id: int | None) -> bool:
    """Give the staff user another role, from their next request on; False when it was their role already."""
    check_role(role)
    with database.transaction() as session:
        user = _locked(session, staff_user_id)
        if user.role == role:
            return False
        if user.role == "admin":
            if staff_user_id == by_staff_user_id:
                raise StaffChangeRefused("You cannot remove your own admin role. Ask another admin to do it.")
            _refuse_for_last_admin(session, user, "change their role")
        change = f"{user.role} to {role}"
        record_audit(session, by_staff_user_id, "changed_staff_role", "staff_user", staff_user_id, change)
        user.role = role
        return True


def deactivate_staff_user(database: Database, staff_user_id: int, by_staff_user_id: int | None) -> bool:
    """Stop the staff user signing in, and end every session they have at once; False when already deactivated."""
    with database.transaction() as session:
        user = _locked(session, staff_user_id)
        if not user.active:
            return False
        if staff_user_id == by_staff_user_id:
            raise StaffChangeRefused("You cannot deactivate your own account. Ask another admin to do it.")
        if user.role == "admin":
            _refuse_for_last_admin(session, user, "deactivate them")
        user.active = False
        user.session_generation += 1  # as end_all_sessions does, in this transaction
        record_audit(session, by_staff_user_id, "deactivated_staff_user", "staff_user", staff_user_id)
        return True


def reactivate_staff_user(database: Database, staff_user_id: int, by_staff_user_id: int | None) -> bool:
    """Let a deactivated staff user sign in again, with the password they had; False when already active."""
    with database.transaction() as session:
        user = _locked(session, staff_user_id)
        if user.active:
            return False
        user.active = True
        record_audit(session, by_staff_user_id, "reactivated_staff_user", "staff_user", staff_user_id)
        return True


def set_staff_password(database: Database, staff_user_id: int, password: str, by_staff_user_id: int) -> None:
    """An admin gives another staff user a new password; every session they have ends."""
    if staff_user_id == by_staff_user_id:
        # Without the current password, a session left open would be enough to take the account over.
        raise StaffChangeRefused("To change your own password, use Change your password.")
    check_password(password)
    password_hash = generate_password_hash(password)
    with database.transaction() as session:
        user = _locked(session, staff_user_id)
        user.password_hash = password_hash
        user.session_generation += 1
        record_audit(session, by_staff_user_id, "set_staff_password", "staff_user", staff_user_id)


def change_own_password(
    database: Database, email_hash: Callable[[str], str], account_id: int, current_password: str, new_password: str
) -> StaffAccount:
    """A member of staff changes their own password; their other sessions end. Returns the account as it
    now is, so the session they changed it from can carry on.

    A wrong current password counts as a failed sign-in for the address (SignInRefused once locked),
    so a session left open is no way to guess it."""
    check_password(new_password)
    if new_password == current_password:
        raise StaffUserRejected("password", "Your new password must be different from your current password")
    email = staff_user_detail(database, account_id).email
    attempt_id, user = _claim_attempt(database, email_hash(email), email)
    current_hash = user.password_hash if user is not None else _no_account_hash()
    if not check_password_hash(current_hash, current_password):
        raise StaffUserRejected("current_password", "Your current password is not right")
    password_hash = generate_password_hash(new_password)
    with database.transaction() as session:
        attempt = session.get(StaffSignInAttempt, attempt_id)
        if attempt is not None:
            attempt.succeeded = True
        changed = _locked(session, account_id)
        if not changed.active or changed.password_hash != current_hash or changed.id is None:
            raise StaffChangeRefused("Your account changed while you were typing. Sign in again.")
        changed.password_hash = password_hash
        changed.session_generation += 1
        record_audit(session, account_id, "changed_own_password", "staff_user", account_id)
        return StaffAccount(changed.id, changed.email, changed.role, changed.session_generation)


def _find_by_email(session: Session, email: str) -> StaffUser | None:
    return session.exec(select(StaffUser).where(func.lower(StaffUser.email) == email)).first()


def _already_exists() -> StaffUserRejected:
    return StaffUserRejected("email", "A staff user with this email address already exists")


def _locked(session: Session, staff_user_id: int) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.id == staff_user_id).with_for_update()).first()
    if user is None:
        raise StaffUserNotFound(staff_user_id)
    return user


def _refuse_for_last_admin(session: Session, admin: StaffUser, change: str) -> None:
    """StaffChangeRefused when `admin` is the only active admin left: someone must be able to manage staff.

    The active admins are locked, so two admins demoting each other at once cannot both succeed."""
    admins = session.exec(
        select(StaffUser.id).where(StaffUser.role == "admin", col(StaffUser.active).is_(True)).with_for_update()
    ).all()
    if admin.active and list(admins) == [admin.id]:
        raise StaffChangeRefused(
            f"{admin.email} is the only active admin, so you cannot {change}. Make someone else an admin first."
        )


def _row(user: StaffUser) -> StaffUserRow:
    assert user.id is not None
    return StaffUserRow(user.id, user.email, user.role, user.active, user.created_at, user.last_signed_in_at)


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
