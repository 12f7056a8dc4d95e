"""Task QR codes and signing in: the rotating room code, single-use personal codes, every
refusal (forged, expired, reused, another center's, a closed project) answered with
problem+json and logged, the scan's face check, and the evaluation session with its
second-device flag."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from typing import Any

import cv2
import numpy as np
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity.consent import FACE_CONSENT_VERSION
from evaluation.kernel.actions import Action
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    EvaluationSession,
    FaceChallenge,
    ScanSession,
    VerifiedSession,
)
from signing.keyring import Keyring
from signing.task_qr import RoomTokens
from tests.api.committee import Committee
from tests.api.helpers import anonymous_refusals, assert_problem, refused_reasons
from tests.api.test_projects_api import project_payload
from tests.factories import face_session, make_center

DEVICE = "phone-5d1e22aa"


def _room(committee: Committee, form: str = "json") -> object:
    return committee.client.post(
        f"/api/v1/projects/{committee.project_id}/qr?format={form}", headers=committee.operator
    )


def test_the_room_code_rotates_and_renders(committee: Committee, clock: FrozenClock) -> None:
    first = _room(committee).json()  # type: ignore[attr-defined]
    assert first["kind"] == "room"
    assert first["url"].endswith(f"/m/t/{first['token']}")
    assert (
        first["rotates_at"] < first["expires_at"]
    )  # a code shown until the rotation is still accepted after it
    png = Image.open(io.BytesIO(base64.b64decode(first["png_base64"])))
    assert png.size[0] >= 200 and png.size[0] == png.size[1]
    # A camera reads back exactly the URL (OpenCV's QR decoder stands in for the phone: the
    # ArUco-based one, as the classic detector misreads about one crisp code in twenty).
    pixels = cv2.imdecode(
        np.frombuffer(base64.b64decode(first["png_base64"]), np.uint8), cv2.IMREAD_GRAYSCALE
    )
    decoded, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(pixels)
    assert decoded == first["url"]
    assert first["svg"].startswith("<svg") and "<path" in first["svg"]
    image = _room(committee, "png")
    assert image.headers["content-type"] == "image/png"  # type: ignore[attr-defined]
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[attr-defined]
    assert _room(committee, "svg").headers["content-type"].startswith("image/svg+xml")  # type: ignore[attr-defined]

    clock.advance(timedelta(seconds=30))
    second = _room(committee).json()  # type: ignore[attr-defined]
    assert second["token"] != first["token"]
    # The first code is still good 30 s later (valid 60 s), so is the new one.
    assert committee.scan(first["token"], DEVICE).status_code == 201
    assert committee.scan(second["token"], DEVICE).status_code == 201


def test_room_code_refusals_are_logged(
    committee: Committee, clock: FrozenClock, db: Session, keyring: Keyring
) -> None:
    token = _room(committee).json()["token"]  # type: ignore[attr-defined]
    before = db.execute(select(func.count()).select_from(ScanSession)).scalar_one()

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_problem(committee.scan(forged, DEVICE), 401, "qr-token-invalid")
    assert_problem(committee.scan("not-a-code", DEVICE), 401, "qr-token-invalid")

    # Another center's key signing a code that names our project: foreign, not ours.
    other = make_center(db, clock, "另一交易中心")
    foreign = RoomTokens(keyring).mint(other.id, committee.project_id, clock.now()).token
    assert_problem(committee.scan(foreign, DEVICE), 403, "qr-token-foreign")
    # An instance with another master key (a copied screen from elsewhere): forged.
    elsewhere = RoomTokens(Keyring(b"\x07" * 32))
    alien = elsewhere.mint(committee.center.id, committee.project_id, clock.now()).token
    assert_problem(committee.scan(alien, DEVICE), 401, "qr-token-invalid")

    clock.advance(timedelta(seconds=61))
    assert_problem(committee.scan(token, DEVICE), 410, "qr-token-expired")

    # Nobody signed in: tallied per minute, source and reason, not entries in the chain.
    assert refused_reasons(db, "task.scan_refused") == {
        "qr-token-invalid": 2,
        "qr-token-foreign": 1,
        "qr-token-expired": 1,
    }
    assert all(r.last_details["device_id"] == DEVICE for r in anonymous_refusals(db))
    assert all(r.source == "testclient" for r in anonymous_refusals(db))
    assert _scan_refusal_entries(db) == 0
    assert db.execute(select(func.count()).select_from(ScanSession)).scalar_one() == before


def test_a_personal_code_works_once(committee: Committee, db: Session, clock: FrozenClock) -> None:
    member = committee.members[0]
    token = committee.personal_token(member["assignment_id"])
    first = committee.scan(token, DEVICE)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["kind"] == "personal"
    assert body["project"]["code"] == committee.project["code"]
    assert body["project"]["center_name"]
    assert_problem(committee.scan(token, "phone-other-1"), 409, "qr-token-used")

    # A newer code replaces an unused older one; an expired one is refused.
    older = committee.personal_token(member["assignment_id"])
    newer = committee.personal_token(member["assignment_id"])
    assert_problem(committee.scan(older, DEVICE), 410, "qr-token-expired")
    clock.advance(timedelta(hours=13))  # past the window and the late-issue day
    assert_problem(committee.scan(newer, DEVICE), 410, "qr-token-expired")
    assert refused_reasons(db, "task.scan_refused") == {"qr-token-used": 1, "qr-token-expired": 2}


def test_codes_need_an_open_project_and_a_seat(committee: Committee) -> None:
    backup = committee.backups[0]
    issued = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/assignments/{backup['assignment_id']}/qr",
        headers=committee.operator,
    )
    assert_problem(issued, 409, "invalid-transition")
    draft = committee.client.post(
        "/api/v1/projects", json=project_payload(code="DRAFT-1"), headers=committee.operator
    )
    assert draft.status_code == 201, draft.text
    refused = committee.client.post(
        f"/api/v1/projects/{draft.json()['id']}/qr", headers=committee.operator
    )
    assert_problem(refused, 409, "invalid-transition")


def test_signing_in_from_a_room_scan(committee: Committee, db: Session, clock: FrozenClock) -> None:
    token = _room(committee).json()["token"]  # type: ignore[attr-defined]
    scanned = committee.scan(token, DEVICE).json()
    headers = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": DEVICE}
    scan_id = db.execute(select(ScanSession.id)).scalars().all()[-1]
    member = committee.members[2]

    # A face session that was not made for this scan signs no one in.
    stray, _ = face_session(db, clock, committee.center.id, member["expert_id"], device_id=DEVICE)
    refused = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": stray}, headers=headers
    )
    assert_problem(refused, 403, "sign-in-refused")

    # A non-member verified on this scan is refused too.
    outsider = committee.backups[0]
    theirs, _ = face_session(
        db,
        clock,
        committee.center.id,
        outsider["expert_id"],
        device_id=DEVICE,
        scan_session_id=scan_id,
    )
    refused = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": theirs}, headers=headers
    )
    assert_problem(refused, 403, "sign-in-refused")

    good, _ = face_session(
        db,
        clock,
        committee.center.id,
        member["expert_id"],
        device_id=DEVICE,
        scan_session_id=scan_id,
    )
    # The scan session only works from the phone that scanned.
    wrong = committee.client.post(
        "/api/v1/scan/sign-in",
        json={"face_session": good},
        headers={**headers, "X-Device-Id": "phone-thief-9"},
    )
    assert_problem(wrong, 401, "scan-session-invalid")
    # The face alone signs no one in: the bound phone's passkey must join it.
    alone = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": good}, headers=headers
    )
    assert_problem(alone, 403, "passkey-required")
    refusals = (
        db.execute(select(AuditEntry).where(AuditEntry.action == Action.PASSKEY_REFUSED))
        .scalars()
        .all()
    )
    assert [entry.details["reason"] for entry in refusals] == ["passkey-required"]
    passkey = committee.approve(member, headers, good)
    signed = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": good, "passkey": passkey}, headers=headers
    )
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["expert_id"] == member["expert_id"]
    assert body["assignment"]["id"] == member["assignment_id"]
    assert body["flagged"] is False
    # A scan signs in once.
    again = committee.client.post(
        "/api/v1/scan/sign-in", json={"face_session": good}, headers=headers
    )
    assert_problem(again, 401, "scan-session-invalid")
    project = committee.client.get(
        f"/api/v1/projects/{committee.project_id}", headers=committee.operator
    ).json()
    assert project["status"] == "evaluating"


def test_the_scan_challenge_hides_the_committee(committee: Committee, db: Session) -> None:
    token = _room(committee).json()["token"]  # type: ignore[attr-defined]
    scanned = committee.scan(token, DEVICE).json()
    headers = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": DEVICE}
    # The drawn experts' enrolments here are placeholders the face engine cannot read, so
    # the challenge is refused before any phone films; the real flow is in
    # test_evaluation_flow.py. What matters here: no candidate list leaks in any answer.
    _consent(committee, headers)
    answer = committee.client.post("/api/v1/scan/challenge", headers=headers)
    assert_problem(answer, 409, "face-check-unavailable")
    assert "expert_ids" not in answer.text
    for member in committee.members:
        assert member["expert_id"] not in answer.text


def test_a_second_device_must_verify_and_is_flagged(committee: Committee, db: Session) -> None:
    member = committee.members[1]
    committee.sign_in(member, "phone-aaaa-0001")
    committee.sign_in(member, "phone-bbbb-0002", accept=False)
    sessions = (
        db.execute(
            select(EvaluationSession)
            .where(EvaluationSession.expert_id == member["expert_id"])
            .order_by(EvaluationSession.device_id)
        )
        .scalars()
        .all()
    )
    assert [s.flagged for s in sessions] == [False, True]
    flagged = db.execute(
        select(AuditEntry).where(AuditEntry.action == "evaluation.second_device")
    ).scalar_one()
    assert flagged.details["device_id"] == "phone-bbbb-0002"
    # Each session works only from its own device.
    headers = committee.phones[member["assignment_id"]]
    ok = committee.client.get("/api/v1/evaluation", headers=headers)
    assert ok.status_code == 200 and ok.json()["session_flagged"] is True
    stolen = committee.client.get(
        "/api/v1/evaluation", headers={**headers, "X-Device-Id": "phone-aaaa-0001"}
    )
    assert_problem(stolen, 401, "evaluation-session-invalid")


def test_scan_challenges_are_capped(committee: Committee, db: Session, services: Services) -> None:
    token = _room(committee).json()["token"]  # type: ignore[attr-defined]
    scanned = committee.scan(token, DEVICE).json()
    scan_id = db.execute(select(ScanSession.id)).scalars().all()[-1]
    clock_now = services.clock.now()
    for _ in range(services.settings.scan_max_challenges):
        db.add(
            FaceChallenge(
                center_id=committee.center.id,
                mode="1:few",
                expert_ids=[],
                actions=["blink"],
                nonce_hash="x" * 64,
                capture={},
                issued_by="test",
                issued_at=clock_now,
                expires_at=clock_now,
                used_at=None,
                scan_session_id=scan_id,
            )
        )
    db.commit()
    headers = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": DEVICE}
    _consent(committee, headers)
    assert_problem(
        committee.client.post("/api/v1/scan/challenge", headers=headers), 429, "too-many-challenges"
    )


def _consent(committee: Committee, headers: dict[str, str], accepted: bool = True) -> Any:
    answer = committee.client.post(
        "/api/v1/scan/consent",
        json={"version": FACE_CONSENT_VERSION, "accepted": accepted},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_no_face_check_without_consent(committee: Committee, db: Session) -> None:
    token = _room(committee).json()["token"]  # type: ignore[attr-defined]
    scanned = committee.scan(token, DEVICE).json()
    headers = {"Authorization": f"Bearer {scanned['scan_token']}", "X-Device-Id": DEVICE}
    challenges = db.execute(select(func.count()).select_from(FaceChallenge)).scalar_one()
    assert_problem(
        committee.client.post("/api/v1/scan/challenge", headers=headers), 409, "consent-required"
    )
    # An out-of-date text is not consent to the current one.
    stale = committee.client.post(
        "/api/v1/scan/consent", json={"version": "face-2020-01", "accepted": True}, headers=headers
    )
    assert_problem(stale, 409, "consent-version-stale")
    # A no is recorded, names the alternative, and still opens no face check.
    refused = _consent(committee, headers, accepted=False)
    assert refused["consented_at"] is None and "in-person" in refused["alternative"]
    assert_problem(
        committee.client.post("/api/v1/scan/challenge", headers=headers), 409, "consent-required"
    )
    db.expire_all()
    assert db.execute(select(func.count()).select_from(FaceChallenge)).scalar_one() == challenges
    text = committee.client.get("/api/v1/consent/face", params={"lang": "zh"}).json()
    entries = (
        db.execute(
            select(AuditEntry)
            .where(AuditEntry.action.in_(["face.consent_given", "face.consent_refused"]))
            .order_by(AuditEntry.seq)
        )
        .scalars()
        .all()
    )
    assert [e.action for e in entries] == ["face.consent_refused"]
    assert entries[0].details["text_sha256"] == text["sha256"]
    assert entries[0].details["version"] == text["version"] == FACE_CONSENT_VERSION
    # A yes is recorded with the exact text's hash, in the language shown.
    english = committee.client.get("/api/v1/consent/face", params={"lang": "en"}).json()
    committee.client.post(
        "/api/v1/scan/consent",
        json={"version": FACE_CONSENT_VERSION, "accepted": True, "language": "en"},
        headers=headers,
    )
    given = db.execute(
        select(AuditEntry).where(AuditEntry.action == "face.consent_given")
    ).scalar_one()
    assert given.details["text_sha256"] == english["sha256"] != text["sha256"]
    scan = db.execute(select(ScanSession).where(ScanSession.id == given.subject_id)).scalar_one()
    assert scan.consent_version == FACE_CONSENT_VERSION and scan.consented_at is not None


def test_a_personal_code_issued_after_the_window_still_works(
    committee: Committee, clock: FrozenClock
) -> None:
    clock.advance(timedelta(hours=11))  # the window (10 h) is over; the report is not signed
    token = committee.personal_token(committee.members[0]["assignment_id"])
    assert committee.scan(token, DEVICE).status_code == 201


def test_an_operator_revokes_one_phone_session(committee: Committee, db: Session) -> None:
    member = committee.members[0]
    headers = committee.sign_in(member, "phone-lost-0001")
    sessions = committee.client.get(
        f"/api/v1/projects/{committee.project_id}/sessions", headers=committee.operator
    ).json()
    [session] = [s for s in sessions if s["device_id"] == "phone-lost-0001"]
    path = f"/api/v1/evaluation-sessions/{session['id']}/revoke"
    assert_problem(
        committee.client.post(path, json={}, headers=committee.operator), 422, "validation-failed"
    )
    face_session(  # a face check on that phone seconds before the revocation
        db, committee.clock, committee.center.id, session["expert_id"], device_id="phone-lost-0001"
    )
    revoked = committee.client.post(
        path, json={"reason": "专家报告手机丢失"}, headers=committee.operator
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    # Every face session of that phone ended with it, the one made seconds ago included.
    db.expire_all()
    on_phone = (
        db.execute(select(VerifiedSession).where(VerifiedSession.device_id == "phone-lost-0001"))
        .scalars()
        .all()
    )
    assert len(on_phone) >= 2 and all(row.revoked_at is not None for row in on_phone)
    gone = committee.client.get("/api/v1/evaluation", headers=headers)
    assert_problem(gone, 401, "evaluation-session-invalid")
    twice = committee.client.post(path, json={"reason": "再次"}, headers=committee.operator)
    assert_problem(twice, 409, "invalid-transition")
    # The seat and the expert's standing are untouched: a new scan signs in again.
    again = committee.sign_in(member, "phone-new-0002", accept=False)
    overview = committee.client.get("/api/v1/evaluation", headers=again).json()
    assert overview["me"]["status"] == "accepted"
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "evaluation.session_revoked")
    ).scalar_one()
    assert entry.details["reason"] == "专家报告手机丢失"


def _scan_refusal_entries(db: Session) -> int:
    db.expire_all()
    query = select(func.count()).where(AuditEntry.action == "task.scan_refused")
    return int(db.execute(query).scalar_one())
