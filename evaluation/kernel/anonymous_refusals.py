"""Refusals of anonymous requests, tallied per center, minute, source, action and reason
(one upsert each) instead of one audit entry each: anyone can send a forged task code, and
a center's hash chain records what people did, not what a script tried."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.tables import AnonymousRefusal

_table = cast(Table, AnonymousRefusal.__table__)
_KEY = ("center_id", "minute", "source", "action", "reason")


@dataclass(frozen=True)
class Tallied:
    center_id: str
    source: str
    action: str
    reason: str
    details: dict[str, Any]


def tally(db: Session, refusal: Tallied, at: datetime) -> None:
    """Count one refusal in its minute's row: one statement, safe when replicas race."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_table).values(
        center_id=refusal.center_id,
        minute=at.replace(second=0, microsecond=0),
        source=refusal.source[:120],
        action=refusal.action[:60],
        reason=refusal.reason[:60],
        count=1,
        first_at=at,
        last_at=at,
        last_details=refusal.details,
    )
    db.execute(
        statement.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={
                "count": _table.c.count + 1,
                "last_at": statement.excluded.last_at,
                "last_details": statement.excluded.last_details,
            },
        )
    )


def list_refusals(
    db: Session,
    center_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    limit: int = 100,
) -> list[AnonymousRefusal]:
    """A center's tallies, newest minute first."""
    query = select(AnonymousRefusal).where(AnonymousRefusal.center_id == center_id)
    if since is not None:
        query = query.where(AnonymousRefusal.minute >= since.replace(second=0, microsecond=0))
    if until is not None:
        query = query.where(AnonymousRefusal.minute < until)
    if source is not None:
        query = query.where(AnonymousRefusal.source == source)
    query = query.order_by(
        AnonymousRefusal.minute.desc(), AnonymousRefusal.count.desc(), AnonymousRefusal.source
    )
    return list(db.execute(query.limit(limit)).scalars())
