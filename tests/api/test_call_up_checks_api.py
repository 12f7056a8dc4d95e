"""Where the center asks for it, a called-up member answers only after a face check of
their own face (1:1, issued for this call-up) and their bound phone's passkey (issue 27,
item 2): the link alone, or a check made for something else, answers nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.jobs import send_call_ups
from api.services import Services
from evaluation.committee import call_ups
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import Assignment, AuditEntry, FaceTemplate, PasskeyUse
from tests.api.helpers import assert_problem
from tests.api.test_call_ups_api import _outbox, _token
from tests.api.test_liveness_api import DEVICE, OTHER, PERSON, live, submit
from tests.api.test_projects_api import _drawn, pool
from tests.face.corpus import encode, portraits
from tests.factories import CenterWithStaff, bound_phone, face_session

__all__ = ["pool"]

PHONE = {"X-Device-Id": DEVICE["id"]}


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Any:
    from models.settings import Settings

    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        audit_checkpoint_every_s=0,
        # No job runner: a background job would race the test's shared connection.
        jobs_in_serve=False,
        call_up_answer_verified=True,
    )


def _member_called(
    client: TestClient, services: Services, db: Session, center: CenterWithStaff
) -> tuple[str, str, str]:
    """A drawn member's answer link, their expert id and assignment; their face enrolled
    from a real portrait (replacing the draw's placeholder record)."""
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    _drawn(client, operator, "CHECK-1", admin)
    assert send_call_ups(services) == 5
    token = _token(_outbox(services)[0])
    call_up = call_ups.by_token(db, token)
    db.execute(delete(FaceTemplate).where(FaceTemplate.expert_id == call_up.expert_id))
    db.commit()
    photo = (f"{PERSON}.jpg", encode(portraits()[PERSON]), "image/jpeg")
    enrolled = client.put(
        f"/api/v1/experts/{call_up.expert_id}/face",
        files={"photos": photo},
        data={"consent": "true"},
        headers=operator,
    )
    assert enrolled.status_code == 201, enrolled.text
    return token, call_up.expert_id, call_up.assignment_id


def _status(db: Session, assignment_id: str) -> str:
    db.expire_all()
    assignment = db.get(Assignment, assignment_id)
    assert assignment is not None
    return assignment.status


def test_the_page_asks_for_the_check_and_the_link_alone_answers_nothing(
    client: TestClient,
    services: Services,
    db: Session,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
) -> None:
    token, _, assignment_id = _member_called(client, services, db, center)
    page = client.get(f"/m/call/{token}")
    assert page.status_code == 200 and "evalsign_device" in page.headers.get("set-cookie", "")
    chosen = client.post(f"/m/call/{token}", data={"decision": "decline", "reason": "出差"})
    assert chosen.status_code == 200, chosen.text
    assert 'data-purpose="call-up"' in chosen.text
    assert f'data-challenge-url="/api/v1/call/{token}/challenge"' in chosen.text
    assert 'data-decision="decline"' in chosen.text and 'data-reason="出差"' in chosen.text
    assert _status(db, assignment_id) == "invited"
    # A decline still says why, before any check.
    bare = client.post(f"/m/call/{token}", data={"decision": "decline"})
    assert bare.status_code == 422 and _status(db, assignment_id) == "invited"


def test_a_member_answers_after_their_face_check_and_passkey(
    client: TestClient,
    services: Services,
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
) -> None:
    token, expert_id, assignment_id = _member_called(client, services, db, center)
    phone = bound_phone(db, clock, None, center.id, expert_id, device_id=DEVICE["id"])
    db.commit()

    # A session from another check of the same person (not this call-up's) is not enough.
    elsewhere, _ = face_session(db, clock, center.id, expert_id, device_id=DEVICE["id"])
    db.commit()
    refused = client.post(
        f"/api/v1/call/{token}/passkey", json={"face_session": elsewhere}, headers=PHONE
    )
    assert_problem(refused, 403, "call-up-not-checked")

    issued = client.post(f"/api/v1/call/{token}/challenge", headers=PHONE)
    assert issued.status_code == 201, issued.text
    assert issued.json()["mode"] == "1:1"
    clock.advance(timedelta(seconds=8))
    filmed = submit(client, issued.json(), live(PERSON), clock=clock)
    assert filmed.status_code == 201 and filmed.json()["passed"], filmed.text
    face = filmed.json()["session"]["token"]

    options = client.post(
        f"/api/v1/call/{token}/passkey", json={"face_session": face}, headers=PHONE
    )
    assert options.status_code == 201, options.text
    assertion = phone.get(options.json()["publicKey"])
    no_reason = client.post(
        f"/api/v1/call/{token}/answer",
        json={"face_session": face, "decision": "decline", "passkey": {"assertion": assertion}},
        headers=PHONE,
    )
    assert no_reason.status_code == 422 and _status(db, assignment_id) == "invited"
    answered = client.post(
        f"/api/v1/call/{token}/answer",
        json={"face_session": face, "decision": "accept", "passkey": {"assertion": assertion}},
        headers=PHONE,
    )
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"answer": "accepted"}
    assert _status(db, assignment_id) == "accepted"
    [use] = db.scalars(select(PasskeyUse).where(PasskeyUse.purpose == "call-up")).all()
    assert use.expert_id == expert_id
    [entry] = db.scalars(
        select(AuditEntry).where(AuditEntry.action == Action.ASSIGNMENT_ACCEPTED.value)
    ).all()
    assert entry.actor == f"expert:{expert_id}"

    # The same assertion again, or a new one: the call-up is answered.
    again = client.post(
        f"/api/v1/call/{token}/answer",
        json={
            "face_session": face,
            "decision": "decline",
            "reason": "x",
            "passkey": {"assertion": assertion},
        },
        headers=PHONE,
    )
    assert_problem(again, 410, "call-up-expired")
    page = client.get(f"/m/call/{token}")
    assert re.search(r'id="answered" data-answer="accepted"', page.text)


