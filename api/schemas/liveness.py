"""Liveness challenge, submission result, verification record and session shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from evaluation.kernel.identifiers import Text, Token


class ChallengeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expert_ids: Annotated[
        list[Annotated[Token, Field(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=50, description="One expert (1:1) or a set (1:few)."),
    ]


class CaptureOut(BaseModel):
    frame_count: int = Field(description="Frames to send: fps x the suggested duration.")
    max_frames: int
    min_frames: int
    fps: int
    max_width: int
    max_height: int
    max_frame_bytes: int
    jpeg_quality: float
    seconds_per_action: float
    lead_seconds: float = Field(
        default=0.6,
        description="Show the first action's prompt this long after capture starts, then "
        "one prompt every seconds_per_action",
    )
    action_count: int = Field(default=0, description="Prompts the steps will reveal")


class StepOut(BaseModel):
    """One step of the stream: fill the screen with `colour` and film `ms` of frames under
    it, showing `prompt` (an action) from this step on when there is one."""

    index: int
    of: int = Field(description="How many steps the challenge has")
    colour: str = Field(description="#rrggbb")
    ms: int
    prompt: str | None


class ChallengeOut(BaseModel):
    id: str
    nonce: str = Field(description="Send it back with the frames; shown once, stored hashed.")
    mode: str
    expert_ids: list[str]
    actions: list[str] = Field(
        description="Empty: each action's prompt is revealed by the step it starts on"
    )
    issued_at: datetime
    expires_at: datetime
    capture: CaptureOut
    step: StepOut = Field(description="The first step; each upload's answer reveals the next")
    submit_url: str = Field(description="POST each step's frames here, in order")


class StreamAck(BaseModel):
    """A step's frames were stored; film the next step."""

    received_frames: int
    next_step: StepOut


class CheckOut(BaseModel):
    check: str
    passed: bool
    reason: str | None
    detail: str
    values: dict[str, Any]


class VerificationOut(BaseModel):
    id: str
    method: str = Field(description="face, or in-person-pin (the non-face path, lower assurance)")
    challenge_id: str | None = Field(description="The liveness challenge; none for a PIN check")
    mode: str
    candidate_ids: list[str]
    expert_id: str | None
    passed: bool
    reasons: list[str]
    checks: list[CheckOut]
    similarity: float | None
    model_id: str
    device_id: str
    device: dict[str, Any]
    client_ip: str | None
    user_agent: str | None
    frame_count: int
    frame_hashes: list[str]
    frames: list[dict[str, Any]]
    frames_retained: bool
    created_at: datetime


class VerificationSummaryOut(BaseModel):
    id: str
    method: str = Field(description="face, or in-person-pin (the non-face path, lower assurance)")
    challenge_id: str | None = Field(description="The liveness challenge; none for a PIN check")
    mode: str
    expert_id: str | None
    passed: bool
    reasons: list[str]
    similarity: float | None
    device_id: str
    client_ip: str | None
    created_at: datetime


class VerificationPage(BaseModel):
    items: list[VerificationSummaryOut]
    next_before: datetime | None = Field(description="Deprecated: use next_cursor")
    next_cursor: str | None = None


class SessionOut(BaseModel):
    id: str
    token: str | None = Field(
        default=None, description="Shown once, on the passing submission; stored hashed."
    )
    expert_id: str
    verification_id: str
    device_id: str
    verified_at: datetime
    expires_at: datetime


class SubmissionOut(BaseModel):
    passed: bool
    reasons: list[str]
    messages_zh: list[str]
    verification: VerificationOut | None = Field(
        description="The full record; null for a check asked from a task-code scan, whose "
        "candidates (the sealed committee) the phone must not learn"
    )
    session: SessionOut | None
    attempts_remaining: int | None = Field(
        description="Failures left before the expert is locked (null when not attributable)."
    )
    locked: bool
    frame_issues: list[str] = Field(
        default_factory=list,
        description="What made frames unusable, commonest first (too-dark, overexposed, "
        "too-blurry, face-too-small, pose-yaw, pose-pitch, low-detection-score): for "
        "telling the person what to change",
    )


class UnlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Text, Field(min_length=2, max_length=500)]


class LockoutOut(BaseModel):
    id: str
    expert_id: str
    failures: int
    locked_at: datetime
    unlocked_at: datetime | None
    unlocked_by: str | None
    unlock_reason: str | None
