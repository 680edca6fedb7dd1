"""Managers import a people CSV through the console: every row right and all of it imported, or nothing,
with a line-by-line report of what is wrong."""

import csv
import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ivr.console.access import requires_role
from ivr.console.blueprint import bp
from ivr.console.forms import error_list
from ivr.console.layout import render_error
from ivr.console.people_directory import import_people_as_staff
from ivr.records.people import COLUMNS, ImportInterrupted, ImportRejected, RowError, read_people_csv
from models.time import uk_today

log = logging.getLogger(__name__)

MAX_FILE_MEGABYTES = 5  # about 60,000 people; a larger register is imported in parts, or with `flask people import`
MAX_FILE_BYTES = MAX_FILE_MEGABYTES * 1024 * 1024
# What the whole request may be: the file, the CSRF token and the multipart wrapping around them.
MAX_REQUEST_BYTES = MAX_FILE_BYTES + 64 * 1024
ROW_ERRORS_SHOWN = 100  # a file that is wrong throughout needs fixing at its source, not a page of 60,000 lines
TOO_LARGE = f"The selected file must be smaller than {MAX_FILE_MEGABYTES} MB"


class PeopleImportForm(FlaskForm):
    people_file = FileField(
        "Upload a people CSV file",
        validators=[FileRequired("Select a CSV file"), FileAllowed(["csv"], "The selected file must be a CSV")],
    )


@bp.url_value_preprocessor
def limit_import_size(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Cap what an import request may send before anything reads it. CSRF protection reads the form
    ahead of every view, so the view itself would be too late; URL value preprocessors run before it."""
    if endpoint == "staff.import_people":
        request.max_content_length = MAX_REQUEST_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
    """An upload over the limit: the import page again, saying so, rather than a bare 413."""
    if request.endpoint == "staff.import_people" and current_user.has_role("manager"):
        form = PeopleImportForm(formdata=None)
        form.people_file.errors = [TOO_LARGE]
        return _import_page(form, status=413)
    return render_error(413, "What was sent is too large for this page.")


@bp.route("/people/import", methods=["GET", "POST"])
@requires_role("manager")
def import_people() -> Response | tuple[str, int]:
    """The upload form; a good file imports every row and comes back here saying how many people were added."""
    form = PeopleImportForm()
    if not form.validate_on_submit():
        return _import_page(form, status=400 if form.is_submitted() else 200)
    raw = form.people_file.data.read(MAX_FILE_BYTES + 1)
    problem = _file_problem(raw)
    if problem:
        form.people_file.errors.append(problem)
        return _import_page(form, status=400)
    try:
        people, row_errors = read_people_csv(raw, uk_today())
    except ImportRejected as rejected:
        form.people_file.errors.append(f"The selected file cannot be imported: {rejected}")
        return _import_page(form, status=400)
    except csv.Error:
        form.people_file.errors.append("The selected file cannot be read as a CSV file")
        return _import_page(form, status=400)
    if row_errors:
        count = len(row_errors)
        form.people_file.errors.append(
            f"{count} {'row has a problem' if count == 1 else 'rows have problems'}: nothing was imported. "
            "Correct the file and upload it again"
        )
        return _import_page(form, row_errors=row_errors, status=400)
    try:
        report = import_people_as_staff(current_app.extensions["database"], people, current_user.id)
    except ImportInterrupted as stopped:
        log.error("People import stopped: %s", type(stopped.__cause__).__name__)
        form.people_file.errors.append(
            f"The import stopped after {stopped.report.written} of {stopped.total} people were saved. "
            "Upload the same file again to finish it: people already saved are simply updated"
        )
        return _import_page(form, status=503)
    added = f"{report.created} {'person' if report.created == 1 else 'people'} added"
    flash(f"{added}, {report.updated} updated ({report.changes()}; each change is in the audit).", "success")
    return redirect(url_for("staff.import_people"))


def _file_problem(raw: bytes) -> str | None:
    if len(raw) > MAX_FILE_BYTES:
        return TOO_LARGE
    if not raw.strip():
        return "The selected file is empty"
    return None


def _import_page(
    form: PeopleImportForm, row_errors: list[RowError] | None = None, status: int = 200
) -> tuple[str, int]:
    row_errors = row_errors or []
    page = render_template(
        "staff/people_import.html",
        form=form,
        errors=error_list(form),
        columns=",".join(COLUMNS),
        max_megabytes=MAX_FILE_MEGABYTES,
        row_errors=row_errors[:ROW_ERRORS_SHOWN],
        row_errors_not_shown=max(0, len(row_errors) - ROW_ERRORS_SHOWN),
    )
    return page, status
