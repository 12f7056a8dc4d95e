"""What supervisors search: the face verification log by project, expert, decision, reason,
device, address (one or a CIDR range) and time; sign-ins; signature events; and, once the
evaluation has closed, the score sheets. Lists are newest first, paged with a stable
cursor (time and id)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.orm import Session

from evaluation.committee.projects import get_project
from evaluation.kernel.errors import DomainError
from evaluation.supervision.evidence import verification_ids_of
from models.tables import (
    Contract,
    Document,
    Draw,
    EvaluationSession,
    FaceVerification,
    Project,
    ScoreSheet,
    SignerSlot,
)


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
    return cursor_of(row.created_at, row.id)


def cursor_of(stamp: datetime, row_id: str) -> str:
    """ "time|id", with the UTC offset as Z: a "+" would need escaping in a query string."""
    return f"{stamp.isoformat().replace('+00:00', 'Z')}|{row_id}"


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
        # Only failed checks have reasons: the decision's index narrows the scan. Reasons are
        # a JSON list of codes; a code is [a-z-] only, so this matches exactly.
        query = query.where(
            FaceVerification.passed.is_(False),
            cast(FaceVerification.reasons, String).contains(f'"{where.reason}"'),
        )
    if where.device_id is not None:
        query = query.where(FaceVerification.device_id == where.device_id)
    if where.since is not None:
        query = query.where(FaceVerification.created_at >= where.since)
    if where.until is not None:
        query = query.where(FaceVerification.created_at < where.until)
    if network is not None and network.num_addresses == 1:
        query = query.where(FaceVerification.client_ip == str(network.network_address))
        network = None
    elif isinstance(network, ipaddress.IPv4Network) and network.prefixlen % 8 == 0:
        # A whole-octet range is a text prefix: the database filters, exactly.
        octets = str(network.network_address).split(".")[: network.prefixlen // 8]
        query = query.where(FaceVerification.client_ip.startswith(".".join(octets) + "."))
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


# --- sign-ins, signatures and scores ------------------------------------------------------


@dataclass(frozen=True)
class RecordFilter:
    project_id: str | None = None
    expert_id: str | None = None
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _page(query: Any, stamp: Any, key: Any, cursor: Cursor | None, limit: int) -> Any:
    """Newest first by `stamp`, ties by `key`, after the cursor."""
    if cursor is not None:
        when, row_id = cursor
        query = query.where(or_(stamp < when, and_(stamp == when, key > row_id)))
    return query.order_by(stamp.desc(), key).limit(limit)


def search_sign_ins(
    db: Session, center_id: str, where: RecordFilter, cursor: Cursor | None, limit: int
) -> list[EvaluationSession]:
    """Who signed in to which project, from which device, after which face check."""
    query = select(EvaluationSession).where(EvaluationSession.center_id == center_id)
    if where.project_id is not None:
        get_project(db, center_id, where.project_id)
        query = query.where(EvaluationSession.project_id == where.project_id)
    if where.expert_id is not None:
        query = query.where(EvaluationSession.expert_id == where.expert_id)
    if where.device_id is not None:
        query = query.where(EvaluationSession.device_id == where.device_id)
    if where.since is not None:
        query = query.where(EvaluationSession.created_at >= where.since)
    if where.until is not None:
        query = query.where(EvaluationSession.created_at < where.until)
    query = _page(query, EvaluationSession.created_at, EvaluationSession.id, cursor, limit)
    return list(db.execute(query).scalars())


def search_draws(
    db: Session, center_id: str, where: RecordFilter, cursor: Cursor | None, limit: int
) -> list[tuple[Draw, Project]]:
    """Every committee draw of the center, with its project: the commitment, the public
    entropy and the proof that `evalsign draw verify` replays."""
    query = (
        select(Draw, Project)
        .join(Project, Project.id == Draw.project_id)
        .where(Draw.center_id == center_id)
    )
    if where.project_id is not None:
        get_project(db, center_id, where.project_id)
        query = query.where(Draw.project_id == where.project_id)
    if where.since is not None:
        query = query.where(Draw.created_at >= where.since)
    if where.until is not None:
        query = query.where(Draw.created_at < where.until)
    query = _page(query, Draw.created_at, Draw.id, cursor, limit)
    return [(draw, project) for draw, project in db.execute(query)]


def methods_of(db: Session, verification_ids: Iterable[str | None]) -> dict[str, str]:
    """How each identity check was made: face, or in-person-pin (the lower assurance)."""
    ids = {v for v in verification_ids if v}
    if not ids:
        return {}
    return {
        row.id: row.method
        for row in db.execute(
            select(FaceVerification.id, FaceVerification.method).where(FaceVerification.id.in_(ids))
        )
    }


@dataclass(frozen=True)
class SignatureEvent:
    slot: SignerSlot
    document: Document
    project_id: str | None


def _documents_of(db: Session, project: Project) -> list[str]:
    contracts = db.execute(
        select(Contract.document_id).where(Contract.project_id == project.id)
    ).scalars()
    return [d for d in [project.report_document_id, *contracts] if d]


def search_signatures(
    db: Session, center_id: str, where: RecordFilter, cursor: Cursor | None, limit: int
) -> list[SignatureEvent]:
    """Every signature made in a slot: the document, the signer, the credential, the SAD
    and the face check behind it."""
    query = (
        select(SignerSlot, Document)
        .join(Document, Document.id == SignerSlot.document_id)
        .where(Document.center_id == center_id, SignerSlot.signed_at.is_not(None))
    )
    if where.project_id is not None:
        project = get_project(db, center_id, where.project_id)
        query = query.where(Document.id.in_(_documents_of(db, project)))
    if where.expert_id is not None:
        query = query.where(SignerSlot.signed_by == where.expert_id)
    if where.since is not None:
        query = query.where(SignerSlot.signed_at >= where.since)
    if where.until is not None:
        query = query.where(SignerSlot.signed_at < where.until)
    query = _page(query, SignerSlot.signed_at, SignerSlot.id, cursor, limit)
    rows = [(slot, document) for slot, document in db.execute(query)]
    projects = _projects_of_documents(db, [document.id for _, document in rows])
    return [SignatureEvent(slot, document, projects.get(document.id)) for slot, document in rows]


def _projects_of_documents(db: Session, document_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {
        document_id: project_id
        for document_id, project_id in db.execute(
            select(Project.report_document_id, Project.id).where(
                Project.report_document_id.in_(document_ids)
            )
        )
        if document_id is not None
    }
    for document_id, project_id in db.execute(
        select(Contract.document_id, Contract.project_id).where(
            Contract.document_id.in_(document_ids)
        )
    ):
        found[document_id] = project_id
    return found


class EvaluationNotClosed(DomainError):
    status = 409
    code = "evaluation-not-closed"
    title = "Score sheets are shown to supervisors once the evaluation has closed"


def scores_after_close(db: Session, center_id: str, project_id: str) -> list[ScoreSheet]:
    """Every member's sheet, void ones included, once the results are frozen: while the
    committee scores, nobody outside it reads a sheet."""
    project = get_project(db, center_id, project_id)
    if project.results is None:
        raise EvaluationNotClosed(
            f"project {project.code} is {project.status}; the results are not frozen yet"
        )
    return list(
        db.execute(
            select(ScoreSheet)
            .where(ScoreSheet.project_id == project.id)
            .order_by(ScoreSheet.submitted_at, ScoreSheet.id)
        ).scalars()
    )
