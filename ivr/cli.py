"""Command line: `flask db upgrade`, `flask people import`, `flask staff create`, `flask demo seed`, `flask demo serve`,
`flask outbox send`, `flask register apply`, `flask register export`, `flask register national request|send|receive`,
`flask retention apply`, and `flask call` and `flask text` (the terminal phone)."""

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

import migrations
from ivr.db import Database
from ivr.operations import retention
from ivr.operations.register.apply import FORMATS, STANDARD_STREAM, ApplyRequest, apply_register
from ivr.operations.register.export import RegisterExportError, check_ods_code, export_format, export_register
from ivr.operations.register.fhir_consent import Organisation
from ivr.operations.register.filter import ProgressCallback, RegisterApplyError
from ivr.operations.register.national import (
    REPLIES_FOLDER,
    NationalCheckError,
    receive_replies,
    send_request,
    write_request,
)
from ivr.operations.register.runs import summary_lines
from ivr.records.outbox import SendReport
from ivr.records.people import (
    FROM_THE_COMMAND_LINE,
    Importer,
    ImportInterrupted,
    ImportRejected,
    import_people,
    read_people_csv,
)
from ivr.records.staff_accounts import StaffUserRejected, check_email, create_staff_user
from ivr.standins import demo, local_line, terminal_phone
from models.staff import STAFF_ROLES
from models.time import uk_today

log = logging.getLogger(__name__)


def register(app: Flask, create_app: local_line.AppFactory) -> None:
    for group in (db_group, people_group, staff_group, demo_group, outbox_group, register_group, retention_group):
        app.cli.add_command(group)
    demo_group.add_command(_demo_serve(create_app))
    for command in terminal_phone.phone_commands():
        app.cli.add_command(command)


def _database() -> Database:
    return current_app.extensions["database"]


def fail(reason: str) -> None:
    """Exit non-zero with a one-line reason."""
    click.echo(f"Error: {reason}", err=True)
    sys.exit(1)


@click.group("db", cls=AppGroup, help="The database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Bring the database to the latest schema.")
def db_upgrade() -> None:
    migrations.upgrade(_database().url)
    click.echo("The database is at the latest schema.")


@click.group("people", cls=AppGroup, help="The organisation's service-user records.")
def people_group() -> None:
    pass


@people_group.command(
    "import", help="Import people from a CSV file: every row is checked first, and nothing is written unless all are right."
)
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def people_import(csv_file: Path) -> None:
    try:
        people, errors = read_people_csv(csv_file.read_bytes(), date.today())
    except ImportRejected as rejected:
        fail(f"{csv_file.name}: {rejected}")
        return
    if errors:
        for error in errors:
            click.echo(f"{csv_file.name} {error}", err=True)
        fail(f"{len(errors)} row(s) have problems; nothing was imported.")
    try:
        report = import_people(_database(), people, Importer(None, FROM_THE_COMMAND_LINE))
    except ImportInterrupted as stopped:
        log.error("People import stopped: %s", type(stopped.__cause__).__name__)
        fail(
            f"the import {stopped} (in whole batches; no person is half-written). "
            "Run the same import again to finish it: people already written are simply updated."
        )
        return
    counts = f"Imported {report.created} new and updated {report.updated} existing people"
    click.echo(f"{counts} ({report.changes()}; each change is in the audit).")


@click.group("staff", cls=AppGroup, help="Staff users of the console.")
def staff_group() -> None:
    pass


@staff_group.command("create", help="Create a staff user; the password is read from standard input.")
@click.argument("email")
@click.option("--role", type=click.Choice(STAFF_ROLES), required=True)
def staff_create(email: str, role: str) -> None:
    """The same rules as adding a staff user in the console (ivr/staff_accounts.py), and audited the same way."""
    try:
        email = check_email(email)
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\n")
        create_staff_user(_database(), email, role, password, by_staff_user_id=None)
    except StaffUserRejected as rejected:
        reason = str(rejected)
        fail(reason[:1].lower() + reason[1:])  # the console's words, after "Error: "
    click.echo(f"Created {email} as {role}.")


@click.group("demo", cls=AppGroup, help="Synthetic data for trying the line.")
def demo_group() -> None:
    pass


@demo_group.command("seed", help="Add synthetic people (test NHS numbers, drama-range mobiles); safe to rerun.")
def demo_seed() -> None:
    report = import_people(_database(), demo.demo_people(), Importer(None, "flask demo seed"))
    click.echo(f"Demo people: {report.created} added, {report.updated} refreshed. Try the line as:")
    for person in demo.demo_people():
        click.echo(f"  {demo.how_to_try(person)}")


