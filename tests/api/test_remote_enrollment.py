"""Remote enrollment of a representative from the link on their phone: a photo of their ID
card's portrait side is the reference (at the "id-card" assurance and threshold), and the
real liveness check that follows must match it; a different person is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api.services import Services
from evaluation.identity.consent import FACE_CONSENT_VERSION
from face.analysis import analyze_bytes
from models.tables import AuditEntry, FaceTemplate, FaceVerification
from signing.soft_authenticator import SoftwareAuthenticator
from tests.api.contracting import DEVICE, Award
from tests.api.helpers import assert_problem
from tests.api.test_liveness_api import live, submit
from tests.face.corpus import encode, engine, id_card_photo, portraits
from tests.factories import PHONE_ORIGIN

HOLDER, OTHER = "players-6", "gdp-2"


def _scan(award: Award, party: str = "tenderer", *, consent: bool = True) -> tuple[Any, dict]:
    contract = award.contract().json()
    link = award.client.post(
        f"/api/v1/contracts/{contract['id']}/links",
        json={"authorization_id": award.representatives[party]["id"]},
        headers=award.operator,
    ).json()
    scanned = award.client.post("/api/v1/scan", json={"token": link["token"], "device_id": DEVICE})
    headers = {"Authorization": f"Bearer {scanned.json()['scan_token']}", "X-Device-Id": DEVICE}
    if consent:
        version = award.client.get("/api/v1/consent/face").json()["version"]
        answered = award.client.post(
            "/api/v1/scan/consent", json={"version": version, "accepted": True}, headers=headers
        )
        assert answered.status_code == 200, answered.text
    return contract, headers


def _card(award: Award, headers: dict[str, str], data: bytes) -> Any:
    return award.client.put(
        "/api/v1/scan/id-card",
        files={"photo": ("card.jpg", data, "image/jpeg")},
        headers=headers,
    )


def _check(award: Award, headers: dict[str, str], who: str) -> dict[str, Any]:
    """A genuine check, filmed live (every take new frames: the same frames twice are
    rightly refused as replayed)."""
    issued = award.client.post("/api/v1/scan/challenge", headers=headers)
    assert issued.status_code == 201, issued.text
    award.clock.advance(timedelta(seconds=2))  # the phone opens its camera
    phone = {"id": DEVICE, "model": "Pixel 7", "os": "Android 14", "browser": "Chrome"}
    answered = submit(award.client, issued.json(), live(who), clock=award.clock, device=phone)
    assert answered.status_code == 201, answered.text
    return dict(answered.json())


def test_an_id_card_photo_then_a_matching_live_face_unlocks_the_seal(award: Award) -> None:
    contract, headers = _scan(award)
    enrolled = _card(award, headers, id_card_photo(portraits()[HOLDER]))
    assert enrolled.status_code == 201, enrolled.text
    person = award.representatives["tenderer"]["person_id"]
    assert enrolled.json()["reference"] == "id-card" and enrolled.json()["person_id"] == person
    template = award.db.get(FaceTemplate, person)
    assert template is not None and template.reference == "id-card"
    assert template.consent_version == FACE_CONSENT_VERSION  # what the phone agreed to

    result = _check(award, headers, HOLDER)
    assert result["passed"], result["reasons"]
    # The phone is told only that it passed; the record supervisors read keeps the bar used.
    record = award.db.execute(
        select(FaceVerification).where(FaceVerification.expert_id == person)
    ).scalar_one()
    identity = next(c for c in record.checks if c["check"] == "identity")
    assert identity["values"]["threshold"] == 0.30  # the ID card's, not 0.40 in person

    face = {"Authorization": f"Bearer {result['session']['token']}", "X-Device-Id": DEVICE}
    url = f"/api/v1/contracts/{contract['id']}"
    # Nothing is sealed, and no phone bound, before an operator has compared the card with
    # the live face.
    early = award.client.post(f"{url}/approval", headers=face)
    assert_problem(early, 409, "remote-enrollment-unconfirmed")
    unbound = award.client.post(f"{url}/passkey-binding", headers=face)
    assert_problem(unbound, 409, "remote-enrollment-unconfirmed")
    review = award.client.get(
        f"/api/v1/experts/{person}/face/remote-enrollment", headers=award.operator
    ).json()
    assert review["card_jpeg_base64"] and review["frame_jpeg_base64"]  # side by side
    assert review["verification_id"] == record.id and review["decision"] is None
    decided = award.client.post(
        f"/api/v1/experts/{person}/face/remote-enrollment/decision",
        json={"decision": "confirm", "note": "对比身份证照片与现场画面，并电话联系单位核实"},
        headers=award.operator,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"] == "confirmed"
    assert decided.json()["card_jpeg_base64"] is None  # erased with the decision
    # A face check alone seals nothing: the phone is to be bound first, on this link.
    assert_problem(award.client.post(f"{url}/signatures", headers=face), 403, "passkey-required")
    assert_problem(award.client.post(f"{url}/approval", headers=face), 403, "passkey-not-bound")
    phone = SoftwareAuthenticator(PHONE_ORIGIN)
    binding = award.client.post(f"{url}/passkey-binding", headers=face)
    assert binding.status_code == 201, binding.text
    options = binding.json()
    bound = award.client.post(
        f"{url}/passkey-binding/complete",
        json={
            "enrollment_id": options["enrollment_id"],
            "credential": phone.create(options["publicKey"]),
        },
        headers=face,
    )
    assert bound.status_code == 201, bound.text
    assert bound.json()["witnessed_by"].startswith("contract-link:")
    assert bound.json()["device_id"] == DEVICE
    spent = award.client.post(
        f"{url}/passkey-binding/complete",
        json={
            "enrollment_id": options["enrollment_id"],
            "credential": phone.create(options["publicKey"]),
        },
        headers=face,
    )
    assert_problem(spent, 410, "passkey-enrollment-invalid")  # a binding binds once
    # Then each mark is approved by that phone and signed.
    for remaining in (2, 1):
        issued = award.client.post(f"{url}/approval", headers=face)
        assert issued.status_code == 201, issued.text
        assert issued.json()["remaining"] == remaining
        approval = {
            "nonce": issued.json()["nonce"],
            "assertion": phone.get(issued.json()["publicKey"]),
        }
        signed = award.client.post(f"{url}/signatures", json={"passkey": approval}, headers=face)
        assert signed.status_code == 201, signed.text
        assert signed.json()["remaining"] == remaining - 1
    entry = award.db.execute(
        select(AuditEntry).where(AuditEntry.action == "expert.face_enrolled")
    ).scalar_one()
    assert entry.details["reference"] == "id-card" and entry.actor.startswith("scan:")


def test_another_persons_face_does_not_match_the_card(award: Award) -> None:
    _, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    result = _check(award, headers, OTHER)
    assert not result["passed"] and "face-mismatch" in result["reasons"]


def test_a_card_without_a_usable_face_stores_nothing(award: Award) -> None:
    _, headers = _scan(award)
    blank = encode(portraits()[HOLDER][:40, :40])  # a corner of the photo: no face
    refused = _card(award, headers, blank)
    assert refused.status_code == 422, refused.text
    assert award.db.get(FaceTemplate, award.representatives["tenderer"]["person_id"]) is None


def test_no_id_card_before_consent(award: Award) -> None:
    _, headers = _scan(award, consent=False)
    refused = _card(award, headers, id_card_photo(portraits()[HOLDER]))
    assert_problem(refused, 409, "consent-required")


def test_a_face_enrolled_at_the_center_is_not_replaced(award: Award) -> None:
    _, headers = _scan(award)
    person = award.representatives["tenderer"]["person_id"]
    in_person = award.client.put(
        f"/api/v1/experts/{person}/face",
        files={"photos": ("p.jpg", encode(portraits()[HOLDER]), "image/jpeg")},
        data={"consent": "true"},
        headers=award.operator,
    )
    assert in_person.status_code == 201, in_person.text
    refused = _card(award, headers, id_card_photo(portraits()[OTHER]))
    assert_problem(refused, 409, "already-enrolled")
    template = award.db.get(FaceTemplate, person)
    assert template is not None and template.reference == "in-person"


def test_every_frontal_shipped_face_makes_a_usable_id_card(services: Services) -> None:
    """The e2e test's newcomer wears whichever face the draw left on the bench."""
    policy = services.face_policy
    thresholds = replace(policy.thresholds, min_face_px=policy.id_card_min_face_px)
    for name, portrait in portraits().items():
        if name in {"t1-5", "players-15"}:  # not frontal: never drawn, never on a bench
            continue
        analysis = analyze_bytes(
            engine(), id_card_photo(portrait), policy.limits, thresholds, single_face=True
        )
        assert analysis.usable, (name, analysis.report())


