"""Abuse limits on face checks: failures lock the phone they come from unless it is the
person's own bound phone, challenges are capped per phone, address and person across scans,
and no answer tells a stranger whether a face sits on the committee."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity import face_checks
from evaluation.kernel.rate_limits import RateLimited
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from tests.api import rate_limiting
from tests.api.committee import Committee
from tests.api.helpers import assert_problem
from tests.api.test_liveness_api import (
    DEVICE,
    OTHER,
    PERSON,
    _actions,
    _enrolled,
    challenge,
    live,
    still_video,
    submit,
)
from tests.factories import CenterWithStaff, bound_phone

# The fixtures that run each test on memory and on Redis, with the limits it sets.
backend, limits, settings = rate_limiting.backend, rate_limiting.limits, rate_limiting.settings

pytestmark = pytest.mark.slow

STRANGER = {"id": "phone-stranger-0001"}


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers(Role.OPERATOR)


@pytest.fixture
def expert_id(client: TestClient, operator: dict[str, str]) -> str:
    return _enrolled(client, operator, PERSON)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_failures_from_a_phone_not_bound_to_the_member_lock_that_phone_only(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
    center: CenterWithStaff,
    db: Session,
    services: Services,
) -> None:
    bound_phone(db, clock, None, center.id, expert_id, device_id=DEVICE["id"])
    for attempt in range(5):  # a bystander holds the member's photo up to their own phone
        issued = challenge(client, operator, expert_id)
        clock.advance(timedelta(seconds=5))
        body = submit(client, issued, still_video(PERSON), device=STRANGER, clock=clock).json()
        assert body["passed"] is False
        assert body["attempts_remaining"] == 4 - attempt
    assert body["locked"] is True
    # The member is not locked out of their seat; the bystander's phone is.
    assert "face.check_locked" not in _actions(db)
    lockout = client.get(f"/api/v1/experts/{expert_id}/face/lockout", headers=operator)
    assert_problem(lockout, 404, "not-found")
    with pytest.raises(face_checks.DeviceLocked):
        face_checks.refuse_if_device_locked(
            db, services.liveness, center.id, STRANGER["id"], clock.now()
        )
    # The member's own phone still takes a check, and passes.
    face_checks.refuse_if_device_locked(db, services.liveness, center.id, DEVICE["id"], clock.now())
    issued = challenge(client, operator, expert_id)
    clock.advance(timedelta(seconds=8))
    passed = submit(client, issued, live(PERSON), clock=clock).json()
    assert passed["passed"] is True, passed
    # The phone's lock lasts the failure window, then lifts by itself.
    clock.advance(services.liveness.failure_window)
    face_checks.refuse_if_device_locked(
        db, services.liveness, center.id, STRANGER["id"], clock.now()
    )


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_a_failed_room_check_reads_the_same_whoever_s_face_it_was(
    client: TestClient,
    operator: dict[str, str],
    expert_id: str,
    clock: FrozenClock,
) -> None:
    """A 1:few check against the committee: a member's photo and a stranger's, each from a
    fresh phone, get the same answer, and identification failures count against the phone
    (before, the member's photo counted against the member and `attempts_remaining` said so,
    the stranger's got null)."""
    other_member = _enrolled(client, operator, "players-0")
    answers: list[dict[str, Any]] = []
    for index, face in enumerate((PERSON, OTHER)):
        for _ in range(2):
            issued = challenge(client, operator, expert_id, other_member)
            clock.advance(timedelta(seconds=5))
            phone = {"id": f"phone-room-{index:04d}"}
            answers.append(
                submit(client, issued, still_video(face), device=phone, clock=clock).json()
            )
    member, stranger = answers[:2], answers[2:]
    # What a phone reads. (The record itself, `verification`, goes only to a desk check's
    # operator: a scan's phone gets none, see submit_frames in api/routers/liveness.py.)
    keys = ("passed", "reasons", "messages_zh", "attempts_remaining", "locked", "frame_issues")
    assert [{k: a[k] for k in keys} for a in member] == [{k: a[k] for k in keys} for a in stranger]
    assert [a["attempts_remaining"] for a in stranger] == [4, 3]  # the phone's, always shown
    assert all("face-not-identified" not in a["reasons"] for a in answers)


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
def test_identification_failure_alone_is_not_verified(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock
) -> None:
    """A live face that is nobody on the committee: the phone is never told that the face
    matched no member, and a check that failed on that alone reads only "not-verified".
    (The renderer is random like a person: a take may also miss an action, which the phone
    is told as itself.)"""
    other_member = _enrolled(client, operator, "players-0")
    issued = challenge(client, operator, expert_id, other_member)
    clock.advance(timedelta(seconds=8))
    body = submit(client, issued, live(OTHER), device=STRANGER, clock=clock).json()
    assert body["passed"] is False
    record = body["verification"]  # the desk's operator sees the whole record
    failed = {c["reason"] for c in record["checks"] if not c["passed"]}
    assert "face-not-identified" in failed and "face-not-identified" not in body["reasons"]
    others = sorted(failed - {"face-not-identified"})
    if others:
        assert sorted(body["reasons"]) == others
    else:
        assert body["reasons"] == ["not-verified"]
        assert body["messages_zh"] == ["人脸核验未通过，请重试"]
    assert body["attempts_remaining"] == 4


@pytest.mark.parametrize("limits", [{"rate_limit_challenge_per_expert": "2/10 minutes"}])
def test_a_persons_challenges_are_capped_across_phones(services: Services, expert_id: str) -> None:
    config = services.liveness
    for _ in range(2):
        face_checks.count_challenge(services.limiter, config, [expert_id])
    with pytest.raises(RateLimited) as over:
        face_checks.count_challenge(services.limiter, config, [expert_id])
    assert over.value.extensions["per"] == "expert"
    # A room's 1:few challenge names everyone: it spends nobody's budget.
    face_checks.count_challenge(services.limiter, config, [expert_id, "someone-else"])


@pytest.mark.parametrize("limits", [{"rate_limit_challenge_per_device": "2/10 minutes"}])
def test_scanning_the_room_code_again_gives_no_fresh_challenges(
    client: TestClient, committee: Committee
) -> None:
    device = "phone-rescans-01"
    answers = []
    for _ in range(3):
        room = client.post(
            f"/api/v1/projects/{committee.project_id}/qr", headers=committee.operator
        ).json()
        scanned = committee.scan(room["token"], device)
        assert scanned.status_code == 201, scanned.text
        headers = {"Authorization": f"Bearer {scanned.json()['scan_token']}"}
        headers["X-Device-Id"] = device
        consent = client.get("/api/v1/consent/face").json()["version"]
        client.post(
            "/api/v1/scan/consent", json={"version": consent, "accepted": True}, headers=headers
        )
        answers.append(client.post("/api/v1/scan/challenge", headers=headers))
    assert [a.status_code != 429 for a in answers] == [True, True, False]
    body = assert_problem(answers[-1], 429, "rate-limited")
    assert body["limit"] == "face-challenge" and body["per"] == "device"
