"""Deliberation: answering the invitation, recusal, score sheets, the chair, the results,
dissent, and replacing a member."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import JsonObject, Prose, Token


class SheetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    version: int
    points: dict[str, dict[str, float]]
    updated_at: datetime
    submitted_at: datetime | None
    void_reason: str | None


class RecusalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    conflict: bool
    statement_sha256: str
    related_units: list[str]
    created_at: datetime


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accept: bool
    reason: Prose | None = Field(default=None, max_length=1000)


class AnswerOut(BaseModel):
    assignment_id: str
    status: str


class RecusalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conflict: bool = Field(description="True: I have a conflict of interest and withdraw")
    statement: Prose = Field(min_length=10, max_length=5000, description="The signed statement")
    related_units: list[Token] = Field(default_factory=list, max_length=50)


class RecusalResult(BaseModel):
    declaration: RecusalOut
    seat_status: str


class ScoresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: dict[Token, JsonObject] = Field(
        description="bidder credit code -> criterion name -> points (a draft may be partial)"
    )


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: Token = Field(min_length=1, max_length=64)


class ChairOut(BaseModel):
    chair_assignment_id: str | None
    chosen_by: str | None


class ResultsOut(BaseModel):
    project_id: str
    aggregated_at: datetime | None
    results: dict[str, Any] | None


class DissentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Prose = Field(min_length=10, max_length=5000, description="The reasons")


class DissentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    text: str
    created_at: datetime


class AppointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: Token = Field(min_length=1, max_length=64)


class ReplaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose = Field(min_length=2, max_length=1000)


class ReplaceOut(BaseModel):
    assignment_id: str
    status: str
    promoted_assignment_id: str | None = Field(description="null: no backup was left")
    promoted_expert_id: str | None
