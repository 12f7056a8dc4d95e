"""Center, staff token and audit log responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from evaluation.kernel.identifiers import Text
from evaluation.registry.staff import Role


class CenterOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    label: Annotated[Text, Field(max_length=200)]


class TokenOut(BaseModel):
    id: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedTokenOut(BaseModel):
    id: str
    role: Role
    label: str
    token: str = Field(description="Shown once; only its hash is stored.")


class AuditEntryOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str
    actor_kind: str | None = Field(
        default=None, description="On a project's timeline: admin, operator, expert, phone, ..."
    )
    actor_name: str | None = Field(
        default=None, description="On a project's timeline: the person, once it may be shown"
    )
    action: str
    subject_type: str
    subject_id: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_after_seq: int | None


class CheckpointProblemOut(BaseModel):
    seq: int
    problem: str = Field(
        description="signature-invalid, statement-mismatch, entries-missing or entry-changed"
    )
    detail: str


class ChainReportOut(BaseModel):
    center_id: str
    ok: bool = Field(description="The chain is intact and agrees with every checkpoint")
    entries_checked: int
    head_seq: int | None
    first_bad_seq: int | None
    reason: str | None
    checkpoints_checked: int = 0
    checkpoint_problems: list[CheckpointProblemOut] = []


class CheckpointOut(BaseModel):
    id: str
    seq: int
    head_hash: str
    statement: str = Field(description="The canonical JSON that was signed")
    signature: str = Field(description="Base64 DER detached CMS over the statement")
    reason: str
    created_at: datetime
