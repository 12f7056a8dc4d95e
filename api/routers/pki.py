"""Credentials (operator), the center's authorities and trust list (admin), and the public
PKI endpoints outside tools use: CA certificates, CRLs, OCSP and the time-stamp authority."""

from __future__ import annotations

from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy import select

from api.deps import Admin, AnyStaff, Db, Operator, ServicesDep
from api.errors import RequestTooLarge, UnsupportedMediaType
from api.schemas.inputs import Token
from api.schemas.pki import (
    AuthorityOut,
    CredentialOut,
    IssuingCaImportIn,
    RemoteCredentialIn,
    RevokeIn,
    SigningProviderIn,
    SigningProviderOut,
    TrustAnchorIn,
    TrustAnchorOut,
)
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.trust import credentials, pki, providers
from models.base import new_id
from models.tables import (
    Authority,
    Center,
    IssuedCertificate,
    SigningProvider,
    TrustAnchor,
    VaultKey,
)
from signing.certificates import pki_endpoints
from signing.vault import VaultError

router = APIRouter(tags=["pki"])

DER_CERT = "application/pkix-cert"
DER_CRL = "application/pkix-crl"
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
TSA_QUERY = "application/timestamp-query"
TSA_REPLY = "application/timestamp-reply"
MAX_PKI_REQUEST_BYTES = 16 * 1024


class Pkcs11NotConfigured(DomainError):
    status = 409
    code = "pkcs11-not-configured"
    title = "No PKCS#11 token is configured (EVALSIGN_PKCS11_*)"


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


def credential_out(db: Db, services: ServicesDep, row: IssuedCertificate) -> CredentialOut:
    key = db.get(VaultKey, row.key_id)
    assert key is not None
    state = credentials.state(row, services.clock.now())
    return CredentialOut(
        id=row.id,
        expert_id=row.expert_id,
        unit_id=row.unit_id,
        status=state.status,
        serial=row.serial,
        subject=row.subject,
        issuer_id=row.authority_id,
        key_algorithm=key.algorithm,
        key_backend=key.backend,
        not_before=row.not_before,
        not_after=row.not_after,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
        certificate_pem=_pem(row.certificate_der),
    )


@router.post(
    "/api/v1/experts/{expert_id}/credential",
    response_model=CredentialOut,
    status_code=status.HTTP_201_CREATED,
)
def issue_credential(
    expert_id: str, staff: Operator, db: Db, services: ServicesDep
) -> CredentialOut:
    """Generate the expert's signing key in the vault and issue its certificate."""
    row = credentials.issue_credential(
        db, staff.caller, services.clock, services.vault, services.pki, expert_id
    )
    return credential_out(db, services, row)


@router.post(
    "/api/v1/experts/{expert_id}/credential/remote",
    response_model=CredentialOut,
    status_code=status.HTTP_201_CREATED,
)
def link_remote_credential(
    expert_id: str, body: RemoteCredentialIn, staff: Operator, db: Db, services: ServicesDep
) -> CredentialOut:
    """Make the expert's credential one their CA holds at the center's remote signing
    provider: its certificate must chain to the provider's configured root."""
    row = providers.link_credential(
        db,
        staff.caller,
        services.clock,
        services.documents.provider_access(),
        expert_id,
        provider_name=body.provider,
        remote_credential_id=body.credential_id,
    )
    return credential_out(db, services, row)


