"""Task QR codes: the scan, consent, the face check and the sign-in that opens an
evaluation session."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.identity import CaptureOut, SmsCodeIn, StepOut
from api.schemas.inputs import JsonObject, Token


class TaskQrOut(BaseModel):
    kind: str = Field(description="room (rotates, anyone on the committee) or personal")
    url: str = Field(description="What the QR encodes: the phone's landing page")
    token: str
    expires_at: datetime
    rotates_at: datetime | None = Field(description="When the screen should fetch the next")
    png_base64: str
    svg: str


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token = Field(min_length=1, max_length=300)
    device_id: Token = Field(min_length=8, max_length=100, description="The phone's stable id")


class ProjectBrief(BaseModel):
    id: str
    code: str
    name: str
    center_name: str
    tenderer_name: str
    evaluation_start: datetime
    evaluation_end: datetime
    mode: str


class ScanOut(BaseModel):
    scan_token: str = Field(description="Authorization: Bearer evs_... with X-Device-Id")
    kind: str
    expires_at: datetime
    project: ProjectBrief
    challenge_url: str
    sign_in_url: str = Field(
        description="Where the passed face check is used: the evaluation sign-in, or a "
        "contract's signatures"
    )
    contract_id: str | None = Field(default=None, description="For a contract link (evc_...)")


class ConsentTextOut(BaseModel):
    version: str
    language: str
    title: str
    paragraphs: list[str]
    sha256: str = Field(description="SHA-256 of the title and paragraphs, newline-joined")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Token = Field(min_length=1, max_length=40, description="The version shown")
    accepted: bool
    language: Literal["zh", "en"] = "zh"


class ConsentOut(BaseModel):
    version: str
    accepted: bool
    consented_at: datetime | None
    alternative: str = Field(description="What to do instead when the answer is no")


class ScanChallengeOut(BaseModel):
    """A liveness challenge; unlike the operator's, it does not list the candidates (the
    committee is sealed, and the phone has no need to know who else sits on it)."""

    id: str
    nonce: str
    mode: str
    actions: list[str] = Field(description="Empty: prompts are revealed step by step")
    issued_at: datetime
    expires_at: datetime
    capture: CaptureOut
    step: StepOut
    submit_url: str


class SignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    face_session: Token | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="The evf_... token the passed check gave (a phone page sends none: "
        "its cookie holds it)",
    )
    passkey: JsonObject | None = Field(
        default=None,
        description="The bound phone's answer to the challenge of POST /api/v1/scan/passkey "
        "(navigator.credentials.get() as AuthenticationResponseJSON). Required after a face "
        "check; the in-person PIN path signs in without it.",
    )
    sms: SmsCodeIn | None = Field(
        default=None,
        description="Where the center allows it (EVALSIGN_SMS_FALLBACK): the code of POST "
        "/api/v1/scan/sms-code in place of the passkey, recorded at a lower assurance",
    )


class AssignmentBrief(BaseModel):
    id: str
    specialty: str
    status: str


class IdCardEnrollmentOut(BaseModel):
    person_id: str
    reference: str = Field(description="id-card: a lower assurance than enrollment in person")
    model_id: str
    enrolled_at: datetime
    replaced: bool
    quality: list[dict[str, Any]]


class PasskeyOptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    face_session: Token | None = Field(default=None, min_length=8, max_length=200)


class EvaluationSessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    expert_id: str
    assignment_id: str
    device_id: str
    flagged: bool
    flag_reason: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
