"""Anomaly flags for supervisors: the list, acknowledging or resolving one with a note
(audited; a flag is never deleted), and running the rules over a project again."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import AuditReader, Db, ServicesDep
from api.schemas.inputs import Token
from api.schemas.supervision import FlagOut, HandleIn
from evaluation.kernel import audit
from evaluation.supervision import anomalies
from models.tables import AnomalyFlag

router = APIRouter(tags=["supervision"])


def raise_for(
    db: Db, services: ServicesDep, caller: audit.Caller, project_id: str
) -> list[AnomalyFlag]:
    """Run the rules over a project's records (after an event that adds the records they
    read, or on demand); returns the flags that are new."""
    return anomalies.raise_flags(
        db,
        caller,
        services.clock,
        anomalies.AnomalyPolicy.from_settings(services.settings),
        caller.center_id,
        project_id,
    )


@router.get("/api/v1/anomalies", response_model=list[FlagOut])
def list_flags(
    staff: AuditReader,
    db: Db,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FlagOut]:
    """Flags of this center, newest first."""
    rows = anomalies.list_flags(
        db, staff.center_id, project_id=project_id, status=status, limit=limit
    )
    return [FlagOut.model_validate(row) for row in rows]


@router.post("/api/v1/anomalies/{flag_id}/acknowledge", response_model=FlagOut)
def acknowledge(
    flag_id: str, body: HandleIn, staff: AuditReader, db: Db, services: ServicesDep
) -> FlagOut:
    """Looking into it."""
    flag = anomalies.handle(db, staff.caller, services.clock, flag_id, "acknowledge", body.note)
    return FlagOut.model_validate(flag)


@router.post("/api/v1/anomalies/{flag_id}/resolve", response_model=FlagOut)
def resolve(
    flag_id: str, body: HandleIn, staff: AuditReader, db: Db, services: ServicesDep
) -> FlagOut:
    """Explained or dealt with; the note says how."""
    flag = anomalies.handle(db, staff.caller, services.clock, flag_id, "resolve", body.note)
    return FlagOut.model_validate(flag)


@router.post("/api/v1/projects/{project_id}/anomalies/recompute", response_model=list[FlagOut])
def recompute(project_id: str, staff: AuditReader, db: Db, services: ServicesDep) -> list[FlagOut]:
    """Run every rule over the project's records again; returns the flags that are new."""
    new = raise_for(db, services, staff.caller, project_id)
    return [FlagOut.model_validate(row) for row in new]
