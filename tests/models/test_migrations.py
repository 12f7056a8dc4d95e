"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from models.base import Base
from models.db import make_engine
from models.migrate import current_revision, head_revision, is_at_head, upgrade_to_head
from tests.conftest import on_postgres


def test_migrated_schema_matches_the_models(connection: Connection) -> None:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    assert compare_metadata(context, Base.metadata) == []


def test_migrations_bring_a_new_database_to_head(isolated_database_url: str) -> None:
    engine = make_engine(isolated_database_url)
    assert current_revision(engine) is None
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert is_at_head(engine)
    upgrade_to_head(engine)  # a second run is a no-op
    assert set(inspect(engine).get_table_names()) >= {
        "centers",
        "staff_tokens",
        "experts",
        "expert_specialties",
        "audit_entries",
        "audit_heads",
        "alembic_version",
    }
    engine.dispose()


def test_sqlite_runs_with_foreign_keys_and_wal(engine: Engine, tmp_path: object) -> None:
    if on_postgres():
        engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")  # type: ignore[str-bytes-safe]
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_plain_engine_sees_the_same_schema(isolated_database_url: str) -> None:
    # Guards against the schema depending on our engine's connect-time settings.
    upgrade_to_head(make_engine(isolated_database_url))
    plain = create_engine(isolated_database_url)
    with plain.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    plain.dispose()