def _demo_serve(create_app: local_line.AppFactory) -> click.Command:
    """`flask demo serve`, which builds the served app with `create_app` (nothing here imports `app`)."""

    @click.command(
        "serve",
        help="Serve the line on 127.0.0.1 with its outbox worker (what `make run` runs); without a Twilio account "
        "its texts go to a local Twilio stand-in, which the terminal phone reads and which reports them delivered.",
    )
    @click.option("--port", default=5000, show_default=True, help="The line's port.")
    @click.option("--texts-port", default=5001, show_default=True, help="The Twilio stand-in's port.")
    @with_appcontext
    def demo_serve(port: int, texts_port: int) -> None:
        settings = current_app.extensions["settings"]
        try:
            local_line.serve_locally(create_app, settings, Path(current_app.instance_path), port, texts_port)
        except local_line.TextsPortTaken as taken:
            fail(f"{taken}: stop the other `make run`, or choose another with TEXTS_PORT=.")

    return demo_serve


@click.group("outbox", cls=AppGroup, help="Texts waiting to be sent.")
def outbox_group() -> None:
    pass


@outbox_group.command("send", help="Send due texts; --watch keeps going (the outbox worker), retrying failures with backoff.")
@click.option("--watch", is_flag=True, help="Keep sending until stopped (SIGTERM or Ctrl-C).")
@click.option(
    "--interval", default=5.0, show_default=True, help="With --watch, the longest wait between looks for due texts."
)
def outbox_send(watch: bool, interval: float) -> None:
    outbox = current_app.extensions["outbox"]
    if not current_app.extensions["settings"].can_send_texts:
        click.echo("No Twilio account is configured: texts stay in the local outbox.")
    if not watch:
        try:
            report = outbox.send_due()
        except Exception as error:
            fail(f"texts could not be sent: {type(error).__name__}")
            return
        click.echo(f"Sent {report.sent}, retrying {report.retrying}, failed {report.failed}.")
        return
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())

    def report_round(report: SendReport) -> None:
        if report.busy:  # to the log: JSON lines in production, like the rest of the service
            log.info("Sent %s, retrying %s, failed %s.", report.sent, report.retrying, report.failed)

    # A failure (the database or Twilio out of reach) is logged and the worker carries on.
    outbox.watch(stop, idle_wait=interval, on_round=report_round)


@click.group("register", cls=AppGroup, help="The register of opt-out choices.")
def register_group() -> None:
    pass


@register_group.command(
    "apply",
    help="Copy the rows of DATASET (a CSV or Parquet file, or - for standard input) whose people have not opted out "
    "to --out, in the same format (CSV byte for byte; Parquet with every column and type); rows with a missing or invalid "
    "NHS number are withheld too. The run is recorded, and audited.",
)
@click.argument("dataset")
@click.option("--out", "output", required=True, metavar="FILE", help="Where the kept rows go (- for standard output).")
@click.option("--column", default="nhs_number", show_default=True, help="The column that holds the NHS number.")
@click.option("--keep-unmatched", is_flag=True, help="Keep rows whose NHS number is missing or invalid.")
@click.option("--by", "by_email", metavar="EMAIL", help="The staff user running this (otherwise the system user).")
@click.option("--national-reply", metavar="REPLY.dat",
              help="Apply the national data opt-out too: a reply stored by `register national receive`; a row is kept "
              "only if its NHS number is in it (and not opted out with us).")
@click.option("--national-request", metavar="REQ.dat",
              help="The request file the reply answers (otherwise the one `register national send` recorded).")
@click.option("--format", "data_format", type=click.Choice(FORMATS),
              help="The format of DATASET and --out (otherwise told by their names: .csv, .parquet).")
def register_apply(
    dataset: str,
    output: str,
    column: str,
    keep_unmatched: bool,
    by_email: str | None,
    national_reply: str | None,
    national_request: str | None,
    data_format: str | None,
) -> None:
    settings = current_app.extensions["settings"]
    request = ApplyRequest(
        dataset,
        output,
        column=column,
        keep_unmatched=keep_unmatched,
        by_email=by_email,
        national_reply=national_reply,
        national_request=national_request,
        national_reply_max_age=timedelta(hours=settings.national_reply_max_age_hours),
        data_format=data_format,
    )
    try:
        with _progress_bar(dataset) as on_progress:
            run = apply_register(
                _database(),
                request,
                standard_input=sys.stdin.buffer if dataset == STANDARD_STREAM else None,
                standard_output=sys.stdout.buffer if output == STANDARD_STREAM else None,
                on_progress=on_progress,
            )
    except RegisterApplyError as error:
        fail(str(error))
        return
    for line in summary_lines(run):
        click.echo(line, err=output == STANDARD_STREAM)  # standard output carries the rows then