def test_another_persons_face_or_an_assertion_for_another_challenge_answers_nothing(
    client: TestClient,
    services: Services,
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
) -> None:
    token, expert_id, assignment_id = _member_called(client, services, db, center)
    phone = bound_phone(db, clock, None, center.id, expert_id, device_id=DEVICE["id"])
    db.commit()
    issued = client.post(f"/api/v1/call/{token}/challenge", headers=PHONE)
    clock.advance(timedelta(seconds=8))
    other = submit(client, issued.json(), live(OTHER), clock=clock)
    assert other.status_code == 201 and not other.json()["passed"], other.text

    issued = client.post(f"/api/v1/call/{token}/challenge", headers=PHONE)
    clock.advance(timedelta(seconds=8))
    filmed = submit(client, issued.json(), live(PERSON), clock=clock)
    assert filmed.status_code == 201 and filmed.json()["passed"], filmed.text
    face = filmed.json()["session"]["token"]
    options = client.post(
        f"/api/v1/call/{token}/passkey", json={"face_session": face}, headers=PHONE
    ).json()
    assertion = phone.get(options["publicKey"])
    # An assertion made for another challenge (a sign-in's, say) does not confirm this one.
    forged = phone.get({**options["publicKey"], "challenge": "A" * 43})
    wrong = client.post(
        f"/api/v1/call/{token}/answer",
        json={"face_session": face, "decision": "accept", "passkey": {"assertion": forged}},
        headers=PHONE,
    )
    assert "no such passkey challenge" in assert_problem(wrong, 403, "passkey-challenge")["detail"]
    assert _status(db, assignment_id) == "invited"
    right = client.post(
        f"/api/v1/call/{token}/answer",
        json={"face_session": face, "decision": "accept", "passkey": {"assertion": assertion}},
        headers=PHONE,
    )
    assert right.status_code == 200, right.text


def test_checks_per_call_up_are_limited(
    client: TestClient,
    services: Services,
    db: Session,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
) -> None:
    token, _, _ = _member_called(client, services, db, center)
    for _ in range(5):
        assert client.post(f"/api/v1/call/{token}/challenge", headers=PHONE).status_code == 201
    assert_problem(
        client.post(f"/api/v1/call/{token}/challenge", headers=PHONE), 429, "call-up-checks-used"
    )
