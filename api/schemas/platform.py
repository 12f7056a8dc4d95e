"""The trading platform's side at the edge (evaluation/platform/): webhook subscriptions and
deliveries, the archive and the platform's log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class SubscriptionOut(BaseModel):
    id: str = Field(description="Also the key id (X-EvalSign-Key-Id) of its signatures")
    url: str
    description: str
    event_types: list[str] = Field(description="None listed: every type")
    status: Literal["active", "disabled"]
    created_at: datetime
    secret_rotated_at: datetime | None
    disabled_at: datetime | None


class IssuedSubscriptionOut(SubscriptionOut):
    secret: str = Field(description="The HMAC secret, shown only in this answer")


class DeliveryOut(BaseModel):
    id: str
    subscription_id: str
    url: str
    event_id: str = Field(description="The CloudEvents id, sent as Idempotency-Key")
    event_type: str
    event_time: datetime
    project_id: str
    seq: int = Field(description="The event's place in its project's order")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class AttemptOut(BaseModel):
    at: datetime
    target: str
    status_code: int | None
    error: str | None
    duration_ms: int


class ArchiveFileOut(BaseModel):
    name: str
    sha256: str
    size: int
    pushed_at: datetime | None


class ArchiveOut(BaseModel):
    id: str
    reason: str
    contract_id: str | None
    status: str = Field(description="building, pushing, pushed, built (no target) or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    package_sha256: str | None
    files: list[ArchiveFileOut]
    created_at: datetime
    finished_at: datetime | None


class PlatformLogOut(BaseModel):
    deliveries: list[DeliveryOut]
    archives: list[ArchiveOut]
