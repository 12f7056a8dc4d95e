"""CSC API v2 signing over HTTP: a fresh face session of the credential's owner gets a SAD
for exactly some hashes, and that SAD signs exactly those hashes once. Every other caller
or replay is refused with a clear error and an audit event."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity import passkeys
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, Passkey, PasskeyUse, SignatureActivation
from tests.api.helpers import assert_problem, passkey_for_hashes
from tests.factories import (
    CenterWithStaff,
    bound_phone,
    establish_pki,
    expert_payload,
    face_session,
)

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
DEVICE = "phone-test-1"


def digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def phone(token: str, device: str = DEVICE) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Device-Id": device}


def new_expert(client: TestClient, center: CenterWithStaff) -> str:
    response = client.post(
        "/api/v1/experts", json=expert_payload(), headers=center.headers(Role.OPERATOR)
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def issue(client: TestClient, center: CenterWithStaff, expert_id: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/experts/{expert_id}/credential", headers=center.headers(Role.OPERATOR)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def signer(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> dict[str, Any]:
    """An expert with a credential and a just-verified face session on their phone."""
    establish_pki(db, clock, services, center)
    expert_id = new_expert(client, center)
    credential = issue(client, center, expert_id)
    token, _ = face_session(db, clock, center.id, expert_id, device_id=DEVICE)
    authenticator = bound_phone(
        db, clock, services.passkeys, center.id, expert_id, device_id=DEVICE
    )
    return {
        "expert_id": expert_id,
        "credential": credential,
        "token": token,
        "phone": authenticator,
    }


def authorize(client: TestClient, signer: dict[str, Any], hashes_: list[str], **extra: Any) -> Any:
    """credentials/authorize, approved by the signer's bound phone unless `passkey` is given."""
    if "passkey" not in extra:
        extra["passkey"] = passkey_for_hashes(
            client, phone(signer["token"]), signer["phone"], signer["credential"]["id"], hashes_
        )
    body = {
        "credentialID": signer["credential"]["id"],
        "numSignatures": len(hashes_),
        "hashes": hashes_,
        "hashAlgorithmOID": SHA256,
        **extra,
    }
    return client.post("/csc/v2/credentials/authorize", json=body, headers=phone(signer["token"]))


def sign(
    client: TestClient, signer: dict[str, Any], sad: str, hashes_: list[str], **extra: Any
) -> Any:
    body = {
        "credentialID": signer["credential"]["id"],
        "SAD": sad,
        "hashes": hashes_,
        "hashAlgorithmOID": SHA256,
        "signAlgo": ECDSA_SHA256,
        **extra,
    }
    return client.post("/csc/v2/signatures/signHash", json=body, headers=phone(signer["token"]))


def actions(db: Session) -> list[str]:
    return list(db.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars())


def refusals(db: Session) -> list[dict[str, Any]]:
    rows = db.execute(
        select(AuditEntry).where(AuditEntry.action == "signature.refused").order_by(AuditEntry.id)
    ).scalars()
    return [row.details for row in rows]


def test_info_names_the_methods(client: TestClient) -> None:
    body = client.post("/csc/v2/info", json={}).json()
    assert body["specs"].startswith("2.") and "signatures/signHash" in body["methods"]


