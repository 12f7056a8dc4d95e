"""Supervision at the edge (evaluation/supervision/): anomaly flags, the supervisors'
searches (signatures, draws, score sheets) and the console's project rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import Prose


class FlagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str | None
    rule: str = Field(
        description="shared-device, shared-address, failures-before-pass, borderline-pass, "
        "outside-window, two-devices, similar-sheets, device-shared-day, face-matches-other, "
        "in-person-path, passkey-bound-late, sms-code"
    )
    severity: str
    evidence: dict[str, Any]
    explanation_zh: str
    explanation_en: str
    status: str
    note: str | None
    handled_by: str | None
    handled_at: datetime | None
    created_at: datetime


class HandleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Prose = Field(min_length=2, max_length=2000, description="What was found, or done")


class Links(BaseModel):
    verification: str | None = Field(description="The face check behind the record")
    project: str | None
    document: str | None = None


class SignatureOut(BaseModel):
    slot_id: str
    signed_at: datetime
    document_id: str
    document_title: str
    purpose: str
    project_id: str | None
    role: str
    mark: str = Field(description="signature, or a unit's seal")
    signer_id: str | None = Field(description="The person who signed (an expert's id)")
    unit_id: str | None
    credential_id: str | None
    sad_id: str | None
    verification_id: str | None
    assurance: str | None = Field(description="face, or in-person-pin (the non-face path)")
    revision: int | None
    links: Links


class SignaturePage(BaseModel):
    items: list[SignatureOut]
    next_cursor: str | None


class DrawRowOut(BaseModel):
    id: str
    project_id: str
    project_code: str
    status: str
    commitment: str
    public_entropy: str | None
    created_at: datetime
    ran_at: datetime | None
    previous_draw_id: str | None = Field(
        default=None,
        description="A supplementary draw: the draw it follows (its proof replays in the "
        "project's chain, GET /api/v1/projects/{id}/draws/chain)",
    )
    proof: dict[str, Any] = Field(
        description="The whole proof once run, unless the committee is still sealed for you"
    )
    links: Links


class DrawPage(BaseModel):
    items: list[DrawRowOut]
    next_cursor: str | None


class ScoreSheetOut(BaseModel):
    id: str
    assignment_id: str
    expert_id: str
    status: str
    points: dict[str, dict[str, float]]
    submitted_at: datetime | None
    void_reason: str | None


class ProjectRowOut(BaseModel):
    id: str
    code: str
    name: str
    status: str
    mode: str
    evaluation_start: datetime
    evaluation_end: datetime
