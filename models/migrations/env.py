"""Alembic environment: runs on the connection (or engine) handed in by models.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine, create_engine

from models import tables  # noqa: F401  (registers the tables on Base.metadata)
from models.base import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite does roll back DDL: a migration that fails halfway leaves no half schema.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


config = context.config
given = config.attributes.get("connection")
if isinstance(given, Connection):
    # models.migrate's connection, inside its transaction under the migration lock; the
    # caller commits.
    _run(given)
else:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("set sqlalchemy.url or run migrations through `evalsign migrate`")
        engine = create_engine(url)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
