"""The problem+json body (RFC 9457) every error response has, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    field: str = Field(examples=["body.id_number"])
    type: str = Field(examples=["value_error"])
    message: str = Field(examples=["ID number check digit does not match"])


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/duplicate-id-number"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable name of the problem type.")
    instance: str | None = None
    request_id: str | None = Field(None, description="Quote it when reporting a problem.")
    errors: list[FieldProblem] | list[dict[str, Any]] | None = Field(
        None, description="Per-field (validation) or per-row (CSV import) errors."
    )