def test_a_copied_link_cannot_replace_an_id_card_reference(award: Award) -> None:
    """Whoever holds a copy of the link uploads their own face as the "ID card": refused,
    the representative's reference stays."""
    contract, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    person = award.representatives["tenderer"]["person_id"]
    before = award.db.get(FaceTemplate, person)
    assert before is not None
    kept = before.template_ciphertext
    # Another phone opens the same link.
    link = award.client.post(
        f"/api/v1/contracts/{contract['id']}/links",
        json={"authorization_id": award.representatives["tenderer"]["id"]},
        headers=award.operator,
    ).json()
    scanned = award.client.post(
        "/api/v1/scan", json={"token": link["token"], "device_id": "phone-copy-1"}
    )
    copied = {
        "Authorization": f"Bearer {scanned.json()['scan_token']}",
        "X-Device-Id": "phone-copy-1",
    }
    version = award.client.get("/api/v1/consent/face").json()["version"]
    award.client.post(
        "/api/v1/scan/consent", json={"version": version, "accepted": True}, headers=copied
    )
    assert_problem(_card(award, copied, id_card_photo(portraits()[OTHER])), 409, "already-enrolled")
    award.db.expire_all()
    after = award.db.get(FaceTemplate, person)
    assert after is not None and after.template_ciphertext == kept


