"""The Alembic migrations build exactly the schema the models describe, in one straight line of revisions."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import migrations
import models  # noqa: F401  registers every table
from ivr.db import make_engine


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "compare_server_default": True, "target_metadata": SQLModel.metadata},
            )
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(database_url):
    differences = _differences(database_url)
    assert differences == [], "the migrations and the models disagree:\n" + "\n".join(map(repr, differences))


def test_the_migrated_database_has_every_model_table_and_is_at_head(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert current == (_script().get_current_head(),)


def test_a_fresh_sqlite_database_migrates_to_the_models_and_upgrading_again_is_a_no_op(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    migrations.upgrade(url)
    migrations.upgrade(url)
    assert _differences(url) == []


def test_the_revisions_form_one_line_with_a_single_head_and_base():
    script = _script()
    assert len(script.get_heads()) == 1, f"more than one head: {script.get_heads()}"
    assert len(script.get_bases()) == 1, f"more than one base: {script.get_bases()}"
    chain = list(script.walk_revisions())  # head first
    assert chain, "no revisions at all"
    assert chain[0].revision == script.get_current_head()
    assert chain[-1].down_revision is None
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.down_revision == older.revision, f"{newer.revision} does not follow {older.revision}"
    assert all(not revision.is_merge_point for revision in chain)
    assert len({revision.revision for revision in chain}) == len(chain)
