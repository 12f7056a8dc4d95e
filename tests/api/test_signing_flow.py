"""The whole remote-signing path with real parts: an enrolled expert passes a real liveness
check on synthetic phone video, and the session it yields signs through the CSC API; a
session whose face check has aged past the signing freshness cannot."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from tests.api.helpers import assert_problem, passkey_for_hashes
from tests.api.test_liveness_api import DEVICE, PERSON, _enrolled, challenge, live, submit
from tests.factories import CenterWithStaff, bound_phone, establish_pki

pytestmark = pytest.mark.slow


def test_a_real_face_check_unlocks_signing_for_two_minutes(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    expert_id = _enrolled(client, operator, PERSON)
    credential = client.post(f"/api/v1/experts/{expert_id}/credential", headers=operator).json()

    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    passed = submit(client, issued, live(PERSON), clock=clock).json()
    assert passed["passed"] is True, passed["reasons"]
    phone = {"Authorization": f"Bearer {passed['session']['token']}", "X-Device-Id": DEVICE["id"]}
    bound = bound_phone(db, clock, services.passkeys, center.id, expert_id, device_id=DEVICE["id"])

    digest = hashlib.sha256("评标报告.pdf 的签名属性".encode()).digest()
    body = {
        "credentialID": credential["id"],
        "numSignatures": 1,
        "hashes": [base64.b64encode(digest).decode()],
        "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
    }
    approval = passkey_for_hashes(client, phone, bound, credential["id"], body["hashes"])
    sad = client.post(
        "/csc/v2/credentials/authorize", json={**body, "passkey": approval}, headers=phone
    )
    assert sad.status_code == 200, sad.text
    signed = client.post(
        "/csc/v2/signatures/signHash",
        json={**body, "SAD": sad.json()["SAD"], "signAlgo": "1.2.840.10045.4.3.2"},
        headers=phone,
    )
    assert signed.status_code == 200, signed.text
    certificate = x509.load_pem_x509_certificate(credential["certificate_pem"].encode())
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        base64.b64decode(signed.json()["signatures"][0]),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )

    # The session lives ten minutes, but signing wants a face check at most 120 s old.
    clock.advance(timedelta(seconds=121))
    approval = passkey_for_hashes(client, phone, bound, credential["id"], body["hashes"])
    assert_problem(
        client.post(
            "/csc/v2/credentials/authorize", json={**body, "passkey": approval}, headers=phone
        ),
        401,
        "face-check-stale",
    )
    assert client.get("/api/v1/face/session", headers=phone).status_code == 200
