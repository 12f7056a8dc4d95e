"""Cloud Signature Consortium API v2 request and response bodies (the subset EvalSign
implements), with the specification's own field names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.identity import PasskeyApprovalIn
from api.schemas.inputs import Prose, Token

Hash = Annotated[Token, Field(min_length=1, max_length=200, description="base64 digest")]


class CscRequest(BaseModel):
    # CSC clients send fields this subset ignores (clientData, lang...); accept them.
    model_config = ConfigDict(extra="ignore")


class InfoIn(CscRequest):
    lang: Token | None = None


class InfoOut(BaseModel):
    specs: str
    name: str
    logo: str
    region: str
    lang: str
    description: str
    authType: list[str]
    methods: list[str]


class CredentialsListIn(CscRequest):
    userID: Token | None = None
    credentialInfo: bool = False
    certificates: Literal["none", "single", "chain"] = "single"
    certInfo: bool = False
    authInfo: bool = False
    onlyValid: bool = False


class KeyInfo(BaseModel):
    status: Literal["enabled", "disabled"]
    algo: list[str]
    len: int
    curve: str | None = None


class CertInfo(BaseModel):
    status: Literal["valid", "expired", "revoked", "suspended"]
    certificates: list[str] | None = None
    issuerDN: str | None = None
    serialNumber: str | None = None
    subjectDN: str | None = None
    validFrom: str | None = None
    validTo: str | None = None


class AuthInfo(BaseModel):
    mode: Literal["implicit", "explicit", "oauth2code"]
    description: str


class CredentialInfoOut(BaseModel):
    credentialID: str | None = None
    description: str
    signatureQualifier: str | None = None
    key: KeyInfo
    cert: CertInfo
    auth: AuthInfo | None = None
    SCAL: Literal["1", "2"]
    multisign: int
    lang: str


class CredentialsListOut(BaseModel):
    credentialIDs: list[str]
    credentialInfos: list[CredentialInfoOut] | None = None
    onlyValid: bool


class CredentialsInfoIn(CscRequest):
    credentialID: Annotated[Token, Field(min_length=1, max_length=64)]
    certificates: Literal["none", "single", "chain"] = "single"
    certInfo: bool = False
    authInfo: bool = False


class AuthorizeIn(CscRequest):
    credentialID: Annotated[Token, Field(min_length=1, max_length=64)]
    numSignatures: Annotated[int, Field(ge=1, le=1000)]
    hashes: Annotated[list[Hash], Field(min_length=1, max_length=1000)]
    hashAlgorithmOID: Annotated[Token, Field(min_length=1, max_length=64)]
    description: Annotated[Prose | None, Field(max_length=500)] = None
    passkey: PasskeyApprovalIn | None = Field(
        default=None,
        description="EvalSign: the bound phone's approval of exactly these hashes (see "
        "credentials/passkeyChallenge); required after a face check",
    )


class PasskeyChallengeIn(CscRequest):
    credentialID: Annotated[Token, Field(min_length=1, max_length=64)]
    hashes: Annotated[list[Hash], Field(min_length=1, max_length=1000)]


class AuthorizeOut(BaseModel):
    SAD: str
    expiresIn: int


class SignHashIn(CscRequest):
    credentialID: Annotated[Token, Field(min_length=1, max_length=64)]
    SAD: Annotated[Token, Field(min_length=1, max_length=200)]
    hashes: Annotated[list[Hash], Field(min_length=1, max_length=1000)]
    hashAlgorithmOID: Annotated[Token | None, Field(max_length=64)] = None
    signAlgo: Annotated[Token, Field(min_length=1, max_length=64)]
    signAlgoParams: Token | None = None
    operationMode: Literal["S"] = "S"  # asynchronous mode is not offered


class SignHashOut(BaseModel):
    signatures: list[str]
