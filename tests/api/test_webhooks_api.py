"""Events to the trading platform (issue 27 item 5) over HTTP: admins subscribe a platform's
endpoint, milestones are delivered to a stand-in receiver (tests/platform_standin.py, a real
server that checks the signatures itself), a receiver that fails or is down gets every event
later and in order, one that stays down past the give-up time leaves a failed delivery the
operator is told about, and bad input changes nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import transaction
from api.jobs import deliver_webhooks, push_archives
from api.services import Services
from evaluation.kernel import outbox
from evaluation.kernel.actions import Action
from evaluation.platform import archive
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import (
    AuditEntry,
    Expert,
    PlatformEvent,
    Project,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.api.contracting import Award
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import _drawn, pool
from tests.factories import CenterWithStaff
from tests.platform_standin import PlatformStandIn, running_platform

__all__ = ["pool"]

HOOK_PATH = "/platform/evalsign-events?tenant=7"


@pytest.fixture
def platform(clock: FrozenClock) -> Iterator[PlatformStandIn]:
    with running_platform(clock.now) as standin:
        yield standin


def _subscribe(
    client: TestClient, center: CenterWithStaff, platform: PlatformStandIn, **body: Any
) -> dict[str, Any]:
    created = client.post(
        "/api/v1/webhooks/subscriptions",
        json={"url": platform.url + HOOK_PATH, "description": "交易平台", **body},
        headers=center.headers(Role.ADMIN),
    )
    assert created.status_code == 201, created.text
    subscription: dict[str, Any] = created.json()
    platform.secrets[subscription["id"]] = subscription["secret"]
    return subscription


def _deliver(services: Services) -> int:
    return deliver_webhooks(services, random.Random(7))


def _log(client: TestClient, center: CenterWithStaff, project_id: str) -> list[dict[str, Any]]:
    answer = client.get(
        f"/api/v1/projects/{project_id}/platform-events",
        headers=center.headers(Role.SUPERVISOR),
    )
    assert answer.status_code == 200, answer.text
    deliveries: list[dict[str, Any]] = answer.json()["deliveries"]
    return sorted(deliveries, key=lambda d: d["seq"])


def _more_events(services: Services, project_id: str, *types: outbox.EventType) -> None:
    """Later milestones of the project, recorded as their modules do (in a transaction)."""
    with transaction(services) as db:
        project = db.get(Project, project_id)
        assert project is not None
        for type_ in types:
            outbox.record(db, services.clock.now(), project, type_, {"note": type_.value})


def test_the_draw_reaches_the_platform_signed_once_with_its_idempotency_key_and_no_names(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    db: Session,
) -> None:
    subscription = _subscribe(client, center, platform)
    listed = client.get("/api/v1/webhooks/subscriptions", headers=center.headers(Role.ADMIN))
    assert [s["id"] for s in listed.json()] == [subscription["id"]]
    assert "secret" not in listed.json()[0]  # shown once, at creation
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-1", center.headers(Role.ADMIN))
    project_id = drawn["project"]["id"]

    assert _deliver(services) == 1
    assert platform.bad_signatures == []
    [request] = platform.received
    assert request.path == HOOK_PATH
    assert request.headers["Content-Type"].startswith("application/cloudevents+json")
    event = request.event()
    assert event["specversion"] == "1.0"
    assert event["type"] == "cn.evalsign.draw.completed"
    assert event["source"] == f"urn:evalsign:center:{center.id}"
    assert event["subject"] == project_id
    assert event["datacontenttype"] == "application/json"
    assert event["time"].endswith("Z")
    assert request.headers["Idempotency-Key"] == event["id"]
    assert event["data"]["draw_id"] == drawn["proof"]["draw_id"]
    assert event["data"]["proof_sha256"] == outbox_hash(drawn["proof"])
    # The committee is sealed: nothing in the event names or points at a drawn expert.
    names = db.scalars(select(Expert.name)).all()
    for expert_id in (e for ids in pool.values() for e in ids):
        assert expert_id not in request.body.decode()
    for name in names:
        assert name not in request.body.decode()

    log = _log(client, center, project_id)
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("delivered", 1, 200)
    ]
    attempts = client.get(
        f"/api/v1/webhooks/deliveries/{log[0]['id']}/attempts", headers=center.headers(Role.ADMIN)
    ).json()
    assert [(a["status_code"], a["error"]) for a in attempts] == [(200, None)]
    assert _deliver(services) == 0  # delivered is done: nothing is sent twice
    assert len(platform.received) == 1


def outbox_hash(proof: dict[str, Any]) -> str:
    import hashlib
    import json

    compact = json.dumps(proof, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(compact.encode()).hexdigest()


def test_a_receiver_that_fails_then_is_down_for_hours_gets_every_event_later_in_order(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    clock: FrozenClock,
    db: Session,
) -> None:
    _subscribe(client, center, platform)
    platform.status = 500
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-2", center.headers(Role.ADMIN))
    project_id = drawn["project"]["id"]
    assert _deliver(services) == 0
    [first] = _log(client, center, project_id)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["last_status_code"] == 500 and "HTTP 500" in first["last_error"]
    # The first wait: between half and all of EVALSIGN_WEBHOOK_RETRY_S.
    wait = _at(first["next_attempt_at"]) - clock.now()
    retry = timedelta(seconds=services.settings.webhook_retry_s)
    assert retry / 2 <= wait <= retry

    # Later milestones queue behind the first: none is sent while it is pending.
    _more_events(
        services, project_id, outbox.EventType.COMMITTEE_SEATED, outbox.EventType.SCORES_FROZEN
    )
    platform.stop()  # down for hours
    waits = []
    for _ in range(12):  # twelve hours
        clock.advance(timedelta(hours=1))
        assert _deliver(services) == 0
        head = _log(client, center, project_id)[0]
        waits.append(_at(head["next_attempt_at"]) - clock.now())
    log = _log(client, center, project_id)
    assert [d["status"] for d in log] == ["pending"] * 3
    assert log[0]["attempts"] == 13 and log[0]["last_status_code"] is None
    assert "ConnectionError" in log[0]["last_error"]
    assert [d["attempts"] for d in log[1:]] == [0, 0]  # in line, never tried out of order
    # Doubling waits, capped at EVALSIGN_WEBHOOK_RETRY_MAX_S (jitter: half to all of it).
    cap = timedelta(seconds=services.settings.webhook_retry_max_s)
    assert all(w <= cap for w in waits) and all(w >= cap / 2 for w in waits[-3:])
    assert waits[0] < cap / 2

    platform.status = 200
    platform.start()  # back, on the same URL
    clock.advance(cap)
    assert _deliver(services) == 3
    assert [e["type"] for e in platform.events()] == [
        "cn.evalsign.draw.completed",
        "cn.evalsign.committee.seated",
        "cn.evalsign.scores.frozen",
    ]
    assert platform.bad_signatures == []
    assert [d["status"] for d in _log(client, center, project_id)] == ["delivered"] * 3
    # Every attempt is in the log: 500, then twelve refused connections, then 200.
    attempts = client.get(
        f"/api/v1/webhooks/deliveries/{log[0]['id']}/attempts",
        headers=center.headers(Role.SUPERVISOR),
    ).json()
    codes = [a["status_code"] for a in attempts]
    assert codes == [500] + [None] * 12 + [200]


def _at(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_delivery_past_the_give_up_time_fails_the_operator_is_told_and_the_line_moves_on(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    clock: FrozenClock,
    db: Session,
) -> None:
    _subscribe(client, center, platform)
    platform.status = 503
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-3", center.headers(Role.ADMIN))
    project_id = drawn["project"]["id"]
    assert _deliver(services) == 0
    clock.advance(timedelta(seconds=services.settings.webhook_give_up_s))
    _more_events(services, project_id, outbox.EventType.COMMITTEE_SEATED)
    platform.status = 200
    platform.secrets.clear()  # answers 401 now: still not delivered
    assert _deliver(services) == 0
    log = _log(client, center, project_id)
    assert log[0]["status"] == "failed" and log[0]["last_status_code"] == 401
    db.expire_all()
    entries = db.scalars(
        select(AuditEntry).where(AuditEntry.action == Action.WEBHOOK_DELIVERY_FAILED.value)
    ).all()
    assert [e.details["event_type"] for e in entries] == ["cn.evalsign.draw.completed"]
    assert entries[0].details["project_id"] == project_id
    failed = client.get(
        "/api/v1/webhooks/deliveries?status=failed", headers=center.headers(Role.SUPERVISOR)
    ).json()
    assert [d["id"] for d in failed] == [log[0]["id"]]
    # The failed one no longer holds the line: the next event was tried in the same round.
    assert log[1]["status"] == "pending" and log[1]["attempts"] == 1


def test_a_disabled_subscription_gets_nothing_more_and_a_filter_is_respected(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    db: Session,
) -> None:
    admin = center.headers(Role.ADMIN)
    everything = _subscribe(client, center, platform)
    scores_only = _subscribe(client, center, platform, event_types=["cn.evalsign.scores.frozen"])
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-4", admin)
    project_id = drawn["project"]["id"]
    [queued] = _log(client, center, project_id)  # the filter kept the draw from the other
    assert queued["subscription_id"] == everything["id"]
    disabled = client.post(
        f"/api/v1/webhooks/subscriptions/{everything['id']}/disable", headers=admin
    )
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert [d["status"] for d in _log(client, center, project_id)] == ["cancelled"]
    _more_events(services, project_id, outbox.EventType.SCORES_FROZEN)
    assert _deliver(services) == 1
    assert [e["type"] for e in platform.events()] == ["cn.evalsign.scores.frozen"]
    assert platform.received[0].headers["X-EvalSign-Key-Id"] == scores_only["id"]
    again = client.post(f"/api/v1/webhooks/subscriptions/{everything['id']}/disable", headers=admin)
    assert_problem(again, 409, "invalid-transition")


def test_a_rotated_secret_signs_from_then_on(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    clock: FrozenClock,
) -> None:
    subscription = _subscribe(client, center, platform)
    rotated = client.post(
        f"/api/v1/webhooks/subscriptions/{subscription['id']}/secret",
        headers=center.headers(Role.ADMIN),
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != subscription["secret"]
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-5", center.headers(Role.ADMIN))
    assert _deliver(services) == 0  # the platform still holds the old secret: refused
    assert platform.bad_signatures == ["signature does not match"]
    platform.secrets[subscription["id"]] = rotated.json()["secret"]
    clock.advance(timedelta(minutes=1))
    assert _deliver(services) == 1
    assert platform.events()[0]["subject"] == drawn["project"]["id"]


def test_a_milestone_rolled_back_sends_nothing(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    platform: PlatformStandIn,
    db: Session,
) -> None:
    _subscribe(client, center, platform)
    drawn = _drawn(client, center.headers(Role.OPERATOR), "HOOK-6", center.headers(Role.ADMIN))
    with pytest.raises(RuntimeError), transaction(services) as tx:
        project = tx.get(Project, drawn["project"]["id"])
        assert project is not None
        outbox.record(tx, services.clock.now(), project, outbox.EventType.SCORES_FROZEN, {})
        raise RuntimeError("the milestone's own change failed")
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(PlatformEvent)) == 1  # the draw only
    assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    assert _deliver(services) == 1
    assert [e["type"] for e in platform.events()] == ["cn.evalsign.draw.completed"]


def _count(db: Session) -> tuple[int, int]:
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(WebhookSubscription)) or 0,
        db.scalar(select(func.count()).select_from(AuditEntry)) or 0,
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://platform.example.cn/hooks"}, "webhook-url-rejected"),
        ({"url": "http://platform.example.cn/hooks"}, "webhook-url-rejected"),
        ({"url": "https://user:pw@platform.example.cn/hooks"}, "webhook-url-rejected"),
        ({"url": "https://platform.example.cn/hooks#top"}, "webhook-url-rejected"),
        ({"url": "https:///hooks"}, "webhook-url-rejected"),
        ({"url": "https://platform.example.cn:99999/hooks"}, "webhook-url-rejected"),
        ({"url": "https://platform.example.cn/ hooks"}, "webhook-url-rejected"),
        ({"url": "https://platform.example.cn/h", "event_types": ["cn.evalsign.nope"]}, None),
        ({"url": "https://platform.example.cn/h", "secret": "mine"}, None),
        ({"url": ""}, None),
        ({"url": "https://platform.example.cn/" + "a" * 2000}, None),
        ({"url": "https://platform.example.cn/h", "description": "x" * 201}, None),
        ({}, None),
    ],
)
def test_a_bad_subscription_is_refused_and_nothing_is_stored(
    client: TestClient, center: CenterWithStaff, db: Session, body: dict[str, Any], code: str | None
) -> None:
    before = _count(db)
    answer = client.post(
        "/api/v1/webhooks/subscriptions", json=body, headers=center.headers(Role.ADMIN)
    )
    assert_problem(answer, 422, code or "validation-failed")
    assert _count(db) == before


def test_subscriptions_of_another_center_or_unknown_are_not_found(
    client: TestClient,
    center: CenterWithStaff,
    other_center: CenterWithStaff,
    db: Session,
) -> None:
    created = client.post(
        "/api/v1/webhooks/subscriptions",
        json={"url": "https://platform.example.cn/hooks"},
        headers=other_center.headers(Role.ADMIN),
    )
    assert created.status_code == 201
    theirs = created.json()["id"]
    admin = center.headers(Role.ADMIN)
    before = _count(db)
    for subscription_id in (theirs, "00000000-0000-0000-0000-000000000000"):
        base = f"/api/v1/webhooks/subscriptions/{subscription_id}"
        assert_problem(client.get(base, headers=admin), 404, "not-found")
        assert_problem(client.post(f"{base}/disable", headers=admin), 404, "not-found")
        assert_problem(client.post(f"{base}/secret", headers=admin), 404, "not-found")
    assert client.get("/api/v1/webhooks/subscriptions", headers=admin).json() == []
    assert _count(db) == before
    unknown = client.get(
        "/api/v1/projects/00000000-0000-0000-0000-000000000000/platform-events",
        headers=admin,
    )
    assert_problem(unknown, 404, "not-found")
    bad_status = client.get("/api/v1/webhooks/deliveries?status=lost", headers=admin)
    assert_problem(bad_status, 422, "validation-failed")


def test_a_signed_contract_is_announced_with_its_hash_and_its_archive_queued(
    award: Award, db: Session, services: Services
) -> None:
    created = award.contract()
    assert created.status_code == 201, created.text
    contract = created.json()
    assert award.sign(contract["id"], award.face("tenderer")).status_code == 201
    assert outbox.events_of(db, award.project_id) == []  # one party is not the contract
    done = award.sign(contract["id"], award.face("winner"))
    assert done.status_code == 201 and done.json()["completed"], done.text
    db.expire_all()
    [event] = outbox.events_of(db, award.project_id)
    assert event.type == "cn.evalsign.contract.signed"
    assert event.data["contract_id"] == contract["id"]
    assert event.data["sha256"] == done.json()["contract"]["document"]["sha256"]
    [push] = archive.pushes_of(db, award.center.id, award.project_id)
    assert (push.reason, push.contract_id, push.status) == (
        "contract-signed",
        contract["id"],
        "building",
    )
    # This award was made without a draw (see tests/api/contracting.py): there is nothing
    # to prove yet, so the package waits, and says why, instead of being built half.
    assert push_archives(services, random.Random(1)) == 0
    db.expire_all()
    [push] = archive.pushes_of(db, award.center.id, award.project_id)
    assert push.status == "building" and push.attempts == 1
    assert push.last_error is not None and "no completed draw" in push.last_error
