"""Cloud Signature Consortium API v2, the subset remote signing needs: info,
credentials/list, credentials/info, credentials/authorize and signatures/signHash.

Service authorization is the phone's verified face session (`Authorization: Bearer evf_...`
and `X-Device-Id`); credential authorization is implicit in it: `authorize` checks that the
face check is fresh and that the credential is the session's expert's. Errors are
problem+json that also carry the CSC `error` and `error_description` members.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, bearer_token, phone_token, transaction
from api.logs import request_id_var
from api.schemas.csc import (
    AuthInfo,
    AuthorizeIn,
    AuthorizeOut,
    CertInfo,
    CredentialInfoOut,
    CredentialsInfoIn,
    CredentialsListIn,
    CredentialsListOut,
    InfoIn,
    InfoOut,
    KeyInfo,
    PasskeyChallengeIn,
    SignHashIn,
    SignHashOut,
)
from api.schemas.identity import SigningChallengeOut
from api.services import Services
from evaluation.identity import face_checks, passkeys
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import InvalidCredentials, SigningRefused
from evaluation.kernel.tokens import hash_token
from evaluation.registry import staff as staff_tokens
from evaluation.trust import activation, credentials, pki, providers
from models.tables import IssuedCertificate, VaultKey, VerifiedSession
from signing import certificates as profiles
from signing.algorithms import KeyAlgorithm, sign_algorithms_for
from signing.csc_client import CscError
from signing.vault import Vault

router = APIRouter(prefix="/csc/v2", tags=["csc"])
T = TypeVar("T")

SPECS = "2.0.0.2"
METHODS = [
    "info",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "signatures/signHash",
]


def signer_caller(session: VerifiedSession) -> audit.Caller:
    return audit.Caller(
        center_id=session.center_id,
        actor=f"expert:{session.expert_id}",
        role="expert",
        request_id=request_id_var.get(),
    )


@contextmanager
def _refusals_audited(
    session: VerifiedSession, operation: str, details: dict[str, Any]
) -> Iterator[None]:
    """A refused signing request fails, but the transaction logs the refusal itself."""
    try:
        yield
    except SigningRefused as error:
        event = audit.AuditEvent(
            Action.SIGNATURE_REFUSED,
            "verified_session",
            session.id,
            {
                "operation": operation,
                "code": error.code,
                "detail": error.detail,
                # Why a remote signing provider failed (providers.py), for the supervisors.
                **({"reason": error.extensions["reason"]} if "reason" in error.extensions else {}),
                **details,
            },
        )
        audit.refused(error, signer_caller(session), event)
        raise


@dataclass(frozen=True)
class PhoneHeaders:
    authorization: str | None
    device_id: str | None


async def phone_headers(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header()] = None,
) -> PhoneHeaders:
    """The face session as headers: a phone page's cookie (CSRF-checked) reads as the
    `Authorization: Bearer evf_...` and `X-Device-Id` an API client sends."""
    sent = phone_token(request, services, face_checks.SESSION_PREFIX, authorization, x_device_id)
    if sent.from_cookie:
        return PhoneHeaders(f"Bearer {sent.token}", sent.device_id)
    return PhoneHeaders(authorization, x_device_id)


# The signing routes authenticate inside their own transaction rather than through the
# Db/FaceSession dependencies: each plain-def dependency costs a thread-pool hop, and these
# routes are the hot path of every signature.
Phone = Annotated[PhoneHeaders, Depends(phone_headers)]


def signing_session(db: Session, services: Services, phone: PhoneHeaders) -> VerifiedSession:
    """The face session, as `FaceSession`; a refused one is also logged, in the center it
    can be traced to (a staff token's, or the session's own when expired or misused)."""
    authorization, x_device_id = phone.authorization, phone.device_id
    try:
        token = bearer_token(authorization, face_checks.SESSION_PREFIX)
        if token is None:
            raise face_checks.SessionInvalid("send Authorization: Bearer evf_... and X-Device-Id")
        return face_checks.authenticate_session(db, token, x_device_id, services.clock.now())
    except face_checks.SessionInvalid as error:
        token = (authorization or "").partition(" ")[2].strip()
        center_id, subject = _trace(db, token)
        if center_id is not None:
            event = audit.AuditEvent(
                Action.SIGNATURE_REFUSED,
                "csc",
                None,
                {"code": error.code, "detail": error.detail, "device_id": x_device_id},
            )
            caller = audit.Caller(center_id, subject, request_id=request_id_var.get())
            audit.refused(error, caller, event)
        raise


def _trace(db: Session, token: str) -> tuple[str | None, str]:
    if token.startswith(face_checks.SESSION_PREFIX):
        session = db.execute(
            select(VerifiedSession).where(VerifiedSession.token_hash == hash_token(token))
        ).scalar_one_or_none()
        if session is not None:
            return session.center_id, f"expert:{session.expert_id}"
        return None, "unknown"
    try:
        staff = staff_tokens.authenticate(db, token)
    except InvalidCredentials:
        return None, "unknown"
    return staff.center_id, f"staff:{staff.id}"


@router.post("/info", response_model=InfoOut)
def info(body: InfoIn | None = None) -> InfoOut:
    """What this remote signing service offers (no authorization needed)."""
    return InfoOut(
        specs=SPECS,
        name="EvalSign",
        logo="",
        region="CN",
        lang="zh-CN",
        description="Cloud signing for bid-evaluation experts, unlocked by a fresh face check.",
        authType=["external"],
        methods=METHODS,
    )


def _chain(db: Session, row: IssuedCertificate, mode: str) -> list[str] | None:
    if mode == "none":
        return None
    certificates = [pki.load_certificate(row.certificate_der)]
    if mode == "chain":
        certificates.extend(pki.credential_chain(db, row))
    return [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certificates
    ]


def _credential_info(
    db: Session,
    services: ServicesDep,
    row: IssuedCertificate,
    *,
    certificates: str,
    cert_info: bool,
    auth_info: bool,
    with_id: bool,
) -> CredentialInfoOut:
    key = db.get(VaultKey, row.key_id)
    assert key is not None
    algorithm = KeyAlgorithm(key.algorithm)
    state = credentials.state(row, services.clock.now())
    certificate = pki.load_certificate(row.certificate_der)
    cert = CertInfo(status=state.status, certificates=_chain(db, row, certificates))
    if cert_info:
        cert.issuerDN = profiles.dn(certificate.issuer)
        cert.subjectDN = profiles.dn(certificate.subject)
        cert.serialNumber = row.serial
        cert.validFrom = certificate.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ")
        cert.validTo = certificate.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ")
    freshness = int(services.activation.freshness.total_seconds())
    return CredentialInfoOut(
        credentialID=row.id if with_id else None,
        description=f"EvalSign credential of {profiles.dn(certificate.subject)}",
        key=KeyInfo(
            status="enabled" if state.usable else "disabled",
            algo=sign_algorithms_for(algorithm),
            len=algorithm.key_size,
            curve=algorithm.curve_oid,
        ),
        cert=cert,
        auth=AuthInfo(
            mode="implicit",
            description=f"A passed face check at most {freshness} s before authorize",
        )
        if auth_info
        else None,
        SCAL="2",
        multisign=services.settings.signing_max_hashes,
        lang="zh-CN",
    )


@router.post("/credentials/list", response_model=CredentialsListOut)
def credentials_list(
    body: CredentialsListIn, phone: Phone, services: ServicesDep
) -> CredentialsListOut:
    """The session's expert's credentials (never anyone else's)."""
    with transaction(services) as db:
        return _credentials_list(db, services, signing_session(db, services, phone), body)


def _credentials_list(
    db: Session, services: Services, session: VerifiedSession, body: CredentialsListIn
) -> CredentialsListOut:
    rows = list(
        db.execute(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.expert_id == session.expert_id,
                IssuedCertificate.purpose == credentials.EXPERT,
            )
            .order_by(IssuedCertificate.created_at.desc(), IssuedCertificate.id)
        ).scalars()
    )
    now = services.clock.now()
    if body.onlyValid:
        rows = [row for row in rows if credentials.state(row, now).usable]
    infos = None
    if body.credentialInfo:
        infos = [
            _credential_info(
                db,
                services,
                row,
                certificates=body.certificates,
                cert_info=body.certInfo,
                auth_info=body.authInfo,
                with_id=True,
            )
            for row in rows
        ]
    return CredentialsListOut(
        credentialIDs=[row.id for row in rows], credentialInfos=infos, onlyValid=body.onlyValid
    )


