"""What the console's dashboard reads: the day's evaluations with sign-in progress (who,
when, by which second factor), open flags and missing signatures; the project search; and
the timeline's actors in words. Names stay sealed until the evaluation starts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from evaluation.registry.staff import Role
from models.tables import Project
from tests.api.committee import Committee
from tests.api.helpers import assert_problem

OVERVIEW = "/api/v1/supervision/overview"


def _glance(committee: Committee) -> dict[str, object]:
    answer = committee.client.get(OVERVIEW, headers=committee.center.headers(Role.SUPERVISOR))
    assert answer.status_code == 200, answer.text
    [mine] = [g for g in answer.json() if g["project_id"] == committee.project_id]
    return dict(mine)


def test_the_dashboard_follows_sign_in_progress(committee: Committee) -> None:
    before = _glance(committee)
    seats = committee.seated()
    assert before["sealed"] is False and before["signed_in"] == 0
    assert len(before["seats"]) == len(seats)  # type: ignore[arg-type]
    assert {s["name"] for s in before["seats"]} == {m["name"] for m in seats}  # type: ignore[union-attr]

    committee.sign_in(seats[0], "phone-first-0001")
    after = _glance(committee)
    assert after["signed_in"] == 1
    [signed] = [s for s in after["seats"] if s["signed_in_at"]]  # type: ignore[union-attr]
    assert signed["assignment_id"] == seats[0]["assignment_id"]
    assert signed["method"] in {"passkey", "sms", "in-person"}
    assert after["signatures_missing"] is None  # no report yet
    assert_problem(
        committee.client.get(OVERVIEW, headers=committee.operator), 403, "role-forbidden"
    )


def test_names_stay_sealed_until_the_evaluation_starts(committee: Committee, db: Session) -> None:
    project = db.get(Project, committee.project_id)
    assert project is not None
    project.evaluation_start = committee.clock.now() + timedelta(days=2)
    project.evaluation_end = project.evaluation_start + timedelta(hours=4)
    db.commit()
    glance = _glance(committee)
    assert glance["sealed"] is True
    assert glance["seats"] and all(s["name"] is None for s in glance["seats"])  # type: ignore[union-attr]
    timeline = committee.client.get(
        f"/api/v1/projects/{committee.project_id}/timeline",
        headers=committee.center.headers(Role.SUPERVISOR),
    ).json()
    assert all(e["actor_name"] is None for e in timeline if e["actor_kind"] == "expert")
    # An evaluation far off is not on today's dashboard.
    project.evaluation_start = committee.clock.now() + timedelta(days=30)
    project.evaluation_end = project.evaluation_start + timedelta(hours=4)
    db.commit()
    listed = committee.client.get(OVERVIEW, headers=committee.center.headers(Role.SUPERVISOR))
    assert committee.project_id not in {g["project_id"] for g in listed.json()}


def test_projects_are_found_by_code_or_name(committee: Committee) -> None:
    supervisor = committee.center.headers(Role.SUPERVISOR)
    url = "/api/v1/supervision/projects"
    code = committee.project["code"]
    for query in (code, code[-4:].lower(), "第一中学"):
        found = committee.client.get(url, params={"q": query}, headers=supervisor).json()
        assert [p["id"] for p in found] == [committee.project_id], query
    for query in ("不存在的项目", "%", "_"):
        found = committee.client.get(url, params={"q": query}, headers=supervisor).json()
        assert found == [], query
    status = committee.client.get(url, params={"status": "completed"}, headers=supervisor)
    assert status.json() == []
    assert_problem(
        committee.client.get(url, params={"status": "nonsense"}, headers=supervisor),
        422,
        "validation-failed",
    )


def test_the_timeline_names_its_actors(committee: Committee) -> None:
    committee.sign_in(committee.seated()[0], "phone-first-0001")
    timeline = committee.client.get(
        f"/api/v1/projects/{committee.project_id}/timeline",
        headers=committee.center.headers(Role.SUPERVISOR),
    ).json()
    kinds = {e["actor_kind"] for e in timeline}
    assert "operator" in kinds and None not in kinds
    experts = [e for e in timeline if e["actor_kind"] == "expert"]
    assert experts and all(e["actor_name"] for e in experts)
    staff = [e for e in timeline if e["actor_kind"] == "operator"]
    assert all(e["actor_name"] for e in staff)
