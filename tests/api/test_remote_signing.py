"""Signing through a licensed CA's remote signing service (CSC API v2), end to end over
HTTP: an admin configures the center's provider, an operator links an expert's credential
at it, the expert signs a report slot with face check and passkey, and the provider signs
the approved hash. The PDF carries the provider's chain and CRLs (B-LT) and validates with
ours, `evalsign pdf validate --root` and poppler's pdfsig. Every way the provider fails
refuses the signature with its reason, audited, the document unchanged, and a retry works.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from evaluation.trust import pki
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import AuditEntry, IssuedCertificate, SigningProvider, VaultKey
from tests.api.helpers import SignerPhone, assert_problem, passkey_for_hashes, sign_document
from tests.csc_provider_standin import CscProviderStandIn, running_provider
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    establish_pki,
    expert_payload,
    face_session,
    make_pdf,
)
from tests.nss import HAVE_NSS_TOOLS, pdfsig_blocks, trusting_database
from tests.signing.softhsm import SoftHsmToken

pytestmark = pytest.mark.slow

PROVIDER = "standin-ca"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        face_retention_every_s=0,
        jobs_in_serve=False,
        csc_connect_timeout_s=1.0,
        csc_read_timeout_s=0.5,  # the slow switch answers after 1.5 s
    )


@pytest.fixture
def provider(softhsm_token: SoftHsmToken, clock: FrozenClock) -> Iterator[CscProviderStandIn]:
    with running_provider(softhsm_token, clock.now) as standin:
        yield standin


def configure(client: TestClient, center: CenterWithStaff, provider: CscProviderStandIn) -> Any:
    return client.put(
        f"/api/v1/pki/signing-providers/{PROVIDER}",
        json={
            "base_url": provider.url,
            "token_url": provider.token_url,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "root_pem": provider.root.public_bytes(Encoding.PEM).decode(),
        },
        headers=center.headers(Role.ADMIN),
    )


@pytest.fixture
def report(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    provider: CscProviderStandIn,
) -> dict[str, Any]:
    """A report with two slots: a member whose key the provider holds, then the chair
    with a credential of the center's own."""
    establish_pki(db, clock, services, center)
    assert configure(client, center, provider).status_code == 200
    operator = center.headers(Role.OPERATOR)
    member = client.post("/api/v1/experts", json=expert_payload(name="王喆"), headers=operator)
    chair = client.post("/api/v1/experts", json=expert_payload(name="李娜"), headers=operator)
    member_id, chair_id = member.json()["id"], chair.json()["id"]
    remote_id = provider.add_credential(member_id, "王喆")
    linked = client.post(
        f"/api/v1/experts/{member_id}/credential/remote",
        json={"provider": PROVIDER, "credential_id": remote_id},
        headers=operator,
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["key_backend"] == "csc" and linked.json()["issuer_id"] is None
    assert client.post(f"/api/v1/experts/{chair_id}/credential", headers=operator).is_success
    slots = [
        {"expert_id": member_id, "role": "评标委员会成员", "order_group": 1, "page": 0,
         "box": [60.0, 60.0, 260.0, 140.0]},
        {"expert_id": chair_id, "role": "评标委员会主任", "order_group": 2, "page": 0,
         "box": [300.0, 60.0, 500.0, 140.0]},
    ]  # fmt: skip
    metadata = {"title": "评标报告", "purpose": "report", "slots": slots}
    created = client.post(
        "/api/v1/documents",
        files={"file": ("报告.pdf", make_pdf(1), "application/pdf")},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    document_id = created.json()["id"]
    assert client.post(f"/api/v1/documents/{document_id}/start", headers=operator).is_success
    return {
        "operator": operator,
        "member_id": member_id,
        "document_id": document_id,
        "member": phone_of(db, clock, center, member_id, "phone-member"),
        "chair": phone_of(db, clock, center, chair_id, "phone-chair"),
        "remote_id": remote_id,
        "credential_id": linked.json()["id"],
    }


def phone_of(
    db: Session, clock: FrozenClock, center: CenterWithStaff, expert_id: str, device: str
) -> SignerPhone:
    token, _ = face_session(db, clock, center.id, expert_id, device_id=device)
    phone = SignerPhone({"Authorization": f"Bearer {token}", "X-Device-Id": device})
    phone.passkey = bound_phone(db, clock, None, center.id, expert_id, device_id=device)
    return phone


def content(client: TestClient, center: CenterWithStaff, document_id: str) -> bytes:
    response = client.get(
        f"/api/v1/documents/{document_id}/content", headers=center.headers(Role.SUPERVISOR)
    )
    assert response.status_code == 200
    return response.content


def test_a_report_signed_through_the_remote_provider_validates_everywhere(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    provider: CscProviderStandIn,
    report: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document_id = report["document_id"]
    signed = sign_document(client, document_id, report["member"])
    assert signed.status_code == 201, signed.text
    assert provider.calls.count("/csc/v2/signatures/signHash") == 1
    last = sign_document(client, document_id, report["chair"])
    assert last.status_code == 201, last.text
    assert last.json()["document"]["status"] == "completed"
    pdf = content(client, center, document_id)

    # B-LT: the provider's issuing CA and root, and both of its CRLs, are in the DSS.
    dss = PdfFileReader(io.BytesIO(pdf)).root["/DSS"]
    certs = {x509.load_der_x509_certificate(s.get_object().data) for s in dss["/Certs"]}
    assert {provider.issuing, provider.root, provider.certificate_of(report["remote_id"])} <= certs
    crl_issuers = {x509.load_der_x509_crl(s.get_object().data).issuer for s in dss["/CRLs"]}
    assert {provider.issuing.subject, provider.root.subject} <= crl_issuers

    ours = client.post(
        "/api/v1/validate",
        files={"file": ("signed.pdf", pdf, "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    ).json()
    assert ours["verdict"] == "valid", ours
    assert all(s["trusted"] and s["valid"] for s in ours["signatures"])

    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    center_root = pki.load_certificate(pki.center_root(db, center.id).certificate_der)
    roots = [provider.root, center_root]
    pems = []
    for index, root in enumerate(roots):
        pem = tmp_path / f"root-{index}.pem"
        pem.write_bytes(root.public_bytes(Encoding.PEM))
        pems += ["--root", str(pem)]
    from api.cli import main

    capsys.readouterr()
    code = main(["pdf", "validate", str(path), *pems])
    out = capsys.readouterr()
    assert code == 0, out.out
    assert out.out.startswith("signed.pdf: VALID") and "王喆" in out.out
    # Trusting only the center's root, the provider's signer is not trusted.
    assert main(["pdf", "validate", str(path), *pems[2:]]) == 1
    capsys.readouterr()

    if HAVE_NSS_TOOLS:
        database = trusting_database(tmp_path / "nss", roots)
        blocks = [b for b in pdfsig_blocks(database, path) if "Signature Validation" in b]
        assert len(blocks) == 3, blocks  # two signatures and the document time-stamp
        assert all("Signature is Valid." in b for b in blocks[:2]), blocks
        assert all("Certificate is Trusted." in b for b in blocks[:2]), blocks
        assert "王喆" in blocks[0]


def test_a_remote_signer_last_completes_without_asking_the_provider_again(
    client: TestClient,
    center: CenterWithStaff,
    provider: CscProviderStandIn,
    report: dict[str, Any],
) -> None:
    slot = {"expert_id": report["member_id"], "role": "评标委员会主任", "page": 0,
            "box": [60.0, 60.0, 260.0, 140.0]}  # fmt: skip
    metadata = {"title": "评标报告（单签）", "purpose": "report", "slots": [slot]}
    created = client.post(
        "/api/v1/documents",
        files={"file": ("单签.pdf", make_pdf(1), "application/pdf")},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        headers=report["operator"],
    ).json()
    client.post(f"/api/v1/documents/{created['id']}/start", headers=report["operator"])
    provider.calls.clear()
    signed = sign_document(client, created["id"], report["member"])
    assert signed.status_code == 201, signed.text
    assert signed.json()["document"]["status"] == "completed"
    # Checked once when prepared, then authorize and signHash: the time-stamp asks nothing.
    assert provider.calls == [
        "/csc/v2/credentials/info",
        "/csc/v2/credentials/authorize",
        "/csc/v2/signatures/signHash",
    ]
    verdict = client.post(
        "/api/v1/validate",
        files={"file": ("s.pdf", content(client, center, created["id"]), "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    ).json()
    assert verdict["verdict"] == "valid" and len(verdict["document_timestamps"]) == 1, verdict


def test_a_renewed_certificate_must_be_linked_again(
    client: TestClient,
    center: CenterWithStaff,
    provider: CscProviderStandIn,
    report: dict[str, Any],
) -> None:
    provider.reissue(report["remote_id"])
    refused = client.post(
        f"/api/v1/documents/{report['document_id']}/approval",
        json={"slot_id": None},
        headers=report["member"],
    )
    assert_problem(refused, 409, "signing-provider-certificate-changed")


def test_the_client_secret_is_stored_encrypted_and_never_shown(
    client: TestClient, center: CenterWithStaff, db: Session, provider: CscProviderStandIn
) -> None:
    assert configure(client, center, provider).status_code == 200
    listed = client.get("/api/v1/pki/signing-providers", headers=center.headers(Role.ADMIN))
    assert listed.status_code == 200 and provider.client_secret not in listed.text
    assert listed.json()[0]["root_fingerprint"] == pki.fingerprint(provider.root)
    row = db.execute(select(SigningProvider)).scalar_one()
    assert provider.client_secret.encode() not in row.client_secret_ciphertext
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "signing_provider.configured")
    ).scalar_one()
    assert provider.client_secret not in json.dumps(entry.details)
    # An operator may not configure it; a changed URL keeps the stored secret.
    assert_problem(
        client.put(
            f"/api/v1/pki/signing-providers/{PROVIDER}",
            json={"base_url": provider.url, "token_url": provider.token_url,
                  "client_id": "x", "root_pem": "x"},
            headers=center.headers(Role.OPERATOR),
        ),
        403,
        "role-forbidden",
    )  # fmt: skip
    again = client.put(
        f"/api/v1/pki/signing-providers/{PROVIDER}",
        json={
            "base_url": provider.url + "/",
            "token_url": provider.token_url,
            "client_id": provider.client_id,
            "root_pem": provider.root.public_bytes(Encoding.PEM).decode(),
        },
        headers=center.headers(Role.ADMIN),
    )
    assert again.status_code == 200, again.text
    db.refresh(row)
    assert row.base_url.endswith("/") and row.client_secret_ciphertext


def test_a_credential_whose_certificate_does_not_chain_is_not_linked(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    provider: CscProviderStandIn,
) -> None:
    establish_pki(db, clock, services, center)
    assert configure(client, center, provider).status_code == 200
    operator = center.headers(Role.OPERATOR)
    expert_id = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()["id"]
    remote_id = provider.add_credential(expert_id, "张伟")
    provider.untrusted_certificate = True
    refused = client.post(
        f"/api/v1/experts/{expert_id}/credential/remote",
        json={"provider": PROVIDER, "credential_id": remote_id},
        headers=operator,
    )
    assert_problem(refused, 502, "signing-provider-certificate-untrusted")
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "credential.link_refused")
    ).scalar_one()
    assert entry.details["reason"] == "provider-certificate-untrusted"
    assert db.execute(select(VaultKey).where(VaultKey.backend == "csc")).first() is None
    assert (
        db.execute(
            select(IssuedCertificate).where(IssuedCertificate.expert_id == expert_id)
        ).first()
        is None
    )
    provider.untrusted_certificate = False
    linked = client.post(
        f"/api/v1/experts/{expert_id}/credential/remote",
        json={"provider": PROVIDER, "credential_id": remote_id},
        headers=operator,
    )
    assert linked.status_code == 201, linked.text
    other = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()["id"]
    taken = client.post(
        f"/api/v1/experts/{other}/credential/remote",
        json={"provider": PROVIDER, "credential_id": remote_id},
        headers=operator,
    )
    assert_problem(taken, 409, "remote-credential-taken")
    unknown = client.post(
        f"/api/v1/experts/{other}/credential/remote",
        json={"provider": "nobody", "credential_id": remote_id},
        headers=operator,
    )
    assert_problem(unknown, 409, "signing-provider-not-configured")


# (what goes wrong, when: before the phone approves or between approval and signature,
#  status, and why: the problem's code is signing-provider-WHY, the logged reason provider-WHY)
CASES = [
    ("down", "approve", 503, "unavailable"),
    ("5xx", "sign", 503, "unavailable"),
    ("slow", "sign", 503, "unavailable"),
    ("refusing", "sign", 502, "refused"),
    ("other-hashes", "sign", 502, "signature-invalid"),
    ("untrusted", "approve", 502, "certificate-untrusted"),
    ("revoked", "approve", 409, "certificate-revoked"),
]


@pytest.mark.parametrize(("case", "when", "status", "why"), CASES)
def test_a_failing_provider_refuses_the_signature_and_a_retry_signs(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    provider: CscProviderStandIn,
    report: dict[str, Any],
    case: str,
    when: str,
    status: int,
    why: str,
) -> None:
    code, reason = f"signing-provider-{why}", f"provider-{why}"
    document_id, phone = report["document_id"], report["member"]
    before = content(client, center, document_id)

    def go_wrong() -> None:
        if case == "down":
            provider.stop()
        elif case == "5xx":
            provider.status = 502
        elif case == "slow":
            provider.delay_s = 1.5
        elif case == "refusing":
            provider.refuse = ("invalid_request", "credential suspended by the CA")
        elif case == "other-hashes":
            provider.sign_other_hashes = True
        elif case == "untrusted":
            provider.untrusted_certificate = True
        elif case == "revoked":
            provider.revoke(report["remote_id"])

    if when == "approve":
        go_wrong()
        refused = client.post(
            f"/api/v1/documents/{document_id}/approval", json={"slot_id": None}, headers=phone
        )
    else:
        issued = client.post(
            f"/api/v1/documents/{document_id}/approval", json={"slot_id": None}, headers=phone
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
        go_wrong()
        assertion = phone.passkey.get(body["publicKey"])
        refused = client.post(
            f"/api/v1/documents/{document_id}/signatures",
            json={"slot_id": None, "passkey": {"nonce": body["nonce"], "assertion": assertion}},
            headers=phone,
        )
    problem = assert_problem(refused, status, code)
    assert problem["reason"] == reason
    if status == 503:
        assert refused.headers["retry-after"] == "30"
    if case == "refusing":
        assert problem["provider_error_description"] == "credential suspended by the CA"

    # Audited, with the reason; the document is as it was.
    entry = db.execute(
        select(AuditEntry)
        .where(AuditEntry.action == "signature.refused")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).scalar_one()
    assert entry.details["code"] == code and entry.details["reason"] == reason
    assert entry.details["document_id"] == document_id
    assert content(client, center, document_id) == before
    state = client.get(f"/api/v1/documents/{document_id}", headers=center.headers(Role.OPERATOR))
    assert [r["kind"] for r in state.json()["revisions"]] == ["upload"]
    assert all(s["status"] == "pending" for s in state.json()["slots"])

    if case == "revoked":
        return  # revoked stays refused: the CA must issue a new certificate
    provider.start()  # a no-op but for "down": back on the same port
    provider.status, provider.delay_s, provider.refuse = None, 0.0, None
    provider.sign_other_hashes = provider.untrusted_certificate = False
    retried = sign_document(client, document_id, phone)
    assert retried.status_code == 201, retried.text
    assert retried.json()["revision"]["number"] == 1


def test_the_phones_csc_api_signs_a_remote_credential_at_the_provider(
    client: TestClient, db: Session, provider: CscProviderStandIn, report: dict[str, Any]
) -> None:
    """EvalSign's own /csc/v2 (the phone's CSC client) works for a credential whose key the
    provider holds: EvalSign's SAD, then the provider's signature, checked."""
    phone, credential_id = report["member"], report["credential_id"]

    def sign_hash(text: bytes) -> tuple[bytes, Any]:
        digest = hashlib.sha256(text).digest()
        body = {
            "credentialID": credential_id,
            "numSignatures": 1,
            "hashes": [base64.b64encode(digest).decode()],
            "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        }
        approval = passkey_for_hashes(client, phone, phone.passkey, credential_id, body["hashes"])
        sad = client.post(
            "/csc/v2/credentials/authorize", json={**body, "passkey": approval}, headers=phone
        )
        assert sad.status_code == 200, sad.text
        return digest, client.post(
            "/csc/v2/signatures/signHash",
            json={**body, "SAD": sad.json()["SAD"], "signAlgo": "1.2.840.10045.4.3.2"},
            headers=phone,
        )

    digest, signed = sign_hash(b"hash from the phone")
    assert signed.status_code == 200, signed.text
    provider.verify(report["remote_id"], digest, base64.b64decode(signed.json()["signatures"][0]))

    provider.sign_other_hashes = True
    _, refused = sign_hash(b"another hash")
    problem = assert_problem(refused, 502, "signing-provider-signature-invalid")
    assert problem["error"] == "invalid_request"  # the CSC members, as for every refusal
    entry = db.execute(
        select(AuditEntry)
        .where(AuditEntry.action == "signature.refused")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).scalar_one()
    assert entry.details["reason"] == "provider-signature-invalid"


def test_the_cli_configures_a_provider_with_the_secret_from_the_environment(
    provider: CscProviderStandIn,
    isolated_database_url: str,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sqlalchemy import create_engine

    from api.cli import main
    from api.instance import initialize

    data = tmp_path / "instance"
    initialize(Settings(data_dir=data, database_url=isolated_database_url), clock)
    root = tmp_path / "provider-root.pem"
    root.write_bytes(provider.root.public_bytes(Encoding.PEM))
    monkeypatch.setenv("EVALSIGN_DATABASE_URL", isolated_database_url)
    monkeypatch.setenv("EVALSIGN_PROVIDER_CLIENT_SECRET", provider.client_secret)
    capsys.readouterr()
    arguments = ["provider", "set", PROVIDER, "--base-url", provider.url]
    arguments += ["--token-url", provider.token_url, "--client-id", provider.client_id]
    code = main([*arguments, "--root", str(root), "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert code == 0, out
    printed = json.loads(out)
    assert printed["client_secret_changed"] and provider.client_secret not in out
    assert printed["root_fingerprint"] == pki.fingerprint(provider.root)
    with Session(create_engine(isolated_database_url)) as check:
        actions = list(check.execute(select(AuditEntry.action)).scalars())
        assert "signing_provider.configured" in actions and "pki.trust_anchor_added" in actions
        stored = check.execute(select(SigningProvider)).scalar_one()
        assert provider.client_secret.encode() not in stored.client_secret_ciphertext


def test_revoking_a_remote_credential_here_stops_its_use(
    client: TestClient, provider: CscProviderStandIn, report: dict[str, Any]
) -> None:
    """The center stops using it at once (its CA publishes its own revocation); signing
    is refused before the provider is asked."""
    revoked = client.post(
        f"/api/v1/experts/{report['member_id']}/credential/revoke",
        json={"reason": "affiliationChanged", "note": "调离"},
        headers=report["operator"],
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked" and revoked.json()["key_backend"] == "csc"
    provider.calls.clear()
    refused = sign_document(client, report["document_id"], report["member"])
    assert_problem(refused, 409, "credential-unusable")
    assert provider.calls == []
