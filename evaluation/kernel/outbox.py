"""The outbox of milestone events for the trading platform: each is written in the
transaction of the milestone itself, so a crash never loses one and a rolled-back change
never sends one, and fanned out there to the center's webhook subscriptions that want it
(evaluation/platform/deliveries.py sends them).

Events are CloudEvents 1.0 (structured JSON). Their data carries ids, counts and SHA-256
hashes, never names, ID numbers, phone numbers or bidders' documents; and nothing names a
drawn expert (the committee is sealed until the evaluation starts, and the platform does
not need names after it either).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import (
    ArchivePush,
    Contract,
    Document,
    Draw,
    PlatformEvent,
    Project,
    WebhookDelivery,
    WebhookSubscription,
)

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EventType(StrEnum):
    DRAW_COMPLETED = "cn.evalsign.draw.completed"
    COMMITTEE_SEATED = "cn.evalsign.committee.seated"
    SCORES_FROZEN = "cn.evalsign.scores.frozen"
    REPORT_SIGNED = "cn.evalsign.report.signed"
    CONTRACT_SIGNED = "cn.evalsign.contract.signed"
    EVIDENCE_READY = "cn.evalsign.evidence.ready"


def source_of(center_id: str) -> str:
    return f"urn:evalsign:center:{center_id}"


def record(
    db: Session, now: datetime, project: Project, type_: EventType, data: dict[str, Any]
) -> PlatformEvent:
    """Append a project's event, next in its order, and queue it for every active
    subscription of the center that wants this type."""
    # The project's row lock orders its events (two contracts completing at once).
    db.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    last = db.scalar(
        select(func.max(PlatformEvent.seq)).where(PlatformEvent.project_id == project.id)
    )
    event = PlatformEvent(
        center_id=project.center_id,
        project_id=project.id,
        seq=(last or 0) + 1,
        type=type_.value,
        time=now,
        data={"project_id": project.id, "project_code": project.code, **data},
    )
    db.add(event)
    db.flush()
    subscriptions = db.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.center_id == project.center_id,
            WebhookSubscription.status == "active",
        )
    )
    for subscription in subscriptions:
        if subscription.event_types and type_.value not in subscription.event_types:
            continue
        db.add(
            WebhookDelivery(
                center_id=project.center_id,
                subscription_id=subscription.id,
                event_id=event.id,
                project_id=project.id,
                seq=event.seq,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    db.flush()
    return event


def cloud_event(event: PlatformEvent) -> dict[str, Any]:
    """The event as CloudEvents 1.0 structured JSON; its id is the idempotency key."""
    return {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": source_of(event.center_id),
        "type": event.type,
        "subject": event.project_id,
        "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": CONTENT_TYPE,
        "data": event.data,
    }


def canonical_json(value: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON: what the hashes in events are taken over (the archive
    stores the draw proof in exactly these bytes)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def body_of(event: PlatformEvent) -> bytes:
    """The bytes sent (and signed): the same for every attempt at the event."""
    return canonical_json(cloud_event(event))


# --- the milestones (one call each where it happens) ---------------------------------------


def draw_completed(db: Session, now: datetime, project: Project, draw: Draw) -> None:
    """The draw ran: its proof's hash and sizes, never who was drawn."""
    proof = draw.proof or {}
    record(
        db,
        now,
        project,
        EventType.DRAW_COMPLETED,
        {
            "draw_id": draw.id,
            "commitment": draw.commitment,
            "proof_sha256": hashlib.sha256(canonical_json(proof)).hexdigest(),
            "seats": sum(int(s["seats"]) for s in project.committee_spec),
        },
    )


def committee_seated(db: Session, now: datetime, project: Project, seats: int) -> None:
    """Every seat is held by a member who signed in; once per project."""
    if _already(db, project, EventType.COMMITTEE_SEATED):
        return
    record(db, now, project, EventType.COMMITTEE_SEATED, {"seats": seats})


def scores_frozen(db: Session, now: datetime, project: Project) -> None:
    """The chair aggregated: the results no longer change. Their hash, not the scores."""
    results = project.results or {}
    record(
        db,
        now,
        project,
        EventType.SCORES_FROZEN,
        {
            "rule": project.aggregation,
            "results_sha256": hashlib.sha256(canonical_json(results)).hexdigest(),
            "bidders": len(results.get("standings", [])),
        },
    )


def report_signed(db: Session, now: datetime, project: Project, document: Document) -> None:
    """The whole committee signed the report (it is time-stamped): the project is complete
    and its archive is queued."""
    record(
        db,
        now,
        project,
        EventType.REPORT_SIGNED,
        {"document_id": document.id, "sha256": document.sha256, "revision": document.revision},
    )
    queue_archive(db, now, project, "report-signed", None)


def contract_signed(db: Session, now: datetime, contract: Contract, document: Document) -> None:
    """Both parties signed the contract: its archive (with this contract) is queued."""
    project = db.get(Project, contract.project_id)
    assert project is not None
    record(
        db,
        now,
        project,
        EventType.CONTRACT_SIGNED,
        {
            "contract_id": contract.id,
            "document_id": document.id,
            "sha256": document.sha256,
            "revision": document.revision,
        },
    )
    queue_archive(db, now, project, "contract-signed", contract.id)


def evidence_ready(db: Session, now: datetime, project: Project, push: ArchivePush) -> None:
    """The evidence package was built (and kept for the archive)."""
    record(
        db,
        now,
        project,
        EventType.EVIDENCE_READY,
        {
            "archive_id": push.id,
            "reason": push.reason,
            "contract_id": push.contract_id,
            "package_sha256": push.package_sha256,
            "size": len(push.package or b""),
        },
    )


def queue_archive(
    db: Session, now: datetime, project: Project, reason: str, contract_id: str | None
) -> ArchivePush:
    push = ArchivePush(
        center_id=project.center_id,
        project_id=project.id,
        reason=reason,
        contract_id=contract_id,
        status="building",
        attempts=0,
        next_attempt_at=now,
        files=[],
        created_at=now,
    )
    db.add(push)
    db.flush()
    return push


def _already(db: Session, project: Project, type_: EventType) -> bool:
    found = db.scalar(
        select(PlatformEvent.id)
        .where(PlatformEvent.project_id == project.id, PlatformEvent.type == type_.value)
        .limit(1)
    )
    return found is not None


def events_of(db: Session, project_id: str) -> list[PlatformEvent]:
    return list(
        db.scalars(
            select(PlatformEvent)
            .where(PlatformEvent.project_id == project_id)
            .order_by(PlatformEvent.seq)
        )
    )
