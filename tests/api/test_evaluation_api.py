"""The committee at work over HTTP: accepting, the recusal declaration (a conflict brings
in the backup), score validation and the submit lock, the chair (appointed or elected),
aggregation by both rules, voided sheets of a replaced member, and dissent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from models.clock import FrozenClock
from models.tables import AuditEntry, ScoreSheet
from tests.api.committee import BIDDERS, Committee, build_committee
from tests.api.helpers import assert_problem
from tests.factories import CenterWithStaff


def _post(committee: Committee, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return committee.client.post(path, json=body, headers=headers)


def _score(committee: Committee, headers: dict[str, str], points: Any) -> Any:
    return committee.client.put(
        "/api/v1/evaluation/scores", json={"points": points}, headers=headers
    )


def _ready(committee: Committee, member: dict[str, Any]) -> dict[str, str]:
    headers = committee.sign_in(member)
    committee.declare_no_conflict(headers)
    return headers


def test_an_invitation_is_answered_from_the_phone(committee: Committee) -> None:
    member = committee.members[0]
    backup = next(b for b in committee.backups if b["specialty"] == member["specialty"])
    headers = committee.sign_in(member, accept=False)
    overview = committee.client.get("/api/v1/evaluation", headers=headers).json()
    assert overview["me"]["status"] == "invited"
    # Nothing is evaluated before accepting.
    refused = _post(
        committee,
        "/api/v1/evaluation/recusal",
        headers,
        {"conflict": False, "statement": "本人无利害关系，特此声明。"},
    )
    assert_problem(refused, 409, "seat-not-accepted")
    no_reason = _post(committee, "/api/v1/evaluation/response", headers, {"accept": False})
    assert_problem(no_reason, 422, "validation-failed")
    declined = _post(
        committee, "/api/v1/evaluation/response", headers, {"accept": False, "reason": "出差在外"}
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    # The seat is gone: the session can no longer act, and the backup is invited.
    assert_problem(committee.client.get("/api/v1/evaluation", headers=headers), 403, "not-seated")
    committee.refresh()
    assert any(m["expert_id"] == backup["expert_id"] for m in committee.members)


def test_a_declared_conflict_replaces_the_member(committee: Committee, db: Session) -> None:
    member = committee.members[0]
    backup = next(b for b in committee.backups if b["specialty"] == member["specialty"])
    headers = committee.sign_in(member)
    bad_unit = _post(
        committee,
        "/api/v1/evaluation/recusal",
        headers,
        {
            "conflict": True,
            "statement": "本人曾在该单位任职，申请回避。",
            "related_units": ["91110000XXXXXXXXXX"],
        },
    )
    assert_problem(bad_unit, 422, "scores-invalid")
    declared = _post(
        committee,
        "/api/v1/evaluation/recusal",
        headers,
        {
            "conflict": True,
            "statement": "本人曾在该单位任职，申请回避。",
            "related_units": [BIDDERS[0]],
        },
    )
    assert declared.status_code == 201, declared.text
    assert declared.json()["seat_status"] == "replaced"
    committee.refresh()
    gone = next(m for m in committee.members if m["assignment_id"] == member["assignment_id"])
    assert gone["status"] == "replaced"
    promoted = next(m for m in committee.members if m["expert_id"] == backup["expert_id"])
    assert promoted["status"] == "invited"
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "evaluation.recusal_declared")
    ).scalar_one()
    assert entry.details["conflict"] is True and len(entry.details["statement_sha256"]) == 64
    # Leaving the committee ends the member's sessions.
    gone_session = committee.client.get("/api/v1/evaluation", headers=headers)
    assert_problem(gone_session, 401, "evaluation-session-invalid")


def test_scores_are_validated_saved_as_drafts_and_locked_on_submit(
    committee: Committee, db: Session
) -> None:
    member = committee.members[1]
    headers = committee.sign_in(member)
    assert_problem(_score(committee, headers, {}), 409, "recusal-missing")
    committee.declare_no_conflict(headers)
    again = _post(
        committee,
        "/api/v1/evaluation/recusal",
        headers,
        {"conflict": False, "statement": "再次声明无利害关系。"},
    )
    assert_problem(again, 409, "recusal-declared")

    over = _score(committee, headers, {BIDDERS[0]: {"投标报价": 61}})
    body = assert_problem(over, 422, "scores-invalid")
    assert any("outside 0-60" in p for p in body["problems"])
    assert db.execute(select(ScoreSheet)).first() is None  # nothing stored

    draft = _score(committee, headers, {BIDDERS[0]: {"投标报价": 48.5}})
    assert draft.status_code == 200 and draft.json()["status"] == "draft"
    incomplete = _post(committee, "/api/v1/evaluation/scores/submit", headers)
    body = assert_problem(incomplete, 422, "scores-invalid")
    assert any("not scored on" in p for p in body["problems"])

    full = committee.full_sheet()
    assert _score(committee, headers, full).json()["version"] == 2
    # The draft survives: the overview returns it as saved.
    overview = committee.client.get("/api/v1/evaluation", headers=headers).json()
    assert overview["sheet"]["points"] == full
    submitted = _post(committee, "/api/v1/evaluation/scores/submit", headers)
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"
    assert_problem(_score(committee, headers, full), 409, "scores-locked")
    assert_problem(
        _post(committee, "/api/v1/evaluation/scores/submit", headers), 409, "scores-locked"
    )


def _score_all(committee: Committee, bases: list[float]) -> None:
    for member, base in zip(committee.seated(), bases, strict=True):
        headers = committee.phones.get(member["assignment_id"]) or _ready(committee, member)
        assert _score(committee, headers, committee.full_sheet(base)).status_code == 200
        assert _post(committee, "/api/v1/evaluation/scores/submit", headers).status_code == 200


def test_the_chair_is_elected_and_aggregates(committee: Committee) -> None:
    phones = [_ready(committee, m) for m in committee.members]
    chair = committee.members[2]["assignment_id"]
    for headers in phones[:2]:
        vote = _post(committee, "/api/v1/evaluation/chair/vote", headers, {"assignment_id": chair})
        assert vote.json()["chair_assignment_id"] is None  # 2 of 5 is no majority
    elected = _post(committee, "/api/v1/evaluation/chair/vote", phones[2], {"assignment_id": chair})
    assert elected.json() == {"chair_assignment_id": chair, "chosen_by": "elected"}

    # Not everyone has submitted yet; only the chair may aggregate.
    assert_problem(
        _post(committee, "/api/v1/evaluation/aggregate", phones[2]), 409, "scoring-incomplete"
    )
    _score_all(committee, [0, 1, 2, 3, 4])
    assert_problem(_post(committee, "/api/v1/evaluation/aggregate", phones[0]), 403, "not-chair")
    aggregated = _post(committee, "/api/v1/evaluation/aggregate", phones[2])
    assert aggregated.status_code == 200, aggregated.text
    results = aggregated.json()["results"]
    assert results["rule"] == "mean"
    # The second bidder got one point more per criterion from everyone: it ranks first.
    assert [s["credit_code"] for s in results["standings"]] == [BIDDERS[1], BIDDERS[0]]
    first, second = (float(s["score"]) for s in results["standings"])
    assert first == pytest.approx(second + 3, abs=0.02)
    # The results are frozen.
    assert_problem(
        _post(committee, "/api/v1/evaluation/aggregate", phones[2]), 409, "results-frozen"
    )
    staff_view = committee.client.get(
        f"/api/v1/projects/{committee.project_id}/results", headers=committee.operator
    ).json()
    assert staff_view["results"] == results

    dissent = _post(
        committee,
        "/api/v1/evaluation/dissent",
        phones[4],
        {"text": "本人认为第二名的技术方案评分偏高，理由如下……"},
    )
    assert dissent.status_code == 201, dissent.text
    twice = _post(
        committee, "/api/v1/evaluation/dissent", phones[4], {"text": "再补充一条不同意见内容。"}
    )
    assert_problem(twice, 409, "invalid-transition")


def test_trimmed_mean_ignores_the_extremes(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> None:
    committee = build_committee(client, center, db, clock, services, aggregation="trimmed_mean")
    phones = [_ready(committee, m) for m in committee.members]
    appointed = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/chair",
        json={"assignment_id": committee.members[0]["assignment_id"]},
        headers=committee.operator,
    )
    assert appointed.json()["chosen_by"] == "appointed"
    # One member far below the others: the trimmed mean drops them (and the top score).
    _score_all(committee, [-30, 0, 0, 0, 2])
    results = _post(committee, "/api/v1/evaluation/aggregate", phones[0]).json()["results"]
    assert results["rule"] == "trimmed_mean"
    for standing in results["standings"]:
        totals = sorted(float(t) for t in standing["totals"].values())
        middle = sum(totals[1:-1]) / 3
        assert float(standing["score"]) == pytest.approx(middle, abs=0.01)


def test_a_member_replaced_after_scoring_has_their_sheet_voided(
    committee: Committee, db: Session
) -> None:
    phones = [_ready(committee, m) for m in committee.members]
    absent = committee.members[3]
    assert _score(committee, phones[3], committee.full_sheet()).status_code == 200
    assert _post(committee, "/api/v1/evaluation/scores/submit", phones[3]).status_code == 200
    replaced = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/assignments/{absent['assignment_id']}/replace",
        json={"reason": "评标期间擅自离开"},
        headers=committee.operator,
    )
    assert replaced.status_code == 200, replaced.text
    sheet = db.execute(
        select(ScoreSheet).where(ScoreSheet.assignment_id == absent["assignment_id"])
    ).scalar_one()
    db.refresh(sheet)
    assert sheet.status == "void" and sheet.void_reason == "评标期间擅自离开"
    assert sheet.points == committee.full_sheet()  # kept, not deleted
    after = committee.client.get("/api/v1/evaluation", headers=phones[3])
    assert_problem(after, 401, "evaluation-session-invalid")

    # The backup signs in, scores afresh, and the committee can finish.
    newcomer = next(
        m
        for m in committee.seated()
        if m["assignment_id"] == replaced.json()["promoted_assignment_id"]
    )
    _ready(committee, newcomer)
    chair = committee.members[0]["assignment_id"]
    committee.client.post(
        f"/api/v1/projects/{committee.project_id}/chair",
        json={"assignment_id": chair},
        headers=committee.operator,
    )
    _score_all(committee, [0, 1, 2, 3, 4])
    results = _post(committee, "/api/v1/evaluation/aggregate", phones[0]).json()["results"]
    assert absent["assignment_id"] not in results["members"]
    assert replaced.json()["promoted_assignment_id"] in results["members"]


def test_nothing_is_declared_or_scored_before_the_evaluation_starts(
    committee: Committee, db: Session, clock: FrozenClock
) -> None:
    from datetime import timedelta

    from models.tables import Project

    project = db.get(Project, committee.project_id)
    assert project is not None
    project.evaluation_start = clock.now() + timedelta(hours=1)
    db.commit()
    headers = committee.sign_in(committee.members[0])  # accepting early is fine
    early = _post(
        committee,
        "/api/v1/evaluation/recusal",
        headers,
        {"conflict": False, "statement": "本人与本项目无利害关系，特此声明。"},
    )
    assert_problem(early, 409, "evaluation-not-started")
    assert_problem(_score(committee, headers, {}), 409, "evaluation-not-started")
    clock.advance(timedelta(hours=1))
    committee.declare_no_conflict(headers)
    assert _score(committee, headers, committee.full_sheet()).status_code == 200


def test_a_chair_who_declines_leaves_the_chair_empty(committee: Committee) -> None:
    chair = committee.members[0]
    appointed = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/chair",
        json={"assignment_id": chair["assignment_id"]},
        headers=committee.operator,
    )
    assert appointed.json()["chair_assignment_id"] == chair["assignment_id"]
    headers = committee.sign_in(chair, accept=False)
    declined = _post(
        committee, "/api/v1/evaluation/response", headers, {"accept": False, "reason": "生病"}
    )
    assert declined.status_code == 200
    other = committee.sign_in(committee.members[1])
    overview = committee.client.get("/api/v1/evaluation", headers=other).json()
    assert not any(seat["is_chair"] for seat in overview["committee"])


def test_a_conflict_is_declared_even_with_no_backup_left(committee: Committee) -> None:
    a01 = [m for m in committee.members if m["specialty"] == "A01"]
    statement = {"conflict": True, "statement": "本人与投标人存在利害关系，申请回避。"}
    for member in a01[:2]:  # one backup in A01: the second conflict finds none
        headers = committee.sign_in(member)
        declared = _post(
            committee,
            "/api/v1/evaluation/recusal",
            headers,
            {**statement, "related_units": [BIDDERS[0]]},
        )
        assert declared.status_code == 201, declared.text
    committee.refresh()
    statuses = {m["assignment_id"]: m["status"] for m in committee.members}
    assert statuses[a01[1]["assignment_id"]] == "replaced"
    # The seat stays vacant; the chair cannot aggregate a short committee.
    chair = next(m for m in committee.seated() if m["specialty"] == "B02")
    headers = committee.sign_in(chair)
    committee.client.post(
        f"/api/v1/projects/{committee.project_id}/chair",
        json={"assignment_id": chair["assignment_id"]},
        headers=committee.operator,
    )
    short = _post(committee, "/api/v1/evaluation/aggregate", headers)
    body = assert_problem(short, 409, "committee-incomplete")
    assert body["vacant"] == ["A01: 2 of 3"]
