"""Admins manage staff users: list them, add one, change a role, deactivate or reactivate, set a new
password; and any member of staff changes their own password."""

from collections.abc import Callable

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import Field, PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, InputRequired, ValidationError

from ivr.console.access import requires_role, start_session
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.forms import error_list, stripped
from ivr.console.sign_in_pages import refusal_text
from ivr.db import Database
from ivr.records import staff_accounts
from ivr.records.staff_accounts import SignInRefused, StaffChangeRefused, StaffUserNotFound, StaffUserRejected
from models.staff import STAFF_ROLES

ROLE_NAMES = {"viewer": "Viewer", "manager": "Manager", "admin": "Admin"}
ROLE_HINTS = {
    "viewer": "Reads conversations, follow-ups and people, with NHS numbers and phone numbers masked.",
    "manager": "Also reveals identifiers, resolves follow-ups, downloads exports and imports people.",
    "admin": "Also manages staff users and reads the audit.",
}
PASSWORD_HINT = (
    f"At least {staff_accounts.MIN_PASSWORD_LENGTH} characters, and not easy to guess: no common password, "
    "pattern or email address. A few words that do not go together make a good one."
)


# ---- Forms -----------------------------------------------------------------------------------


def _rule(check: Callable[[str], object]) -> Callable[[FlaskForm, Field], None]:
    """A WTForms validator from one of staff_accounts' checks, so the page and `flask staff create` share the rule."""

    def validate(form: FlaskForm, field: Field) -> None:
        try:
            check(field.data or "")
        except StaffUserRejected as rejected:
            raise ValidationError(str(rejected)) from None

    return validate


def _role_field() -> RadioField:
    return RadioField(
        "Role",
        choices=[SelectChoice(role, ROLE_NAMES[role]) for role in STAFF_ROLES],
        validate_choice=False,
        validators=[InputRequired("Select a role"), AnyOf(STAFF_ROLES, message="Select a role")],
    )


def _new_password_fields(label: str) -> tuple[PasswordField, PasswordField]:
    return (
        PasswordField(label, validators=[InputRequired("Enter a password")]),
        PasswordField("Type the password again", validators=[InputRequired("Type the password again")]),
    )


class _NewPassword:
    """The checks shared by every form that sets a password: the rules of staff_accounts.check_password (so
    the page and `flask staff create` share them) for the account with `owner_email`, and typed twice."""

    owner_email = ""  # the page sets it: whose password this is
    password: Field  # each form with these checks has one (an annotation alone: WTForms sees no field here)

    def validate_password(self, field: Field) -> None:
        try:
            staff_accounts.check_password(field.data or "", self.owner_email)
        except StaffUserRejected as rejected:
            raise ValidationError(str(rejected)) from None

    def validate_password_again(self, field: Field) -> None:
        if self.password.data and field.data != self.password.data:
            raise ValidationError("The passwords do not match")


class AddStaffUserForm(_NewPassword, FlaskForm):
    email = StringField(
        "Email address",
        validators=[DataRequired("Enter their email address"), _rule(staff_accounts.check_email)],
        filters=[stripped],
    )
    role = _role_field()
    password, password_again = _new_password_fields("Initial password")

    @property
    def owner_email(self) -> str:  # type: ignore[override]  # a property where _NewPassword has a plain attribute
        return self.email.data or ""


class RoleForm(FlaskForm):
    role = _role_field()


class SetPasswordForm(_NewPassword, FlaskForm):
    password, password_again = _new_password_fields("New password")


class OwnPasswordForm(_NewPassword, FlaskForm):
    current_password = PasswordField("Current password", validators=[InputRequired("Enter your current password")])
    password, password_again = _new_password_fields("New password")


# ---- Pages -----------------------------------------------------------------------------------


def _database() -> Database:
    return current_app.extensions["database"]


def _field_error(form: FlaskForm, rejected: StaffUserRejected) -> None:
    """Show a rule the domain enforced (a duplicate email, say) against the box it came from."""
    getattr(form, rejected.field).errors = [str(rejected)]


@bp.get("/staff-users")
@requires_role("admin")
def staff_users() -> str:
    newest_first = request.args.get("order") == "newest"
    users = staff_accounts.list_staff_users(_database(), newest_first=newest_first)
    return render_template("staff/staff_users.html", users=users, newest_first=newest_first, role_names=ROLE_NAMES)


@bp.route("/staff-users/new", methods=["GET", "POST"])
@requires_role("admin")
def add_staff_user() -> Response | str | tuple[str, int]:
    form = AddStaffUserForm()
    if form.validate_on_submit():
        try:
            staff_user_id = staff_accounts.create_staff_user(
                _database(), form.email.data or "", form.role.data, form.password.data or "", current_user.id
            )
        except StaffUserRejected as rejected:
            _field_error(form, rejected)
        else:
            flash(
                f"{staff_accounts.normalise_email(form.email.data or '')} has been added as "
                f"{ROLE_NAMES[form.role.data].lower()}. Give them their password by a secure route.",
                "success",
            )
            return redirect(url_for("staff.staff_user", staff_user_id=staff_user_id))
    errors = error_list(form)
    page = render_template(
        "staff/staff_user_add.html",
        form=form,
        errors=errors,
        role_names=ROLE_NAMES,
        role_hints=ROLE_HINTS,
        password_hint=PASSWORD_HINT,
    )
    return (page, 400) if errors else page


@bp.get(f"/staff-users/<{ROW_ID}:staff_user_id>")
@requires_role("admin")
def staff_user(staff_user_id: int) -> str | tuple[str, int]:
    return _staff_user_page(staff_user_id)


