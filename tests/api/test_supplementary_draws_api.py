"""Supplementary draws over HTTP (issue 27, item 3): seats left vacant with no backup are
filled by a draw committed before its entropy, chained to the proof before it, that never
draws anyone drawn or excluded earlier; the drawn members are called up; refusals change
nothing; the chain of proofs replays with `evalsign draw verify`, sealed like the
committee."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.cli import main
from api.jobs import expire_call_ups, send_call_ups
from api.services import Services
from evaluation.committee.draw_proof import SUPPLEMENTARY, proof_hash, verify_chain
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import Assignment, AuditEntry, CallUp, Draw, Project
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import _drawn, pool, project_payload
from tests.factories import CenterWithStaff, drawable_expert

__all__ = ["pool"]  # the drawable experts, a fixture of the projects tests

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the evaluation start of project_payload


def _nobody_answers(services: Services, clock: FrozenClock) -> None:
    """Every drawn member lets the call-up's deadline pass: each specialty's one backup
    moves up, and the other seats stay vacant (A01: 2 of 3, B02: 1 of 2)."""
    send_call_ups(services)
    clock.advance(timedelta(hours=2, seconds=1))
    assert expire_call_ups(services) == 5


def _chain(client: TestClient, project_id: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = client.get(f"/api/v1/projects/{project_id}/draws/chain", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _counts(db: Session) -> tuple[int, int, int]:
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(Draw)) or 0,
        db.scalar(select(func.count()).select_from(Assignment)) or 0,
        db.scalar(select(func.count()).select_from(AuditEntry)) or 0,
    )


def _actions(db: Session, action: Action) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action.value)))


def test_vacant_seats_are_filled_by_supplementary_draws_chained_to_the_first(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    clock: FrozenClock,
    db: Session,
    tmp_path: Path,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    first = _drawn(client, operator, "SUP-1", admin)
    project_id = first["project"]["id"]
    draws = f"/api/v1/projects/{project_id}/draws"
    # Nothing is vacant yet: nothing to draw.
    assert_problem(
        client.post(f"{draws}/supplementary", json={}, headers=operator), 409, "no-vacant-seat"
    )

    _nobody_answers(services, clock)
    assert _chain(client, project_id, operator)["vacancies"] == {"A01": 2, "B02": 1}

    # Refusals change nothing.
    before = _counts(db)
    for body, status, code in [
        ({"specialties": ["Z99"]}, 422, "unknown-specialty"),
        ({"specialties": ["A01", "A01"]}, 422, "validation-failed"),
        ({"specialties": ["a01"]}, 422, "validation-failed"),
        ({"specialties": []}, 422, "validation-failed"),
        ({"specialties": ["A01"], "backups": -1}, 422, "validation-failed"),
        ({"specialties": ["A01"], "note": "x"}, 422, "validation-failed"),
    ]:
        assert_problem(
            client.post(f"{draws}/supplementary", json=body, headers=operator), status, code
        )
    assert_problem(
        client.post(f"{draws}/supplementary", json={}, headers=center.headers(Role.SUPERVISOR)),
        403,
        "role-forbidden",
    )
    assert _counts(db) == before

    # Commit first: the commitment is published before anyone gives the entropy.
    committed = client.post(
        f"{draws}/supplementary", json={"specialties": ["A01"]}, headers=operator
    )
    assert committed.status_code == 201, committed.text
    second = committed.json()
    assert (
        second["status"] == "committed" and second["previous_draw_id"] == first["proof"]["draw_id"]
    )
    assert second["spec"] == [{"specialty": "A01", "seats": 2, "backups": 0}]
    assert second["proof"] == {
        "algorithm": SUPPLEMENTARY,
        "draw_id": second["id"],
        "previous_draw_id": first["proof"]["draw_id"],
        "spec": second["spec"],
        "commitment": second["commitment"],
        "public_entropy": None,
    }
    # One open supplementary draw at a time: a commitment cannot be dropped for a new one.
    before = _counts(db)
    assert_problem(
        client.post(f"{draws}/supplementary", json={"specialties": ["B02"]}, headers=operator),
        409,
        "supplementary-draw-pending",
    )
    assert _counts(db) == before

    ran = client.post(
        f"{draws}/{second['id']}/run", json={"public_entropy": "11 27 35"}, headers=operator
    )
    assert ran.status_code == 200, ran.text
    assert "specialties" not in ran.json()["proof"]  # sealed for the operator
    assert_problem(
        client.post(
            f"{draws}/{second['id']}/run", json={"public_entropy": "again"}, headers=operator
        ),
        409,
        "invalid-transition",
    )
    assert _chain(client, project_id, operator)["vacancies"] == {"A01": 0, "B02": 1}
    assert_problem(
        client.post(f"{draws}/supplementary", json={"specialties": ["A01"]}, headers=operator),
        409,
        "no-vacant-seat",
    )

    # The rest (B02) by default: every specialty with a vacant seat.
    third = client.post(f"{draws}/supplementary", json={}, headers=operator).json()
    assert third["spec"] == [{"specialty": "B02", "seats": 1, "backups": 0}]
    assert third["previous_draw_id"] == second["id"]
    assert (
        client.post(
            f"{draws}/{third['id']}/run", json={"public_entropy": "02 14 33"}, headers=operator
        ).status_code
        == 200
    )
    assert _chain(client, project_id, operator)["vacancies"] == {"A01": 0, "B02": 0}

    # The chain, as an admin sees it: every link replays, none draws an earlier expert.
    chain = _chain(client, project_id, admin)
    proofs = chain["proofs"]
    assert [d["id"] for d in chain["draws"]] == [
        first["proof"]["draw_id"],
        second["id"],
        third["id"],
    ]
    assert verify_chain(proofs) == proofs
    assert proofs[0] == first["proof"]
    assert proofs[1]["previous_proof_hash"] == proof_hash(proofs[0])
    assert proofs[2]["previous_proof_hash"] == proof_hash(proofs[1])
    assert proofs[1]["commitment"] == second["commitment"]
    earlier = set(proofs[1]["prior"])
    assert {pool["bidder"][0], pool["tenderer"][0]} <= earlier  # excluded before: out again
    new_members = proofs[1]["specialties"][0]["selected"] + proofs[2]["specialties"][0]["selected"]
    assert len(new_members) == 3 and not set(new_members) & earlier

    # The drawn fill the seats and are called up.
    db.expire_all()
    seats = db.scalars(
        select(Assignment).where(Assignment.draw_id.in_([second["id"], third["id"]]))
    ).all()
    assert sorted((s.specialty, s.role, s.status) for s in seats) == [
        ("A01", "member", "invited"),
        ("A01", "member", "invited"),
        ("B02", "member", "invited"),
    ]
    called = db.scalars(select(CallUp.expert_id).where(CallUp.status == "queued")).all()
    assert set(new_members) <= set(called)
    listing = client.get(f"/api/v1/projects/{project_id}/committee", headers=admin).json()
    seated = [
        m for m in listing if m["role"] == "member" and m["status"] in ("invited", "accepted")
    ]
    assert len(seated) == 5
    assert len(_actions(db, Action.DRAW_SUPPLEMENTARY_COMMITTED)) == 2
    completed = _actions(db, Action.DRAW_SUPPLEMENTARY_COMPLETED)
    assert [e.details["seats_filled"] for e in completed] == [{"A01": 2}, {"B02": 1}]

    # Sealed like the committee: the operator sees the proofs once the evaluation starts.
    assert all("server_secret" not in p for p in _chain(client, project_id, operator)["proofs"])
    clock.advance(START + timedelta(minutes=1) - clock.now())
    assert _chain(client, project_id, operator)["proofs"] == proofs

    # `evalsign draw verify` replays the chain a supervisor downloads.
    path = tmp_path / "draw-proof.json"
    path.write_text(json.dumps(proofs, ensure_ascii=False), encoding="utf-8")
    assert main(["draw", "verify", str(path)]) == 0


def test_a_supplementary_backup_moves_up_when_a_drawn_member_declines(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    clock: FrozenClock,
    db: Session,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)
    extra = [drawable_expert(db, clock, services, center, ["A0101"]) for _ in range(2)]
    project_id = _drawn(client, operator, "SUP-2", admin)["project"]["id"]
    _nobody_answers(services, clock)
    draws = f"/api/v1/projects/{project_id}/draws"
    draw = client.post(
        f"{draws}/supplementary", json={"specialties": ["A01"], "backups": 1}, headers=operator
    ).json()
    assert draw["spec"] == [{"specialty": "A01", "seats": 2, "backups": 1}]
    client.post(f"{draws}/{draw['id']}/run", json={"public_entropy": "9"}, headers=operator)
    proof = client.get(f"{draws}/{draw['id']}", headers=admin).json()["proof"]
    (entry,) = proof["specialties"]
    assert len(entry["backup_ids"]) == 1
    assert set(entry["selected"] + entry["backup_ids"]) <= set(pool["a"] + extra)

    listing = client.get(f"/api/v1/projects/{project_id}/committee", headers=admin).json()
    leaving = next(m for m in listing if m["expert_id"] == entry["selected"][0])
    answer = client.post(
        f"/api/v1/projects/{project_id}/assignments/{leaving['assignment_id']}/response",
        json={"accept": False, "reason": "出差"},
        headers=operator,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["promoted_expert_id"] == entry["backup_ids"][0]


def test_no_supplementary_draw_before_the_first_or_once_the_committee_is_final(
    client: TestClient,
    center: CenterWithStaff,
    pool: dict[str, list[str]],
    services: Services,
    clock: FrozenClock,
    db: Session,
) -> None:
    operator, admin = center.headers(Role.OPERATOR), center.headers(Role.ADMIN)

    draft = client.post("/api/v1/projects", json=project_payload(code="SUP-3"), headers=operator)
    path = f"/api/v1/projects/{draft.json()['id']}/draws/supplementary"
    assert_problem(client.post(path, json={}, headers=operator), 409, "invalid-transition")

    project_id = _drawn(client, operator, "SUP-4", admin)["project"]["id"]
    _nobody_answers(services, clock)
    project = db.get(Project, project_id)
    assert project is not None
    project.status = "completed"  # as if the report were signed
    db.flush()
    before = _counts(db)
    path = f"/api/v1/projects/{project_id}/draws/supplementary"
    assert_problem(client.post(path, json={}, headers=operator), 409, "invalid-transition")
    assert _counts(db) == before
    unknown = client.post("/api/v1/projects/nope/draws/supplementary", json={}, headers=operator)
    assert_problem(unknown, 404, "not-found")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR])
def test_the_chain_of_a_project_without_draws_is_empty(
    client: TestClient, center: CenterWithStaff, role: Role
) -> None:

    draft = client.post(
        "/api/v1/projects",
        json=project_payload(code="SUP-5"),
        headers=center.headers(Role.OPERATOR),
    ).json()
    chain = _chain(client, draft["id"], center.headers(role))
    assert chain["draws"] == [] and chain["proofs"] == []


def test_a_second_first_draw_cannot_run_once_the_committee_is_drawn(
    client: TestClient, center: CenterWithStaff, pool: dict[str, list[str]], db: Session
) -> None:
    """The chain has one first draw: two commitments made while the project was a draft
    cannot both run (only a supplementary draw adds to a drawn committee)."""
    operator = center.headers(Role.OPERATOR)
    project = client.post(
        "/api/v1/projects", json=project_payload(code="SUP-6"), headers=operator
    ).json()
    draws = f"/api/v1/projects/{project['id']}/draws"
    one, two = (client.post(draws, headers=operator).json() for _ in range(2))
    ran = client.post(f"{draws}/{one['id']}/run", json={"public_entropy": "1"}, headers=operator)
    assert ran.status_code == 200, ran.text
    before = _counts(db)
    again = client.post(f"{draws}/{two['id']}/run", json={"public_entropy": "2"}, headers=operator)
    assert_problem(again, 409, "draw-exists")
    assert _counts(db) == before
