"""Binding a phone at the desk and signing in with face + passkey: the happy path the real
way (real face models on filmed frames, a passkey made by an authenticator), and every
refusal named, audited, and leaving no session behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    EvaluationSession,
    FaceVerification,
    Passkey,
    PasskeyEnrollment,
    PasskeyUse,
)
from signing.soft_authenticator import SoftwareAuthenticator
from tests.api.committee import Committee
from tests.api.helpers import assert_problem
from tests.api.test_liveness_api import DEVICE, PERSON, live, submit
from tests.face.corpus import encode, portraits
from tests.factories import (
    PHONE_ORIGIN,
    CenterWithStaff,
    bound_phone,
    expert_payload,
    face_session,
    id_number,
)


def _person(client: TestClient, operator: dict[str, str], *, face: bool = True) -> dict[str, Any]:
    payload = expert_payload()
    expert: dict[str, Any] = client.post("/api/v1/experts", json=payload, headers=operator).json()
    if face:
        photo = (f"{PERSON}.jpg", encode(portraits()[PERSON]), "image/jpeg")
        enrolled = client.put(
            f"/api/v1/experts/{expert['id']}/face",
            files={"photos": photo},
            data={"consent": "true"},
            headers=operator,
        )
        assert enrolled.status_code == 201, enrolled.text
    return {**expert, "id_number": payload["id_number"]}


def _start(client: TestClient, operator: dict[str, str], person: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/experts/{person['id']}/passkeys/enrollments",
        json={"id_number": person["id_number"]},
        headers=operator,
    )


def _phone(token: str, device: str = DEVICE["id"]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Device-Id": device}


def _actions(db: Session, action: Action) -> list[AuditEntry]:
    db.expire_all()
    return list(db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars().all())


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers(Role.OPERATOR)


@pytest.mark.slow
def test_a_phone_is_bound_at_the_desk_after_a_real_face_check(
    client: TestClient,
    operator: dict[str, str],
    center: CenterWithStaff,
    clock: FrozenClock,
    db: Session,
) -> None:
    person = _person(client, operator)
    started = _start(client, operator, person)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["url"].endswith(f"/m/b/{body['token']}") and body["png_base64"]
    phone = _phone(body["token"])
    opened = client.post("/api/v1/passkey-enrollment/open", headers=phone)
    assert opened.status_code == 200 and opened.json()["name"] == person["name"]
    issued = client.post("/api/v1/passkey-enrollment/challenge", headers=phone)
    assert issued.status_code == 201, issued.text
    clock.advance(timedelta(seconds=8))
    filmed = submit(client, issued.json(), live(PERSON), clock=clock)
    assert filmed.status_code == 201 and filmed.json()["passed"], filmed.text
    face = filmed.json()["session"]["token"]

    options = client.post(
        "/api/v1/passkey-enrollment/options", json={"face_session": face}, headers=phone
    )
    assert options.status_code == 201, options.text
    assert options.json()["authenticatorSelection"]["userVerification"] == "required"
    assert options.json()["rp"]["id"] == "localhost"
    authenticator = SoftwareAuthenticator(PHONE_ORIGIN)
    done = client.post(
        "/api/v1/passkey-enrollment/complete",
        json={"face_session": face, "credential": authenticator.create(options.json())},
        headers=phone,
    )
    assert done.status_code == 201, done.text
    bound = done.json()
    assert bound["expert_id"] == person["id"] and bound["device_id"] == DEVICE["id"]
    [started_entry] = _actions(db, Action.PASSKEY_ENROLLMENT_STARTED)
    assert bound["witnessed_by"] == started_entry.actor  # the operator at the desk
    verification = db.get(FaceVerification, bound["verification_id"])
    assert verification is not None and verification.passed
    listed = client.get(
        f"/api/v1/experts/{person['id']}/passkeys", headers=center.headers(Role.SUPERVISOR)
    ).json()
    assert [row["id"] for row in listed] == [bound["id"]]
    [entry] = _actions(db, Action.PASSKEY_BOUND)
    assert entry.details["verification_id"] == bound["verification_id"]

    # The QR is spent: neither this phone nor another continues with it.
    assert_problem(
        client.post("/api/v1/passkey-enrollment/open", headers=phone),
        410,
        "passkey-enrollment-invalid",
    )


def _ready_binding(
    client: TestClient,
    operator: dict[str, str],
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
) -> tuple[dict[str, Any], dict[str, str], str]:
    """A started binding opened by DEVICE, whose face check is the factory's record."""
    person = _person(client, operator)
    token = _start(client, operator, person).json()["token"]
    phone = _phone(token)
    assert client.post("/api/v1/passkey-enrollment/open", headers=phone).status_code == 200
    face, session = face_session(db, clock, center.id, person["id"], device_id=DEVICE["id"])
    verification = db.get(FaceVerification, session.verification_id)
    enrollment = db.execute(
        select(PasskeyEnrollment).where(PasskeyEnrollment.expert_id == person["id"])
    ).scalar_one()
    enrollment.face_challenge_id = verification.challenge_id  # type: ignore[union-attr]
    db.commit()
    return person, phone, face


