"""The SMS code where a center allows it (EVALSIGN_SMS_FALLBACK): after a passed face check
a one-time code to the registered mobile stands in for the passkey at sign-in and at
signing, recorded at a lower assurance that supervisors always see. Off by default. The
messages go to the local outbox (the embedded provider), read here as a phone would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.messaging import LocalOutbox
from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import (
    AuditEntry,
    EvaluationSession,
    OneTimeCode,
    SignatureActivation,
)
from tests.api.committee import Committee, build_committee
from tests.api.helpers import SignerPhone, assert_problem
from tests.api.test_documents_api import slots_for, upload
from tests.factories import CenterWithStaff, establish_pki, expert_payload, face_session

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        face_retention_every_s=0,
        jobs_in_serve=False,
        sms_fallback=True,
    )


def code_sent_to(tmp_path: Path, number: str) -> tuple[str, str]:
    """The last SMS to `number` in the outbox: its code and its text."""
    [*_, last] = LocalOutbox(tmp_path / "outbox").messages(to=number)
    found = re.search(r"\b(\d{6})\b", last["text"])
    assert found, last
    return found.group(1), last["text"]


def test_signing_with_an_sms_code_where_the_center_allows_it(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    tmp_path: Path,
) -> None:
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    experts, numbers = [], []
    for index, name in enumerate(("王喆", "李娜", "张伟")):
        payload = expert_payload(name=name, phone=f"1380013{index:04d}")
        expert = client.post("/api/v1/experts", json=payload, headers=operator).json()
        assert client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
        experts.append(expert["id"])
        numbers.append(payload["phone"])
    document = upload(client, operator, slots_for(experts)).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    token, _ = face_session(db, clock, center.id, experts[0], device_id="phone-a")
    phone = SignerPhone({"Authorization": f"Bearer {token}", "X-Device-Id": "phone-a"})
    url = f"/api/v1/documents/{document['id']}"

    sent = client.post(f"{url}/approval/sms", json={}, headers=phone)
    assert sent.status_code == 201, sent.text
    assert sent.json()["sent_to"] == "138****0000" and sent.json()["assurance"] == "sms"
    code, text = code_sent_to(tmp_path, numbers[0])
    assert "评标报告" in text and "摘要" in text  # it says what it approves
    nonce = sent.json()["nonce"]

    wrong = "000000" if code != "000000" else "111111"
    refused = client.post(
        f"{url}/signatures", json={"sms": {"nonce": nonce, "code": wrong}}, headers=phone
    )
    assert_problem(refused, 403, "sms-code-invalid")
    db.expire_all()
    # The wrong try is kept although the request was rolled back; nothing was signed.
    assert db.execute(select(OneTimeCode.attempts)).scalar_one() == 1
    assert db.execute(select(func.count()).select_from(SignatureActivation)).scalar_one() == 0
    both = client.post(
        f"{url}/signatures",
        json={"sms": {"nonce": nonce, "code": code}, "passkey": {"nonce": nonce, "assertion": {}}},
        headers=phone,
    )
    assert both.status_code == 422

    signed = client.post(
        f"{url}/signatures", json={"sms": {"nonce": nonce, "code": code}}, headers=phone
    )
    assert signed.status_code == 201, signed.text
    db.expire_all()
    activation = db.execute(select(SignatureActivation)).scalar_one()
    assert activation.one_time_code_id is not None and activation.passkey_use_id is None
    # Used once.
    again = client.post(
        f"{url}/signatures", json={"sms": {"nonce": nonce, "code": code}}, headers=phone
    )
    assert_problem(again, 403, "no-slot-for-signer")

    # Five wrong tries spend a code, whatever the sixth says.
    other, _ = face_session(db, clock, center.id, experts[1], device_id="phone-b")
    second = SignerPhone({"Authorization": f"Bearer {other}", "X-Device-Id": "phone-b"})
    nonce = client.post(f"{url}/approval/sms", json={}, headers=second).json()["nonce"]
    code, _ = code_sent_to(tmp_path, numbers[1])
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        answer = client.post(
            f"{url}/signatures", json={"sms": {"nonce": nonce, "code": wrong}}, headers=second
        )
        assert_problem(answer, 403, "sms-code-invalid")
    late = client.post(
        f"{url}/signatures", json={"sms": {"nonce": nonce, "code": code}}, headers=second
    )
    assert_problem(late, 403, "sms-code-invalid")
    refusals = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "passkey.refused")
    ).scalar_one()
    assert refusals == 7


def test_signing_in_with_an_sms_code_is_flagged_for_supervisors(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    tmp_path: Path,
) -> None:
    committee: Committee = build_committee(client, center, db, clock, services)
    member = committee.members[0]
    device = "phone-sms"
    scanned = committee.scan(committee.personal_token(member["assignment_id"]), device)
    scan_headers = {
        "Authorization": f"Bearer {scanned.json()['scan_token']}",
        "X-Device-Id": device,
    }
    face_token, _ = face_session(
        db,
        clock,
        center.id,
        member["expert_id"],
        device_id=device,
        scan_session_id=committee._scan_id(scanned.json()["scan_token"]),
    )
    # No code, no passkey: the face alone signs no one in.
    bare = client.post(
        "/api/v1/scan/sign-in", json={"face_session": face_token}, headers=scan_headers
    )
    assert_problem(bare, 403, "passkey-required")
    sent = client.post(
        "/api/v1/scan/sms-code", json={"face_session": face_token}, headers=scan_headers
    )
    assert sent.status_code == 201, sent.text
    number = _phone_of(committee, member["expert_id"])
    code, text = code_sent_to(tmp_path, number)
    assert "登录" in text
    signed = client.post(
        "/api/v1/scan/sign-in",
        json={"face_session": face_token, "sms": {"nonce": sent.json()["nonce"], "code": code}},
        headers=scan_headers,
    )
    assert signed.status_code == 201, signed.text
    db.expire_all()
    session = db.execute(select(EvaluationSession)).scalar_one()
    assert session.one_time_code_id is not None and session.passkey_use_id is None

    flags = client.get(
        f"/api/v1/anomalies?project_id={committee.project_id}",
        headers=center.headers(Role.SUPERVISOR),
    )
    assert flags.status_code == 200, flags.text
    sms = [f for f in _items(flags.json()) if f["rule"] == "sms-code"]
    assert len(sms) == 1 and sms[0]["evidence"]["approved"] == "sign-in"
    assert (
        sms[0]["evidence"]["sent_to"].startswith(number[:3])
        and "****" in sms[0]["evidence"]["sent_to"]
    )


def _phone_of(committee: Committee, expert_id: str) -> str:
    got = committee.client.get(f"/api/v1/experts/{expert_id}", headers=committee.operator)
    return str(got.json()["phone"])


def _items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"] if isinstance(body, dict) else body)


def test_without_the_centers_consent_there_is_no_sms_code(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    tmp_path: Path,
) -> None:
    # The default center: the same requests are refused and nothing is sent.
    from dataclasses import replace

    strict = replace(services.sms, allowed=False) if services.sms else None
    client.app.state.services = replace(  # type: ignore[attr-defined]
        services,
        sms=strict,
        documents=replace(services.documents, sms=strict),
    )
    establish_pki(db, clock, services, center)
    operator = center.headers(Role.OPERATOR)
    expert = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()
    client.post(f"/api/v1/experts/{expert['id']}/credential", headers=operator)
    document = upload(client, operator, slots_for([expert["id"]] * 3)[:1]).json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=operator)
    token, _ = face_session(db, clock, center.id, expert["id"], device_id="phone-a")
    phone = {"Authorization": f"Bearer {token}", "X-Device-Id": "phone-a"}
    refused = client.post(
        f"/api/v1/documents/{document['id']}/approval/sms", json={}, headers=phone
    )
    assert_problem(refused, 403, "sms-code-not-allowed")
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())
    assert Settings().sms_fallback is False  # the default
