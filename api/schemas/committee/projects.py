"""Projects and their draws: what a project, a draw, its proof chain and a seat look like."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    code: str
    name: str
    regime: str
    budget_yuan: int | None
    tenderer_name: str
    tenderer_credit_code: str
    tenderer_unit_id: str | None
    bidders: list[dict[str, Any]]
    sections: list[dict[str, Any]]
    evaluation_start: datetime
    evaluation_end: datetime
    mode: str
    committee_spec: list[dict[str, Any]]
    tenderer_representatives: int
    criteria: list[dict[str, Any]]
    aggregation: str
    status: str
    created_at: datetime


class DrawOut(BaseModel):
    id: str
    project_id: str
    status: str
    commitment: str
    public_entropy: str | None
    created_at: datetime
    ran_at: datetime | None
    previous_draw_id: str | None = Field(description="A supplementary draw: the draw it follows")
    spec: list[dict[str, Any]] | None = Field(
        description="A supplementary draw: the vacant seats it fills, per specialty"
    )
    proof: dict[str, Any]


class DrawChainOut(BaseModel):
    project_id: str
    draws: list[DrawOut] = Field(description="The first draw, then each supplementary draw")
    proofs: list[dict[str, Any]] = Field(
        description="The proofs of the draws that ran, in order: what `evalsign draw verify` "
        "replays (sealed like the committee until the evaluation starts)"
    )
    vacancies: dict[str, int] = Field(description="Seats nobody holds now, per specialty")


class MemberOut(BaseModel):
    assignment_id: str
    expert_id: str
    name: str
    specialty: str
    role: str
    rank: int
    status: str
