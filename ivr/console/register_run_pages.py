"""Register runs, for managers: when the register was applied to a data set, by whom, and against which register."""

from flask import current_app, render_template
from sqlmodel import Session

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.console.forms import ActionForm
from ivr.operations.register.runs import list_register_runs


@bp.get("/register-runs")
@requires_role("manager")
def register_runs() -> str:
    with Session(current_app.extensions["database"].engine) as session:
        runs = list_register_runs(session)
    return render_template("staff/register_runs.html", runs=runs, action_form=ActionForm(formdata=None))