def _own_credential(db: Session, session: VerifiedSession, credential_id: str) -> IssuedCertificate:
    row = credentials.get_credential(db, session.center_id, credential_id)
    if row.expert_id != session.expert_id:
        raise activation.CredentialNotOwned(f"credential {credential_id} is not yours")
    return row


@router.post(
    "/credentials/info", response_model=CredentialInfoOut, response_model_exclude_none=True
)
def credentials_info(
    body: CredentialsInfoIn, phone: Phone, services: ServicesDep
) -> CredentialInfoOut:
    """A credential's certificate, key and authorization mode, as CSC API v2 describes them."""
    with transaction(services) as db:
        session = signing_session(db, services, phone)
        row = _own_credential(db, session, body.credentialID)
        return _credential_info(
            db,
            services,
            row,
            certificates=body.certificates,
            cert_info=body.certInfo,
            auth_info=body.authInfo,
            with_id=False,
        )


@router.post("/credentials/authorize", response_model=AuthorizeOut)
async def credentials_authorize(
    body: AuthorizeIn, phone: Phone, services: ServicesDep
) -> AuthorizeOut:
    """A SAD for exactly these hashes, if the face check is fresh and the credential is yours."""
    # The database work runs on the thread pool in one hop; the rest stays on the loop.
    return await run_in_threadpool(_authorize, body, phone, services)


