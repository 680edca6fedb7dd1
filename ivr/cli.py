"""Command line: `flask db upgrade`, `flask people import`, `flask staff create`, `flask demo seed`,
`flask outbox send` and `flask call` (the terminal phone)."""

import sys
import time
from datetime import date
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlmodel import select
from werkzeug.security import generate_password_hash

import migrations
from ivr import demo, terminal_phone
from ivr.db import Database
from ivr.people import ImportRejected, import_people, read_people_csv
from models import StaffUser
from models.staff import STAFF_ROLES

MIN_PASSWORD_LENGTH = 12


def register(app: Flask) -> None:
    for group in (db_group, people_group, staff_group, demo_group, outbox_group):
        app.cli.add_command(group)
    app.cli.add_command(terminal_phone.call_command)
    app.cli.add_command(terminal_phone.text_command)


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


@people_group.command("import", help="Import people from a CSV file (all rows or none).")
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
    with _database().transaction() as session:
        report = import_people(session, people)
    click.echo(f"Imported {report.created} new and updated {report.updated} existing people.")


@click.group("staff", cls=AppGroup, help="Staff users of the console.")
def staff_group() -> None:
    pass


@staff_group.command("create", help="Create a staff user; the password is read from standard input.")
@click.argument("email")
@click.option("--role", type=click.Choice(STAFF_ROLES), required=True)
def staff_create(email: str, role: str) -> None:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        fail("that is not an email address")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        fail(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    with _database().transaction() as session:
        if session.exec(select(StaffUser).where(StaffUser.email == email)).first():
            fail(f"a staff user with the email {email} already exists")
        session.add(StaffUser(email=email, password_hash=generate_password_hash(password), role=role))
    click.echo(f"Created {email} as {role}.")


@click.group("demo", cls=AppGroup, help="Synthetic data for trying the line.")
def demo_group() -> None:
    pass


@demo_group.command("seed", help="Add synthetic people (test NHS numbers, drama-range mobiles); safe to rerun.")
def demo_seed() -> None:
    with _database().transaction() as session:
        report = import_people(session, demo.demo_people())
    click.echo(f"Demo people: {report.created} added, {report.updated} refreshed. Try the line as:")
    for person in demo.demo_people()[:3]:
        born = person.date_of_birth.strftime("%d%m%Y")
        click.echo(f"  {person.given_name} {person.family_name}: NHS number {person.nhs_number}, born {born}")


@click.group("outbox", cls=AppGroup, help="Texts waiting to be sent.")
def outbox_group() -> None:
    pass


@outbox_group.command("send", help="Send due texts; --watch keeps going, retrying failures with backoff.")
@click.option("--watch", is_flag=True, help="Keep sending every few seconds until stopped.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between rounds with --watch.")
def outbox_send(watch: bool, interval: float) -> None:
    outbox = current_app.extensions["outbox"]
    if not current_app.extensions["settings"].can_send_texts:
        click.echo("No Twilio account is configured: texts stay in the local outbox.")
    while True:
        report = outbox.send_due()
        if report.sent or report.retrying or report.failed or not watch:
            click.echo(f"Sent {report.sent}, retrying {report.retrying}, failed {report.failed}.")
        if not watch:
            return
        time.sleep(interval)