def test_a_rejected_remote_enrollment_seals_nothing_and_starts_over(award: Award) -> None:
    contract, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    person = award.representatives["tenderer"]["person_id"]
    url = f"/api/v1/experts/{person}/face/remote-enrollment"
    premature = award.client.post(
        f"{url}/decision", json={"decision": "confirm", "note": "看过"}, headers=award.operator
    )
    assert_problem(premature, 409, "invalid-transition")  # no live check yet
    result = _check(award, headers, HOLDER)
    assert result["passed"], result["reasons"]
    rejected = award.client.post(
        f"{url}/decision",
        json={"decision": "reject", "note": "单位称未授权此人"},
        headers=award.operator,
    )
    assert rejected.status_code == 200 and rejected.json()["decision"] == "rejected"
    assert award.db.get(FaceTemplate, person) is None
    face = {"Authorization": f"Bearer {result['session']['token']}", "X-Device-Id": DEVICE}
    refused = award.client.post(f"/api/v1/contracts/{contract['id']}/signatures", headers=face)
    assert_problem(refused, 401, "face-session-invalid")  # its checks grant nothing now
    again = award.client.post(
        f"{url}/decision", json={"decision": "confirm", "note": "x"}, headers=award.operator
    )
    assert_problem(again, 404, "not-found")
    entry = award.db.execute(
        select(AuditEntry).where(AuditEntry.action == "face.remote_enrollment_rejected")
    ).scalar_one()
    assert entry.details["note"] == "单位称未授权此人"


def test_removing_the_card_ends_what_its_checks_granted(award: Award) -> None:
    """An operator deletes an unconfirmed card reference (to enroll the person at the desk
    instead): a face session the card's check gave must not seal afterwards."""
    contract, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    result = _check(award, headers, HOLDER)
    assert result["passed"], result["reasons"]
    person = award.representatives["tenderer"]["person_id"]
    removed = award.client.delete(f"/api/v1/experts/{person}/face", headers=award.operator)
    assert removed.status_code == 204, removed.text
    face = {"Authorization": f"Bearer {result['session']['token']}", "X-Device-Id": DEVICE}
    refused = award.client.post(f"/api/v1/contracts/{contract['id']}/signatures", headers=face)
    assert_problem(refused, 401, "face-session-invalid")
    review = award.client.get(
        f"/api/v1/experts/{person}/face/remote-enrollment", headers=award.operator
    ).json()
    assert review["decision"] == "rejected" and review["card_jpeg_base64"] is None


def test_the_operator_confirms_the_check_they_saw(award: Award) -> None:
    _, headers = _scan(award)
    assert _card(award, headers, id_card_photo(portraits()[HOLDER])).status_code == 201
    first = _check(award, headers, HOLDER)
    assert first["passed"], first["reasons"]
    person = award.representatives["tenderer"]["person_id"]
    url = f"/api/v1/experts/{person}/face/remote-enrollment"
    seen = award.client.get(url, headers=award.operator).json()
    frame = seen["frame_jpeg_base64"]
    # Another check passes meanwhile: the review keeps the frame the operator is looking at.
    second = _check(award, headers, HOLDER)
    assert second["passed"], second["reasons"]
    assert award.client.get(url, headers=award.operator).json()["frame_jpeg_base64"] == frame
    stale = award.client.post(
        f"{url}/decision",
        json={"decision": "confirm", "note": "核实", "verification_id": "another-check"},
        headers=award.operator,
    )
    assert_problem(stale, 409, "invalid-transition")
    confirmed = award.client.post(
        f"{url}/decision",
        json={"decision": "confirm", "note": "核实", "verification_id": seen["verification_id"]},
        headers=award.operator,
    )
    assert confirmed.status_code == 200, confirmed.text