def _authorize(body: AuthorizeIn, phone: PhoneHeaders, services: Services) -> AuthorizeOut:
    def grant(db: Session, session: VerifiedSession) -> AuthorizeOut:
        caller = signer_caller(session)
        granted = activation.authorize_signing(
            db,
            caller,
            services.clock,
            policy=services.activation,
            session=session,
            credential_id=body.credentialID,
            hashes=body.hashes,
            hash_oid=body.hashAlgorithmOID,
            num_signatures=body.numSignatures,
            approve=lambda: _approved(db, services, session, body, caller.request_id),
        )
        return AuthorizeOut(SAD=granted.sad, expiresIn=granted.expires_in)

    return as_signer(services, phone, "authorize", _details(body.credentialID, body.hashes), grant)


def _approved(
    db: Session,
    services: Services,
    session: VerifiedSession,
    body: AuthorizeIn,
    request_id: str | None,
) -> str | None:
    """The passkey assertion approving exactly these hashes (sole control)."""
    return passkeys.signing_approval(
        db,
        services.clock,
        services.passkeys,
        session,
        nonce=None if body.passkey is None else body.passkey.nonce,
        assertion=None if body.passkey is None else body.passkey.assertion,
        credential_id=body.credentialID,
        hashes=body.hashes,
        kind="csc",
        request_id=request_id,
    )


@router.post("/credentials/passkeyChallenge", response_model=SigningChallengeOut)
async def credentials_passkey_challenge(
    body: PasskeyChallengeIn, phone: Phone, services: ServicesDep
) -> SigningChallengeOut:
    """EvalSign's addition to CSC: a nonce, and the WebAuthn challenge
    SHA-256(JCS{credentialID, hashes, nonce}) the bound phone's passkey signs to approve
    exactly these hashes; send its answer as `passkey` with credentials/authorize."""

    def challenge(db: Session, session: VerifiedSession) -> SigningChallengeOut:
        _own_credential(db, session, body.credentialID)
        approval = passkeys.signing_options(
            db,
            services.clock,
            services.passkeys,
            session,
            credential_id=body.credentialID,
            hashes=body.hashes,
            kind="csc",
        )
        return SigningChallengeOut.of(approval)

    details = _details(body.credentialID, body.hashes)
    return await run_in_threadpool(
        as_signer, services, phone, "passkeyChallenge", details, challenge
    )


def as_signer(
    services: Services,
    phone: PhoneHeaders,
    operation: str,
    details: dict[str, Any],
    work: Callable[[Session, VerifiedSession], T],
) -> T:
    """One transaction: authenticate the phone's face session, then `work`; a signing
    refusal is logged (and committed) before it is answered."""
    with transaction(services) as db:
        session = signing_session(db, services, phone)
        with _refusals_audited(session, operation, details):
            return work(db, session)


@router.post("/signatures/signHash", response_model=SignHashOut)
async def signatures_sign_hash(
    body: SignHashIn, phone: Phone, services: ServicesDep
) -> SignHashOut:
    """Sign the hashes the SAD authorized, with the credential's key in the vault."""
    return await run_in_threadpool(_sign_hash, body, phone, services)


def _sign_hash(body: SignHashIn, phone: PhoneHeaders, services: Services) -> SignHashOut:
    def sign(db: Session, session: VerifiedSession) -> SignHashOut:
        def remote(row: IssuedCertificate) -> Vault:
            # A key at a licensed CA's remote signing service signs there (providers.py).
            return providers.vault_for(db, services.documents.provider_access(), row)

        try:
            signatures = activation.sign_hashes(
                db,
                signer_caller(session),
                services.clock,
                vault=services.vault,
                policy=services.activation,
                session=session,
                credential_id=body.credentialID,
                sad=body.SAD,
                hashes=body.hashes,
                hash_oid=body.hashAlgorithmOID,
                sign_algo=body.signAlgo,
                remote=remote,
            )
        except CscError as exc:
            raise providers.refusal(exc, credential_id=body.credentialID) from exc
        return SignHashOut(signatures=[base64.b64encode(s).decode() for s in signatures])

    return as_signer(services, phone, "signHash", _details(body.credentialID, body.hashes), sign)


def _details(credential_id: str, hashes: list[str]) -> dict[str, Any]:
    return {"credential_id": credential_id, "hashes": hashes[:20]}
