"""The evaluation report: generating it, signing or refusing to sign it, its pages on the
phone."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import Prose


class ReportOut(BaseModel):
    document_id: str
    title: str
    status: str
    page_count: int
    sha256: str
    signatures_url: str
    content_url: str


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose | None = Field(
        default=None,
        min_length=2,
        max_length=1000,
        description="Why the report goes ahead without a member's answer to the results",
    )


class RefusalOut(BaseModel):
    slot_id: str
    status: str
    deemed: str


class SignerOut(BaseModel):
    slot_id: str
    name: str | None = Field(description="As the report prints it")
    role: str
    status: str = Field(description="pending, signed or refused")
    signed_at: datetime | None = Field(description="When signed or refused")
    is_me: bool


class ReportPagesOut(BaseModel):
    document_id: str
    title: str
    status: str = Field(description="signing, then completed once nobody is pending")
    page_count: int
    revision: int = Field(description="The current revision; each signature adds one")
    sha256: str = Field(description="Of the current revision's bytes")
    signature_count: int = Field(description="Slots signed so far")
    slot_count: int
    signers: list[SignerOut]
    my_status: str | None = Field(description="pending, signed, refused; null: no slot")
    signed_by_me: bool
    refused_by_me: bool
    can_sign: bool = Field(description="The report takes signatures and mine is pending")
    signing_freshness_s: int = Field(
        description="Signing needs a face check at most this old (POST face_check_url first)"
    )
    page_urls: list[str] = Field(
        description="Page images of this revision; add &width=320..1600 (default 960)"
    )
    file_url: str = Field(description="This revision's PDF, as a download")
    sign_url: str = Field(description="POST with the fresh face session (evf_) to sign")
    face_check_url: str
