"""The audit log at the edge (evaluation/kernel/audit.py): its entries, the tallies of
anonymous refusals, the chain check and its signed checkpoints (evaluation/trust/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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


class AnonymousRefusalOut(BaseModel):
    minute: datetime
    source: str = Field(description="The address the refused requests came from")
    action: str
    reason: str
    count: int
    first_at: datetime
    last_at: datetime
    last_details: dict[str, Any] = Field(description="The latest one's details, as an example")