@register_group.command(
    "export",
    help="Write the register for other systems to --out: the current choice of every person who has made one (never "
    "anyone else), as CSV, Parquet or a FHIR R4 bundle of Consent resources. Readable by its owner alone; audited.",
)
@click.option("--out", "output", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The file to write (one of that name is replaced only once the export is whole).")
@click.option("--format", "format_name", metavar="csv|parquet|fhir",
              help="The format (otherwise from the name: .csv, .parquet, or .json for FHIR).")
def register_export(output: Path, format_name: str | None) -> None:
    settings = current_app.extensions["settings"]
    try:
        export = export_format(output, format_name)
        organisation = Organisation(check_ods_code(settings.org_ods_code), settings.org_name)
        exported = export_register(_database(), output, export, organisation)
    except RegisterExportError as error:
        fail(str(error))
        return
    people = "person" if exported.count == 1 else "people"
    click.echo(f"Exported the current choice of {exported.count:,} {people} as {exported.format} to {exported.path}.")


@register_group.group(
    "national",
    cls=AppGroup,
    help="The national data opt-out, through NHS England's Check for National Data Opt-outs service over MESH.",
)
def national_group() -> None:
    pass


@national_group.command(
    "request",
    help="Write the request file for DATASET (a CSV or Parquet file): its distinct valid NHS numbers, each followed by a comma, "
    "one a line; numbers that are missing or invalid are counted and never sent.",
)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", "output", type=click.Path(path_type=Path), metavar="FILE",
              help="The request file (otherwise MESH_MAILBOX-DDMMYY-NNNN.dat here, the next free sequence).")
@click.option("--column", default="nhs_number", show_default=True, help="The column that holds the NHS number.")
def national_request(dataset: Path, output: Path | None, column: str) -> None:
    settings = current_app.extensions["settings"]
    try:
        written = write_request(dataset, output, mailbox=settings.mesh_mailbox, day=uk_today(), column=column)
    except NationalCheckError as error:
        fail(str(error))
        return
    click.echo(
        f"Read {written.rows:,} {'row' if written.rows == 1 else 'rows'}: {written.numbers:,} distinct valid NHS numbers "
        f"written to {written.path}; {written.invalid:,} with a missing or invalid NHS number (not sent)."
    )


@national_group.command("send", help="Send REQUEST_FILE to the national check over MESH, and record it.")
@click.argument("request_file", type=click.Path(path_type=Path))
def national_send(request_file: Path) -> None:
    settings = current_app.extensions["settings"]
    try:
        request = send_request(_database(), settings, request_file)
    except NationalCheckError as error:
        fail(str(error))
        return
    click.echo(
        f"Sent {request.file_name} ({request.numbers:,} NHS numbers) to {settings.national_check_mailbox} as MESH message "
        f"{request.mesh_message_id}, local id {request.local_id}; recorded as national check request {request.id}."
    )


@national_group.command(
    "receive",
    help="Download the national check's replies from the MESH inbox, store each for its request, and acknowledge it; "
    "one line per message.",
)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help=f"Where replies are stored (otherwise instance/{REPLIES_FOLDER}).")
def national_receive(folder: Path | None) -> None:
    settings = current_app.extensions["settings"]
    folder = folder or Path(current_app.instance_path) / REPLIES_FOLDER
    try:
        received = receive_replies(_database(), settings, folder)
    except NationalCheckError as error:
        fail(str(error))
        return
    if not received:
        click.echo("No messages for the national check in the inbox.")
    for message in received:
        click.echo(message.summary)


@contextmanager
def _progress_bar(dataset: str) -> Iterator[ProgressCallback | None]:
    """A bar by bytes read, on a terminal only, for a file whose size is known."""
    if not sys.stderr.isatty() or dataset == STANDARD_STREAM or not os.path.isfile(dataset):
        yield None
        return
    with click.progressbar(length=os.path.getsize(dataset), label="Applying the register", file=sys.stderr) as bar:
        yield lambda done: bar.update(done - bar.pos)


@click.group("retention", cls=AppGroup, help="How long conversation steps and delivered texts are kept.")
def retention_group() -> None:
    pass


@retention_group.command(
    "apply",
    help="Remove the steps of conversations, and the delivered texts, older than the retention age, in batches. "
    "Choices, their history, follow-ups and the audit are kept.",
)
@click.option(
    "--older-than-days",
    type=int,
    show_default="RETENTION_DAYS, or 400",
    help="The age in days beyond which rows are removed.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
def retention_apply(older_than_days: int | None, dry_run: bool) -> None:
    if older_than_days is None:
        older_than_days = current_app.extensions["settings"].retention_days
    if older_than_days < 1:
        fail("--older-than-days must be at least 1.")
        return
    report = retention.apply_retention(_database(), timedelta(days=older_than_days), dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {report.steps} steps of {report.conversations} conversations and {report.texts} delivered texts "
        f"from before {report.cutoff:%d %b %Y %H:%M} UTC, and {report.attempts} old sign-in and identity-check attempts."
    )
