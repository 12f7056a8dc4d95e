"""SQLite locking as the service relies on it: writers queue, readers never wait."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.db import READ_ONLY, make_engine


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'locks.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    return url


def test_a_writer_holds_the_lock_from_its_first_statement(sqlite_url: str) -> None:
    holder, other = make_engine(sqlite_url), make_engine(sqlite_url, sqlite_busy_timeout_ms=50)
    with holder.connect() as first:
        first.execute(text("SELECT count(*) FROM t"))  # a read, but BEGIN IMMEDIATE
        with pytest.raises(OperationalError, match="locked"), other.connect() as second:
            second.execute(text("SELECT 1"))
        first.rollback()


def test_a_read_only_session_does_not_wait_for_a_writer(sqlite_url: str) -> None:
    writer, reader = make_engine(sqlite_url), make_engine(sqlite_url, sqlite_busy_timeout_ms=50)
    with writer.connect() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        with Session(reader) as session:
            session.connection(execution_options=READ_ONLY)
            # WAL: the reader sees the last committed state, not the open write.
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0
        first.commit()
