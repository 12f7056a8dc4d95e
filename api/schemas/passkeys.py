"""A passkey's approval at the edges: the nonce the service gave and the phone's answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import JsonObject, Token
from evaluation.documents.documents import PasskeyApproval, SmsApproval
from evaluation.identity.one_time_codes import SentCode
from evaluation.identity.passkeys import SigningApproval


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