@router.get("/api/v1/experts/{expert_id}/credential", response_model=CredentialOut)
def current_credential(
    expert_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> CredentialOut:
    """The expert's credential that is not revoked (valid, on hold or expired)."""
    credentials.list_credentials(db, staff.center_id, expert_id)  # 404 for other centers
    row = credentials.current_credential(db, expert_id)
    if row is None:
        raise NotFound(f"expert {expert_id} has no credential; issue one")
    return credential_out(db, services, row)


@router.get("/api/v1/experts/{expert_id}/credentials", response_model=list[CredentialOut])
def credential_history(
    expert_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> list[CredentialOut]:
    """Every credential the expert ever had, newest first."""
    rows = credentials.list_credentials(db, staff.center_id, expert_id)
    return [credential_out(db, services, row) for row in rows]


@router.post("/api/v1/experts/{expert_id}/credential/revoke", response_model=CredentialOut)
def revoke_credential(
    expert_id: str, body: RevokeIn, staff: Operator, db: Db, services: ServicesDep
) -> CredentialOut:
    """Revoke the expert's credential for good; the CRL and OCSP say so at once."""
    credentials.list_credentials(db, staff.center_id, expert_id)
    current = credentials.current_credential(db, expert_id)
    if current is None:
        raise NotFound(f"expert {expert_id} has no credential to revoke")
    row = credentials.revoke_credential(
        db,
        staff.caller,
        services.clock,
        services.vault,
        services.pki,
        current.id,
        body.reason,
        body.note,
    )
    return credential_out(db, services, row)


# ---- the center's authorities and trust list ------------------------------------------


def authority_out(services: ServicesDep, authority: Authority) -> AuthorityOut:
    endpoints = pki_endpoints(services.settings.public_url, authority.id)
    return AuthorityOut(
        id=authority.id,
        kind=authority.kind,
        name=authority.name,
        external=authority.external,
        status=authority.status,
        certificate_url=endpoints.issuer_cert_url,
        crl_url=endpoints.crl_url,
        certificate_pem=_pem(authority.certificate_der),
        created_at=authority.created_at,
    )


def anchor_out(anchor: TrustAnchor) -> TrustAnchorOut:
    return TrustAnchorOut(
        id=anchor.id,
        name=anchor.name,
        fingerprint=anchor.fingerprint,
        external=anchor.external,
        added_at=anchor.added_at,
        certificate_pem=_pem(anchor.certificate_der),
    )


@router.get("/api/v1/pki/authorities", response_model=list[AuthorityOut])
def list_authorities(staff: AnyStaff, db: Db, services: ServicesDep) -> list[AuthorityOut]:
    """The center's root and issuing CAs, with the URLs of their certificates and CRLs."""
    return [authority_out(services, a) for a in pki.list_authorities(db, staff.center_id)]


@router.post(
    "/api/v1/pki/issuing-ca", response_model=AuthorityOut, status_code=status.HTTP_201_CREATED
)
def import_issuing_ca(
    body: IssuingCaImportIn, staff: Admin, db: Db, services: ServicesDep
) -> AuthorityOut:
    """Issue new credentials from an external CA whose key is on the PKCS#11 token."""
    token = services.vault.pkcs11
    if token is None:
        raise Pkcs11NotConfigured("set EVALSIGN_PKCS11_MODULE, _TOKEN_LABEL and _PIN first")
    try:
        key = token.key_ref_for_label(new_id(), body.pkcs11_key_label)  # type: ignore[attr-defined]
    except VaultError as exc:
        raise pki.CertificateRejected(str(exc)) from exc
    authority = pki.import_issuing_ca(
        db,
        staff.caller,
        services.clock,
        key,
        body.note,
        body.certificate_pem.encode(),
        [item.encode() for item in body.chain_pem],
    )
    pki.refresh_crl(db, services.clock, services.vault, services.pki, authority)
    return authority_out(services, authority)


@router.get("/api/v1/pki/trust-anchors", response_model=list[TrustAnchorOut])
def list_trust_anchors(staff: AnyStaff, db: Db) -> list[TrustAnchorOut]:
    """Outside CAs whose signatures the center's validation trusts."""
    return [anchor_out(a) for a in pki.list_trust_anchors(db, staff.center_id)]


@router.post(
    "/api/v1/pki/trust-anchors",
    response_model=TrustAnchorOut,
    status_code=status.HTTP_201_CREATED,
)
def add_trust_anchor(
    body: TrustAnchorIn, staff: Admin, db: Db, services: ServicesDep
) -> TrustAnchorOut:
    """Accept signatures that chain to another CA's root (CA mutual recognition)."""
    anchor = pki.add_trust_anchor(
        db, staff.caller, services.clock, body.certificate_pem.encode(), body.name
    )
    return anchor_out(anchor)


@router.delete("/api/v1/pki/trust-anchors/{anchor_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_trust_anchor(anchor_id: str, staff: Admin, db: Db, services: ServicesDep) -> Response:
    """Stop trusting an outside CA (audited)."""
    pki.remove_trust_anchor(db, staff.caller, services.clock, anchor_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def provider_out(row: SigningProvider) -> SigningProviderOut:
    root = pki.load_certificate(row.root_der)
    return SigningProviderOut(
        id=row.id,
        name=row.name,
        base_url=row.base_url,
        token_url=row.token_url,
        client_id=row.client_id,
        root_subject=root.subject.rfc4514_string(),
        root_fingerprint=pki.fingerprint(root),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/api/v1/pki/signing-providers", response_model=list[SigningProviderOut])
def list_signing_providers(staff: Admin, db: Db) -> list[SigningProviderOut]:
    """The center's remote signing providers (never their client secrets)."""
    return [provider_out(row) for row in providers.list_providers(db, staff.center_id)]


@router.put("/api/v1/pki/signing-providers/{name}", response_model=SigningProviderOut)
def configure_signing_provider(
    name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,59}$")],
    body: SigningProviderIn,
    staff: Admin,
    db: Db,
    services: ServicesDep,
) -> SigningProviderOut:
    """Create or change a licensed CA's remote signing service (CSC API v2) the center's
    credentials can sign through; its root joins the trust list. Audited."""
    row = providers.configure_provider(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        providers.ProviderFields(
            name=name,
            base_url=body.base_url,
            token_url=body.token_url,
            client_id=body.client_id,
            client_secret=body.client_secret,
            root=body.root_pem.encode(),
        ),
    )
    return provider_out(row)


# ---- public endpoints (no token: validators, PDF readers and TSA clients call them) --------


@router.get("/pki/{authority_id}/cert", response_class=Response)
def authority_certificate(authority_id: str, db: Db) -> Response:
    """A CA certificate in DER, as certificates' authority information access names it."""
    authority = pki.get_authority(db, authority_id)
    return Response(authority.certificate_der, media_type=DER_CERT)


@router.get("/pki/{authority_id}/crl", response_class=Response)
def authority_crl(authority_id: str, db: Db, services: ServicesDep) -> Response:
    """The authority's CRL; a stale one is reissued first, in a write transaction of its own
    (this GET reads without taking the write lock)."""
    authority = pki.get_authority(db, authority_id)
    if pki.crl_is_current(services.pki, authority, services.clock.now()):
        assert authority.crl_der is not None
        crl = authority.crl_der
    else:
        with services.session_factory() as writer, writer.begin():
            crl = pki.current_crl(
                writer,
                services.clock,
                services.vault,
                services.pki,
                pki.get_authority(writer, authority_id),
            )
    return Response(crl, media_type=DER_CRL, headers={"Cache-Control": "max-age=300"})


def _binary_body(media_type: str) -> Any:
    async def read(request: Request) -> bytes:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != media_type:
            raise UnsupportedMediaType(f"send the request as {media_type}")
        body = await request.body()
        if len(body) > MAX_PKI_REQUEST_BYTES:
            raise RequestTooLarge(f"at most {MAX_PKI_REQUEST_BYTES} bytes")
        return body

    return Depends(read)


@router.post("/pki/ocsp", response_class=Response)
def ocsp_responder(
    db: Db, services: ServicesDep, body: Annotated[bytes, _binary_body(OCSP_REQUEST)]
) -> Response:
    """RFC 6960 over HTTP POST. Errors are OCSP statuses in the response body, as the RFC
    wants; only a wrong content type is a problem+json."""
    answer = pki.answer_ocsp(db, services.clock, services.vault, services.pki, body)
    return Response(answer, media_type=OCSP_RESPONSE)


@router.post("/pki/tsa", response_class=Response)
def time_stamp_authority(
    db: Db,
    services: ServicesDep,
    body: Annotated[bytes, _binary_body(TSA_QUERY)],
    center: Annotated[
        Token | None, Query(description="Center id; optional with one center")
    ] = None,
) -> Response:
    """RFC 3161 over HTTP: a TimeStampReq in, a TimeStampResp out (a rejection is a
    TimeStampResp with status rejection, as the RFC wants)."""
    center_id = _tsa_center(db, center)
    answer = pki.timestamp(db, services.clock, services.vault, services.pki, center_id, body)
    return Response(answer, media_type=TSA_REPLY)


def _tsa_center(db: Db, center_id: str | None) -> str:
    if center_id is not None:
        if db.get(Center, center_id) is None:
            raise NotFound(f"no center {center_id}")
        return center_id
    ids = list(db.execute(select(Center.id).limit(2)).scalars())
    if len(ids) != 1:
        raise NotFound("this service hosts several centers; name one with ?center=<id>")
    return ids[0]
