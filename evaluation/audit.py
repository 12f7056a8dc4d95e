"""The audit log: an append-only, per-center SHA-256 hash chain written in the same
transaction as the change it records, and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.util import identity_key

from evaluation.errors import NotFound
from models.clock import Clock
from models.tables import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Caller:
    """Who is acting, for which center, in which request: what every audit entry names."""

    center_id: str
    actor: str
    role: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class AuditEvent:
    action: str
    subject_type: str
    subject_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


def canonical_bytes(
    *,
    center_id: str,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    request_id: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The exact bytes an entry's hash covers: sorted-key compact JSON in UTF-8."""
    payload = {
        "center_id": center_id,
        "seq": seq,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "request_id": request_id,
        "details": details,
        "prev_hash": prev_hash,
    }
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256(
        canonical_bytes(
            center_id=entry.center_id,
            seq=entry.seq,
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            action=entry.action,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            request_id=entry.request_id,
            details=entry.details,
            prev_hash=entry.prev_hash,
        )
    ).hexdigest()


def start_chain(db: Session, center_id: str) -> None:
    """Create the empty chain of a new center."""
    db.add(AuditHead(center_id=center_id, last_seq=0, last_hash=GENESIS_HASH))
    db.flush()


def record(
    db: Session,
    caller: Caller,
    clock: Clock,
    action: str,
    subject_type: str,
    subject_id: str | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the caller's center chain, inside the caller's transaction."""
    event = AuditEvent(action, subject_type, subject_id, details or {})
    return record_many(db, caller, clock, [event])[-1]


# Core statements on the tables, built once: every request that changes anything appends
# here, and the ORM's flush bookkeeping, then its bulk-statement path and the building of
# the statements, cost more than the SQL itself.
_heads = cast(Table, AuditHead.__table__)
_entries = cast(Table, AuditEntry.__table__)
_RESERVE = (
    update(_heads)
    .where(_heads.c.center_id == bindparam("center"))
    .values(last_seq=_heads.c.last_seq + bindparam("count"))
    .returning(_heads.c.last_seq, _heads.c.last_hash)
)
_INSERT = insert(_entries)
_ADVANCE = (
    update(_heads)
    .where(_heads.c.center_id == bindparam("center"))
    .values(last_hash=bindparam("hash"))
)


def record_many(
    db: Session, caller: Caller, clock: Clock, events: Sequence[AuditEvent]
) -> list[AuditEntry]:
    """Append several entries at once (an import): one head update, one bulk insert."""
    if not events:
        return []
    # Bumping the head first takes its row lock (PostgreSQL) or the write lock (SQLite):
    # a concurrent appender waits here and then sees our new head, so the chain never forks.
    reserved = db.execute(
        _RESERVE, {"center": caller.center_id, "count": len(events)}
    ).one_or_none()
    if reserved is None:
        raise NotFound(f"center {caller.center_id} has no audit chain")
    last_seq, prev_hash = reserved
    now = clock.now()
    entries: list[AuditEntry] = []
    for offset, event in enumerate(events):
        entry = AuditEntry(
            center_id=caller.center_id,
            seq=last_seq - len(events) + 1 + offset,
            occurred_at=now,
            actor=caller.actor,
            action=event.action,
            subject_type=event.subject_type,
            subject_id=event.subject_id,
            request_id=caller.request_id,
            details=event.details,
            prev_hash=prev_hash,
        )
        entry.hash = entry_hash(entry)
        prev_hash = entry.hash
        entries.append(entry)
    db.execute(_INSERT, [_row(entry) for entry in entries])
    db.execute(_ADVANCE, {"center": caller.center_id, "hash": prev_hash})
    # The statements bypass the ORM, so a head this session has loaded is told by hand.
    head = db.identity_map.get(identity_key(AuditHead, caller.center_id))
    if head is not None:
        attributes.set_committed_value(head, "last_seq", last_seq)
        attributes.set_committed_value(head, "last_hash", prev_hash)
    return entries


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        column: getattr(entry, column)
        for column in (
            "center_id",
            "seq",
            "occurred_at",
            "actor",
            "action",
            "subject_type",
            "subject_id",
            "request_id",
            "details",
            "prev_hash",
            "hash",
        )
    }


# What an entry's hash covers (canonical_bytes), in one place for the fast verifier.
_HASHED = (
    "center_id",
    "seq",
    "occurred_at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "request_id",
    "details",
    "prev_hash",
)
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


@dataclass(frozen=True)
class ChainReport:
    center_id: str
    ok: bool
    entries_checked: int
    head_seq: int | None
    first_bad_seq: int | None = None
    reason: str | None = None


def verify_chain(db: Session, center_id: str) -> ChainReport:
    """Recompute a center's chain from the first entry; name the first entry that is wrong."""
    head = db.get(AuditHead, center_id)
    if head is None:
        raise NotFound(f"no audit chain for center {center_id}")
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0

    def broken(seq: int, reason: str) -> ChainReport:
        return ChainReport(center_id, False, checked, head.last_seq, seq, reason)

    # Plain rows, streamed: ORM objects cost more than hashing the entries does.
    rows = db.execute(
        select(*(_entries.c[name] for name in _HASHED), _entries.c.hash)
        .where(_entries.c.center_id == center_id)
        .order_by(_entries.c.seq)
        .execution_options(yield_per=5000)
    )
    encode = _CANONICAL.encode
    for row in rows:
        seq, stored_prev, stored_hash = row.seq, row.prev_hash, row.hash
        if seq != expected_seq:
            return broken(expected_seq, "sequence-gap")
        if stored_prev != prev_hash:
            return broken(seq, "prev-hash-mismatch")
        payload = dict(zip(_HASHED, row[: len(_HASHED)], strict=True))
        payload["occurred_at"] = row.occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
        if hashlib.sha256(encode(payload).encode()).hexdigest() != stored_hash:
            return broken(seq, "hash-mismatch")
        prev_hash, expected_seq, checked = stored_hash, expected_seq + 1, checked + 1
    if head.last_seq != checked or head.last_hash != prev_hash:
        # Entries cut from the end, or a head moved without its entries.
        return broken(checked + 1, "head-mismatch")
    return ChainReport(center_id, True, checked, head.last_seq)


def list_entries(
    db: Session,
    center_id: str,
    *,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
    subject_id: str | None = None,
) -> list[AuditEntry]:
    query = (
        select(AuditEntry)
        .where(AuditEntry.center_id == center_id, AuditEntry.seq > after_seq)
        .order_by(AuditEntry.seq)
        .limit(limit)
    )
    if action:
        query = query.where(AuditEntry.action == action)
    if subject_id:
        query = query.where(AuditEntry.subject_id == subject_id)
    return list(db.execute(query).scalars())
