"""PostgreSQL connections as the settings configure them: the pool, the timeouts, and the
PgBouncer transaction mode (no server-side prepared statements). Runs in the PostgreSQL
pass (EVALSIGN_TEST_DATABASE_URL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from api.services import open_database
from models.db import PoolOptions, make_engine
from models.settings import Settings
from tests.conftest import on_postgres

pytestmark = pytest.mark.skipif(not on_postgres(), reason="PostgreSQL only")

QUERY = "SELECT count(*) FROM pg_class WHERE relname = %s"


def _prepared_after_repeats(engine: Engine) -> int:
    """Run one parameterized query often enough for psycopg to prepare it, and count the
    server-side prepared statements of that connection."""
    with engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        assert driver is not None
        cursor = driver.cursor()
        for _ in range(10):
            cursor.execute(QUERY, ("pg_class",))
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        row = cursor.fetchone()
        assert row is not None
        return int(row[0])


def test_the_pool_and_timeouts_come_from_the_settings(isolated_database_url: str) -> None:
    settings = Settings(
        database_url=isolated_database_url,
        database_pool_size=3,
        database_max_overflow=2,
        database_pool_timeout_s=7,
        database_statement_timeout_ms=250,
    )
    engine = open_database(settings)
    try:
        pool = engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool._max_overflow == 2  # type: ignore[attr-defined]
        assert pool._timeout == 7  # type: ignore[attr-defined]
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "250ms"
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(2)"))
    finally:
        engine.dispose()


def test_pgbouncer_mode_prepares_nothing_on_the_server(isolated_database_url: str) -> None:
    direct = make_engine(isolated_database_url)
    bouncer = make_engine(
        isolated_database_url, pool=PoolOptions(pgbouncer=True, statement_timeout_ms=250)
    )
    try:
        assert _prepared_after_repeats(direct) > 0  # psycopg's default, what PgBouncer breaks
        assert _prepared_after_repeats(bouncer) == 0
        with bouncer.begin() as connection:
            # The timeout holds per transaction (SET LOCAL), without a startup option.
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "250ms"
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(2)"))
    finally:
        direct.dispose()
        bouncer.dispose()