def test_the_desk_checks_the_id_card_and_the_face_enrollment(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    person = _person(client, operator, face=False)
    assert_problem(_start(client, operator, person), 409, "no-face-enrolled")
    other_card = {**person, "id_number": id_number()}
    assert_problem(_start(client, operator, other_card), 409, "id-number-mismatch")
    assert db.execute(select(func.count()).select_from(PasskeyEnrollment)).scalar_one() == 0


def test_a_binding_qr_belongs_to_the_first_phone_and_expires(
    client: TestClient, operator: dict[str, str], clock: FrozenClock
) -> None:
    person = _person(client, operator)
    token = _start(client, operator, person).json()["token"]
    assert client.post("/api/v1/passkey-enrollment/open", headers=_phone(token)).status_code == 200
    assert_problem(
        client.post("/api/v1/passkey-enrollment/open", headers=_phone(token, "phone-other-2")),
        409,
        "passkey-enrollment-other-device",
    )
    clock.advance(timedelta(minutes=6))
    assert_problem(
        client.post("/api/v1/passkey-enrollment/open", headers=_phone(token)),
        410,
        "passkey-enrollment-invalid",
    )
    assert_problem(
        client.post("/api/v1/passkey-enrollment/open", headers=_phone("evb_" + "x" * 43)),
        410,
        "passkey-enrollment-invalid",
    )


def test_registration_needs_this_bindings_face_check_and_a_sound_passkey(
    client: TestClient,
    operator: dict[str, str],
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
) -> None:
    person, phone, face = _ready_binding(client, operator, db, clock, center)
    stray, _ = face_session(db, clock, center.id, person["id"], device_id=DEVICE["id"])
    assert_problem(
        client.post(
            "/api/v1/passkey-enrollment/options", json={"face_session": stray}, headers=phone
        ),
        409,
        "passkey-enrollment-not-ready",
    )
    options = client.post(
        "/api/v1/passkey-enrollment/options", json={"face_session": face}, headers=phone
    ).json()

    def complete(credential: Any) -> Any:
        return client.post(
            "/api/v1/passkey-enrollment/complete",
            json={"face_session": face, "credential": credential},
            headers=phone,
        )

    evil = SoftwareAuthenticator("https://evil.example")
    assert_problem(complete(evil.create(options)), 403, "passkey-origin")
    lazy = SoftwareAuthenticator(PHONE_ORIGIN, user_verifying=False)
    assert_problem(complete(lazy.create(options)), 403, "passkey-user-not-verified")
    assert_problem(complete({"rawId": "x", "response": {}}), 422, "passkey-malformed")
    assert_problem(complete({"response": {"clientDataJSON": "%%%"}}), 422, "passkey-malformed")
    stale = dict(options, challenge="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert_problem(
        complete(SoftwareAuthenticator(PHONE_ORIGIN).create(stale)), 403, "passkey-challenge"
    )
    assert db.execute(select(func.count()).select_from(Passkey)).scalar_one() == 0
    reasons = [e.details["reason"] for e in _actions(db, Action.PASSKEY_REFUSED)]
    assert reasons == [
        "passkey-origin",
        "passkey-user-not-verified",
        "passkey-malformed",
        "passkey-malformed",
        "passkey-challenge",
    ]
    good = complete(SoftwareAuthenticator(PHONE_ORIGIN).create(options))
    assert good.status_code == 201, good.text
    again = complete(SoftwareAuthenticator(PHONE_ORIGIN).create(options))
    assert_problem(again, 410, "passkey-enrollment-invalid")


def test_no_more_phones_than_allowed(
    client: TestClient,
    operator: dict[str, str],
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    services: Services,
) -> None:
    person = _person(client, operator)
    for n in range(services.settings.passkey_max_devices):
        bound_phone(db, clock, services.passkeys, center.id, person["id"], device_id=f"p-{n}")
    assert_problem(_start(client, operator, person), 409, "passkey-limit")


# ---- sign-in: face and passkey ---------------------------------------------------------


def _scan(committee: Committee, member: dict[str, Any], device: str) -> tuple[dict[str, str], str]:
    scanned = committee.scan(committee.personal_token(member["assignment_id"]), device)
    assert scanned.status_code == 201, scanned.text
    headers = {"Authorization": f"Bearer {scanned.json()['scan_token']}", "X-Device-Id": device}
    face, _ = face_session(
        committee.db,
        committee.clock,
        committee.center.id,
        member["expert_id"],
        device_id=device,
        scan_session_id=committee._scan_id(scanned.json()["scan_token"]),
    )
    return headers, face


def _options(committee: Committee, headers: dict[str, str], face: str) -> dict[str, Any]:
    response = committee.client.post(
        "/api/v1/scan/passkey", json={"face_session": face}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _sign_in(committee: Committee, headers: dict[str, str], face: str, passkey: Any) -> Any:
    return committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": face, "passkey": passkey}, headers=headers
    )


def _sessions(db: Session) -> int:
    db.expire_all()
    return int(db.execute(select(func.count()).select_from(EvaluationSession)).scalar_one())


def test_a_photo_and_a_stolen_scan_are_not_enough(committee: Committee, db: Session) -> None:
    """The attacker renders the expert's face from a photo (the face check passes: here,
    its records) on their own phone, which holds a passkey of its own."""
    member = committee.members[0]
    committee.phone_of(member["expert_id"], "phone-owner-1")
    headers, face = _scan(committee, member, "phone-attacker-1")
    options = _options(committee, headers, face)
    attacker = SoftwareAuthenticator(PHONE_ORIGIN)
    attacker.create({"rp": {"id": "localhost"}, "challenge": options["challenge"]})
    with pytest.raises(LookupError):
        attacker.get(options)  # holds none of the allowed passkeys
    forged = attacker.get(dict(options, allowCredentials=[]))
    assert_problem(_sign_in(committee, headers, face, forged), 403, "passkey-unknown")
    assert_problem(_sign_in(committee, headers, face, None), 403, "passkey-required")
    assert _sessions(db) == 0


def test_each_bad_assertion_is_named_audited_and_grants_nothing(
    committee: Committee, db: Session
) -> None:
    member, other = committee.members[0], committee.members[1]
    device = "phone-owner-1"
    owner = committee.phone_of(member["expert_id"], device)
    theirs = committee.phone_of(other["expert_id"], "phone-other-1")
    headers, face = _scan(committee, member, device)

    # Another member's passkey cannot approve this member's sign-in.
    options = _options(committee, headers, face)
    foreign = theirs.get(dict(options, allowCredentials=[]))
    assert_problem(_sign_in(committee, headers, face, foreign), 403, "passkey-foreign")
    # No user verification on the phone.
    owner.user_verifying = False
    lazy = owner.get(options)
    assert_problem(_sign_in(committee, headers, face, lazy), 403, "passkey-user-not-verified")
    owner.user_verifying = True
    # An answer to a challenge never issued.
    made_up = owner.get(dict(options, challenge="Z" * 43))
    assert_problem(_sign_in(committee, headers, face, made_up), 403, "passkey-challenge")
    assert_problem(
        _sign_in(committee, headers, face, {"response": {"clientDataJSON": 5}}),
        422,
        "passkey-malformed",
    )
    assert _sessions(db) == 0
    reasons = [e.details["reason"] for e in _actions(db, Action.PASSKEY_REFUSED)]
    assert reasons == [
        "passkey-foreign",
        "passkey-user-not-verified",
        "passkey-challenge",
        "passkey-malformed",
    ]
    # A refused answer leaves its challenge open (the person retries the fingerprint).
    good = owner.get(options)
    signed = _sign_in(committee, headers, face, good)
    assert signed.status_code == 201, signed.text
    # Replayed on a later scan, the same answer finds its challenge spent.
    later, later_face = _scan(committee, member, device)
    assert_problem(_sign_in(committee, later, later_face, good), 409, "passkey-challenge-used")
    session = db.get(EvaluationSession, signed.json()["session_id"])
    assert session is not None and session.passkey_use_id is not None
    use = db.get(PasskeyUse, session.passkey_use_id)
    assert use is not None and use.evidence["user_verified"] is True


def test_a_lost_phone_is_revoked_and_a_new_one_bound(
    committee: Committee, db: Session, services: Services
) -> None:
    member = committee.members[0]
    lost = committee.phone_of(member["expert_id"], "phone-lost-1")
    [passkey] = committee.client.get(
        f"/api/v1/experts/{member['expert_id']}/passkeys", headers=committee.operator
    ).json()
    revoked = committee.client.post(
        f"/api/v1/experts/{member['expert_id']}/passkeys/{passkey['id']}/revoke",
        json={"reason": "手机丢失"},
        headers=committee.operator,
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    headers, face = _scan(committee, member, "phone-lost-1")
    assert_problem(
        committee.client.post("/api/v1/scan/passkey", json={"face_session": face}, headers=headers),
        403,
        "passkey-not-bound",
    )
    new_phone = bound_phone(
        db,
        committee.clock,
        services.passkeys,
        committee.center.id,
        member["expert_id"],
        device_id="phone-new-1",
    )
    # Whoever found the lost phone answers a real challenge with it: refused.
    options = _options(committee, headers, face)
    found = lost.get(dict(options, allowCredentials=[]))
    assert_problem(_sign_in(committee, headers, face, found), 403, "passkey-revoked")
    headers, face = _scan(committee, member, "phone-new-1")
    signed = _sign_in(committee, headers, face, new_phone.get(_options(committee, headers, face)))
    assert signed.status_code == 201, signed.text
    [entry] = _actions(db, Action.PASSKEY_REVOKED)
    assert entry.details == {"expert_id": member["expert_id"], "reason": "手机丢失"}
