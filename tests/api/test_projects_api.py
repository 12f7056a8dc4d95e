"""Projects and the committee draw over HTTP: the regimes' committee rules, eligibility
and every exclusion reason, the commitment before the entropy, a proof that
`evalsign-draw-v1` replays, and the sealed committee list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.committee.draw_proof import verify_proof
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import Assignment, AuditEntry, Project
from tests.api.helpers import assert_problem
from tests.factories import (
    CenterWithStaff,
    credit_code,
    drawable_expert,
    establish_pki,
)

TENDERER = credit_code()
BIDDERS = [credit_code(), credit_code()]


def project_payload(**overrides: Any) -> dict[str, Any]:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    payload: dict[str, Any] = {
        "code": f"JSGC-{datetime.now().timestamp()}",
        "name": "某市第一中学教学楼新建工程施工",
        "regime": "tendering",
        "tenderer": {"name": "某市教育局", "credit_code": TENDERER},
        "bidders": [
            {"name": "甲建设集团有限公司", "credit_code": BIDDERS[0]},
            {"name": "乙建筑工程有限公司", "credit_code": BIDDERS[1]},
        ],
        "sections": [{"code": "1", "name": "第一标段"}],
        "evaluation_start": start.isoformat(),
        "evaluation_end": (start + timedelta(hours=8)).isoformat(),
        "committee": [
            {"specialty": "A01", "seats": 3, "backups": 1},
            {"specialty": "B02", "seats": 2, "backups": 1},
        ],
        "criteria": [
            {"name": "投标报价", "max_points": 60, "group": "price"},
            {"name": "施工组织设计", "max_points": 30, "group": "technical"},
            {"name": "企业信誉", "max_points": 10, "group": "business"},
        ],
    }
    payload.update(overrides)
    return payload


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"committee": [{"specialty": "A01", "seats": 4}]}, "at least 5"),
        ({"committee": [{"specialty": "A01", "seats": 6}]}, "odd number"),
        (
            {"committee": [{"specialty": "A01", "seats": 3}], "tenderer_representatives": 2},
            "two thirds",
        ),
        (
            {
                "regime": "procurement",
                "budget_yuan": 12_000_000,
                "committee": [{"specialty": "A01", "seats": 5}],
            },
            "at least 7",
        ),
        (
            {
                "committee": [{"specialty": "A01", "seats": 3}],
                "tenderer_representatives": 2,
                "aggregation": "trimmed_mean",
            },
            "highest and lowest",
        ),
    ],
)
def test_committee_rules_are_enforced(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    overrides: dict[str, Any],
    fragment: str,
) -> None:
    response = client.post(
        "/api/v1/projects",
        json=project_payload(**overrides),
        headers=center.headers(Role.OPERATOR),
    )
    body = assert_problem(response, 422, "committee-rule-violated")
    assert any(fragment in problem for problem in body["problems"]), body
    assert db.execute(select(func.count()).select_from(Project)).scalar_one() == 0


def test_lawful_projects_are_created_once(client: TestClient, center: CenterWithStaff) -> None:
    operator = center.headers(Role.OPERATOR)
    procurement = project_payload(
        regime="procurement",
        budget_yuan=12_000_000,
        committee=[{"specialty": "A01", "seats": 7, "backups": 2}],
    )
    assert client.post("/api/v1/projects", json=procurement, headers=operator).status_code == 201
    payload = project_payload()
    assert client.post("/api/v1/projects", json=payload, headers=operator).status_code == 201
    assert_problem(
        client.post("/api/v1/projects", json=payload, headers=operator), 409, "duplicate-project"
    )
    bad_code = project_payload(tenderer={"name": "x", "credit_code": TENDERER[:-1] + "0"})
    if bad_code["tenderer"]["credit_code"] != TENDERER:
        assert_problem(
            client.post("/api/v1/projects", json=bad_code, headers=operator),
            422,
            "validation-failed",
        )


@pytest.fixture
def pool(
    center: CenterWithStaff, db: Session, clock: FrozenClock, services: Services
) -> dict[str, list[str]]:
    establish_pki(db, clock, services, center)

    def make(specialties: list[str], **kwargs: Any) -> str:
        return drawable_expert(db, clock, services, center, specialties, **kwargs)

    return {
        "a": [make(["A0101"]) for _ in range(6)],
        "b": [make(["B0203"]) for _ in range(4)],
        "bidder": [make(["A0102"], employer_credit_code=BIDDERS[1])],
        "tenderer": [make(["B02"], employer_credit_code=TENDERER)],
        "no_face": [make(["A0101"], enrolled=False)],
        "no_credential": [make(["A0101"], credential=False)],
        "other": [make(["C03"])],
    }


def test_a_draw_commits_runs_and_proves_itself(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    db: Session,
    clock: FrozenClock,
) -> None:
    operator = center.headers(Role.OPERATOR)
    project = client.post("/api/v1/projects", json=project_payload(), headers=operator).json()
    committed = client.post(f"/api/v1/projects/{project['id']}/draws", headers=operator)
    assert committed.status_code == 201
    draw = committed.json()
    assert draw["status"] == "committed" and len(draw["commitment"]) == 64
    assert "server_secret" not in draw["proof"]

    excluded_by_operator = pool["a"][0]
    ran = client.post(
        f"/api/v1/projects/{project['id']}/draws/{draw['id']}/run",
        json={
            "public_entropy": "07 23 41 19 88",
            "exclusions": [{"expert_id": excluded_by_operator, "reason": "与投标人存在亲属关系"}],
        },
        headers=operator,
    )
    assert ran.status_code == 200, ran.text
    # The operator who ran it does not see who was drawn; an admin sees the whole proof.
    assert "specialties" not in ran.json()["proof"]
    record = f"/api/v1/projects/{project['id']}/draws/{draw['id']}"
    assert "server_secret" not in client.get(record, headers=operator).json()["proof"]
    proof = client.get(record, headers=center.headers(Role.ADMIN)).json()["proof"]
    verify_proof(proof)  # anyone can replay it
    assert proof["commitment"] == draw["commitment"] and proof["server_secret"]
    reasons = {item["expert_id"]: item["reason"] for item in proof["excluded"]}
    assert reasons == {
        pool["bidder"][0]: "employer-is-bidder",
        pool["tenderer"][0]: "employer-is-tenderer",
        excluded_by_operator: "excluded-by-operator",
    }
    ranked = {e["expert_id"] for s in proof["specialties"] for e in s["ranking"]}
    for ineligible in pool["no_face"] + pool["no_credential"] + pool["other"]:
        assert ineligible not in ranked and ineligible not in reasons
    a, b = proof["specialties"]
    assert len(a["selected"]) == 3 and len(a["backup_ids"]) == 1
    assert len(b["selected"]) == 2 and len(b["backup_ids"]) == 1
    members = (
        db.execute(select(Assignment.expert_id).where(Assignment.role == "member")).scalars().all()
    )
    assert set(members) == set(a["selected"]) | set(b["selected"])

    assert_problem(
        client.post(
            f"/api/v1/projects/{project['id']}/draws/{draw['id']}/run",
            json={"public_entropy": "again"},
            headers=operator,
        ),
        409,
        "invalid-transition",
    )
    assert_problem(
        client.post(f"/api/v1/projects/{project['id']}/draws", headers=operator),
        409,
        "draw-exists",
    )
    audit = db.execute(select(AuditEntry).where(AuditEntry.action == "draw.completed")).scalar_one()
    assert audit.details["operator_exclusions"] == {excluded_by_operator: "与投标人存在亲属关系"}

    # Sealed: before the evaluation starts only admins see names.
    path = f"/api/v1/projects/{project['id']}/committee"
    assert_problem(client.get(path, headers=operator), 403, "committee-sealed")
    assert_problem(
        client.get(path, headers=center.headers(Role.SUPERVISOR)), 403, "committee-sealed"
    )
    named = client.get(path, headers=center.headers(Role.ADMIN)).json()
    assert len([m for m in named if m["role"] == "member"]) == 5 and named[0]["name"]
    clock.advance(datetime(2026, 12, 1, 9, 1, tzinfo=UTC) - clock.now())
    assert client.get(path, headers=center.headers(Role.SUPERVISOR)).status_code == 200
    assert client.get(record, headers=operator).json()["proof"] == proof  # unsealed


def test_recent_service_for_the_same_tenderer_excludes(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    db: Session,
) -> None:
    operator = center.headers(Role.OPERATOR)

    def drawn(code: str) -> dict[str, Any]:
        project = client.post(
            "/api/v1/projects", json=project_payload(code=code), headers=operator
        ).json()
        draw = client.post(f"/api/v1/projects/{project['id']}/draws", headers=operator).json()
        ran = client.post(
            f"/api/v1/projects/{project['id']}/draws/{draw['id']}/run",
            json={"public_entropy": code},
            headers=operator,
        )
        if ran.status_code != 200:
            return ran
        return client.get(  # the whole proof, as an admin sees it
            f"/api/v1/projects/{project['id']}/draws/{draw['id']}",
            headers=center.headers(Role.ADMIN),
        )

    first = drawn("P-1")
    assert first.status_code == 200
    proof = first.json()["proof"]
    members = {m for specialty in proof["specialties"] for m in specialty["selected"]}
    second = drawn("P-2")
    assert second.status_code == 200, second.text
    again = second.json()["proof"]
    reasons = {item["expert_id"]: item["reason"] for item in again["excluded"]}
    assert {m: reasons.get(m) for m in members} == dict.fromkeys(members, "served-same-tenderer")
    ranked = {e["expert_id"] for s in again["specialties"] for e in s["ranking"]}
    assert not members & ranked
    # With the served experts out, a third draw for this tenderer has too few: refused,
    # and the committed draw stays as it was.
    third = drawn("P-3")
    assert_problem(third, 409, "not-enough-experts")
    assert db.execute(select(func.count()).select_from(Assignment)).scalar_one() == (
        len(members)
        + 2
        + 5
        + len(again["specialties"][0]["backup_ids"])
        + len(again["specialties"][1]["backup_ids"])
    )


def _drawn(
    client: TestClient, operator: dict[str, str], code: str, admin: dict[str, str]
) -> dict[str, Any]:
    project = client.post(
        "/api/v1/projects", json=project_payload(code=code), headers=operator
    ).json()
    draw = client.post(f"/api/v1/projects/{project['id']}/draws", headers=operator).json()
    ran = client.post(
        f"/api/v1/projects/{project['id']}/draws/{draw['id']}/run",
        json={"public_entropy": code},
        headers=operator,
    )
    assert ran.status_code == 200, ran.text
    record = client.get(
        f"/api/v1/projects/{project['id']}/draws/{draw['id']}", headers=admin
    ).json()
    return {"project": project, "proof": record["proof"]}


class TestDeclines:
    @pytest.fixture
    def settings(self, tmp_path: Any, database_url: str) -> Any:
        from models.settings import Settings

        # One decline within the window keeps an expert out of the next draw.
        return Settings(
            data_dir=tmp_path,
            database_url=database_url,
            audit_checkpoint_every_s=0,
            jobs_in_serve=False,
            draw_decline_limit=1,
            draw_cooldown_days=0,
        )

    def test_a_decline_promotes_the_next_backup_and_counts_later(
        self,
        client: TestClient,
        center: CenterWithStaff,
        pool: dict[str, list[str]],
        clock: FrozenClock,
    ) -> None:
        operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
        first = _drawn(client, operator, "D-1", admin)
        project_id = first["project"]["id"]
        a = first["proof"]["specialties"][0]
        members = client.get(f"/api/v1/projects/{project_id}/committee", headers=admin).json()
        decliner = next(m for m in members if m["expert_id"] == a["selected"][0])
        path = f"/api/v1/projects/{project_id}/assignments/{decliner['assignment_id']}/response"
        assert_problem(
            client.post(path, json={"accept": False}, headers=operator), 422, "validation-failed"
        )
        answer = client.post(path, json={"accept": False, "reason": "出差"}, headers=operator)
        assert answer.status_code == 200, answer.text
        assert answer.json()["promoted_expert_id"] == a["backup_ids"][0]
        assert_problem(
            client.post(path, json={"accept": True}, headers=operator), 409, "invalid-transition"
        )
        # A second decline in A01 finds no backup left.
        second = next(m for m in members if m["expert_id"] == a["selected"][1])
        refused = client.post(
            f"/api/v1/projects/{project_id}/assignments/{second['assignment_id']}/response",
            json={"accept": False, "reason": "生病"},
            headers=operator,
        )
        assert_problem(refused, 409, "no-backup-left")
        after = client.get(f"/api/v1/projects/{project_id}/committee", headers=admin).json()
        roles = {m["expert_id"]: (m["role"], m["status"]) for m in after}
        assert roles[a["backup_ids"][0]] == ("member", "invited")
        assert roles[a["selected"][1]] == (
            "member",
            "invited",
        )  # the refused decline changed nothing

        clock.advance(timedelta(days=1))
        later = _drawn(client, operator, "D-2", admin)
        reasons = {item["expert_id"]: item["reason"] for item in later["proof"]["excluded"]}
        assert reasons[decliner["expert_id"]] == "declined-recently"


def test_criteria_names_are_unique(client: TestClient, center: CenterWithStaff) -> None:
    criteria = project_payload()["criteria"]
    response = client.post(
        "/api/v1/projects",
        json=project_payload(criteria=[*criteria, dict(criteria[0])]),
        headers=center.headers(Role.OPERATOR),
    )
    body = assert_problem(response, 422, "validation-failed")
    assert "same name" in str(body)