def _staff_user_page(
    staff_user_id: int,
    role_form: RoleForm | None = None,
    password_form: SetPasswordForm | None = None,
    refusal: dict[str, str] | None = None,
) -> tuple[str, int]:
    try:
        user = staff_accounts.staff_user_detail(_database(), staff_user_id)
    except StaffUserNotFound:
        abort(404)
    if refusal and user.id == current_user.id:
        refusal = {**refusal, "href": "#you"}  # their own page has no buttons to point at, only why
    role_form = role_form or RoleForm(formdata=None, role=user.role)
    password_form = password_form or SetPasswordForm(formdata=None)
    errors = error_list(role_form) + error_list(password_form) + ([refusal] if refusal else [])
    page = render_template(
        "staff/staff_user.html",
        user=user,
        is_you=user.id == current_user.id,
        role_form=role_form,
        password_form=password_form,
        errors=errors,
        role_names=ROLE_NAMES,
        role_hints=ROLE_HINTS,
        password_hint=PASSWORD_HINT,
    )
    return page, 400 if errors else 200


def _back_to(staff_user_id: int) -> Response:
    return redirect(url_for("staff.staff_user", staff_user_id=staff_user_id))


@bp.post(f"/staff-users/<{ROW_ID}:staff_user_id>/role")
@requires_role("admin")
def change_staff_role(staff_user_id: int) -> Response | tuple[str, int]:
    form = RoleForm()
    if not form.validate_on_submit():
        return _staff_user_page(staff_user_id, role_form=form)
    try:
        changed = staff_accounts.change_staff_role(_database(), staff_user_id, form.role.data, current_user.id)
    except StaffUserNotFound:
        abort(404)
    except StaffChangeRefused as refused:
        return _staff_user_page(staff_user_id, refusal={"text": str(refused), "href": "#role"})
    if changed:
        flash(f"Their role is now {ROLE_NAMES[form.role.data].lower()}, from the next page they open.", "success")
    else:
        flash(f"Their role was {ROLE_NAMES[form.role.data].lower()} already. Nothing has changed.", "warning")
    return _back_to(staff_user_id)


@bp.post(f"/staff-users/<{ROW_ID}:staff_user_id>/deactivate")
@requires_role("admin")
def deactivate_staff_user(staff_user_id: int) -> Response | tuple[str, int]:
    try:
        changed = staff_accounts.deactivate_staff_user(_database(), staff_user_id, current_user.id)
    except StaffUserNotFound:
        abort(404)
    except StaffChangeRefused as refused:
        return _staff_user_page(staff_user_id, refusal={"text": str(refused), "href": "#deactivate"})
    if changed:
        flash("They have been deactivated and signed out. They cannot sign in until reactivated.", "success")
    else:
        flash("They were deactivated already.", "warning")
    return _back_to(staff_user_id)


@bp.post(f"/staff-users/<{ROW_ID}:staff_user_id>/reactivate")
@requires_role("admin")
def reactivate_staff_user(staff_user_id: int) -> Response:
    try:
        changed = staff_accounts.reactivate_staff_user(_database(), staff_user_id, current_user.id)
    except StaffUserNotFound:
        abort(404)
    if changed:
        flash("They have been reactivated and can sign in again with their password.", "success")
    else:
        flash("They were active already.", "warning")
    return _back_to(staff_user_id)


@bp.post(f"/staff-users/<{ROW_ID}:staff_user_id>/password")
@requires_role("admin")
def set_staff_password(staff_user_id: int) -> Response | tuple[str, int]:
    form = SetPasswordForm()
    try:
        form.owner_email = staff_accounts.staff_user_detail(_database(), staff_user_id).email
    except StaffUserNotFound:
        abort(404)
    if not form.validate_on_submit():
        return _staff_user_page(staff_user_id, password_form=form)
    try:
        staff_accounts.set_staff_password(_database(), staff_user_id, form.password.data or "", current_user.id)
    except StaffUserNotFound:
        abort(404)
    except StaffUserRejected as rejected:
        _field_error(form, rejected)
        return _staff_user_page(staff_user_id, password_form=form)
    except StaffChangeRefused as refused:
        return _staff_user_page(staff_user_id, refusal={"text": str(refused), "href": "#password"})
    flash(
        "Their password has been changed and they have been signed out. Give it to them by a secure route.", "success"
    )
    return _back_to(staff_user_id)


@bp.route("/account/password", methods=["GET", "POST"])
@requires_role("viewer")
def change_own_password() -> Response | str | tuple[str, int]:
    form = OwnPasswordForm()
    form.owner_email = current_user.email
    refusal = None
    if form.validate_on_submit():
        try:
            account = staff_accounts.change_own_password(
                _database(),
                current_app.extensions["identity"].keyed_hash,
                current_user.id,
                form.current_password.data or "",
                form.password.data or "",
                request.remote_addr,
            )
        except StaffUserRejected as rejected:
            _field_error(form, rejected)
        except SignInRefused as refused:
            refusal = {"text": refusal_text(refused), "href": "#current_password"}
        except StaffChangeRefused as refused:
            refusal = {"text": str(refused), "href": "#current_password"}
        else:
            start_session(account)  # this session carries on; every other one has ended
            flash("Your password has been changed. You have been signed out everywhere else.", "success")
            return redirect(url_for("staff.index"))
    errors = error_list(form) + ([refusal] if refusal else [])
    page = render_template("staff/account_password.html", form=form, errors=errors, password_hint=PASSWORD_HINT)
    return (page, 400) if errors else page
