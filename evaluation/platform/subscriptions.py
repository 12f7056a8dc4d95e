"""A center's webhook subscriptions: a trading platform's endpoint, the event types it
wants, and the HMAC secret it checks our signatures with (shown once, kept encrypted;
rotating it makes a new one and the old one stops at once). Admins manage them; disabling
one cancels what it still had pending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition
from evaluation.kernel.identifiers import Prose
from evaluation.kernel.outbox import EventType
from evaluation.kernel.tenancy import in_center
from models.clock import Clock
from models.tables import WebhookDelivery, WebhookSubscription
from signing.field_cipher import FieldCipher
from signing.request_signatures import new_secret

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class WebhookUrlRejected(DomainError):
    status = 422
    code = "webhook-url-rejected"
    title = "The webhook URL is not one events may be sent to"


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2000)]
    description: Annotated[Prose, Field(max_length=200)] = ""
    # None listed: every type, including types added later.
    event_types: list[EventType] = Field(default_factory=list, max_length=len(EventType))


@dataclass(frozen=True)
class Issued:
    subscription: WebhookSubscription
    secret: str  # shown once


def check_url(url: str, *, allow_http: bool) -> str:
    """The URL as it will be called, or WebhookUrlRejected: https://, or http:// for this
    machine (or anywhere when the setting allows it); no credentials in it, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as error:
        raise WebhookUrlRejected(f"not a URL: {error}") from None
    if not host or any(ord(c) <= 32 for c in url):
        raise WebhookUrlRejected("the URL needs a host and no spaces or control characters")
    if parts.scheme not in ("https", "http"):
        raise WebhookUrlRejected("the URL must be https://")
    if parts.scheme == "http" and host not in LOCAL_HOSTS and not allow_http:
        # The body is signed, not encrypted: project codes and hashes travel in it.
        raise WebhookUrlRejected(
            "the URL must be https:// (http:// only for localhost, or with "
            "EVALSIGN_WEBHOOK_ALLOW_HTTP)"
        )
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRejected("the URL must not carry credentials: the signature is the proof")
    if parts.fragment:
        raise WebhookUrlRejected("the URL must not have a #fragment")
    return url


def _context(subscription_id: str) -> str:
    return f"webhook-secret:{subscription_id}"


def secret_of(cipher: FieldCipher, subscription: WebhookSubscription) -> str:
    return cipher.decrypt(subscription.secret_ciphertext, _context(subscription.id))


def create(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    fields: NewSubscription,
    *,
    allow_http: bool,
) -> Issued:
    url = check_url(fields.url, allow_http=allow_http)
    now = clock.now()
    secret = new_secret()
    subscription = WebhookSubscription(
        center_id=caller.center_id,
        url=url,
        description=fields.description,
        event_types=sorted({t.value for t in fields.event_types}),
        status="active",
        created_by=caller.actor,
        created_at=now,
        secret_ciphertext=b"",
    )
    db.add(subscription)
    db.flush()
    subscription.secret_ciphertext = cipher.encrypt(secret, _context(subscription.id))
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.WEBHOOK_SUBSCRIPTION_CREATED,
        "webhook_subscription",
        subscription.id,
        {"url": url, "event_types": subscription.event_types},
    )
    return Issued(subscription, secret)


def get(
    db: Session, center_id: str, subscription_id: str, *, lock: bool = False
) -> WebhookSubscription:
    return in_center(
        db, WebhookSubscription, subscription_id, center_id, "webhook subscription", lock=lock
    )


def list_subscriptions(db: Session, center_id: str) -> list[WebhookSubscription]:
    return list(
        db.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.center_id == center_id)
            .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
        )
    )


def _active(subscription: WebhookSubscription) -> None:
    if subscription.status != "active":
        raise InvalidTransition(
            f"webhook subscription {subscription.id} is {subscription.status}",
            current_status=subscription.status,
        )


def disable(
    db: Session, caller: audit.Caller, clock: Clock, subscription_id: str
) -> WebhookSubscription:
    """No more events for it; what it still had pending is cancelled (shown as such in the
    delivery log), so re-creating a subscription does not replay a backlog by surprise."""
    subscription = get(db, caller.center_id, subscription_id, lock=True)
    _active(subscription)
    now = clock.now()
    subscription.status = "disabled"
    subscription.disabled_at = now
    pending = list(
        db.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.subscription_id == subscription.id,
                WebhookDelivery.status == "pending",
            )
        )
    )
    for delivery in pending:
        delivery.status = "cancelled"
        delivery.next_attempt_at = None
        delivery.finished_at = now
        delivery.last_error = "the subscription was disabled"
    cancelled = len(pending)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.WEBHOOK_SUBSCRIPTION_DISABLED,
        "webhook_subscription",
        subscription.id,
        {"cancelled_deliveries": cancelled},
    )
    return subscription


def rotate_secret(
    db: Session, caller: audit.Caller, clock: Clock, cipher: FieldCipher, subscription_id: str
) -> Issued:
    """A new secret, shown once; deliveries from now on are signed with it."""
    subscription = get(db, caller.center_id, subscription_id, lock=True)
    _active(subscription)
    secret = new_secret()
    subscription.secret_ciphertext = cipher.encrypt(secret, _context(subscription.id))
    subscription.secret_rotated_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.WEBHOOK_SECRET_ROTATED,
        "webhook_subscription",
        subscription.id,
        {},
    )
    return Issued(subscription, secret)
