"""Leases on periodic jobs: one row per job, taken with one conditional UPDATE, so that
however many processes run the job loop each round of a job runs in one of them.

A round is due when `next_run_at` has passed and no unexpired lease is held; the process
whose UPDATE moves `expires_at` forward runs it and, finished, sets the next round's time
and lets go. A holder that dies mid-round loses the lease when it expires. On PostgreSQL
the second of two racing UPDATEs re-reads the row after the first commits and matches
nothing; on SQLite writers queue for the one write lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.tables import JobLease


def _ensure(db: Session, name: str, now: datetime) -> None:
    """The job's row, due now, unless it exists."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.execute(
        insert(JobLease)
        .values(name=name, holder=None, expires_at=None, next_run_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def claim(db: Session, *, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Take this round of the job if it is due and nobody holds it; True if taken."""
    _ensure(db, name, now)
    taken = db.execute(
        update(JobLease)
        .where(
            JobLease.name == name,
            JobLease.next_run_at <= now,
            or_(JobLease.expires_at.is_(None), JobLease.expires_at <= now),
        )
        .values(holder=holder, expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(taken, "rowcount", 0) == 1)


def finish(db: Session, *, name: str, holder: str, now: datetime, every: timedelta) -> None:
    """Let go of the round taken by `claim`; the next one is due `every` from now."""
    db.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(expires_at=None, next_run_at=now + every, last_finished_at=now)
        .execution_options(synchronize_session=False)
    )
