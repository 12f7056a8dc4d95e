"""/api/v1/webhooks: the center's webhook subscriptions (admins) and the delivery log
(admins and supervisors), per project too, with the project's archive pushes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import Admin, AuditReader, Db, ServicesDep
from api.schemas.inputs import Token
from api.schemas.platform import (
    ArchiveFileOut,
    ArchiveOut,
    AttemptOut,
    DeliveryOut,
    DeliveryStatus,
    IssuedSubscriptionOut,
    PlatformLogOut,
    SubscriptionOut,
)
from evaluation.committee import projects
from evaluation.kernel.outbox import EventType
from evaluation.platform import archive, deliveries, subscriptions
from evaluation.platform.subscriptions import NewSubscription
from models.tables import ArchivePush, OutgoingAttempt, WebhookSubscription

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def _subscription(row: WebhookSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=list(row.event_types),
        status=row.status,
        created_at=row.created_at,
        secret_rotated_at=row.secret_rotated_at,
        disabled_at=row.disabled_at,
    )


def _issued(issued: subscriptions.Issued) -> IssuedSubscriptionOut:
    shown = _subscription(issued.subscription)
    return IssuedSubscriptionOut(**shown.model_dump(), secret=issued.secret)


def _delivery(row: deliveries.DeliveryRow) -> DeliveryOut:
    delivery = row.delivery
    return DeliveryOut(
        id=delivery.id,
        subscription_id=delivery.subscription_id,
        url=row.subscription.url,
        event_id=row.event.id,
        event_type=row.event.type,
        event_time=row.event.time,
        project_id=delivery.project_id,
        seq=delivery.seq,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
    )


def _attempt(row: OutgoingAttempt) -> AttemptOut:
    return AttemptOut(
        at=row.at,
        target=row.target,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
    )


def _archive(row: ArchivePush) -> ArchiveOut:
    return ArchiveOut(
        id=row.id,
        reason=row.reason,
        contract_id=row.contract_id,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        package_sha256=row.package_sha256,
        files=[
            ArchiveFileOut(
                name=f["name"], sha256=f["sha256"], size=f["size"], pushed_at=f["pushed_at"]
            )
            for f in row.files
        ],
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@router.get("/webhooks/event-types", response_model=list[str])
def event_types(staff: Admin) -> list[str]:
    """The milestone event types a subscription may ask for (CloudEvents `type`)."""
    return [t.value for t in EventType]


@router.post(
    "/webhooks/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuedSubscriptionOut,
)
def create_subscription(
    body: NewSubscription, staff: Admin, db: Db, services: ServicesDep
) -> IssuedSubscriptionOut:
    """Subscribe a platform's endpoint to the center's milestone events; the HMAC secret
    it checks our signatures with is shown only in this answer."""
    issued = subscriptions.create(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        body,
        allow_http=services.settings.webhook_allow_http,
    )
    return _issued(issued)


@router.get("/webhooks/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(staff: Admin, db: Db) -> list[SubscriptionOut]:
    """The center's subscriptions, active and disabled (never their secrets)."""
    return [_subscription(row) for row in subscriptions.list_subscriptions(db, staff.center_id)]


@router.get("/webhooks/subscriptions/{subscription_id}", response_model=SubscriptionOut)
def get_subscription(subscription_id: str, staff: Admin, db: Db) -> SubscriptionOut:
    """One subscription: its URL, the event types it wants, its status (never its secret)."""
    return _subscription(subscriptions.get(db, staff.center_id, subscription_id))


@router.post("/webhooks/subscriptions/{subscription_id}/disable", response_model=SubscriptionOut)
def disable_subscription(
    subscription_id: str, staff: Admin, db: Db, services: ServicesDep
) -> SubscriptionOut:
    """No more events for it; its pending deliveries are cancelled."""
    return _subscription(subscriptions.disable(db, staff.caller, services.clock, subscription_id))


@router.post(
    "/webhooks/subscriptions/{subscription_id}/secret",
    response_model=IssuedSubscriptionOut,
)
def rotate_secret(
    subscription_id: str, staff: Admin, db: Db, services: ServicesDep
) -> IssuedSubscriptionOut:
    """A new HMAC secret, shown only in this answer; the old one stops at once."""
    issued = subscriptions.rotate_secret(
        db, staff.caller, services.clock, services.cipher, subscription_id
    )
    return _issued(issued)


@router.get("/webhooks/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    staff: AuditReader,
    db: Db,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    subscription_id: Annotated[Token | None, Query(max_length=64)] = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DeliveryOut]:
    """The delivery log: each event to each subscription, newest first, with its status,
    attempts and the last answer or error."""
    rows = deliveries.deliveries_of(
        db,
        staff.center_id,
        project_id=project_id,
        subscription_id=subscription_id,
        status=status,
        limit=limit,
    )
    return [_delivery(row) for row in rows]


@router.get("/webhooks/deliveries/{delivery_id}/attempts", response_model=list[AttemptOut])
def list_attempts(delivery_id: str, staff: AuditReader, db: Db) -> list[AttemptOut]:
    """Every attempt at one delivery: when, the HTTP status or the error, how long."""
    return [_attempt(row) for row in deliveries.attempts_of(db, staff.center_id, delivery_id)]


@router.get("/projects/{project_id}/platform-events", response_model=PlatformLogOut)
def project_platform_log(project_id: str, staff: AuditReader, db: Db) -> PlatformLogOut:
    """What the trading platform was told about this project, and the project's archive
    pushes: the console's notifications table."""
    project = projects.get_project(db, staff.center_id, project_id)
    rows = deliveries.deliveries_of(db, staff.center_id, project_id=project.id, limit=1000)
    return PlatformLogOut(
        deliveries=[_delivery(row) for row in rows],
        archives=[_archive(row) for row in archive.pushes_of(db, staff.center_id, project.id)],
    )
