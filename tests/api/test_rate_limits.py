"""The one rate limiter: counted in Redis (shared by replicas) or memory, a 429 problem with
Retry-After over the limit, and a whole evaluation room behind one NAT address let through."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.rate_limits import RequestLimiter, address_key, build_limiter
from api.services import Services
from evaluation.kernel.rate_limits import RateLimited
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import ScanSession
from tests.api import rate_limiting
from tests.api.committee import Committee, build_committee
from tests.api.helpers import assert_problem, snapshot
from tests.factories import CenterWithStaff, face_session

# The fixtures that run each test on memory and on Redis, with the limits it sets.
backend, limits, settings = rate_limiting.backend, rate_limiting.limits, rate_limiting.settings


def test_limiter_counts_each_key_in_its_window_and_replicas_share_it(settings: Settings) -> None:
    limiter, replica = build_limiter(settings), build_limiter(settings)
    for _ in range(2):
        limiter.hit("phone", "3/minute", "device", "phone-a")
    replica.hit("phone", "3/minute", "device", "phone-a")
    if not settings.redis_url:
        # Memory is one process's: the other replica's request was not counted here (why
        # several replicas need Redis).
        limiter.hit("phone", "3/minute", "device", "phone-a")
    with pytest.raises(RateLimited) as over:
        limiter.hit("phone", "3/minute", "device", "phone-a")
    assert 1 <= over.value.retry_after_s <= 60
    if settings.redis_url:
        with pytest.raises(RateLimited):
            replica.hit("phone", "3/minute", "device", "phone-a")
    limiter.hit("phone", "3/minute", "device", "phone-b")  # another key, its own count
    limiter.hit("other-scope", "3/minute", "device", "phone-a")  # another scope too


def test_a_window_frees_its_requests_as_it_moves(settings: Settings) -> None:
    limiter = build_limiter(settings)
    limiter.hit("phone", "2/second", "address", "10.0.0.1")
    limiter.hit("phone", "2/second", "address", "10.0.0.1")
    with pytest.raises(RateLimited):
        limiter.hit("phone", "2/second", "address", "10.0.0.1")
    time.sleep(1.05)
    limiter.hit("phone", "2/second", "address", "10.0.0.1")


def test_an_ipv6_sender_is_counted_by_its_slash_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("testclient") == "testclient"


def test_redis_down_lets_requests_through() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    limiter = build_limiter(settings)
    for _ in range(5):
        limiter.hit("phone", "1/minute", "device", "phone-a")


def test_a_disabled_limiter_counts_nothing() -> None:
    limiter = build_limiter(Settings(rate_limit_enabled=False))
    assert isinstance(limiter, RequestLimiter)
    for _ in range(5):
        limiter.hit("phone", "1/minute", "device", "phone-a")


@pytest.mark.parametrize("limits", [{"rate_limit_phone_per_device": "3/minute"}])
def test_over_the_limit_is_a_429_problem_with_retry_after(
    client: TestClient, committee: Committee, db: Session
) -> None:
    token = committee.personal_token(committee.members[0]["assignment_id"])
    first = committee.scan(token, "phone-limited-1")
    assert first.status_code == 201, first.text
    headers = {"Authorization": f"Bearer {first.json()['scan_token']}"}
    headers["X-Device-Id"] = "phone-limited-1"
    answered = client.post(
        "/api/v1/scan/consent", json={"version": "v1", "accepted": False}, headers=headers
    )
    assert answered.status_code != 429, answered.text
    # The third request of that device; the fourth is over the limit, whatever it asks.
    third = client.post("/api/v1/scan/passkey", json={}, headers=headers)
    assert third.status_code != 429, third.text
    before = snapshot(db)
    over = client.post("/api/v1/scan", json={"token": token, "device_id": "phone-limited-1"})
    body = assert_problem(over, 429, "rate-limited")
    wait = int(over.headers["retry-after"])
    assert 1 <= wait <= 60
    assert body["retry_after_s"] == wait
    assert body["per"] == "device"
    assert snapshot(db) == before
    # Another phone in the same room is not held up by it.
    other = committee.scan(token, "phone-limited-2")
    assert other.status_code != 429


ROOM_PHONES = 30


def test_a_whole_room_behind_one_address_signs_in(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    """30 phones behind one NAT address (the test client's), each signing in from the room
    QR of its project with the default limits: scan, consent, face challenge, frames, a
    second challenge and scan for every third phone (a retry), passkey, sign-in. The face
    check's record comes from the factory (tests/api/test_evaluation_flow.py makes real
    ones); its routes are still called, so the limiter counts every request a phone makes."""
    committees = []
    for _ in range(6):  # six projects evaluated in the room at once
        committees.append(build_committee(client, center, db, clock, services))
        clock.advance(timedelta(seconds=1))  # the project code is made from the time
    members = [(c, m) for c in committees for m in c.seated()]
    assert len(members) == ROOM_PHONES
    refused: list[tuple[str, int]] = []
    started = time.monotonic()
    for index, (committee, member) in enumerate(members):
        device = f"room-phone-{index:02d}"
        room = client.post(
            f"/api/v1/projects/{committee.project_id}/qr", headers=committee.operator
        )
        tries = 2 if index % 3 == 0 else 1
        for _ in range(tries):
            scanned = committee.scan(room.json()["token"], device)
            assert scanned.status_code == 201, scanned.text
            scan_token = scanned.json()["scan_token"]
            headers = {"Authorization": f"Bearer {scan_token}", "X-Device-Id": device}
            calls = [
                client.post(
                    "/api/v1/scan/consent",
                    json={"version": _consent_version(client), "accepted": True},
                    headers=headers,
                ),
                client.post("/api/v1/scan/challenge", headers=headers),
                client.post(
                    "/api/v1/face/challenges/unknown/frames",
                    files={"nonce": (None, "x")},
                    headers=headers,
                ),
            ]
            refused += [(c.request.url.path, c.status_code) for c in calls if c.status_code == 429]
        face_token, _ = face_session(
            db,
            clock,
            center.id,
            member["expert_id"],
            device_id=device,
            scan_session_id=_scan_id(db, scan_token),
        )
        signed = client.post(
            "/api/v1/scan/sign-in",
            json={
                "face_session": face_token,
                "passkey": committee.approve(member, headers, face_token),
            },
            headers=headers,
        )
        assert signed.status_code == 201, (index, signed.text)
    assert refused == []
    assert time.monotonic() - started < 300  # "within a few minutes", on this machine


def _consent_version(client: TestClient) -> str:
    return str(client.get("/api/v1/consent/face").json()["version"])


def _scan_id(db: Session, token: str) -> str:
    from evaluation.kernel.tokens import hash_token

    db.expire_all()
    return str(
        db.execute(
            select(ScanSession.id).where(ScanSession.token_hash == hash_token(token))
        ).scalar_one()
    )
