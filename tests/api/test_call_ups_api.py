"""Calling drawn members up (issue 27, items 1 and 2): the draw queues a call-up per member,
the job sends each through the messaging provider (the local outbox here: real files) with
an answer link and a deadline, the member answers from the link, a member who lets the
deadline pass counts as declining and the next backup is called up, a provider that keeps
refusing is retried and then reported, and who was called stays sealed as the committee is."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.jobs import expire_call_ups, send_call_ups
from api.services import Services
from evaluation.committee import call_ups
from evaluation.committee.call_up_answers import NO_ANSWER
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import Assignment, AuditEntry, CallUp
from tests.api.committee import Committee
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import _drawn, pool, project_payload
from tests.factories import CenterWithStaff

__all__ = ["pool"]  # the drawable experts, a fixture of the projects tests

LINK = re.compile(r"/m/call/([A-Za-z0-9_-]+)")


def _outbox(services: Services) -> list[dict[str, str]]:
    folder = services.settings.data_dir / "outbox"
    found = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    return [m for m in found if m["purpose"] == "call-up"]


def _token(message: dict[str, str]) -> str:
    found = LINK.search(message["text"])
    assert found, message["text"]
    return found.group(1)


def _actions(db: Session, action: Action) -> list[AuditEntry]:
    db.expire_all()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action.value)))


def _called(client: TestClient, project_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/projects/{project_id}/call-ups", headers=headers)
    assert answer.status_code == 200, answer.text
    body: list[dict[str, Any]] = answer.json()
    return body


def test_each_drawn_member_is_called_up_and_answers_from_the_link(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    db: Session,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    drawn = _drawn(client, operator, "CALL-1", admin)
    project_id = drawn["project"]["id"]
    queued = _called(client, project_id, operator)
    assert len(queued) == 5 and {c["status"] for c in queued} == {"queued"}
    # Operators follow the answers but do not learn who was drawn before the evaluation.
    assert {c["name"] for c in queued} == {None} and {c["expert_id"] for c in queued} == {None}

    assert send_call_ups(services) == 5
    messages = _outbox(services)
    assert len(messages) == 5
    payload = project_payload()
    for message in messages:
        text = message["text"]
        # Time, mode, deadline and link; never the project, its tenderer or bidders.
        assert "12月01日 17:00" in text and "远程评标" in text and "11月23日 19:00" in text
        for secret in [payload["name"], payload["tenderer"]["name"], "CALL-1"] + [
            b["name"] for b in payload["bidders"]
        ]:
            assert secret not in text
    sent = _called(client, project_id, admin)
    assert {c["status"] for c in sent} == {"sent"} and all(c["name"] for c in sent)
    assert {c["deadline_at"][:16] for c in sent} == {"2026-11-23T11:00"}
    assert len(_actions(db, Action.CALL_UP_SENT)) == 5
    assert send_call_ups(services) == 0  # nothing is sent twice

    accepting, declining = _token(messages[0]), _token(messages[1])
    page = client.get(f"/m/call/{accepting}")
    assert page.status_code == 200 and 'id="accept"' in page.text
    assert payload["name"] not in page.text
    accepted = client.post(f"/m/call/{accepting}", data={"decision": "accept"})
    assert accepted.status_code == 200 and 'data-answer="accepted"' in accepted.text
    again = client.post(f"/m/call/{accepting}", data={"decision": "decline", "reason": "x"})
    assert again.status_code == 410 and "call-up-expired" in again.text

    unexplained = client.post(f"/m/call/{declining}", data={"decision": "decline"})
    assert unexplained.status_code == 422 and 'id="problem"' in unexplained.text
    declined = client.post(
        f"/m/call/{declining}", data={"decision": "decline", "reason": "出差在外"}
    )
    assert declined.status_code == 200 and 'data-answer="declined"' in declined.text
    answers = {c["answer"] for c in _called(client, project_id, operator)}
    assert {"accepted", "declined"} <= answers
    # The backup of the decliner's specialty moved up and is called up in turn.
    after = _called(client, project_id, admin)
    promoted = [c for c in after if c["status"] == "queued"]
    assert len(promoted) == 1 and promoted[0]["seat_status"] == "invited"
    assert send_call_ups(services) == 1
    assert len(_outbox(services)) == 6
    assert client.get("/m/call/not-a-real-token").status_code == 404


def test_a_member_who_lets_the_deadline_pass_counts_as_declining(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    clock: FrozenClock,
    db: Session,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    project_id = _drawn(client, operator, "CALL-2", admin)["project"]["id"]
    send_call_ups(services)
    tokens = [_token(m) for m in _outbox(services)]
    clock.advance(timedelta(hours=1))
    assert expire_call_ups(services) == 0
    client.post(f"/m/call/{tokens[0]}", data={"decision": "accept"})
    clock.advance(timedelta(hours=1, seconds=1))
    # Four did not answer; each specialty has one backup, so two seats stay vacant.
    assert expire_call_ups(services) == 4
    db.expire_all()
    seats = db.scalars(select(Assignment).where(Assignment.project_id == project_id)).all()
    declined = [s for s in seats if s.status == "declined"]
    assert len(declined) == 4 and {s.reason for s in declined} == {NO_ANSWER}
    assert len(_actions(db, Action.CALL_UP_EXPIRED)) == 4
    assert len(_actions(db, Action.CALL_UP_SEAT_UNFILLED)) == 2
    invited = [s for s in seats if s.role == "member" and s.status == "invited"]
    assert len(invited) == 2  # the two backups, called up now
    assert send_call_ups(services) == 2
    late = client.post(f"/m/call/{tokens[1]}", data={"decision": "accept"})
    assert late.status_code == 410
    answers = [c["answer"] for c in _called(client, project_id, operator)]
    assert answers.count("expired") == 4 and answers.count("accepted") == 1


def test_a_provider_that_keeps_refusing_is_retried_then_reported(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    clock: FrozenClock,
    db: Session,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    project_id = _drawn(client, operator, "CALL-3", admin)["project"]["id"]
    # The outbox cannot be written: a file stands where its folder should be.
    (services.settings.data_dir / "outbox").write_text("not a folder")
    attempts = services.settings.call_up_max_attempts
    for attempt in range(attempts):
        assert send_call_ups(services) == 0
        calls = _called(client, project_id, operator)
        assert {c["attempts"] for c in calls} == {attempt + 1}
        assert all("outbox cannot be written" in c["last_error"] for c in calls)
        assert send_call_ups(services) == 0  # not due again until the wait has passed
        clock.advance(timedelta(seconds=services.settings.call_up_retry_s * 2**attempt))
    assert {c["status"] for c in _called(client, project_id, operator)} == {"failed"}
    assert len(_actions(db, Action.CALL_UP_FAILED)) == 5
    # Nobody was told, so nobody's deadline runs: the operator calls them instead.
    assert expire_call_ups(services) == 0


def test_supervisors_see_call_ups_once_the_evaluation_starts(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    clock: FrozenClock,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    project_id = _drawn(client, operator, "CALL-4", admin)["project"]["id"]
    supervisor = center.headers(Role.SUPERVISOR)
    sealed = client.get(f"/api/v1/projects/{project_id}/call-ups", headers=supervisor)
    assert_problem(sealed, 403, "committee-sealed")
    clock.advance(timedelta(days=9))
    opened = _called(client, project_id, supervisor)
    assert len(opened) == 5 and all(c["name"] for c in opened)
    assert all(c["name"] for c in _called(client, project_id, operator))


def test_a_member_who_cannot_come_is_not_refused_when_no_backup_is_left(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    db: Session,
) -> None:
    """A01 has one backup: the second decline there finds nobody to ask. A decline by
    link still stands (the operator's form refuses it with no-backup-left instead), and
    the seat waits for a supplementary draw."""
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    _drawn(client, operator, "CALL-5", admin)
    send_call_ups(services)
    in_a01 = []
    for message in _outbox(services):
        token = _token(message)
        seat = db.get(Assignment, call_ups.by_token(db, token).assignment_id)
        assert seat is not None
        if seat.specialty == "A01":
            in_a01.append(token)
    for token in in_a01[:2]:
        answer = client.post(f"/m/call/{token}", data={"decision": "decline", "reason": "生病"})
        assert answer.status_code == 200 and 'data-answer="declined"' in answer.text
    assert len(_actions(db, Action.CALL_UP_SEAT_UNFILLED)) == 1
    assert len(_actions(db, Action.ASSIGNMENT_DECLINED)) == 2


def test_signing_in_answers_a_call_up_nobody_answered(
    committee: Committee, services: Services, db: Session
) -> None:
    """A member who comes without answering the message has answered it: no deadline may
    decline someone already in the room."""
    member = committee.members[0]
    send_call_ups(services)
    committee.sign_in(member, accept=False)
    db.expire_all()
    [call_up] = db.scalars(
        select(CallUp).where(CallUp.assignment_id == member["assignment_id"])
    ).all()
    assert call_up.answer == "signed_in" and call_up.answered_at is not None
    assert call_up.id not in {
        c.id for c in call_ups.overdue(db, services.clock.now() + timedelta(days=30))
    }
