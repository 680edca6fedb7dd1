"""Who may see what: every console page needs a signed-in member of staff, idle for under 30 minutes,
with the role the page asks for (viewer < manager < admin). Not signed in goes to sign-in; the
wrong role gets 403."""

import functools
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import AnonymousUserMixin, LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.wrappers import Response

from ivr.console.blueprint import URL_PREFIX, bp
from ivr.records.staff_accounts import StaffAccount, end_all_sessions, load_account

IDLE_LIMIT = timedelta(minutes=30)
SESSION_LIMIT = timedelta(hours=10)  # however busy, a session ends after a working day
SEEN_AT = "staff_seen_at"  # when this session last made a request, in seconds since the epoch
SIGNED_IN_AT = "staff_signed_in_at"
# Pages anyone may fetch: the sign-in page, and the stylesheet and script it needs.
PUBLIC_ENDPOINTS = frozenset({"staff.sign_in", "staff.asset"})
MAX_NEXT_LENGTH = 2000  # a console address is far shorter; a longer `next` is not followed

login_manager = LoginManager()
login_manager.session_protection = "strong"

View = TypeVar("View", bound=Callable[..., Any])


class SignedInStaff(UserMixin):
    """The member of staff behind the session, as Flask-Login carries them."""

    def __init__(self, account: StaffAccount) -> None:
        self.account = account
        self.id = account.id
        self.email = account.email
        self.role = account.role

    def get_id(self) -> str:
        """What the session keeps: the account and the session generation it was signed in under."""
        return f"{self.account.id}:{self.account.session_generation}"

    def has_role(self, role: str) -> bool:
        return self.account.has_role(role)


class NobodySignedIn(AnonymousUserMixin):
    email = ""
    role = ""

    def has_role(self, role: str) -> bool:
        return False


login_manager.anonymous_user = NobodySignedIn


@login_manager.user_loader
def _load_staff(session_id: str) -> SignedInStaff | None:
    account_id, _, generation = session_id.partition(":")
    if not (account_id.isascii() and account_id.isdigit() and generation.isascii() and generation.isdigit()):
        return None
    if len(account_id) > 18 or len(generation) > 18:
        return None
    account = load_account(current_app.extensions["database"], int(account_id), int(generation))
    return SignedInStaff(account) if account else None


def start_session(account: StaffAccount) -> None:
    """A new session for the account: nothing carried over from before signing in (no fixation)."""
    session.clear()
    login_user(SignedInStaff(account))
    session.permanent = True  # the cookie lasts PERMANENT_SESSION_LIFETIME, renewed by each request
    session[SEEN_AT] = session[SIGNED_IN_AT] = int(time.time())


def end_session() -> None:
    """Sign out: this session, and any copy of its cookie, stop working."""
    if current_user.is_authenticated:
        end_all_sessions(current_app.extensions["database"], current_user.account.id)
    logout_user()
    session.clear()


@bp.before_request
def require_signed_in_staff() -> Response | None:
    """Default deny: every page but the public ones needs a signed-in member of staff, recently active."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return redirect_to_sign_in()
    seen_at = session.get(SEEN_AT)
    signed_in_at = session.get(SIGNED_IN_AT)
    now = int(time.time())
    if not isinstance(signed_in_at, int) or now - signed_in_at > SESSION_LIMIT.total_seconds():
        end_session()
        flash("You were signed out because your session had lasted a working day.", "signed_out")
        return redirect_to_sign_in()
    if not isinstance(seen_at, int) or now - seen_at > IDLE_LIMIT.total_seconds():
        end_session()
        flash("You were signed out because you had not done anything for 30 minutes.", "signed_out")
        return redirect_to_sign_in()
    session[SEEN_AT] = now
    return None


def redirect_to_sign_in() -> Response:
    target = safe_next(request.full_path.rstrip("?")) if request.method == "GET" else None
    return redirect(url_for("staff.sign_in", next=target))


def requires_role(role: str) -> Callable[[View], View]:
    """Decorate a view: a signed-in member of staff with `role` or above, or 403 (sign-in, if nobody is)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect_to_sign_in()
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        guarded.required_role = role  # type: ignore[attr-defined]  # a mark on the function, read by the access check
        return cast(View, guarded)  # called as `view` is

    return decorate


def public(view: View) -> View:
    """Mark a view as open to anyone; only the endpoints in PUBLIC_ENDPOINTS may be."""
    view.required_role = None  # type: ignore[attr-defined]  # a mark on the function, read by the access check
    return view


def safe_next(target: str | None) -> str | None:
    """Where to go after signing in, when it is plainly a console page of this site; otherwise None (the
    overview). Refused: another site (a scheme, a host, `//`, a backslash, which browsers read as `/`),
    a dot segment, even percent-encoded, that could climb out of the console (`/staff/../x`), and any
    control character (a CR or LF would split the Location header)."""
    prefix = URL_PREFIX + "/"
    if not target or len(target) > MAX_NEXT_LENGTH or not target.startswith(prefix):
        return None
    if "\\" in target or any(not char.isprintable() for char in target):
        return None
    parts = urlsplit(target)
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or "//" in path or "\\" in path or any(not char.isprintable() for char in path):
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return target
