"""The in-person path: a PIN set under an operator's ID check, and checking it at the desk."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.identity import SessionOut
from api.schemas.inputs import Prose, Token
from evaluation.committee import in_person
from evaluation.kernel.identifiers import IdNumber

Pin = Annotated[str, Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")]


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber = Field(description="Read from the ID card the operator checked")
    pin: Pin = Field(description="Six digits the person chose; never stored or logged")


class PinSetOut(BaseModel):
    expert_id: str
    pin_set_at: datetime


class InPersonCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expert_id: Token = Field(min_length=1, max_length=64)
    id_number: IdNumber = Field(description="Read from the document in the operator's hand")
    document: Literal["id-card", "passport", "residence-permit"] = "id-card"
    note: Prose | None = Field(default=None, max_length=500)


class InPersonCheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    expert_id: str
    checked_by: str
    document: str
    note: str | None
    created_at: datetime
    expires_at: datetime
    pin_failures: int
    voided_at: datetime | None
    void_reason: str | None
    assurance: str = in_person.METHOD


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose = Field(min_length=2, max_length=200)


class ScanPinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: Pin
    id_number: IdNumber | None = Field(
        default=None, description="Needed on a room code, which does not say who you are"
    )


class SessionPinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: Pin


class PinCheckOut(BaseModel):
    passed: bool
    method: str = in_person.METHOD
    verification_id: str
    session: SessionOut | None = Field(
        description="The verified session, as a passed face check gives (the token is null "
        "for a phone page, whose HttpOnly cookie holds it)"
    )
    attempts_remaining: int
    voided: bool = Field(description="Too many wrong PINs: see the operator again")
