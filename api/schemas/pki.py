"""Credential, authority and trust-list shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.inputs import Prose, Text, Token
from signing.revocation import RevocationReason

Pem = Annotated[Prose, Field(min_length=1, max_length=64_000, description="PEM certificate")]


class CredentialOut(BaseModel):
    id: str = Field(description="The CSC credentialID.")
    expert_id: str | None = Field(description="The expert's (or representative's) own")
    unit_id: str | None = Field(default=None, description="A unit's organization seal")
    status: str = Field(description="valid, suspended, revoked or expired")
    serial: str = Field(description="Certificate serial number, hex")
    subject: str
    issuer_id: str | None = Field(
        description="The center's issuing CA; null for a credential at a remote provider"
    )
    key_algorithm: str
    key_backend: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
    certificate_pem: str


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RevocationReason = Field(description="RFC 5280 reason (not certificateHold)")
    note: Annotated[Prose, Field(min_length=1, max_length=1000)]


class AuthorityOut(BaseModel):
    id: str
    kind: str
    name: str
    external: bool
    status: str
    certificate_url: str
    crl_url: str
    certificate_pem: str
    created_at: datetime


class TrustAnchorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate_pem: Pem
    name: Annotated[Text | None, Field(max_length=200)] = None


class TrustAnchorOut(BaseModel):
    id: str
    name: str
    fingerprint: str = Field(description="SHA-256 of the DER certificate, hex")
    external: bool
    added_at: datetime
    certificate_pem: str


class IssuingCaImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate_pem: Pem
    chain_pem: Annotated[list[Pem], Field(max_length=5)] = Field(
        default_factory=list, description="Certificates above it, up to a trusted root"
    )
    pkcs11_key_label: Annotated[Token, Field(min_length=1, max_length=128)] = Field(
        description="Label of the CA's private key on the configured PKCS#11 token"
    )
    note: Annotated[Prose, Field(min_length=1, max_length=1000)]


HttpUrl = Annotated[
    Token,
    Field(min_length=8, max_length=500, pattern=r"^https?://[^\s/?#]+[^\s#]*$"),
]


class SigningProviderIn(BaseModel):
    """A licensed CA's remote signing service (CSC API v2) and EvalSign's OAuth2 client
    (client credentials) at it."""

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = Field(description="Up to and without /csc/v2")
    token_url: HttpUrl = Field(description="The OAuth2 token endpoint (client credentials)")
    client_id: Annotated[Token, Field(min_length=1, max_length=200)]
    client_secret: Annotated[Token | None, Field(min_length=1, max_length=500)] = Field(
        default=None, description="Stored encrypted; leave out to keep the stored one"
    )
    root_pem: Pem = Field(description="The provider's root: its certificates must chain to it")


class SigningProviderOut(BaseModel):
    id: str
    name: str
    base_url: str
    token_url: str
    client_id: str
    root_subject: str
    root_fingerprint: str = Field(description="SHA-256 of the root's DER, hex")
    created_at: datetime
    updated_at: datetime


class RemoteCredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Annotated[Token, Field(min_length=1, max_length=60)] = Field(
        description="The center's signing provider's name"
    )
    credential_id: Annotated[Token, Field(min_length=1, max_length=128)] = Field(
        description="The expert's credentialID at the provider"
    )
