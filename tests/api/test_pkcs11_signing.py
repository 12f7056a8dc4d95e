"""The same signing path with keys on a PKCS#11 token (SoftHSM2): the center's CAs and the
experts' keys generated on the token, never extractable; and an external issuing CA (a
bank's) whose key is on the token, imported by an admin, issuing credentials that chain to
the bank's root on the trust list ("CA mutual recognition")."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import VaultKey
from signing.certificates import ca_name, make_issuing_ca, pki_endpoints
from signing.revocation import build_crl
from signing.vault import KeyRef
from tests.api.helpers import assert_problem, passkey_for_hashes
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    establish_pki,
    expert_payload,
    external_root,
    face_session,
)
from tests.signing.softhsm import SoftHsmToken

SHA256 = "2.16.840.1.101.3.4.2.1"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, softhsm_token: SoftHsmToken) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        jobs_in_serve=False,
        vault_backend="pkcs11",
        pkcs11_module=softhsm_token.module,
        pkcs11_token_label=softhsm_token.label,
        pkcs11_pin=softhsm_token.pin,
    )


def sign_through_csc(
    client: TestClient, db: Session, clock: FrozenClock, center: CenterWithStaff, expert_id: str
) -> tuple[dict[str, Any], bytes, bytes]:
    credential = client.post(
        f"/api/v1/experts/{expert_id}/credential", headers=center.headers(Role.OPERATOR)
    )
    assert credential.status_code == 201, credential.text
    token, _ = face_session(db, clock, center.id, expert_id)
    phone = {"Authorization": f"Bearer {token}", "X-Device-Id": "phone-test-1"}
    bound = bound_phone(db, clock, None, center.id, expert_id)
    digest = hashlib.sha256(f"报告 {expert_id}".encode()).digest()
    body = {
        "credentialID": credential.json()["id"],
        "numSignatures": 1,
        "hashes": [base64.b64encode(digest).decode()],
        "hashAlgorithmOID": SHA256,
    }
    approval = passkey_for_hashes(client, phone, bound, body["credentialID"], body["hashes"])
    sad = client.post(
        "/csc/v2/credentials/authorize", json={**body, "passkey": approval}, headers=phone
    ).json()["SAD"]
    signed = client.post(
        "/csc/v2/signatures/signHash",
        json={**body, "SAD": sad, "signAlgo": "1.2.840.10045.4.3.2"},
        headers=phone,
    )
    assert signed.status_code == 200, signed.text
    return credential.json(), digest, base64.b64decode(signed.json()["signatures"][0])


def new_expert(client: TestClient, center: CenterWithStaff) -> str:
    created = client.post(
        "/api/v1/experts", json=expert_payload(), headers=center.headers(Role.OPERATOR)
    )
    return str(created.json()["id"])


def verify(credential: dict[str, Any], digest: bytes, signature: bytes) -> x509.Certificate:
    certificate = x509.load_pem_x509_certificate(credential["certificate_pem"].encode())
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return certificate


def test_keys_live_on_the_token_and_sign_through_the_csc_api(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    established = establish_pki(db, clock, services, center)
    credential, digest, signature = sign_through_csc(
        client, db, clock, center, new_expert(client, center)
    )
    certificate = verify(credential, digest, signature)
    assert credential["key_backend"] == "pkcs11"
    keys = list(db.execute(select(VaultKey)).scalars())
    assert {key.backend for key in keys} == {"pkcs11"} and len(keys) == 5
    assert all(key.wrapped_key is None and key.token_key_id for key in keys)
    token = services.vault.pkcs11
    assert token is not None
    assert not any(token.is_extractable(KeyRef.of(key)) for key in keys)  # type: ignore[attr-defined]
    issuing = x509.load_der_x509_certificate(established.issuing.certificate_der)
    assert certificate.verify_directly_issued_by(issuing) is None
    # CRLs and OCSP are signed on the token too.
    crl = x509.load_der_x509_crl(client.get(f"/pki/{established.issuing.id}/crl").content)
    assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]


def test_an_imported_external_issuing_ca_issues_credentials_that_chain_to_its_root(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    establish_pki(db, clock, services, center)
    admin = center.headers(Role.ADMIN)
    token = services.vault.pkcs11
    assert token is not None
    # The bank put its issuing CA's key on the token; its own root certified it.
    label = f"bank-ca-{center.id[:8]}"
    bank_key = token.generate_key(label, services.pki.algorithm)
    root, root_key = external_root()
    bank_ca = make_issuing_ca(
        ca_name("某银行", "Issuing CA"),
        bank_key.public_key(),
        root,
        root_key,
        pki_endpoints("http://bank.example", "root"),
        clock.now(),
        3650,
    )
    request = {
        "certificate_pem": bank_ca.public_bytes(Encoding.PEM).decode(),
        "chain_pem": [root.public_bytes(Encoding.PEM).decode()],
        "pkcs11_key_label": label,
        "note": "互认: 某银行 CA",
    }
    # Its root is not trusted yet: refused, nothing changes.
    assert_problem(
        client.post("/api/v1/pki/issuing-ca", json=request, headers=admin),
        422,
        "certificate-rejected",
    )
    trusted = client.post(
        "/api/v1/pki/trust-anchors",
        json={"certificate_pem": root.public_bytes(Encoding.PEM).decode()},
        headers=admin,
    )
    assert trusted.status_code == 201
    wrong_key = {**request, "pkcs11_key_label": "no-such-key"}
    assert_problem(
        client.post("/api/v1/pki/issuing-ca", json=wrong_key, headers=admin),
        422,
        "certificate-rejected",
    )
    imported = client.post("/api/v1/pki/issuing-ca", json=request, headers=admin)
    assert imported.status_code == 201, imported.text
    assert imported.json()["external"] is True

    credential, digest, signature = sign_through_csc(
        client, db, clock, center, new_expert(client, center)
    )
    certificate = verify(credential, digest, signature)
    assert credential["issuer_id"] == imported.json()["id"]
    assert certificate.issuer == bank_ca.subject
    kinds = {
        a["kind"] + ("-external" if a["external"] else ""): a["status"]
        for a in client.get("/api/v1/pki/authorities", headers=admin).json()
    }
    assert kinds == {"root": "active", "issuing": "retired", "issuing-external": "active"}

    # Validates against the bank's root, with the CRL this service issues for the bank CA
    # (signed by the key on the token) and the bank root's own CRL.
    root_crl = build_crl(root, root_key, [], 1, clock.now(), clock.now() + timedelta(days=1))
    ours = client.get(f"/pki/{credential['issuer_id']}/crl").content
    as_asn1 = [
        asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
        for c in (certificate, bank_ca, root)
    ]
    context = ValidationContext(
        trust_roots=[as_asn1[2]],
        crls=[ours, root_crl],
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=clock.now(),
    )
    path = asyncio.run(
        CertificateValidator(
            as_asn1[0], intermediate_certs=[as_asn1[1]], validation_context=context
        ).async_validate_usage({"digital_signature", "non_repudiation"})
    )
    assert len(path) == 3
