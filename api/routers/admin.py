"""/api/v1/center, /api/v1/staff/tokens and /api/v1/audit: the center's own administration."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import Admin, AnyStaff, AuditReader, Db, ServicesDep
from api.schemas.inputs import Seq, Token
from api.schemas.kernel import (
    AnonymousRefusalOut,
    AuditEntryOut,
    AuditPageOut,
    ChainReportOut,
    CheckpointOut,
    CheckpointProblemOut,
)
from api.schemas.registry import CenterOut, IssuedTokenOut, TokenCreate, TokenOut
from evaluation.kernel import anonymous_refusals, audit
from evaluation.kernel.actions import Action
from evaluation.registry import centers
from evaluation.registry import staff as staff_tokens
from evaluation.trust import checkpoints
from models.tables import AuditCheckpoint

router = APIRouter(prefix="/api/v1")


@router.get("/center", response_model=CenterOut, tags=["center"])
def my_center(staff: AnyStaff, db: Db) -> CenterOut:
    """The caller's center: its name and settings."""
    center = centers.get_center(db, staff.center_id)
    return CenterOut(id=center.id, name=center.name, created_at=center.created_at)


@router.get("/staff/tokens", response_model=list[TokenOut], tags=["staff"])
def list_tokens(staff: Admin, db: Db) -> list[TokenOut]:
    """The center's staff tokens (never their secrets), live and revoked."""
    return [
        TokenOut(
            id=token.id,
            role=staff_tokens.Role(token.role),
            label=token.label,
            created_at=token.created_at,
            revoked_at=token.revoked_at,
        )
        for token in staff_tokens.list_staff_tokens(db, staff.center_id)
    ]


@router.post(
    "/staff/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuedTokenOut,
    tags=["staff"],
)
def issue_token(body: TokenCreate, staff: Admin, db: Db, services: ServicesDep) -> IssuedTokenOut:
    """Issue a staff token for a role; its secret is shown only in this answer."""
    issued = staff_tokens.issue_staff_token(db, staff.caller, services.clock, body.role, body.label)
    return IssuedTokenOut(
        id=issued.token_id, role=issued.role, label=issued.label, token=issued.secret
    )


@router.post("/staff/tokens/{token_id}/revoke", response_model=TokenOut, tags=["staff"])
def revoke_token(token_id: str, staff: Admin, db: Db, services: ServicesDep) -> TokenOut:
    """Revoke a staff token at once; console sessions opened with it end too."""
    token = staff_tokens.revoke_staff_token(db, staff.caller, services.clock, token_id)
    return TokenOut(
        id=token.id,
        role=staff_tokens.Role(token.role),
        label=token.label,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
    )


@router.get("/audit/entries", response_model=AuditPageOut, tags=["audit"])
def audit_entries(
    staff: AuditReader,
    db: Db,
    after_seq: Annotated[Seq, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[Action | None, Query(description="one of the audit log's actions")] = None,
    subject_id: Annotated[Token | None, Query(max_length=64)] = None,
) -> AuditPageOut:
    """The center's hash-chained audit log in order, paged with after_seq."""
    entries = audit.list_entries(
        db,
        staff.center_id,
        after_seq=after_seq,
        limit=limit,
        action=action,
        subject_id=subject_id,
    )
    return AuditPageOut(
        items=[AuditEntryOut.model_validate(entry, from_attributes=True) for entry in entries],
        next_after_seq=entries[-1].seq if len(entries) == limit else None,
    )


@router.get("/audit/refusals", response_model=list[AnonymousRefusalOut], tags=["audit"])
def anonymous_refusal_tallies(
    staff: AuditReader,
    db: Db,
    since: datetime | None = None,
    until: datetime | None = None,
    source: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AnonymousRefusalOut]:
    """Refused requests of nobody signed in (forged, stale or reused task codes, replayed
    challenges), counted per minute, source and reason rather than logged one by one."""
    rows = anonymous_refusals.list_refusals(
        db, staff.center_id, since=since, until=until, source=source, limit=limit
    )
    return [AnonymousRefusalOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/audit/verify", response_model=ChainReportOut, tags=["audit"])
def verify_audit_chain(staff: AuditReader, db: Db) -> ChainReportOut:
    """Recompute this center's hash chain; `first_bad_seq` names the first wrong entry."""
    report = audit.verify_chain(db, staff.center_id)
    against = checkpoints.verify_against(db, staff.center_id)
    return ChainReportOut(
        **{**vars(report), "ok": report.ok and against.ok},
        checkpoints_checked=against.checked,
        checkpoint_problems=[CheckpointProblemOut(**p.as_json()) for p in against.problems],
    )


def _checkpoint_out(row: AuditCheckpoint) -> CheckpointOut:
    return CheckpointOut(
        id=row.id,
        seq=row.seq,
        head_hash=row.head_hash,
        statement=row.statement,
        signature=base64.b64encode(row.signature_der).decode(),
        reason=row.reason,
        created_at=row.created_at,
    )


@router.get("/audit/checkpoints", response_model=list[CheckpointOut], tags=["audit"])
def list_checkpoints(
    staff: AuditReader,
    db: Db,
    after_seq: Annotated[Seq, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CheckpointOut]:
    """The signed checkpoints of this center's chain, oldest first: keep copies outside
    EvalSign; `openssl cms -verify -binary -content statement.json -inform DER` checks one
    against the center root."""
    rows = checkpoints.list_checkpoints(db, staff.center_id, after_seq, limit)
    return [_checkpoint_out(row) for row in rows]


@router.post(
    "/audit/checkpoints",
    response_model=CheckpointOut,
    status_code=status.HTTP_201_CREATED,
    tags=["audit"],
)
def write_checkpoint(staff: Admin, db: Db, services: ServicesDep) -> CheckpointOut:
    """Sign the chain's head now (returns the last checkpoint if nothing was added since)."""
    row = checkpoints.write_checkpoint(
        db, services.clock, services.vault, services.pki, staff.center_id, "on-demand"
    )
    return _checkpoint_out(row)
