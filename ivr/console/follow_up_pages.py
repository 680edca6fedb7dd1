"""Follow-ups: what staff must do for callers and texters, and who each is about; take one on, add a note,
reveal the number, resolve (in one step, from the line's note that a blocked number texts again)."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from ivr.console.access import requires_role
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.forms import ActionForm, AssignForm, FollowUpFilterForm, NoteForm, error_list
from ivr.db import Database
from ivr.records import follow_ups
from ivr.records.follow_ups import AssigneeNotAllowed, FollowUpAlreadyResolved, FollowUpNotFound, NotTextingAgain
from ivr.records.phone_numbers import format_for_people


def _database() -> Database:
    return current_app.extensions["database"]


@bp.get("/follow-ups", endpoint="follow_ups")
@requires_role("viewer")
def follow_up_list() -> str:
    form = FollowUpFilterForm(request.args)
    if not form.validate():
        empty = follow_ups.FollowUpPage([], None)
        return render_template("staff/follow_ups.html", form=form, errors=error_list(form), page=empty, older_link=None)
    older = request.args.get("older", "")
    page = follow_ups.list_follow_ups(
        _database(),
        status=None if form.status.data == "all" else form.status.data,
        kind=form.kind.data or None,
        older_than=int(older) if older.isascii() and older.isdigit() and len(older) < 12 else None,
    )
    older_link = None
    if page.older_than is not None:
        older_link = url_for(
            "staff.follow_ups", status=form.status.data, kind=form.kind.data or None, older=page.older_than
        )
    return render_template("staff/follow_ups.html", form=form, errors=[], page=page, older_link=older_link)


@bp.get(f"/follow-ups/<{ROW_ID}:follow_up_id>")
@requires_role("viewer")
def follow_up(follow_up_id: int) -> tuple[str, int]:
    return _follow_up_page(follow_up_id)


def _follow_up_page(
    follow_up_id: int,
    note_form: NoteForm | None = None,
    revealed_phone: str | None = None,
    status: int = 200,
    assign_form: AssignForm | None = None,
) -> tuple[str, int]:
    try:
        detail = follow_ups.follow_up_detail(_database(), follow_up_id)
    except FollowUpNotFound:
        abort(404)
    note_form = note_form or NoteForm(formdata=None)
    if assign_form is None:
        assign_form = AssignForm(formdata=None)
        assign_form.assignee.choices = _assignee_choices()
    page = render_template(
        "staff/follow_up.html",
        detail=detail,
        follow_up=detail.follow_up,
        note_form=note_form,
        assign_form=assign_form,
        action_form=ActionForm(formdata=None),
        errors=error_list(note_form) + error_list(assign_form),
        revealed_phone=revealed_phone,
    )
    return page, status


def _assignee_choices() -> list[SelectChoice]:
    return [SelectChoice("", "Choose a colleague")] + [
        SelectChoice(str(staff_id), email) for staff_id, email in follow_ups.assignable_staff(_database())
    ]


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/assign")
@requires_role("manager")
def assign_follow_up(follow_up_id: int) -> Response:
    try:
        follow_ups.assign_follow_up(_database(), follow_up_id, current_user.id)
    except FollowUpNotFound:
        abort(404)
    except FollowUpAlreadyResolved:
        flash("This follow-up has been resolved already.", "warning")
    else:
        flash("You have taken on this follow-up.", "success")
    return redirect(url_for("staff.follow_up", follow_up_id=follow_up_id))


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/assign-to")
@requires_role("manager")
def assign_follow_up_to(follow_up_id: int) -> Response | tuple[str, int]:
    """Give the follow-up to a colleague who can act on it (a manager or an admin)."""
    form = AssignForm()
    form.assignee.choices = _assignee_choices()
    if not form.validate_on_submit():
        return _follow_up_page(follow_up_id, assign_form=form, status=400)
    try:
        email = follow_ups.assign_follow_up(_database(), follow_up_id, current_user.id, int(form.assignee.data or 0))
    except FollowUpNotFound:
        abort(404)
    except FollowUpAlreadyResolved:
        flash("This follow-up has been resolved already.", "warning")
    except AssigneeNotAllowed:
        form.assignee.errors = ["Choose a manager or admin who can still sign in"]
        return _follow_up_page(follow_up_id, assign_form=form, status=400)
    else:
        taken_on = email == current_user.email
        flash("You have taken on this follow-up." if taken_on else f"{email} has this follow-up now.", "success")
    return redirect(url_for("staff.follow_up", follow_up_id=follow_up_id))


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/notes")
@requires_role("manager")
def add_follow_up_note(follow_up_id: int) -> Response | tuple[str, int]:
    form = NoteForm()
    if not form.validate_on_submit():
        return _follow_up_page(follow_up_id, note_form=form, status=400)
    try:
        follow_ups.add_follow_up_note(_database(), follow_up_id, current_user.id, form.note.data or "")
    except FollowUpNotFound:
        abort(404)
    flash("Your note has been added.", "success")
    return redirect(url_for("staff.follow_up", follow_up_id=follow_up_id))


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/resolve")
@requires_role("manager")
def resolve_follow_up(follow_up_id: int) -> Response:
    try:
        follow_ups.resolve_follow_up(_database(), follow_up_id, current_user.id)
    except FollowUpNotFound:
        abort(404)
    except FollowUpAlreadyResolved:
        flash("This follow-up has been resolved already.", "warning")
    except follow_ups.SecondStaffNeeded:
        flash("You changed this person's mobile, so another member of staff must check this choice.", "warning")
    else:
        flash("The follow-up is resolved.", "success")
    return redirect(url_for("staff.follow_up", follow_up_id=follow_up_id))


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/resolve-texting-again")
@requires_role("manager")
def resolve_follow_up_texting_again(follow_up_id: int) -> Response:
    """Resolve "Texts blocked" in one step once the line has noted the number texted START again."""
    try:
        follow_ups.resolve_as_texting_again(_database(), follow_up_id, current_user.id)
    except FollowUpNotFound:
        abort(404)
    except FollowUpAlreadyResolved:
        flash("This follow-up has been resolved already.", "warning")
    except NotTextingAgain:
        flash(
            "The line has not seen this number text START since it was blocked, so resolve it with a note of what you did.",
            "warning",
        )
    else:
        flash("The follow-up is resolved: the number texts again.", "success")
    return redirect(url_for("staff.follow_up", follow_up_id=follow_up_id))


@bp.post(f"/follow-ups/<{ROW_ID}:follow_up_id>/reveal")
@requires_role("manager")
def reveal_follow_up_phone(follow_up_id: int) -> tuple[str, int]:
    """The full number, shown in this answer only (never kept in the session), and audited."""
    try:
        phone = follow_ups.reveal_follow_up_phone(_database(), follow_up_id, current_user.id)
    except FollowUpNotFound:
        abort(404)
    return _follow_up_page(follow_up_id, revealed_phone=format_for_people(phone) if phone else None)
