"""The audit log: an append-only, per-center SHA-256 hash chain written in the same
transaction as the change it records, and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Select,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.util import identity_key

from evaluation.kernel.actions import Action, spellings
from evaluation.kernel.anonymous_refusals import Tallied, tally
from evaluation.kernel.errors import DomainError, NotFound
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
    action: Action
    subject_type: str
    subject_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


_E = TypeVar("_E", bound=DomainError)


@dataclass(frozen=True)
class Refusal:
    """The audit entry of a refused request, written after its changes are rolled back,
    with what else the refusal must leave behind (`also`: a wrong code's spent try)."""

    caller: Caller
    event: AuditEvent
    also: Callable[[Session], None] | None = None
    # Where an anonymous request came from (its address): such a refusal is tallied per
    # minute (anonymous_refusals), not chained, so nobody signed in can flood the log.
    anonymous_source: str | None = None


def refused(
    error: _E,
    caller: Caller,
    event: AuditEvent,
    *,
    also: Callable[[Session], None] | None = None,
    anonymous_from: str | None = None,
) -> _E:
    """Attach the audit entry a refusal must leave behind (a replayed code, a refused
    signature): whoever owns the transaction rolls back, writes it (and `also`) and
    commits, then lets the error through. Domain code raises the error and never commits
    itself. `anonymous_from` (the address) marks a request nobody signed in to: it is
    counted per minute instead; every refusal of a staff member, expert or representative
    stays an entry of its own."""
    error.refusal = Refusal(caller, event, also, anonymous_from)
    return error


def record_refusal(db: Session, clock: Clock, error: DomainError) -> bool:
    """Write a refusal's entry (or its tally) in `db`'s fresh transaction; True when there
    was one."""
    refusal = error.refusal
    if refusal is None:
        return False
    if refusal.also is not None:
        refusal.also(db)
    if refusal.anonymous_source is not None:
        tallied = Tallied(
            refusal.caller.center_id,
            refusal.anonymous_source,
            refusal.event.action.value,
            str(refusal.event.details.get("reason") or error.code),
            {
                **refusal.event.details,
                "subject_type": refusal.event.subject_type,
                "subject_id": refusal.event.subject_id,
                "request_id": refusal.caller.request_id,
            },
        )
        tally(db, tallied, clock.now())
        return True
    record_many(db, refusal.caller, clock, [refusal.event])
    return True


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
    action: Action,
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


# The verifier below rebuilds canonical_bytes by hand, field by field: building and
# sort-encoding a dict per entry cost more than everything else it does.
_encode_str = json.encoder.encode_basestring  # what the canonical encoder uses for strings
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _details_encoder() -> Callable[[Any], str]:
    """_CANONICAL.encode, minus the C encoder it builds afresh on every call (which costs
    more than encoding a small `details`). c_make_encoder is not public API; where it is
    missing, _CANONICAL.encode gives the same text, only slower."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return _CANONICAL.encode
    # _CANONICAL's settings; no circular-reference markers, which parsed JSON cannot need.
    encode = make(None, None, _encode_str, None, ":", ",", True, False, False)
    return lambda value: "".join(encode(value, 0))


_encode_details = _details_encoder()
_decode_json = json.JSONDecoder().raw_decode


def _canonical_details(stored: str) -> str | None:
    """The canonical encoding of a `details` value as the database stores it, or None if
    it is not JSON canonical_bytes can encode (SQLite does not check; NaN)."""
    try:
        value, end = _decode_json(stored)  # json.loads without its whitespace handling
    except ValueError:
        end = -1
    try:
        if end != len(stored):  # whitespace around the value, or not JSON
            value = json.loads(stored)
        return _encode_details(value)
    except ValueError:
        return None


def _entry_digest(center: str, row: Sequence[Any], occurred_at: str, details: str) -> str:
    """The hash of a _verify_query row, as canonical_bytes would give it, from the encoded
    center_id, occurred_at and details. The row's prev_hash goes in as it is: the verifier
    has matched it to a SHA-256 hex digest already."""
    seq, prev_hash, _, _, _, actor, action, subject_type, subject_id, request_id = row
    text = (  # the keys in sorted order
        f'{{"action":{_encode_str(action)},"actor":{_encode_str(actor)},"center_id":{center},'
        f'"details":{details},"occurred_at":"{occurred_at}","prev_hash":"{prev_hash}",'
        f'"request_id":{"null" if request_id is None else _encode_str(request_id)},'
        f'"seq":{seq},'
        f'"subject_id":{"null" if subject_id is None else _encode_str(subject_id)},'
        f'"subject_type":{_encode_str(subject_type)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


_PG_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'  # isoformat(timespec="microseconds")


def _verify_query(center_id: str, dialect: str) -> Select[Any]:
    """An entry as the verifier reads it. `details` as the stored text: the driver would
    parse it only for it to be parsed again here. occurred_at is stored as naive UTC; on
    PostgreSQL the server formats it as canonical_bytes does, which costs less there than
    datetime.isoformat costs here."""
    occurred_at: ColumnElement[Any] = type_coerce(_entries.c.occurred_at, DateTime())
    if dialect == "postgresql":
        occurred_at = func.to_char(_entries.c.occurred_at, _PG_ISO_UTC)
    return (
        select(
            _entries.c.seq,
            _entries.c.prev_hash,
            _entries.c.hash,
            occurred_at,
            sql_cast(_entries.c.details, Text()),
            _entries.c.actor,
            _entries.c.action,
            _entries.c.subject_type,
            _entries.c.subject_id,
            _entries.c.request_id,
        )
        .where(_entries.c.center_id == center_id)
        .order_by(_entries.c.seq)
    )


_VERIFY_BATCH = 5000  # rows per fetch: few round trips, bounded memory


def _batches(connection: Connection, query: Select[Any]) -> Generator[Sequence[Any]]:
    """The query's rows as plain tuples, streamed in batches. Close the iterator
    (contextlib.closing) to stop early."""
    if connection.dialect.name != "postgresql":
        with connection.execute(query.execution_options(yield_per=_VERIFY_BATCH)) as result:
            yield from result.partitions()
        return
    # The driver's own server-side cursor: SQLAlchemy's Row objects cost about a third of
    # what fetching does. And a thread fetches the next batch while the caller hashes this
    # one: the driver waits for the server without the GIL, so the server's share of the
    # work runs on the other core.
    compiled = query.compile(dialect=connection.dialect)
    driver = connection.connection.driver_connection
    assert driver is not None
    with (
        driver.cursor(name="evalsign_audit_verify") as cursor,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-verify") as fetcher,
    ):
        cursor.execute(str(compiled), compiled.params)
        pending = fetcher.submit(cursor.fetchmany, _VERIFY_BATCH)
        while rows := pending.result():
            pending = fetcher.submit(cursor.fetchmany, _VERIFY_BATCH)
            yield rows
        # Leaving waits for the fetch under way (an early stop), then closes the cursor.


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

    connection = db.connection()
    center = _encode_str(center_id)
    batches = _batches(connection, _verify_query(center_id, connection.dialect.name))
    with closing(batches):
        for row in chain.from_iterable(batches):
            seq, stored_prev, stored_hash, occurred_at, details = row[:5]
            if seq != expected_seq:
                return broken(expected_seq, "sequence-gap")
            if stored_prev != prev_hash:
                return broken(seq, "prev-hash-mismatch")
            if not isinstance(occurred_at, str):  # a datetime where the server did not format it
                occurred_at = occurred_at.isoformat(timespec="microseconds") + "+00:00"
            # SQLAlchemy writes json.dumps' default ", " and ": ", so stored text has to be
            # parsed and encoded canonically. Text without ": " may be canonical already (an
            # empty object, say) and is tried as stored first: it can only match the hash
            # if it is exactly the text that was hashed.
            if ": " in details or _entry_digest(center, row, occurred_at, details) != stored_hash:
                canonical = _canonical_details(details)
                if (
                    canonical is None
                    or _entry_digest(center, row, occurred_at, canonical) != stored_hash
                ):
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
    action: Action | None = None,
    subject_id: str | None = None,
) -> list[AuditEntry]:
    query = (
        select(AuditEntry)
        .where(AuditEntry.center_id == center_id, AuditEntry.seq > after_seq)
        .order_by(AuditEntry.seq)
        .limit(limit)
    )
    if action:
        query = query.where(AuditEntry.action.in_(spellings(action)))
    if subject_id:
        query = query.where(AuditEntry.subject_id == subject_id)
    return list(db.execute(query).scalars())