def test_authorize_then_sign_hash_yields_signatures_that_verify_and_chain_to_the_root(
    client: TestClient,
    signer: dict[str, Any],
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
) -> None:
    listed = client.post(
        "/csc/v2/credentials/list",
        json={"credentialInfo": True, "certInfo": True},
        headers=phone(signer["token"]),
    ).json()
    assert listed["credentialIDs"] == [signer["credential"]["id"]]
    info = client.post(
        "/csc/v2/credentials/info",
        json={
            "credentialID": signer["credential"]["id"],
            "certificates": "chain",
            "certInfo": True,
            "authInfo": True,
        },
        headers=phone(signer["token"]),
    ).json()
    assert info["key"] == {
        "status": "enabled",
        "algo": info["key"]["algo"],
        "len": 256,
        "curve": "1.2.840.10045.3.1.7",
    }
    assert ECDSA_SHA256 in info["key"]["algo"] and info["cert"]["status"] == "valid"
    assert info["auth"]["mode"] == "implicit" and info["SCAL"] == "2"
    chain = [
        x509.load_der_x509_certificate(base64.b64decode(c)) for c in info["cert"]["certificates"]
    ]
    assert len(chain) == 3  # the credential, the issuing CA, the root

    wanted = [digest("评标报告 第1页"), digest("评标报告 第2页")]
    granted = authorize(client, signer, wanted)
    assert granted.status_code == 200, granted.text
    assert granted.json()["SAD"].startswith("sad_") and 0 < granted.json()["expiresIn"] <= 300
    signed = sign(client, signer, granted.json()["SAD"], wanted)
    assert signed.status_code == 200, signed.text
    signatures = [base64.b64decode(s) for s in signed.json()["signatures"]]
    public_key = chain[0].public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for value, sig in zip(wanted, signatures, strict=True):
        public_key.verify(sig, base64.b64decode(value), ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    # The chain validates with pyHanko's validator against the center's root, with the
    # revocation status taken from the CRLs this service publishes.
    issuing_id = signer["credential"]["issuer_id"]
    authorities = {
        a["id"]: a
        for a in client.get(
            "/api/v1/pki/authorities", headers=center.headers(Role.SUPERVISOR)
        ).json()
    }
    root_id = next(a for a in authorities.values() if a["kind"] == "root")["id"]
    crls = [client.get(f"/pki/{ca}/crl").content for ca in (issuing_id, root_id)]
    as_asn1 = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in chain]
    context = ValidationContext(
        trust_roots=[as_asn1[2]],
        crls=crls,
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=clock.now(),  # the service's clock: its CRLs are fresh then, not today
    )
    validator = CertificateValidator(
        as_asn1[0], intermediate_certs=[as_asn1[1]], validation_context=context
    )
    path = asyncio.run(
        validator.async_validate_usage(
            {"digital_signature", "non_repudiation"}, extended_key_usage={"1.3.6.1.5.5.7.3.36"}
        )
    )
    assert path.first.subject == as_asn1[2].subject

    log = db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    authorized = next(e for e in log if e.action == "signature.authorized")
    created = [e for e in log if e.action == "signature.created"]
    assert (
        authorized.details["hashes"] == wanted
        and authorized.actor == f"expert:{signer['expert_id']}"
    )
    assert [e.details["hash"] for e in created] == wanted
    assert {e.details["sad_id"] for e in created} == {authorized.subject_id}
    assert all(
        e.details["verification_id"] == authorized.details["verification_id"] for e in created
    )
    assert all(e.details["credential_id"] == signer["credential"]["id"] for e in created)


def test_a_sad_signs_once_only_the_authorized_hashes(
    client: TestClient, signer: dict[str, Any], db: Session, clock: FrozenClock
) -> None:
    wanted = [digest("a"), digest("b")]
    sad = authorize(client, signer, wanted).json()["SAD"]

    mismatch = sign(client, signer, sad, [digest("a"), digest("forged")])
    assert_problem(mismatch, 403, "hashes-not-authorized")
    assert mismatch.json()["error"] == "invalid_request" and mismatch.json()["error_description"]
    wrong_algorithm = sign(client, signer, sad, wanted, signAlgo="1.2.840.113549.1.1.11")
    assert_problem(wrong_algorithm, 422, "hashes-invalid")
    assert db.execute(select(SignatureActivation.used_at)).scalar_one() is None  # not spent

    assert sign(client, signer, sad, [digest("b")]).status_code == 200  # a subset is fine
    assert_problem(sign(client, signer, sad, [digest("a")]), 409, "sad-used")
    codes = [r["code"] for r in refusals(db)]
    assert codes == ["hashes-not-authorized", "hashes-invalid", "sad-used"]

    late = authorize(client, signer, wanted).json()["SAD"]
    clock.advance(timedelta(seconds=301))
    assert_problem(sign(client, signer, late, wanted), 410, "sad-expired")
    assert refusals(db)[-1]["code"] == "sad-expired"


