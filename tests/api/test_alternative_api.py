"""The non-face path end to end: a member who refuses face recognition sets a signing PIN
at the desk, an operator checks their ID card in person for the project, and the PIN then
signs them in and unlocks their signature, at the in-person-pin assurance that the
supervisors' lists name and the anomaly flags always show. Wrong PINs are stored outcomes;
too many void the in-person check; nothing here touches the face lockout."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.registry.experts import id_number_context
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    Expert,
    FaceLockout,
    FaceVerification,
    InPersonCheck,
)
from signing.field_cipher import FieldCipher
from signing.pin_hash import pin_matches
from tests.api.committee import Committee
from tests.api.helpers import assert_problem
from tests.api.test_tasks_api import _consent
from tests.factories import id_number, make_pdf

PIN = "480317"


def _id_number(db: Session, cipher: FieldCipher, expert_id: str) -> str:
    expert = db.get(Expert, expert_id)
    assert expert is not None
    return cipher.decrypt(expert.id_number_ciphertext, id_number_context(expert_id))


def _set_pin(committee: Committee, cipher: FieldCipher, expert_id: str, pin: str = PIN) -> Any:
    return committee.client.put(
        f"/api/v1/experts/{expert_id}/signing-pin",
        json={"id_number": _id_number(committee.db, cipher, expert_id), "pin": pin},
        headers=committee.operator,
    )


def _check_in_person(committee: Committee, cipher: FieldCipher, expert_id: str) -> Any:
    return committee.client.post(
        f"/api/v1/projects/{committee.project_id}/in-person-checks",
        json={
            "expert_id": expert_id,
            "id_number": _id_number(committee.db, cipher, expert_id),
            "document": "id-card",
            "note": "本人持身份证到场，拒绝人脸识别",
        },
        headers=committee.operator,
    )


def _scan(committee: Committee, member: dict[str, Any], device: str) -> dict[str, str]:
    scanned = committee.scan(committee.personal_token(member["assignment_id"]), device)
    assert scanned.status_code == 201, scanned.text
    return {"Authorization": f"Bearer {scanned.json()['scan_token']}", "X-Device-Id": device}


def _pin(committee: Committee, headers: dict[str, str], pin: str, **extra: Any) -> Any:
    return committee.client.post("/api/v1/scan/pin", json={"pin": pin, **extra}, headers=headers)


def test_a_member_who_refuses_face_recognition_signs_in_and_signs_with_the_pin(
    committee: Committee, db: Session, clock: FrozenClock, cipher: FieldCipher
) -> None:
    client, member = committee.client, committee.members[0]
    expert_id = member["expert_id"]

    # The PIN is set at the desk against the ID card: a wrong number or an easy PIN is
    # refused and nothing is stored.
    wrong_card = client.put(
        f"/api/v1/experts/{expert_id}/signing-pin",
        json={"id_number": _id_number(db, cipher, committee.members[1]["expert_id"]), "pin": PIN},
        headers=committee.operator,
    )
    assert_problem(wrong_card, 409, "id-number-mismatch")
    for weak in ("111111", "123456", "987654"):
        assert_problem(_set_pin(committee, cipher, expert_id, weak), 422, "pin-weak")
    birth = _id_number(db, cipher, expert_id)[8:14]  # YYMMDD
    assert_problem(_set_pin(committee, cipher, expert_id, birth), 422, "pin-weak")
    db.expire_all()
    expert = db.get(Expert, expert_id)
    assert expert is not None and expert.pin_hash is None
    no_pin = _check_in_person(committee, cipher, expert_id)
    assert_problem(no_pin, 409, "pin-not-set")

    set_ = _set_pin(committee, cipher, expert_id)
    assert set_.status_code == 200, set_.text
    db.expire_all()
    expert = db.get(Expert, expert_id)
    assert expert is not None and expert.pin_hash is not None
    assert expert.pin_hash.startswith("scrypt$15$") and PIN not in expert.pin_hash
    assert pin_matches(PIN, expert.pin_hash) and not pin_matches("480318", expert.pin_hash)
    logged = db.execute(select(AuditEntry).where(AuditEntry.action == "identity.pin_set")).all()
    assert len(logged) == 1 and PIN not in json.dumps(logged[0][0].details)

    # The phone refuses face recognition; without the operator's check the PIN opens nothing.
    phone = _scan(committee, member, "phone-no-face")
    assert _consent(committee, phone, accepted=False)["accepted"] is False
    assert_problem(_pin(committee, phone, PIN), 403, "in-person-check-required")

    checked = _check_in_person(committee, cipher, expert_id)
    assert checked.status_code == 201, checked.text
    check = checked.json()
    assert check["assurance"] == "in-person-pin" and check["checked_by"].startswith("staff:")
    assert_problem(_check_in_person(committee, cipher, expert_id), 409, "in-person-check-open")
    listed = client.get(
        f"/api/v1/projects/{committee.project_id}/in-person-checks",
        headers=committee.center.headers(Role.SUPERVISOR),
    ).json()
    assert [c["id"] for c in listed] == [check["id"]]

    wrong = _pin(committee, phone, "480318")
    assert wrong.status_code == 201, wrong.text
    assert wrong.json()["passed"] is False and wrong.json()["attempts_remaining"] == 4
    assert wrong.json()["session"] is None
    passed = _pin(committee, phone, PIN)
    assert passed.status_code == 201, passed.text
    outcome = passed.json()
    assert outcome["passed"] is True and outcome["method"] == "in-person-pin"
    face_token = outcome["session"]["token"]
    assert face_token.startswith("evf_")

    signed_in = client.post(
        "/api/v1/scan/sign-in", json={"face_session": face_token}, headers=phone
    )
    assert signed_in.status_code == 201, signed_in.text
    evaluation = {
        "Authorization": f"Bearer {signed_in.json()['evaluation_token']}",
        "X-Device-Id": "phone-no-face",
    }
    assert (
        client.post(
            "/api/v1/evaluation/response", json={"accept": True}, headers=evaluation
        ).status_code
        == 200
    )

    verification = db.get(FaceVerification, outcome["verification_id"])
    assert verification is not None
    assert verification.method == "in-person-pin" and verification.challenge_id is None
    assert verification.in_person_check_id == check["id"] and verification.frame_count == 0

    # A document for this member: the PIN, entered again, is the fresh check that signs.
    document = client.post(
        "/api/v1/documents",
        files={"file": ("报告.pdf", make_pdf(1), "application/pdf")},
        data={
            "metadata": json.dumps(
                {
                    "title": "评标报告",
                    "purpose": "report",
                    "slots": [
                        {
                            "expert_id": expert_id,
                            "role": "评标委员会成员",
                            "order_group": 1,
                            "page": 0,
                            "box": [60.0, 60.0, 260.0, 140.0],
                        }
                    ],
                },
                ensure_ascii=False,
            )
        },
        headers=committee.operator,
    )
    assert document.status_code == 201, document.text
    document = document.json()
    client.post(f"/api/v1/documents/{document['id']}/start", headers=committee.operator)
    clock.advance(timedelta(minutes=5))  # the sign-in check is no longer fresh
    stale = client.post(
        f"/api/v1/documents/{document['id']}/signatures",
        json={},
        headers={"Authorization": f"Bearer {face_token}", "X-Device-Id": "phone-no-face"},
    )
    assert stale.status_code in (401, 410), stale.text
    fresh = client.post("/api/v1/evaluation/pin", json={"pin": PIN}, headers=evaluation)
    assert fresh.status_code == 201, fresh.text
    sign_token = fresh.json()["session"]["token"]
    signed = client.post(
        f"/api/v1/documents/{document['id']}/signatures",
        json={},
        headers={"Authorization": f"Bearer {sign_token}", "X-Device-Id": "phone-no-face"},
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["document"]["status"] == "completed"

    # Supervisors see the assurance in both lists, and a flag for every pass.
    supervisor = committee.center.headers(Role.SUPERVISOR)
    sign_ins = client.get(
        "/api/v1/supervision/sign-ins",
        params={"project_id": committee.project_id},
        headers=supervisor,
    ).json()["items"]
    assert [s["assurance"] for s in sign_ins] == ["in-person-pin"]
    signatures = client.get(
        "/api/v1/supervision/signatures", params={"signer_id": expert_id}, headers=supervisor
    ).json()["items"]
    assert [s["assurance"] for s in signatures] == ["in-person-pin"]
    assert signatures[0]["verification_id"] == fresh.json()["verification_id"]
    flags = client.get(
        "/api/v1/anomalies", params={"project_id": committee.project_id}, headers=supervisor
    ).json()
    pin_flags = [f for f in flags if f["rule"] == "in-person-path"]
    assert sorted(f["evidence"]["verification_id"] for f in pin_flags) == sorted(
        [outcome["verification_id"], fresh.json()["verification_id"]]
    )
    assert all(f["evidence"]["in_person_check_id"] == check["id"] for f in pin_flags)
    assert all("现场核验" in f["explanation_zh"] for f in pin_flags)
    # The project's verification log lists the PIN checks, failed one included.
    logged_checks = client.get(
        "/api/v1/face/verifications",
        params={"project_id": committee.project_id, "expert_id": expert_id},
        headers=supervisor,
    )
    assert logged_checks.status_code == 200, logged_checks.text
    assert sorted(c["passed"] for c in logged_checks.json()["items"]) == [False, True, True]
    assert {c["method"] for c in logged_checks.json()["items"]} == {"in-person-pin"}


def test_a_room_code_needs_the_id_number_and_tells_a_stranger_nothing(
    committee: Committee, db: Session, cipher: FieldCipher
) -> None:
    member, other = committee.members[1], committee.members[2]
    assert _set_pin(committee, cipher, member["expert_id"]).status_code == 200
    assert _check_in_person(committee, cipher, member["expert_id"]).status_code == 201
    room = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/qr", headers=committee.operator
    ).json()
    scanned = committee.scan(room["token"], "room-phone").json()
    phone = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": "room-phone"}
    assert_problem(_pin(committee, phone, PIN), 422, "id-number-required")
    # Another member (no in-person check) and a number that is nobody's get the same answer.
    for number in (_id_number(db, cipher, other["expert_id"]), id_number()):
        assert_problem(
            _pin(committee, phone, PIN, id_number=number), 403, "in-person-check-required"
        )
    before = db.execute(select(func.count()).select_from(FaceVerification)).scalar_one()
    assert before == 0
    passed = _pin(committee, phone, PIN, id_number=_id_number(db, cipher, member["expert_id"]))
    assert passed.status_code == 201 and passed.json()["passed"] is True
    signed_in = committee.client.post(
        "/api/v1/scan/sign-in",
        json={"face_session": passed.json()["session"]["token"]},
        headers=phone,
    )
    assert signed_in.status_code == 201, signed_in.text
    assert signed_in.json()["expert_id"] == member["expert_id"]


def test_too_many_wrong_pins_void_the_check_but_never_lock_the_face_path(
    committee: Committee, db: Session, cipher: FieldCipher
) -> None:
    member = committee.members[3]
    assert _set_pin(committee, cipher, member["expert_id"]).status_code == 200
    check = _check_in_person(committee, cipher, member["expert_id"]).json()
    phone = _scan(committee, member, "guessing-phone")
    remaining = []
    for guess in ("000001", "000002", "000003", "000004", "000005"):
        answer = _pin(committee, phone, guess).json()
        assert answer["passed"] is False
        remaining.append(answer["attempts_remaining"])
    assert remaining == [4, 3, 2, 1, 0] and answer["voided"] is True
    # Void: the right PIN no longer opens anything.
    assert_problem(_pin(committee, phone, PIN), 403, "in-person-check-required")
    db.expire_all()
    voided = db.get(InPersonCheck, check["id"])
    assert voided is not None and voided.void_reason == "too-many-wrong-pins"
    assert db.execute(select(FaceLockout)).first() is None
    assert (
        db.execute(select(AuditEntry).where(AuditEntry.action == "identity.in_person_check_voided"))
        .scalar_one()
        .subject_id
        == check["id"]
    )
    # The operator checks the card again; the PIN works again.
    assert _check_in_person(committee, cipher, member["expert_id"]).status_code == 201
    assert _pin(committee, phone, PIN).json()["passed"] is True


def test_a_pin_check_signs_in_only_from_its_own_scan(
    committee: Committee, cipher: FieldCipher
) -> None:
    member = committee.members[4]
    assert _set_pin(committee, cipher, member["expert_id"]).status_code == 200
    assert _check_in_person(committee, cipher, member["expert_id"]).status_code == 201
    first = _scan(committee, member, "same-phone")
    token = _pin(committee, first, PIN).json()["session"]["token"]
    second = _scan(committee, member, "same-phone")
    refused = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": token}, headers=second
    )
    assert_problem(refused, 403, "sign-in-refused")


def test_the_operator_checks_only_a_seated_member_against_their_own_card(
    committee: Committee, db: Session, cipher: FieldCipher
) -> None:
    backup = committee.backups[0]
    assert _set_pin(committee, cipher, backup["expert_id"]).status_code == 200
    assert_problem(
        _check_in_person(committee, cipher, backup["expert_id"]), 409, "not-on-committee"
    )
    member = committee.members[0]
    assert _set_pin(committee, cipher, member["expert_id"]).status_code == 200
    mismatched = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/in-person-checks",
        json={
            "expert_id": member["expert_id"],
            "id_number": _id_number(db, cipher, backup["expert_id"]),
        },
        headers=committee.operator,
    )
    assert_problem(mismatched, 409, "id-number-mismatch")
    assert db.execute(select(func.count()).select_from(InPersonCheck)).scalar_one() == 0
    voided = committee.client.post(
        "/api/v1/in-person-checks/nope/void", json={"reason": "mistake"}, headers=committee.operator
    )
    assert_problem(voided, 404, "not-found")


@pytest.mark.parametrize("pin", ["12345", "abcdef", "1234567", "12 456"])
def test_a_pin_is_six_digits(committee: Committee, cipher: FieldCipher, pin: str) -> None:
    assert _set_pin(committee, cipher, committee.members[0]["expert_id"], pin).status_code == 422


def test_a_member_who_withdrew_face_consent_still_takes_part(
    committee: Committee, db: Session, cipher: FieldCipher
) -> None:
    """Withdrawal closes the face path; the in-person path stays open (the point of it)."""
    member = committee.members[2]
    withdrawn = committee.client.post(
        f"/api/v1/experts/{member['expert_id']}/face/consent/withdraw",
        json={"note": "本人书面撤回人脸识别同意"},
        headers=committee.operator,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    phone = _scan(committee, member, "withdrawn-phone")
    _consent(committee, phone)
    assert_problem(
        committee.client.post("/api/v1/scan/challenge", headers=phone),
        409,
        "face-check-unavailable",
    )
    assert _set_pin(committee, cipher, member["expert_id"]).status_code == 200
    assert _check_in_person(committee, cipher, member["expert_id"]).status_code == 201
    token = _pin(committee, phone, PIN).json()["session"]["token"]
    signed_in = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": token}, headers=phone
    )
    assert signed_in.status_code == 201, signed_in.text
