"""Staff accounts: signing in with an email address and password, with failures limited per email address
and per network; and staff users added, changed, deactivated and given new passwords (never easily
guessed ones), each change audited."""

import functools
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from ivr.db import Database
from ivr.records.audit import record_audit
from models import StaffSignInAttempt, StaffUser, utcnow
from models.staff import STAFF_ROLES

log = logging.getLogger(__name__)

# Failed sign-ins are counted in the database, in one serialised transaction per attempt (see _claim_attempt),
# so the limits hold across every worker process. A network is an IPv4 address or an IPv6 /64.
FAILURE_LIMIT = 5  # for one email address from one network, within FAILURE_WINDOW: that pair is locked
FAILURE_WINDOW = timedelta(minutes=15)
ADDRESS_FAILURE_LIMIT = 20  # from one network, for any email addresses, within FAILURE_WINDOW: the network is locked
# For one email address from every network together, within ACCOUNT_WINDOW: past it, networks the account
# has not signed in from lately get one try a minute between them; never a lock, so no outsider can shut
# an account, and never for a network the account signed in from within KNOWN_NETWORK_AGE.
ACCOUNT_FAILURE_CEILING = 100
ACCOUNT_WINDOW = timedelta(hours=24)
SLOWED_INTERVAL = timedelta(minutes=1)
KNOWN_NETWORK_AGE = timedelta(days=90)
# Why SignInRefused refused, for the page to say so: never whether an account has the address.
LOCKED_ACCOUNT_FROM_HERE = "account from here"
LOCKED_HERE = "here"
SLOWED = "account slowed"

MIN_PASSWORD_LENGTH = 12
# zxcvbn's score, 0 to 4: 3 is "safely unguessable" (about 10^8 guesses or more, its dictionaries of
# common passwords, names, words, keyboard patterns, repeats, sequences and dates all tried).
MIN_PASSWORD_SCORE = 3
SCORED_PASSWORD_LENGTH = 72  # zxcvbn takes no more (its time grows fast); the first 72 must be strong alone
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
    """The address and password did not sign anyone in; the reason never tells whether the address exists.

    `lock` is None when they were simply not recognised, else LOCKED_ACCOUNT_FROM_HERE, LOCKED_HERE or SLOWED."""

    def __init__(self, lock: str | None = None) -> None:
        super().__init__(f"too many failed sign-ins ({lock})" if lock else "email address or password not recognised")
        self.lock = lock

    @property
    def locked(self) -> bool:
        return self.lock is not None


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