def test_a_sad_is_bound_to_its_session_and_credential(
    client: TestClient,
    signer: dict[str, Any],
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
) -> None:
    wanted = [digest("x")]
    sad = authorize(client, signer, wanted).json()["SAD"]
    # The same expert on another verified session (another phone) cannot spend it.
    other_token, _ = face_session(db, clock, center.id, signer["expert_id"], device_id="phone-2")
    stolen = client.post(
        "/csc/v2/signatures/signHash",
        json={
            "credentialID": signer["credential"]["id"],
            "SAD": sad,
            "hashes": wanted,
            "signAlgo": ECDSA_SHA256,
        },
        headers=phone(other_token, "phone-2"),
    )
    assert_problem(stolen, 403, "sad-invalid")
    # Nor can the session's token be used from another device.
    assert_problem(
        client.post(
            "/csc/v2/signatures/signHash",
            json={
                "credentialID": signer["credential"]["id"],
                "SAD": sad,
                "hashes": wanted,
                "signAlgo": ECDSA_SHA256,
            },
            headers=phone(signer["token"], "phone-evil"),
        ),
        401,
        "face-session-invalid",
    )
    assert_problem(sign(client, signer, "sad_made-up", wanted), 403, "sad-invalid")
    # Still unused: the owner signs with it.
    assert sign(client, signer, sad, wanted).status_code == 200
    assert [r["code"] for r in refusals(db)] == [
        "sad-invalid",
        "face-session-invalid",
        "sad-invalid",
    ]


def test_staff_tokens_and_other_experts_cannot_authorize(
    client: TestClient,
    signer: dict[str, Any],
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
) -> None:
    body = {
        "credentialID": signer["credential"]["id"],
        "numSignatures": 1,
        "hashes": [digest("r")],
        "hashAlgorithmOID": SHA256,
    }
    for role in Role:
        response = client.post(
            "/csc/v2/credentials/authorize",
            json=body,
            headers={**center.headers(role), "X-Device-Id": DEVICE},
        )
        assert_problem(response, 401, "face-session-invalid")
        assert response.json()["error"] == "invalid_token"
    assert_problem(
        client.post("/csc/v2/credentials/authorize", json=body), 401, "face-session-invalid"
    )

    other_expert = new_expert(client, center)
    other_token, _ = face_session(db, clock, center.id, other_expert, device_id="phone-3")
    response = client.post(
        "/csc/v2/credentials/authorize", json=body, headers=phone(other_token, "phone-3")
    )
    assert_problem(response, 403, "credential-not-owned")
    listed = client.post("/csc/v2/credentials/list", json={}, headers=phone(other_token, "phone-3"))
    assert listed.json()["credentialIDs"] == []
    assert db.execute(select(SignatureActivation)).first() is None
    refused = refusals(db)
    assert [r["code"] for r in refused] == ["face-session-invalid"] * 3 + ["credential-not-owned"]


def test_a_stale_face_check_cannot_authorize(
    client: TestClient, signer: dict[str, Any], db: Session, clock: FrozenClock
) -> None:
    clock.advance(timedelta(seconds=121))
    response = authorize(client, signer, [digest("s")])
    assert_problem(response, 401, "face-check-stale")
    assert response.json()["freshness_s"] == 120 and response.json()["age_s"] == 121
    assert refusals(db)[-1]["code"] == "face-check-stale"
    assert db.execute(select(SignatureActivation)).first() is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"hashes": ["not base64!"]}, "hashes-invalid"),
        ({"hashes": [base64.b64encode(b"short").decode()]}, "hashes-invalid"),
        ({"hashAlgorithmOID": "1.3.14.3.2.26"}, "hashes-invalid"),  # SHA-1
        ({"numSignatures": 2}, "hashes-invalid"),
        ({"hashes": [digest("d"), digest("d")], "numSignatures": 2}, "hashes-invalid"),
    ],
)
def test_malformed_authorizations_are_refused(
    client: TestClient, signer: dict[str, Any], db: Session, change: dict[str, Any], code: str
) -> None:
    body = {
        "credentialID": signer["credential"]["id"],
        "numSignatures": 1,
        "hashes": [digest("d")],
        "hashAlgorithmOID": SHA256,
        **change,
    }
    response = client.post(
        "/csc/v2/credentials/authorize", json=body, headers=phone(signer["token"])
    )
    assert_problem(response, 422, code)
    assert db.execute(select(SignatureActivation)).first() is None


