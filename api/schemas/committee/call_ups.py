"""Call-ups: the message inviting a drawn expert, and the expert's answer to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.identity import FaceSessionIn
from api.schemas.inputs import JsonObject, Prose


class CallUpOut(BaseModel):
    assignment_id: str
    specialty: str
    rank: int
    expert_id: str | None = Field(description="Hidden from operators until the evaluation starts")
    name: str | None = Field(description="Hidden from operators until the evaluation starts")
    seat_status: str = Field(description="The assignment: invited, accepted, declined, ...")
    status: str = Field(description="The message: queued, sent, failed or cancelled")
    attempts: int
    last_error: str | None
    channel: str | None
    created_at: datetime
    sent_at: datetime | None
    deadline_at: datetime | None
    answer: str | None = Field(description="accepted, declined or expired")
    answered_at: datetime | None


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accept: bool
    reason: Prose | None = None


class ResponseOut(BaseModel):
    assignment_id: str
    status: str
    promoted_expert_id: str | None


class PasskeyAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assertion: JsonObject = Field(description="navigator.credentials.get()'s answer, as JSON")


class CheckedAnswerIn(FaceSessionIn):
    decision: Literal["accept", "decline"]
    reason: Prose | None = Field(default=None, min_length=1, max_length=500)
    passkey: PasskeyAnswer

    @model_validator(mode="after")
    def _declined_with_reason(self) -> CheckedAnswerIn:
        if self.decision == "decline" and not self.reason:
            raise ValueError("a decline says why (reason)")
        return self


class AnswerOptionsOut(BaseModel):
    nonce: str
    publicKey: dict[str, Any]


class AnsweredOut(BaseModel):
    answer: str
