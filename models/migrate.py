"""Apply Alembic migrations from code (`evalsign migrate`, `init`), one process at a time,
and tell whether a database's schema suits this code."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, insert, inspect, select

from models.db import advisory_xact_lock
from models.tables import SchemaUpgrade

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaMismatch(RuntimeError):
    """The database's schema is not one this code may run on."""


def alembic_config(engine: Engine, migrations_dir: Path = MIGRATIONS_DIR) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine, migrations_dir: Path = MIGRATIONS_DIR) -> str | None:
    """Bring the schema to this code's head in one transaction under a cluster-wide lock:
    replicas starting together wait for the first and then find nothing to do. Records
    which revision the run started from (`schema_upgrades`), which is how code one release
    older knows the schema is meant for it too. Returns the revision it started from."""
    with engine.begin() as connection:
        # A transaction-level lock: it also holds through PgBouncer in transaction mode.
        advisory_xact_lock(connection, "migrate")
        before = current_revision(connection)
        config = alembic_config(engine, migrations_dir)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current_revision(connection)
        if after is not None and after != before:
            connection.execute(
                insert(SchemaUpgrade).values(
                    revision=after, upgraded_from=before, applied_at=datetime.now(UTC)
                )
            )
    return before


def current_revision(bind: Engine | Connection) -> str | None:
    if isinstance(bind, Connection):
        return MigrationContext.configure(bind).get_current_revision()
    with bind.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def is_at_head(bind: Engine | Connection) -> bool:
    return current_revision(bind) == head_revision()


class SchemaFit(StrEnum):
    CURRENT = "current"  # at this code's head
    NEXT_RELEASE = "next-release"  # migrated by the next release, straight from our head
    UNSUITED = "unsuited"  # behind, or further ahead: not for this code


def schema_fit(connection: Connection) -> SchemaFit:
    """Whether this code may serve on the schema. Migrations are written expand-then-
    contract: a release's migrations only add what its code needs, and drop only what the
    release before it had stopped using, so code one release old runs on the new schema
    (a rolling deploy keeps the old replicas serving). One release ahead means: the last
    `evalsign migrate` run started from this code's head."""
    current, head = current_revision(connection), head_revision()
    if current == head:
        return SchemaFit.CURRENT
    if current is None or not inspect(connection).has_table(SchemaUpgrade.__tablename__):
        return SchemaFit.UNSUITED
    upgraded_from = connection.execute(
        select(SchemaUpgrade.upgraded_from).where(SchemaUpgrade.revision == current)
    ).scalar_one_or_none()
    return SchemaFit.NEXT_RELEASE if upgraded_from == head else SchemaFit.UNSUITED
