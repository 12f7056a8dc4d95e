"""What supervisors search: the face verification log by project, expert, decision, reason,
device, address (one or a CIDR range) and time, paged with a stable cursor."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.orm import Session

from evaluation.errors import DomainError
from evaluation.evidence import verification_ids_of
from evaluation.projects import get_project
from models.tables import FaceVerification


class BadFilter(DomainError):
    status = 422
    code = "bad-filter"
    title = "A filter of the search is malformed"


@dataclass(frozen=True)
class VerificationFilter:
    project_id: str | None = None
    expert_id: str | None = None
    passed: bool | None = None
    reason: str | None = None
    device_id: str | None = None
    address: str | None = None  # 203.0.113.7 or 203.0.113.0/24
    since: datetime | None = None
    until: datetime | None = None


Cursor = tuple[datetime, str]


def encode_cursor(row: FaceVerification) -> str:
    return f"{row.created_at.isoformat()}|{row.id}"


def decode_cursor(value: str) -> Cursor:
    stamp, _, row_id = value.partition("|")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise BadFilter("the cursor is not one this service gave out") from exc
    if not row_id or when.tzinfo is None:
        raise BadFilter("the cursor is not one this service gave out")
    return when, row_id


def _network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError as exc:
        raise BadFilter(f"{address!r} is not an address or a CIDR range") from exc


def search_verifications(
    db: Session,
    center_id: str,
    where: VerificationFilter,
    cursor: Cursor | None,
    limit: int,
) -> list[FaceVerification]:
    """Newest first (ties by id); the address range is checked here, not in SQL, so the
    same code serves SQLite and PostgreSQL."""
    network = _network(where.address) if where.address else None
    query = select(FaceVerification).where(FaceVerification.center_id == center_id)
    if where.project_id is not None:
        project = get_project(db, center_id, where.project_id)
        query = query.where(FaceVerification.id.in_(verification_ids_of(db, project)))
    if where.expert_id is not None:
        query = query.where(FaceVerification.expert_id == where.expert_id)
    if where.passed is not None:
        query = query.where(FaceVerification.passed.is_(where.passed))
    if where.reason is not None:
        # Reasons are a JSON list of codes; a code is [a-z-] only, so this matches exactly.
        query = query.where(cast(FaceVerification.reasons, String).contains(f'"{where.reason}"'))
    if where.device_id is not None:
        query = query.where(FaceVerification.device_id == where.device_id)
    if where.since is not None:
        query = query.where(FaceVerification.created_at >= where.since)
    if where.until is not None:
        query = query.where(FaceVerification.created_at < where.until)
    if network is not None and network.num_addresses == 1:
        query = query.where(FaceVerification.client_ip == str(network.network_address))
        network = None
    if cursor is not None:
        when, row_id = cursor
        query = query.where(
            or_(
                FaceVerification.created_at < when,
                and_(FaceVerification.created_at == when, FaceVerification.id > row_id),
            )
        )
    query = query.order_by(FaceVerification.created_at.desc(), FaceVerification.id)
    if network is None:
        return list(db.execute(query.limit(limit)).scalars())
    return list(_in_network(db, query, network, limit))


def _in_network(
    db: Session, query: object, network: ipaddress.IPv4Network | ipaddress.IPv6Network, limit: int
) -> Iterator[FaceVerification]:
    found = 0
    for row in db.execute(query.execution_options(yield_per=500)).scalars():  # type: ignore[attr-defined]
        try:
            inside = row.client_ip is not None and ipaddress.ip_address(row.client_ip) in network
        except ValueError:
            inside = False
        if inside:
            yield row
            found += 1
            if found >= limit:
                return
