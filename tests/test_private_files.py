"""What the app keeps on disk for itself (the SQLite database with its WAL, the instance folder and the
secret key in it) is readable by the account it runs as alone, whatever the umask."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app
from ivr.settings import Settings
from ivr.standins.terminal_phone import flask_transport
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, Caller, app_config

OWNER_ONLY = "0o600"


def mode(path: Path) -> str:
    return oct(os.stat(path).st_mode & 0o777)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_sqlite_database_and_its_wal_are_readable_by_their_owner_alone(tmp_path, twilio, permissive_umask):
    path = tmp_path / "new.sqlite"
    app = create_app(app_config(f"sqlite:///{path}", twilio))
    try:
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        transport = flask_transport(app.test_client())
        caller = Caller(transport, AUTH_TOKEN, "http://localhost", "CA" + uuid.uuid4().hex, account_sid=ACCOUNT_SID)
        caller.dial()  # a call writes: the WAL and its index are there while the app holds the database open
        caller.hears("menu")

        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert {file.name: mode(file) for file in (path, wal, shm)} == {
            file.name: OWNER_ONLY for file in (path, wal, shm)
        }
    finally:
        app.extensions["database"].engine.dispose()


def test_an_existing_database_that_everyone_could_read_is_closed_to_them(tmp_path, twilio, permissive_umask):
    path = tmp_path / "old.sqlite"
    app = create_app(app_config(f"sqlite:///{path}", twilio))
    try:
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    finally:
        app.extensions["database"].engine.dispose()
    path.chmod(0o644)  # as an earlier version left it

    app = create_app(app_config(f"sqlite:///{path}", twilio))
    try:
        assert app.test_client().get("/healthz").status_code == 200
        assert mode(path) == "0o640", "the group the operator chose keeps its access; everyone else loses theirs"
    finally:
        app.extensions["database"].engine.dispose()


def test_a_new_instance_folder_and_the_secret_key_in_it_are_the_owners_alone(tmp_path, permissive_umask):
    instance = tmp_path / "instance"

    settings = fresh_settings().resolve_defaults(instance)

    assert settings.secret_key
    assert mode(instance) == "0o700"
    assert mode(instance / "secret_key") == OWNER_ONLY
    assert (instance / "secret_key").read_text().strip() == settings.secret_key
    assert fresh_settings().resolve_defaults(instance).secret_key == settings.secret_key, "kept, not made again"


def fresh_settings() -> Settings:
    """Settings with nothing from the environment or a .env file: the instance folder supplies the rest."""
    return Settings(_env_file=None, database_url=None, secret_key=None)  # type: ignore[call-arg]
