"""Managers record a choice for a person, checked by phone or by post, with a reason and any proxy's role."""

from datetime import date
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from ivr.console.access import requires_role
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.forms import RadiosField, error_list, stripped
from ivr.console.people_directory import (
    PersonForChoice,
    PersonNotFound,
    StaffChoice,
    person_for_choice,
    record_choice_for_person,
)
from ivr.records.choices import (
    IDENTITY_SOURCE_NAMES,
    PROXY_ROLE_NAMES,
    REASON_MAX_LENGTH,
    ProxyRoleNotAllowed,
    check_proxy_role,
)
from models import ChoiceStatus
from models.time import uk_today

STATUS_NAMES = {
    ChoiceStatus.OPTED_OUT.value: "Opt out: their information is not used for research and planning",
    ChoiceStatus.ALLOWED.value: "Allow: their information may be used for research and planning",
}
CURRENT_NAMES = {ChoiceStatus.OPTED_OUT.value: "opted out", ChoiceStatus.ALLOWED.value: "allowed"}
# Who makes the choice: the person, or a proxy in one of the roles that may choose for them.
MADE_BY_NAMES = {
    "self": "The person themselves",
    "parent_or_guardian": "Their parent or guardian, for a child under 13",
    "lasting_power_of_attorney": "Someone with lasting power of attorney for them",
    "court_appointed_deputy": "A deputy appointed for them by the Court of Protection",
}
assert MADE_BY_NAMES.keys() - {"self"} == PROXY_ROLE_NAMES.keys()


class RecordChoiceForm(FlaskForm):
    """The choice, who made it (and as what, for a proxy), how identity was checked, and why."""

    status = RadiosField("What is their choice?", "Select their choice", STATUS_NAMES)
    # One question rather than a second one revealed under "on their behalf": a revealed question puts
    # aria-expanded on a radio, which assistive technology is not told about reliably.
    on_behalf = RadiosField("Who is making the choice?", "Select who is making the choice", MADE_BY_NAMES)
    source = RadiosField(
        "How did you check who they are?", "Select how you checked who they are", IDENTITY_SOURCE_NAMES
    )
    reason = TextAreaField(
        "Reason",
        validators=[
            DataRequired("Enter the reason"),
            Length(max=REASON_MAX_LENGTH, message=f"The reason must be {REASON_MAX_LENGTH} characters or fewer"),
        ],
        filters=[stripped],
    )

    def __init__(self, *args: Any, date_of_birth: date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.date_of_birth = date_of_birth

    def validate_on_behalf(self, field: RadioField) -> None:
        if field.data == "self":
            return
        try:
            check_proxy_role(field.data, self.date_of_birth, uk_today())
        except ProxyRoleNotAllowed as refused:
            raise ValidationError(str(refused)) from None

    def staff_choice(self) -> StaffChoice:
        return StaffChoice(
            status=ChoiceStatus(self.status.data),
            source=self.source.data or "",
            reason=self.reason.data or "",
            proxy_role=None if self.on_behalf.data == "self" else self.on_behalf.data,
        )


@bp.route(f"/people/<{ROW_ID}:person_id>/choice", methods=["GET", "POST"])
@requires_role("manager")
def record_choice(person_id: int) -> Response | tuple[str, int]:
    """The form; a recorded choice goes back to the person's page, where their history shows it."""
    database = current_app.extensions["database"]
    try:
        subject = person_for_choice(database, person_id)
    except PersonNotFound:
        abort(404)
    form = RecordChoiceForm(date_of_birth=subject.date_of_birth)
    if not form.validate_on_submit():
        return _choice_page(subject, form, status=400 if form.is_submitted() else 200)
    try:
        changed = record_choice_for_person(database, person_id, current_user.id, form.staff_choice(), uk_today())
    except PersonNotFound:
        abort(404)
    except ProxyRoleNotAllowed as refused:
        form.on_behalf.errors.append(str(refused))
        return _choice_page(subject, form, status=400)
    if not changed:
        current = CURRENT_NAMES[form.status.data or ""]
        form.status.errors.append(f"Their choice is already {current}: nothing has been recorded")
        return _choice_page(subject, form, status=400)
    flash(f"Their choice has been recorded: {CURRENT_NAMES[form.status.data or '']}.", "success")
    return redirect(url_for("staff.person", person_id=person_id))


def _choice_page(subject: PersonForChoice, form: RecordChoiceForm, status: int = 200) -> tuple[str, int]:
    page = render_template(
        "staff/record_choice.html",
        person=subject.person,
        form=form,
        errors=error_list(form),
        current_names=CURRENT_NAMES,
        reason_max_length=REASON_MAX_LENGTH,
    )
    return page, status
