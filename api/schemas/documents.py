"""Document, signer slot, revision and validation report shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.identity import PasskeyApprovalIn, SmsCodeIn
from api.schemas.inputs import Prose, Token
from evaluation.documents.documents import PasskeyApproval, SmsApproval


class SlotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    field_name: str
    signer_kind: str
    expert_id: str | None
    party_name: str | None
    unit_id: str | None = None
    mark: str = Field(default="signature", description="seal (a unit's) or signature")
    signed_by: str | None = Field(default=None, description="The person who signed")
    role: str
    order_group: int
    page: int = Field(description="0-based page of the visible stamp")
    box: list[float]
    status: str
    signed_at: datetime | None
    credential_id: str | None
    verification_id: str | None
    revision: int | None


class RevisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    kind: str
    size: int
    sha256: str
    slot_id: str | None
    created_at: datetime


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    purpose: str
    status: str
    file_name: str
    page_count: int
    revision: int
    size: int
    sha256: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    cancelled_reason: str | None
    slots: list[SlotOut] = Field(default_factory=list)
    revisions: list[RevisionOut] = Field(default_factory=list)


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Prose | None, Field(min_length=1, max_length=1000)] = None


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: Annotated[Token | None, Field(max_length=64)] = Field(
        default=None, description="Which of your slots, when you have several"
    )
    passkey: PasskeyApprovalIn | None = Field(
        default=None,
        description="Your bound phone's approval of the signature prepared by POST "
        "/api/v1/documents/{id}/approval; required after a face check",
    )
    sms: SmsCodeIn | None = Field(
        default=None,
        description="Where the center allows it: the SMS code of POST "
        "/api/v1/documents/{id}/approval/sms in place of the passkey (a lower assurance)",
    )

    @model_validator(mode="after")
    def _one_approval(self) -> SignIn:
        if self.passkey is not None and self.sms is not None:
            raise ValueError("approve with the passkey or with an SMS code, not both")
        return self

    def approval(self) -> PasskeyApproval | SmsApproval | None:
        if self.passkey is not None:
            return self.passkey.approval()
        return None if self.sms is None else self.sms.approval()


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_id: Annotated[Token | None, Field(max_length=64)] = None


class SignedOut(BaseModel):
    document: DocumentOut
    slot: SlotOut
    revision: RevisionOut


class ValidationOut(BaseModel):
    verdict: str
    summary: str
    signatures: list[dict[str, Any]]
    document_timestamps: list[dict[str, Any]]
