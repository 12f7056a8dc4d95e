"""Transaction contracts at the edge (evaluation/contracts/): a contract and its link, a
party's approval and signature, binding the representative's phone, the contract's pages,
and the representatives a unit authorizes to sign."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.documents import DocumentOut, RevisionOut
from api.schemas.identity import PasskeyApprovalIn, SigningChallengeOut
from api.schemas.inputs import JsonObject, Prose, Text, Token


class ContractOut(BaseModel):
    id: str
    project_id: str
    tenderer_unit_id: str
    winner_unit_id: str
    amount_fen: int
    amount_figures: str
    amount_words: str
    ordered: bool
    cross_page_seal: bool
    status: str = Field(description="signing, completed or cancelled (the document's)")
    created_at: datetime
    document: DocumentOut


class LinkOut(BaseModel):
    id: str
    contract_id: str
    authorization_id: str
    token: str = Field(description="evc_...: shown once; the phone opens `url`")
    url: str
    expires_at: datetime


class ContractSignedOut(BaseModel):
    party: str
    completed: bool
    remaining: int = Field(
        description="Your party's marks still to sign (the seal, then your own signature): "
        "ask for the next approval until this is 0"
    )
    revisions: list[RevisionOut]
    contract: ContractOut


class ContractApprovalOut(SigningChallengeOut):
    slot_id: str
    mark: str = Field(description="seal (the unit's) or signature (your own)")
    remaining: int = Field(description="Your party's marks still to sign, this one included")


class ContractSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passkey: PasskeyApprovalIn | None = Field(
        default=None,
        description="Your bound phone's approval of the mark prepared by POST "
        "/api/v1/contracts/{id}/approval; required after a face check",
    )


class BindingOptionsOut(BaseModel):
    enrollment_id: str
    publicKey: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptions (JSON) for navigator.credentials.create()"
    )


class BindingCompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrollment_id: Token = Field(max_length=64)
    credential: JsonObject = Field(
        description="navigator.credentials.create()'s answer as RegistrationResponseJSON"
    )
    label: Text = Field(default="phone", min_length=1, max_length=200)


class PartyOut(BaseModel):
    role: str = Field(description="tenderer or winner")
    name: str
    credit_code: str
    signed: bool = Field(description="Both its seal and its representative's signature")
    signed_at: datetime | None
    is_mine: bool


class ContractPagesOut(BaseModel):
    contract_id: str
    document_id: str
    title: str
    status: str = Field(description="signing, then completed once both parties signed")
    project_code: str
    amount_figures: str
    amount_words: str
    representative: str = Field(description="Whom the link was issued to")
    parties: list[PartyOut]
    can_sign: bool = Field(description="My party has not signed and the contract takes it")
    signed_by_my_party: bool
    ordered: bool
    waiting_for_other_party: bool
    signing_freshness_s: int
    page_count: int
    revision: int
    page_urls: list[str]
    file_url: str
    validation_url: str = Field(description="The validation report (HTML; ?format=json)")
    sign_url: str
    face_check_url: str


class AuthorizationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    unit_id: str
    person_id: str = Field(
        description="The representative as a person: enroll their face at "
        "PUT /api/v1/experts/{person_id}/face"
    )
    scope: str
    valid_from: datetime
    valid_until: datetime
    letter_document_id: str
    status: str
    revoked_at: datetime | None
    revoke_reason: str | None
    created_at: datetime
    credential_id: str | None = Field(
        default=None, description="The person's own signing credential"
    )


class RevokeAuthorizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose = Field(min_length=1, max_length=1000)
