"""Signing in and out of the console."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ivr import staff_accounts
from ivr.staff.access import end_session, public, requires_role, safe_next, start_session
from ivr.staff.blueprint import bp
from ivr.staff.forms import SignInForm, error_list
from ivr.staff_accounts import FAILURE_WINDOW, SignInRefused

NOT_RECOGNISED = "Enter a correct email address and password"
LOCKED = (
    "There have been too many attempts to sign in with this email address. "
    f"Wait {int(FAILURE_WINDOW.total_seconds() // 60)} minutes, then try again"
)


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
            )
        except SignInRefused as refused:
            # The same words whether or not an account has this address.
            refusal = LOCKED if refused.locked else NOT_RECOGNISED
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
