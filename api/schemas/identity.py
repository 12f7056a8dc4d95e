"""Proving who is at the phone (evaluation/identity/): face enrollment and remote review,
liveness checks and face sessions, passkeys and SMS codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import JsonObject, Prose, Text, Token
from evaluation.documents.documents import PasskeyApproval, SmsApproval
from evaluation.identity.one_time_codes import SentCode
from evaluation.identity.passkeys import SigningApproval


class FaceEnrollmentOut(BaseModel):
    expert_id: str
    model_id: str
    photo_count: int
    enrolled_at: datetime
    consent_recorded_at: datetime
    consent_version: str | None
    photos: list[dict[str, Any]]


class FaceStatusOut(BaseModel):
    expert_id: str
    model_id: str
    photo_count: int
    enrolled_at: datetime
    consent_recorded_at: datetime
    consent_version: str | None = Field(
        description="The consent text agreed to (null: before 0018)"
    )
    reference: str
    quality: list[dict[str, Any]]
    confirmed_at: datetime | None = Field(
        description="When an operator confirmed the reference is the person's (null: an ID "
        "card sent from a phone that waits for a decision; nothing is sealed before)"
    )


class RemoteReviewOut(BaseModel):
    id: str
    expert_id: str
    created_at: datetime
    card_jpeg_base64: str | None = Field(
        description="The ID card photo the phone sent (operators only; null once decided)"
    )
    frame_jpeg_base64: str | None = Field(
        description="A frame of the live check that matched the card (operators only; null: "
        "none passed yet, or decided)"
    )
    verification_id: str | None
    similarity: float | None
    decided_at: datetime | None
    decision: str | None
    decided_by: str | None = Field(
        description='"identity-provider" when the center\'s identity provider decided, else '
        "the operator's staff token"
    )
    provider_outcome: Literal["match", "no-match", "unavailable"] | None = Field(
        description="The identity provider's answer (null: not asked, or no provider); "
        "unavailable leaves the decision to an operator"
    )
    provider_reference: str | None = Field(
        description="The provider's id of its check, to trace it with the provider"
    )
    provider_score: float | None


class RemoteDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["confirm", "reject"]
    verification_id: Token | None = Field(
        default=None,
        max_length=64,
        description="The live check you compared (from the review): refused if it changed",
    )
    note: Prose = Field(
        min_length=1, max_length=500, description="What was compared, e.g. a call to the unit"
    )


class CompareOut(BaseModel):
    similarity: float
    threshold: float
    same: bool
    faces: list[dict[str, Any]]


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Prose = Field(
        min_length=1, max_length=1000, description="How the withdrawal reached the center"
    )


class WithdrawnOut(BaseModel):
    expert_id: str
    withdrawn_at: datetime
    templates_deleted: int
    photos_deleted: int
    frames_deleted: int
    sessions_revoked: int


class HoldingsOut(BaseModel):
    people: int = Field(description="People whose face template the center holds")
    photos: int = Field(description="Retained enrollment photos")
    frames: int = Field(description="Retained evidence frames")
    filing_threshold: int
    warning: bool = Field(description="Near the number that needs a filing with the regulator")


class RetainedOut(BaseModel):
    frames_deleted: int
    verifications: int
    templates_deleted: int
    experts: list[str]


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


class PasskeyApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nonce: Token = Field(min_length=8, max_length=100, description="From the signing challenge")
    assertion: JsonObject = Field(
        description="navigator.credentials.get()'s answer (AuthenticationResponseJSON) to the "
        "challenge SHA-256(JCS{credentialID, hashes, nonce})"
    )

    def approval(self) -> PasskeyApproval:
        return PasskeyApproval(self.nonce, self.assertion)


class SigningChallengeOut(BaseModel):
    nonce: str
    challenge: str = Field(
        description="base64url SHA-256 over the RFC 8785 (JCS) encoding of "
        '{"credentialID", "hashes", "nonce"}: what the passkey signs to approve exactly these '
        "hashes with this credential"
    )
    publicKey: dict[str, Any] = Field(
        description="PublicKeyCredentialRequestOptions (JSON) for navigator.credentials.get()"
    )

    @classmethod
    def of(cls, approval: SigningApproval) -> SigningChallengeOut:
        return cls(nonce=approval.nonce, challenge=approval.challenge, publicKey=approval.options)


class SmsCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nonce: Token = Field(min_length=8, max_length=100, description="From the SMS code request")
    code: str = Field(pattern=r"^\s*[0-9]{6}\s*$", description="The six digits the SMS gave")

    def approval(self) -> SmsApproval:
        return SmsApproval(self.nonce, self.code.strip())


class SmsCodeSentOut(BaseModel):
    nonce: str = Field(description="Send it back with the code")
    sent_to: str = Field(description="The registered mobile number, masked")
    expires_at: datetime
    assurance: str = Field(
        default="sms",
        description="Recorded at a lower assurance than a passkey; supervisors always see it",
    )

    @classmethod
    def of(cls, sent: SentCode) -> SmsCodeSentOut:
        return cls(nonce=sent.nonce, sent_to=sent.sent_to, expires_at=sent.expires_at)


class EnrollmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_number: Token = Field(
        min_length=15,
        max_length=18,
        description="Typed from the ID card in the operator's hand: it must be this person's",
    )


class EnrollmentOut(BaseModel):
    id: str
    expert_id: str
    expires_at: datetime
    url: str = Field(description="What the QR encodes: the phone's binding page (/m/b/evb_...)")
    token: str = Field(description="evb_...: an API client sends it as the bearer token")
    png_base64: str
    svg: str


class PasskeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    expert_id: str
    label: str
    credential_id: str
    aaguid: str
    backup_eligible: bool
    device_id: str
    verification_id: str = Field(description="The face check the binding started with")
    witnessed_by: str = Field(description="The operator who started the binding at the desk")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None


class OpenedOut(BaseModel):
    id: str
    name: str = Field(description="Whose phone this becomes, for the person to confirm")
    expires_at: datetime


class FaceSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    face_session: Token | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="The evf_... token the passed check gave (a phone page's cookie holds it)",
    )


class CompleteIn(FaceSessionIn):
    credential: JsonObject = Field(
        description="navigator.credentials.create()'s answer as RegistrationResponseJSON"
    )
    label: Text = Field(default="phone", min_length=1, max_length=200)
