"""Register runs, for managers: when the register was applied to a data set, by whom, and against which register."""

from flask import current_app, render_template
from sqlmodel import Session

from ivr.register import list_register_runs
from ivr.staff.access import requires_role
from ivr.staff.blueprint import bp
from ivr.staff.forms import ActionForm


@bp.get("/register-runs")
@requires_role("manager")
def register_runs() -> str:
    with Session(current_app.extensions["database"].engine) as session:
        runs = list_register_runs(session)
    return render_template("staff/register_runs.html", runs=runs, action_form=ActionForm(formdata=None))
