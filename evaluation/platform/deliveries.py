"""Delivering the outbox's events to the webhook subscriptions, at least once and in
order per project: each attempt is signed anew (evalsign-hmac-v1, the subscription's id as
the key id), carries the event id as its idempotency key, and is logged.

The rules, as the README states them for the platform:

- a 2xx answer delivers; anything else (an error, a timeout, 3xx, 4xx, 5xx) is tried
  again: a 4xx from a platform is most often a key or deployment mistake a person fixes
  within hours, and dropping the event would lose it. Only 410 Gone (the endpoint is
  retired) fails the delivery at once;
- the waits double from EVALSIGN_WEBHOOK_RETRY_S up to EVALSIGN_WEBHOOK_RETRY_MAX_S, each
  drawn between half and all of that (jitter, so a receiver back from an outage is not
  hit by every sender at once);
- past EVALSIGN_WEBHOOK_GIVE_UP_S after the event, the delivery is failed: audited and on
  the console for the operator, who tells the platform;
- a project's later event is not sent to a subscription while an earlier one to it is
  still pending, so a receiver sees each project's events in order (a failed one no
  longer holds the line).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, aliased

from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.tenancy import in_center
from evaluation.platform.subscriptions import secret_of
from models.clock import Clock
from models.settings import Settings
from models.tables import OutgoingAttempt, PlatformEvent, WebhookDelivery, WebhookSubscription
from signing.field_cipher import FieldCipher
from signing.request_signatures import sign_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-EvalSign-Delivery"
ATTEMPT_HEADER = "X-EvalSign-Attempt"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 10.0
    first_wait: timedelta = timedelta(seconds=10)
    longest_wait: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)
    batch: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            timeout_s=settings.webhook_timeout_s,
            first_wait=timedelta(seconds=settings.webhook_retry_s),
            longest_wait=timedelta(seconds=settings.webhook_retry_max_s),
            give_up_after=timedelta(seconds=settings.webhook_give_up_s),
            batch=settings.webhook_batch,
        )

    def wait(self, attempts: int, rng: random.Random) -> timedelta:
        """How long after the `attempts`-th failed attempt to try again."""
        doubled = self.first_wait * 2 ** min(max(attempts - 1, 0), 30)
        ceiling = min(doubled, self.longest_wait)
        wait: timedelta = ceiling * rng.uniform(0.5, 1.0)
        return wait


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the HTTP status, or the error that kept it from one."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Outgoing:
    delivery_id: str
    subscription_id: str
    url: str
    headers: dict[str, str]
    body: bytes


def due(db: Session, now: datetime, limit: int = 100) -> list[str]:
    """Pending deliveries whose time has come and that head their line (no earlier event of
    the project pending for the same subscription), oldest first."""
    earlier = aliased(WebhookDelivery)
    rows = db.scalars(
        select(WebhookDelivery.id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookSubscription.status == "active",
            ~exists().where(
                and_(
                    earlier.subscription_id == WebhookDelivery.subscription_id,
                    earlier.project_id == WebhookDelivery.project_id,
                    earlier.status == "pending",
                    earlier.seq < WebhookDelivery.seq,
                )
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
        .limit(limit)
    )
    return list(rows)


def compose(db: Session, cipher: FieldCipher, delivery_id: str, now: datetime) -> Outgoing | None:
    """The signed request for a due delivery; None when it is no longer pending."""
    delivery = db.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending":
        return None
    subscription = db.get(WebhookSubscription, delivery.subscription_id)
    event = db.get(PlatformEvent, delivery.event_id)
    assert subscription is not None and event is not None
    if subscription.status != "active":
        return None
    body = outbox.body_of(event)
    parts = urlsplit(subscription.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    signed = sign_request(
        secret=secret_of(cipher, subscription),
        key_id=subscription.id,
        method="POST",
        target=target,
        body=body,
        now=now,
    )
    headers = {
        "Content-Type": CONTENT_TYPE,
        IDEMPOTENCY_HEADER: event.id,
        DELIVERY_HEADER: delivery.id,
        ATTEMPT_HEADER: str(delivery.attempts + 1),
        **signed.as_dict(),
    }
    return Outgoing(delivery.id, subscription.id, subscription.url, headers, body)


def settle(
    db: Session,
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
    delivery_id: str,
    outcome: Outcome,
) -> WebhookDelivery:
    """Log the attempt and decide: delivered, tried again later, or failed."""
    delivery = db.get(WebhookDelivery, delivery_id, with_for_update=True)
    assert delivery is not None
    subscription = db.get(WebhookSubscription, delivery.subscription_id)
    assert subscription is not None
    now = clock.now()
    db.add(
        OutgoingAttempt(
            center_id=delivery.center_id,
            project_id=delivery.project_id,
            kind="webhook",
            delivery_id=delivery.id,
            target=subscription.url,
            at=now,
            status_code=outcome.status_code,
            error=None if outcome.error is None else outcome.error[:1000],
            duration_ms=outcome.duration_ms,
        )
    )
    if delivery.status != "pending":  # disabled meanwhile: the attempt is logged, no more
        db.flush()
        return delivery
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    if outcome.delivered:
        delivery.status = "delivered"
        delivery.last_error = None
        delivery.next_attempt_at = None
        delivery.finished_at = now
        db.flush()
        return delivery
    delivery.last_error = (outcome.error or f"HTTP {outcome.status_code}")[:1000]
    retired = outcome.status_code == 410
    if retired or now >= delivery.created_at + policy.give_up_after:
        delivery.status = "failed"
        delivery.next_attempt_at = None
        delivery.finished_at = now
        db.flush()
        event = db.get(PlatformEvent, delivery.event_id)
        assert event is not None
        audit.record(
            db,
            audit.Caller(delivery.center_id, "job:webhooks"),
            clock,
            Action.WEBHOOK_DELIVERY_FAILED,
            "webhook_delivery",
            delivery.id,
            {
                "project_id": delivery.project_id,
                "subscription_id": delivery.subscription_id,
                "event_id": delivery.event_id,
                "event_type": event.type,
                "attempts": delivery.attempts,
                "error": delivery.last_error,
            },
        )
        return delivery
    delivery.next_attempt_at = now + policy.wait(delivery.attempts, rng)
    db.flush()
    return delivery


@dataclass(frozen=True)
class DeliveryRow:
    delivery: WebhookDelivery
    event: PlatformEvent
    subscription: WebhookSubscription


def deliveries_of(
    db: Session,
    center_id: str,
    *,
    project_id: str | None = None,
    subscription_id: str | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[DeliveryRow]:
    """The delivery log, newest event first."""
    query = (
        select(WebhookDelivery, PlatformEvent, WebhookSubscription)
        .join(PlatformEvent, PlatformEvent.id == WebhookDelivery.event_id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.center_id == center_id)
    )
    if project_id is not None:
        query = query.where(WebhookDelivery.project_id == project_id)
    if subscription_id is not None:
        query = query.where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(PlatformEvent.time.desc(), WebhookDelivery.seq.desc()).limit(limit)
    return [DeliveryRow(d, e, s) for d, e, s in db.execute(query).all()]


def attempts_of(db: Session, center_id: str, delivery_id: str) -> list[OutgoingAttempt]:
    in_center(db, WebhookDelivery, delivery_id, center_id, "webhook delivery")
    return list(
        db.scalars(
            select(OutgoingAttempt)
            .where(OutgoingAttempt.delivery_id == delivery_id)
            .order_by(OutgoingAttempt.at, OutgoingAttempt.id)
        )
    )
