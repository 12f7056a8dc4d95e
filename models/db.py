"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Execution option: how a SQLite transaction begins. PostgreSQL ignores it.
SQLITE_BEGIN = "evalsign_sqlite_begin"
READ_ONLY: dict[str, Any] = {SQLITE_BEGIN: "DEFERRED"}


@dataclass(frozen=True)
class PoolOptions:
    """A PostgreSQL engine's pool and timeouts (EVALSIGN_DATABASE_* settings)."""

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_s: float = 30.0
    connect_timeout_s: int = 10
    statement_timeout_ms: int = 0  # 0: no limit
    # Behind PgBouncer in transaction mode a server connection changes between transactions:
    # no server-side prepared statements, no session settings at connect.
    pgbouncer: bool = False


def _postgres_engine(url: str, pool: PoolOptions, kwargs: dict[str, Any]) -> Engine:
    connect_args: dict[str, Any] = {"connect_timeout": pool.connect_timeout_s}
    if pool.pgbouncer:
        connect_args["prepare_threshold"] = None
    elif pool.statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={int(pool.statement_timeout_ms)}"
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout_s,
        connect_args=connect_args,
        **kwargs,
    )
    if pool.pgbouncer and pool.statement_timeout_ms:

        @event.listens_for(engine, "begin")
        def _statement_timeout(conn: Any) -> None:
            # PgBouncer rejects startup options; SET LOCAL lasts exactly one transaction.
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(pool.statement_timeout_ms)}")

    return engine


def make_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = 30_000,
    pool: PoolOptions | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and write-locking transactions,
    PostgreSQL the pool and timeouts of `pool`."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _postgres_engine(url, pool or PoolOptions(), kwargs)

    engine = create_engine(
        url,
        # Requests run on a thread pool; the session, not the driver, guards a connection.
        connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_ms / 1000},
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers BEGIN IMMEDIATE: taking the write lock up front makes a transaction that
        # reads and then writes wait its turn instead of failing with SQLITE_BUSY. Readers
        # (READ_ONLY below) begin deferred and never wait for writers under WAL.
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def advisory_xact_lock(connection: Connection, name: str) -> None:
    """Wait for a cluster-wide lock named `name` until this transaction ends (PostgreSQL;
    a transaction-level lock also holds through PgBouncer in transaction mode). SQLite
    needs none: its writers already queue for the one write lock."""
    if connection.dialect.name != "postgresql":
        return
    key = zlib.crc32(f"evalsign:{name}".encode()) - 2**31  # a stable signed 32-bit key
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
