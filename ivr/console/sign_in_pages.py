"""Signing in and out of the console."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ivr.console.access import end_session, public, requires_role, safe_next, start_session
from ivr.console.blueprint import bp
from ivr.console.forms import SignInForm, error_list
from ivr.records import staff_accounts
from ivr.records.staff_accounts import FAILURE_WINDOW, LOCKED_HERE, SLOWED, SignInRefused

NOT_RECOGNISED = "Enter a correct email address and password"
_WAIT = f"Wait {int(FAILURE_WINDOW.total_seconds() // 60)} minutes, then try again"
LOCKED = f"There have been too many attempts to sign in with this email address from your network. {_WAIT}"
LOCKED_NETWORK = f"There have been too many attempts to sign in from your network. {_WAIT}"
SLOWED_DOWN = (
    "There have been many attempts to sign in with this email address from elsewhere. "
    "Wait a minute, then try again, or sign in from a network you have signed in from before"
)


def refusal_text(refused: SignInRefused) -> str:
    """What the page says: the same words whether or not an account has this address."""
    if refused.lock == LOCKED_HERE:
        return LOCKED_NETWORK
    if refused.lock == SLOWED:
        return SLOWED_DOWN
    return LOCKED if refused.locked else NOT_RECOGNISED


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in() -> Response | str:
    target = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("staff.index"))
    form = SignInForm()
    refusal = None
    if form.validate_on_submit():
        try:
            account = staff_accounts.sign_in(
                current_app.extensions["database"],
                current_app.extensions["identity"].keyed_hash,
                form.email.data or "",
                form.password.data or "",
                request.remote_addr,  # the client's, behind the proxy ProxyFix trusts (app.py)
            )
        except SignInRefused as refused:
            refusal = refusal_text(refused)
        else:
            start_session(account)
            return redirect(target or url_for("staff.index"))
    errors = error_list(form)
    if refusal:
        errors = [{"text": refusal, "href": "#email"}]
    return render_template("staff/sign_in.html", form=form, errors=errors, refusal=refusal, target=target)


@bp.post("/sign-out")
@requires_role("viewer")
def sign_out() -> Response:
    staff_accounts.record_sign_out(current_app.extensions["database"], current_user.id)
    end_session()
    flash("You have signed out.", "signed_out")
    return redirect(url_for("staff.sign_in"))