def test_revoked_or_suspended_credentials_cannot_sign(
    client: TestClient,
    signer: dict[str, Any],
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
) -> None:
    operator = center.headers(Role.OPERATOR)
    wanted = [digest("before revocation")]
    sad = authorize(client, signer, wanted).json()["SAD"]

    suspended = client.post(
        f"/api/v1/experts/{signer['expert_id']}/suspend",
        json={"reason": "回避调查"},
        headers=operator,
    )
    assert suspended.status_code == 200
    # The suspension ended the face session and the SAD issued on it, for good.
    assert_problem(sign(client, signer, sad, wanted), 401, "face-session-invalid")
    assert (
        client.post(
            f"/api/v1/experts/{signer['expert_id']}/reactivate", json={}, headers=operator
        ).status_code
        == 200
    )
    assert_problem(sign(client, signer, sad, wanted), 401, "face-session-invalid")
    assert db.execute(select(SignatureActivation.expires_at)).scalar_one() <= clock.now()

    signer["token"], _ = face_session(db, clock, center.id, signer["expert_id"], device_id=DEVICE)
    assert sign(client, signer, sad, wanted).status_code in (400, 401, 403, 409, 410)
    sad = authorize(client, signer, wanted).json()["SAD"]
    revoked = client.post(
        f"/api/v1/experts/{signer['expert_id']}/credential/revoke",
        json={"reason": "keyCompromise", "note": "手机丢失"},
        headers=operator,
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    response = sign(client, signer, sad, wanted)
    assert_problem(response, 409, "credential-unusable")
    assert response.json()["credential_status"] == "revoked"
    assert_problem(authorize(client, signer, wanted), 409, "credential-unusable")
    assert db.execute(select(SignatureActivation.used_at)).scalars().all() == [None, None]
    assert [r["code"] for r in refusals(db)][-2:] == ["credential-unusable"] * 2


def test_revoking_the_bound_phone_ends_its_face_sessions_and_sads(
    client: TestClient, signer: dict[str, Any], db: Session, center: CenterWithStaff
) -> None:
    wanted = [digest("after the phone was lost")]
    sad = authorize(client, signer, wanted).json()["SAD"]
    passkey_id = db.execute(select(Passkey.id)).scalar_one()
    revoked = client.post(
        f"/api/v1/experts/{signer['expert_id']}/passkeys/{passkey_id}/revoke",
        json={"reason": "phone lost"},
        headers=center.headers(Role.OPERATOR),
    )
    assert revoked.status_code == 200, revoked.text
    assert_problem(sign(client, signer, sad, wanted), 401, "face-session-invalid")
    assert db.execute(select(SignatureActivation.used_at)).scalar_one() is None


def test_withdrawing_consent_ends_face_sessions_and_sads(
    client: TestClient,
    signer: dict[str, Any],
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
) -> None:
    wanted = [digest("after withdrawal")]
    sad = authorize(client, signer, wanted).json()["SAD"]
    withdrawn = client.post(
        f"/api/v1/experts/{signer['expert_id']}/face/consent/withdraw",
        json={"note": "本人撤回同意"},
        headers=center.headers(Role.OPERATOR),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert_problem(sign(client, signer, sad, wanted), 401, "face-session-invalid")
    assert db.execute(select(SignatureActivation.expires_at)).scalar_one() <= clock.now()


def test_a_sad_does_not_sign_with_the_experts_next_credential(
    client: TestClient, signer: dict[str, Any], db: Session, center: CenterWithStaff
) -> None:
    wanted = [digest("for the first key")]
    sad = authorize(client, signer, wanted).json()["SAD"]
    revoked = client.post(
        f"/api/v1/experts/{signer['expert_id']}/credential/revoke",
        json={"reason": "superseded", "note": "新手机"},
        headers=center.headers(Role.OPERATOR),
    )
    assert revoked.status_code == 200
    successor = issue(client, center, signer["expert_id"])
    response = sign(client, {**signer, "credential": successor}, sad, wanted)
    assert_problem(response, 403, "sad-invalid")
    assert "another credential" in response.json()["detail"]
    assert db.execute(select(SignatureActivation.used_at)).scalar_one() is None


def test_authorize_and_sign_hash_keep_to_their_statement_budget(
    client: TestClient, signer: dict[str, Any], services: Services
) -> None:
    """Every signature pays for these on the hot path: the face session, the credential
    with its key and expert (with the SAD, for signHash), the SAD's insert or consumption,
    and the audit append (head reserved, entry inserted, head advanced). Authorize also
    checks the passkey: the check's method, the challenge consumed, the passkey read and
    its counter moved on, the assertion kept (five more)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            statements.append(statement)

    wanted = [digest("budget")]
    approval = passkey_for_hashes(
        client, phone(signer["token"]), signer["phone"], signer["credential"]["id"], wanted
    )
    event.listen(services.engine, "before_cursor_execute", count)
    try:
        sad = authorize(client, signer, wanted, passkey=approval).json()["SAD"]
        authorized, statements[:] = list(statements), []
        assert sign(client, signer, sad, wanted).status_code == 200
        signed = list(statements)
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    assert len(authorized) == 11, authorized
    assert len(signed) == 6, signed
    # The SAD and the credential come in one query: the credential is not loaded twice.
    assert sum("issued_certificates" in statement for statement in signed) == 1


class TestRsa:
    """The same with RSA-3072 keys (EVALSIGN_PKI_ALGORITHM=rsa-3072)."""

    @pytest.fixture
    def settings(self, tmp_path: Any, database_url: str) -> Any:
        from models.settings import Settings

        return Settings(
            data_dir=tmp_path,
            database_url=database_url,
            audit_checkpoint_every_s=0,
            jobs_in_serve=False,
            pki_algorithm="rsa-3072",
        )

    @pytest.mark.slow
    def test_rsa_credentials_sign_with_pkcs1_v15(
        self, client: TestClient, signer: dict[str, Any]
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        assert signer["credential"]["key_algorithm"] == "rsa-3072"
        wanted = [digest("RSA 报告")]
        for sign_algo, hash_oid in (
            ("1.2.840.113549.1.1.11", SHA256),  # sha256WithRSAEncryption
            ("1.2.840.113549.1.1.1", SHA256),  # rsaEncryption + hashAlgorithmOID
        ):
            sad = authorize(client, signer, wanted).json()["SAD"]
            signed = sign(
                client, signer, sad, wanted, signAlgo=sign_algo, hashAlgorithmOID=hash_oid
            )
            assert signed.status_code == 200, signed.text
            key = x509.load_pem_x509_certificate(
                signer["credential"]["certificate_pem"].encode()
            ).public_key()
            assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
            key.verify(
                base64.b64decode(signed.json()["signatures"][0]),
                base64.b64decode(wanted[0]),
                padding.PKCS1v15(),
                utils.Prehashed(hashes.SHA256()),
            )
        sad = authorize(client, signer, wanted).json()["SAD"]
        assert_problem(sign(client, signer, sad, wanted), 422, "hashes-invalid")  # ECDSA algo


def test_a_face_session_alone_authorizes_nothing(
    client: TestClient, signer: dict[str, Any], db: Session
) -> None:
    """Sole control: the face check (which a page cannot prove came from a camera) and the
    bound phone's passkey over exactly these hashes."""
    wanted = [digest("what the attacker wants signed")]
    headers, credential_id = phone(signer["token"]), signer["credential"]["id"]
    assert_problem(authorize(client, signer, wanted, passkey=None), 403, "passkey-required")
    innocent = passkey_for_hashes(
        client, headers, signer["phone"], credential_id, [digest("what the expert saw")]
    )
    assert_problem(authorize(client, signer, wanted, passkey=innocent), 403, "passkey-challenge")
    approval = passkey_for_hashes(client, headers, signer["phone"], credential_id, wanted)
    granted = authorize(client, signer, wanted, passkey=approval)
    assert granted.status_code == 200, granted.text
    again = authorize(client, signer, wanted, passkey=approval)
    assert_problem(again, 409, "passkey-challenge-used")
    [sad] = db.execute(select(SignatureActivation)).scalars().all()
    use = db.get(PasskeyUse, sad.passkey_use_id)
    passkey = db.get(Passkey, use.passkey_id) if use else None
    assert use is not None and passkey is not None
    passkeys.check_use(use, passkey)  # anyone can check it again, offline
    reasons = [
        row.details["reason"]
        for row in db.execute(
            select(AuditEntry).where(AuditEntry.action == Action.PASSKEY_REFUSED)
        ).scalars()
    ]
    assert reasons == ["passkey-required", "passkey-challenge", "passkey-challenge-used"]