def check_password(password: str, email: str = "") -> None:
    """StaffUserRejected unless the password may be used to sign in: long enough, and not easily guessed
    (judged by zxcvbn, with the account's email address among the words it tries)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffUserRejected("password", f"Password must be {MIN_PASSWORD_LENGTH} characters or more")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffUserRejected("password", f"Password must be {MAX_PASSWORD_LENGTH} characters or fewer")
    email = normalise_email(email)
    if email and email in password.lower():
        raise StaffUserRejected("password", "Password must not contain the email address")
    judged = zxcvbn(password[:SCORED_PASSWORD_LENGTH], user_inputs=_words_of(email))
    if judged["score"] < MIN_PASSWORD_SCORE:
        why = judged["feedback"]["warning"].strip().rstrip(".")
        raise StaffUserRejected(
            "password",
            "Password is too easy to guess"
            + (f" ({why[:1].lower()}{why[1:]})" if why else "")
            + ". Use a few words that do not go together",
        )


def _words_of(email: str) -> list[str]:
    """The email address and its parts, for zxcvbn to try as words: "sam.jones2024" is no better than "sam"."""
    local, _, domain = email.partition("@")
    parts = re.split(r"[^a-z0-9]+", local)
    return [word for word in (email, local, "".join(parts), *parts, domain.split(".")[0]) if word]


def check_role(role: str) -> None:
    if role not in STAFF_ROLES:
        raise StaffUserRejected("role", "Select a role")


def create_staff_user(database: Database, email: str, role: str, password: str, by_staff_user_id: int | None) -> int:
    """Add an active staff user and return their id; `by_staff_user_id` None is the command line."""
    email = check_email(email)
    check_role(role)
    check_password(password, email)
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
    check_password(password, staff_user_detail(database, staff_user_id).email)
    password_hash = generate_password_hash(password)
    with database.transaction() as session:
        user = _locked(session, staff_user_id)
        user.password_hash = password_hash
        user.session_generation += 1
        record_audit(session, by_staff_user_id, "set_staff_password", "staff_user", staff_user_id)


def change_own_password(
    database: Database,
    keyed_hash: Callable[[str], str],
    account_id: int,
    current_password: str,
    new_password: str,
    source_address: str | None,
) -> StaffAccount:
    """A member of staff changes their own password; their other sessions end. Returns the account as it
    now is, so the session they changed it from can carry on.

    A wrong current password counts as a failed sign-in for the address from `source_address`'s network
    (SignInRefused once locked), so a session left open is no way to guess it."""
    email = staff_user_detail(database, account_id).email
    check_password(new_password, email)
    if new_password == current_password:
        raise StaffUserRejected("password", "Your new password must be different from your current password")
    attempt_id, user = _claim_attempt(database, _Attempt.of(keyed_hash, email, source_address))
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


def sign_in(
    database: Database, keyed_hash: Callable[[str], str], email: str, password: str, source_address: str | None
) -> StaffAccount:
    """The account these details sign in, from `source_address` (the request's remote address), or SignInRefused.

    Whatever the password, an attempt is refused (SignInRefused.lock says which):
    - LOCKED_ACCOUNT_FROM_HERE: FAILURE_LIMIT failures for this email address from this network within
      FAILURE_WINDOW, since its last success from there;
    - LOCKED_HERE: ADDRESS_FAILURE_LIMIT failures from this network within FAILURE_WINDOW, whatever the
      email addresses;
    - SLOWED: ACCOUNT_FAILURE_CEILING failures for this email address from anywhere within ACCOUNT_WINDOW,
      the last of them under SLOWED_INTERVAL ago, and no success from this network within KNOWN_NETWORK_AGE.
    So an outsider can lock out only their own network, never a member of staff from theirs.
    """
    email = normalise_email(email)
    attempt_id, user = _claim_attempt(database, _Attempt.of(keyed_hash, email, source_address))
    # The password is checked outside any write transaction: hashing takes a while, and on SQLite
    # a write transaction holds the lock the line's webhooks need.
    matched = check_password_hash(user.password_hash if user else _no_account_hash(), password)
    account = None
    if user is not None and user.id is not None and user.active and matched:
        account = StaffAccount(user.id, user.email, user.role, user.session_generation)
    if account is None:
        raise SignInRefused()
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


def source_network(address: str | None) -> str:
    """The network an attempt came from, as the limits count it: the IPv4 address, or the /64 holding the
    IPv6 address (a single subscriber is given a whole /64, so counting IPv6 addresses one by one would
    let one outsider seem to be billions)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class _Attempt:
    """Who an attempt names and where it came from, as kept: keyed hashes, never the address or the network."""

    email: str
    email_hash: str
    source_hash: str

    @classmethod
    def of(cls, keyed_hash: Callable[[str], str], email: str, source_address: str | None) -> "_Attempt":
        return cls(email, keyed_hash(email), keyed_hash(f"network:{source_network(source_address)}"))


def _claim_attempt(database: Database, attempt: _Attempt) -> tuple[int, StaffUser | None]:
    """Count recent failures for the attempt's address and network and, under the limits, record this
    attempt as a failure before any password is checked (it becomes a success if the password is right),
    in one serialised transaction: attempts sent together, from however many processes, cannot all slip
    under a limit. (SQLite has one writer at a time; PostgreSQL takes an advisory lock for the network,
    then one for the address: always in that order, so no two attempts wait for each other in a circle.)"""
    with database.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            for key in (f"sign-in-from:{attempt.source_hash}", f"sign-in:{attempt.email_hash}"):
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        lock = _refusal(session, attempt)
        if lock is not None:
            log.warning("Sign-in refused: too many recent failures (%s)", lock)
            raise SignInRefused(lock)
        claimed = StaffSignInAttempt(
            email_hash=attempt.email_hash, source_hash=attempt.source_hash, at=utcnow(), succeeded=False
        )
        session.add(claimed)
        session.flush()
        user = session.exec(select(StaffUser).where(StaffUser.email == attempt.email)).first()
        if user is not None:
            session.expunge(user)
        assert claimed.id is not None
        return claimed.id, user


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


def _refusal(session: Session, attempt: _Attempt) -> str | None:
    """Which limit refuses this attempt, if any (see sign_in)."""
    now = utcnow()
    from_here = StaffSignInAttempt.source_hash == attempt.source_hash
    for_address = StaffSignInAttempt.email_hash == attempt.email_hash
    if _failures(session, now - FAILURE_WINDOW, from_here) >= ADDRESS_FAILURE_LIMIT:
        return LOCKED_HERE
    since = now - FAILURE_WINDOW
    last_success = _last_success(session, since, for_address, from_here)
    if _failures(session, max(since, last_success or since), for_address, from_here) >= FAILURE_LIMIT:
        return LOCKED_ACCOUNT_FROM_HERE
    if (
        _failures(session, now - ACCOUNT_WINDOW, for_address) >= ACCOUNT_FAILURE_CEILING
        and _failures(session, now - SLOWED_INTERVAL, for_address) > 0
        and _last_success(session, now - KNOWN_NETWORK_AGE, for_address, from_here) is None
    ):
        return SLOWED
    return None


def _failures(session: Session, since: datetime, *where: Any) -> int:
    return session.exec(
        select(func.count()).where(
            *where, col(StaffSignInAttempt.succeeded).is_(False), StaffSignInAttempt.at > since
        )
    ).one()


def _last_success(session: Session, since: datetime, *where: Any) -> datetime | None:
    return session.exec(
        select(func.max(StaffSignInAttempt.at)).where(
            *where, col(StaffSignInAttempt.succeeded).is_(True), StaffSignInAttempt.at > since
        )
    ).one()


@functools.cache
def _no_account_hash() -> str:
    """Checked against when no account has the address, so a miss takes as long as a wrong password."""
    return generate_password_hash("no staff user has this password")
