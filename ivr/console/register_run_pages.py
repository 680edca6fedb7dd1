"""Register runs, for managers: when the register was applied to a data set, by whom, against which register and
which national reply; the national checks sent; and the download of a request file, as it was sent."""

from flask import Response, abort, current_app, render_template, send_file
from flask_login import current_user
from markupsafe import Markup
from sqlmodel import Session

from ivr.console.access import requires_role
from ivr.console.blueprint import ROW_ID, bp
from ivr.console.forms import ActionForm
from ivr.console.national_requests import NoSuchRequest, RequestFileUnavailable, open_request_file
from ivr.operations.register.runs import list_national_checks, list_register_runs

REQUEST_FILE_TYPE = "text/plain"  # the national format: lines of `NHSNUMBER,`


@bp.get("/register-runs")
@requires_role("manager")
def register_runs() -> str:
    return _register_runs_page()


def _register_runs_page(errors: list[dict[str, Markup]] | None = None) -> str:
    with Session(current_app.extensions["database"].engine) as session:
        runs = list_register_runs(session)
        national_checks = list_national_checks(session)
    return render_template(
        "staff/register_runs.html",
        runs=runs,
        national_checks=national_checks,
        errors=errors,
        action_form=ActionForm(formdata=None),
    )


@bp.post(f"/register-runs/national-requests/<{ROW_ID}:request_id>/download")
@requires_role("manager")
def download_national_request(request_id: int) -> Response | tuple[str, int]:
    """The request file as it was sent, under its national name; a POST, since it holds NHS numbers and is audited.
    A file moved or changed since is refused on the page, saying why and what to do."""
    try:
        request_file = open_request_file(current_app.extensions["database"], request_id, current_user.id)
    except NoSuchRequest:
        abort(404)
    except RequestFileUnavailable as problem:
        # The message names a folder, which may be long with nowhere to break: it may break anywhere.
        reason = Markup('<span class="nhsuk-u-text-break-word">{}</span>').format(str(problem))
        return _register_runs_page([{"html": reason}]), 409
    response = send_file(
        request_file.stream,
        mimetype=REQUEST_FILE_TYPE,
        as_attachment=True,
        download_name=request_file.file_name,
        conditional=False,
        etag=False,
        max_age=None,
    )
    response.headers["Cache-Control"] = "no-store"  # it holds NHS numbers: never kept by anything between
    return response
