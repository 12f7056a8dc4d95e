"""The center PKI over HTTP: credential issuance and its certificate profile, revocation
and suspension as CRLs and OCSP report them, the RFC 3161 TSA, and the trust list."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, IssuedCertificate
from signing.certificates import DOCUMENT_SIGNING
from signing.tsa import TimeStampRejected, build_request, token_of
from tests.api.helpers import assert_problem, snapshot
from tests.factories import CenterWithStaff, establish_pki, expert_payload, external_root


@pytest.fixture
def established(
    db: Session, clock: FrozenClock, services: Services, center: CenterWithStaff
) -> Any:
    return establish_pki(db, clock, services, center)


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers(Role.OPERATOR)


def new_expert(client: TestClient, operator: dict[str, str], **fields: Any) -> dict[str, Any]:
    payload = expert_payload(**fields)
    response = client.post("/api/v1/experts", json=payload, headers=operator)
    assert response.status_code == 201
    return {**response.json(), "id_number": payload["id_number"]}


def issue(client: TestClient, operator: dict[str, str], expert_id: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/experts/{expert_id}/credential", headers=operator)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def certificate_of(credential: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(credential["certificate_pem"].encode())


def crl_of(client: TestClient, authority_id: str) -> x509.CertificateRevocationList:
    response = client.get(f"/pki/{authority_id}/crl")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(response.content)


def issuer_of(client: TestClient, credential: dict[str, Any]) -> x509.Certificate:
    response = client.get(f"/pki/{credential['issuer_id']}/cert")
    assert response.headers["content-type"] == "application/pkix-cert"
    return x509.load_der_x509_certificate(response.content)


def ocsp_status(client: TestClient, certificate: x509.Certificate, issuer: x509.Certificate) -> Any:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA256())
        .add_extension(x509.OCSPNonce(b"nonce-1234567890"), critical=False)
        .build()
    )
    response = client.post(
        "/pki/ocsp",
        content=request.public_bytes(Encoding.DER),
        headers={"content-type": "application/ocsp-request"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    # Signed by the issuing CA, with our nonce echoed.
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and parsed.signature_hash_algorithm
    key.verify(
        parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(parsed.signature_hash_algorithm)
    )
    nonce = parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert nonce == b"nonce-1234567890"
    return parsed


def test_credential_certificate_profile(
    client: TestClient, established: Any, operator: dict[str, str], center: CenterWithStaff
) -> None:
    expert = new_expert(client, operator)
    credential = issue(client, operator, expert["id"])
    certificate = certificate_of(credential)
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == expert["name"]
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == center.name
    pseudonym = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert pseudonym.startswith("EVS-") and expert["id_number"] not in str(subject)
    assert expert["id_number"][-6:] not in certificate.public_bytes(Encoding.PEM).decode()

    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # documentSigning, and emailProtection for NSS-based readers (tests/nss.py).
    assert list(eku) == [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    base = "http://localhost:8000"
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == f"{base}/pki/{credential['issuer_id']}/crl"
    access = {
        a.access_method._name: a.access_location.value
        for a in certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    }
    assert access == {
        "OCSP": f"{base}/pki/ocsp",
        "caIssuers": f"{base}/pki/{credential['issuer_id']}/cert",
    }
    assert certificate.verify_directly_issued_by(issuer_of(client, credential)) is None
    assert credential["status"] == "valid" and credential["key_backend"] == "local"
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days >= 729

    # The URLs in the certificate work.
    assert client.get(f"/pki/{credential['issuer_id']}/crl").status_code == 200

    again = client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
    assert_problem(again, 409, "credential-exists")
    assert (
        client.get(
            f"/api/v1/experts/{expert['id']}/credential", headers=center.headers(Role.SUPERVISOR)
        ).json()["id"]
        == credential["id"]
    )


def test_service_certificates_have_their_own_usages(db: Session, established: Any) -> None:
    tsa = x509.load_der_x509_certificate(established.tsa.certificate_der)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    checkpoint = x509.load_der_x509_certificate(established.audit_checkpoint.certificate_der)
    eku = checkpoint.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.TIME_STAMPING not in list(eku)
    assert DOCUMENT_SIGNING not in list(eku)


def test_credentials_are_refused_to_suspended_and_foreign_experts(
    client: TestClient,
    established: Any,
    operator: dict[str, str],
    other_center: CenterWithStaff,
    db: Session,
) -> None:
    expert = new_expert(client, operator)
    client.post(
        f"/api/v1/experts/{expert['id']}/suspend", json={"reason": "暂停评标资格"}, headers=operator
    )
    before = snapshot(db)
    refused = client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
    assert_problem(refused, 409, "expert-not-active")
    foreign = client.post(
        f"/api/v1/experts/{expert['id']}/credential", headers=other_center.headers("operator")
    )
    assert_problem(foreign, 404, "not-found")
    assert snapshot(db) == before
    assert (
        db.execute(
            select(IssuedCertificate).where(IssuedCertificate.expert_id == expert["id"])
        ).first()
        is None
    )


def test_a_center_without_pki_says_how_to_get_one(
    client: TestClient, operator: dict[str, str]
) -> None:
    expert = new_expert(client, operator)
    response = client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
    assert_problem(response, 409, "pki-not-initialized")


def test_revocation_shows_in_the_crl_and_ocsp(
    client: TestClient, established: Any, operator: dict[str, str], db: Session
) -> None:
    kept = issue(client, operator, new_expert(client, operator)["id"])
    expert = new_expert(client, operator)
    credential = issue(client, operator, expert["id"])
    certificate, issuer = certificate_of(credential), issuer_of(client, credential)
    before = crl_of(client, credential["issuer_id"])
    assert before.get_revoked_certificate_by_serial_number(certificate.serial_number) is None
    assert ocsp_status(client, certificate, issuer).certificate_status is ocsp.OCSPCertStatus.GOOD

    response = client.post(
        f"/api/v1/experts/{expert['id']}/credential/revoke",
        json={"reason": "keyCompromise", "note": "手机丢失"},
        headers=operator,
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"

    after = crl_of(client, credential["issuer_id"])
    assert after.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(after) > number(before)
    entry = after.get_revoked_certificate_by_serial_number(certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    status = ocsp_status(client, certificate, issuer)
    assert status.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert status.revocation_reason is x509.ReasonFlags.key_compromise
    assert ocsp_status(client, certificate_of(kept), issuer).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    again = client.post(
        f"/api/v1/experts/{expert['id']}/credential/revoke",
        json={"reason": "keyCompromise", "note": "x"},
        headers=operator,
    )
    assert_problem(again, 404, "not-found")  # no unrevoked credential is left
    logged = db.execute(
        select(AuditEntry).where(AuditEntry.action == "credential.revoked")
    ).scalar_one()
    assert logged.details["reason"] == "keyCompromise" and logged.details["note"] == "手机丢失"
    # A new credential may be issued after revocation.
    assert issue(client, operator, expert["id"])["status"] == "valid"


def test_hold_on_suspension_is_lifted_on_reactivation(
    client: TestClient, established: Any, operator: dict[str, str]
) -> None:
    expert = new_expert(client, operator)
    credential = issue(client, operator, expert["id"])
    certificate, issuer = certificate_of(credential), issuer_of(client, credential)
    client.post(
        f"/api/v1/experts/{expert['id']}/suspend", json={"reason": "调查"}, headers=operator
    )
    held = crl_of(client, credential["issuer_id"]).get_revoked_certificate_by_serial_number(
        certificate.serial_number
    )
    assert held is not None
    assert held.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.certificate_hold
    )
    status = ocsp_status(client, certificate, issuer)
    assert status.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert status.revocation_reason is x509.ReasonFlags.certificate_hold
    assert (
        client.get(f"/api/v1/experts/{expert['id']}/credential", headers=operator).json()["status"]
        == "suspended"
    )

    client.post(f"/api/v1/experts/{expert['id']}/reactivate", json={}, headers=operator)
    crl = crl_of(client, credential["issuer_id"])
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is None
    assert ocsp_status(client, certificate, issuer).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_ocsp_answers_unknown_and_refuses_what_it_cannot_answer(
    client: TestClient, established: Any, operator: dict[str, str]
) -> None:
    credential = issue(client, operator, new_expert(client, operator)["id"])
    issuer = issuer_of(client, credential)
    certificate = certificate_of(credential)
    # A serial this CA never issued.
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_ids(certificate, issuer), 12345, hashes.SHA256()
    )
    body = builder.build().public_bytes(Encoding.DER)
    answer = ocsp.load_der_ocsp_response(
        client.post(
            "/pki/ocsp", content=body, headers={"content-type": "application/ocsp-request"}
        ).content
    )
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    # Another CA's certificate: not ours to answer.
    root, _ = external_root()
    foreign = (
        ocsp.OCSPRequestBuilder().add_certificate(root, root, hashes.SHA256()).build()
    ).public_bytes(Encoding.DER)
    answer = ocsp.load_der_ocsp_response(
        client.post(
            "/pki/ocsp", content=foreign, headers={"content-type": "application/ocsp-request"}
        ).content
    )
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    garbage = client.post(
        "/pki/ocsp", content=b"\x30\x03junk", headers={"content-type": "application/ocsp-request"}
    )
    assert ocsp.load_der_ocsp_response(garbage.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    assert_problem(
        client.post("/pki/ocsp", content=body, headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )


def _ids(certificate: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
    )
    return request.issuer_name_hash, request.issuer_key_hash


def test_crl_is_reissued_when_half_its_validity_has_passed(
    client: TestClient, established: Any, clock: FrozenClock
) -> None:
    issuing = established.issuing.id
    first = crl_of(client, issuing)
    clock.advance(timedelta(hours=6))
    assert crl_of(client, issuing).public_bytes(Encoding.DER) == first.public_bytes(Encoding.DER)
    clock.advance(timedelta(hours=7))
    renewed = crl_of(client, issuing)
    assert renewed.last_update_utc > first.last_update_utc
    assert renewed.next_update_utc is not None and renewed.next_update_utc > clock.now()
    assert_problem(client.get("/pki/00000000-0000-0000-0000-000000000000/crl"), 404, "not-found")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_tsa_tokens_verify_with_openssl(
    client: TestClient, established: Any, tmp_path: Path, center: CenterWithStaff
) -> None:
    import hashlib

    data = "评标报告 终稿".encode()
    request = build_request(hashlib.sha256(data).digest(), nonce=424242)
    response = client.post(
        f"/pki/tsa?center={center.id}",
        content=request,
        headers={"content-type": "application/timestamp-query"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(response.content)
    (tmp_path / "data.txt").write_bytes(data)
    root = client.get(f"/pki/{established.root.id}/cert").content
    issuing = client.get(f"/pki/{established.issuing.id}/cert").content
    pem = lambda der: x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)  # noqa: E731
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "chain.pem").write_bytes(pem(issuing))
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            str(tmp_path / "reply.tsr"),
            "-data",
            str(tmp_path / "data.txt"),
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stderr
    # With one center the parameter may be left out; bad input is an RFC 3161 rejection.
    plain = client.post(
        "/pki/tsa", content=b"junk", headers={"content-type": "application/timestamp-query"}
    )
    assert plain.status_code == 200
    with pytest.raises(TimeStampRejected) as rejected:
        token_of(plain.content)
    assert rejected.value.failure_info == "bad_data_format"


def test_trust_list_takes_external_roots_only(
    client: TestClient, established: Any, center: CenterWithStaff, db: Session
) -> None:
    admin = center.headers(Role.ADMIN)
    listed = client.get("/api/v1/pki/trust-anchors", headers=admin).json()
    assert len(listed) == 1 and listed[0]["external"] is False
    own_root = listed[0]["id"]

    root, _ = external_root()
    pem = root.public_bytes(Encoding.PEM).decode()
    added = client.post(
        "/api/v1/pki/trust-anchors",
        json={"certificate_pem": pem, "name": "某银行根证书"},
        headers=admin,
    )
    assert added.status_code == 201 and added.json()["external"] is True
    assert_problem(
        client.post("/api/v1/pki/trust-anchors", json={"certificate_pem": pem}, headers=admin),
        409,
        "duplicate-trust-anchor",
    )
    before = snapshot(db)
    issuing_pem = (
        x509.load_der_x509_certificate(established.issuing.certificate_der)
        .public_bytes(Encoding.PEM)
        .decode()
    )
    for bad in (
        issuing_pem,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "junk",
    ):
        response = client.post(
            "/api/v1/pki/trust-anchors", json={"certificate_pem": bad}, headers=admin
        )
        assert_problem(response, 422, "certificate-rejected")
    assert snapshot(db) == before
    assert_problem(
        client.delete(f"/api/v1/pki/trust-anchors/{own_root}", headers=admin),
        422,
        "certificate-rejected",
    )
    assert (
        client.delete(f"/api/v1/pki/trust-anchors/{added.json()['id']}", headers=admin).status_code
        == 204
    )
    assert len(client.get("/api/v1/pki/trust-anchors", headers=admin).json()) == 1
