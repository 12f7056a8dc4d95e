"""The supervisor's lists besides the verification log: sign-ins, signature events and,
once the evaluation has closed, the score sheets; cursor pages, CSV, links to the records
behind each one, and nothing for the operator."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import Project
from tests.api.committee import Committee, build_committee
from tests.api.contracting import Award
from tests.api.helpers import assert_problem


def test_sign_ins_page_on_with_links_and_export(committee: Committee) -> None:
    supervisor = committee.center.headers(Role.SUPERVISOR)
    first, second = committee.members[:2]
    committee.sign_in(first, "phone-first-0001")
    committee.clock.advance(timedelta(seconds=30))
    committee.sign_in(second, "phone-second-002")
    url = f"/api/v1/supervision/sign-ins?project_id={committee.project_id}"
    page = committee.client.get(url + "&limit=1", headers=supervisor).json()
    assert [i["expert_id"] for i in page["items"]] == [second["expert_id"]]  # newest first
    rest = committee.client.get(
        url + f"&limit=1&cursor={page['next_cursor']}", headers=supervisor
    ).json()
    assert [i["expert_id"] for i in rest["items"]] == [first["expert_id"]]
    check = committee.client.get(rest["items"][0]["links"]["verification"], headers=supervisor)
    assert check.status_code == 200 and check.json()["expert_id"] == first["expert_id"]

    mine = committee.client.get(
        url + f"&device_id=phone-first-0001&expert_id={first['expert_id']}", headers=supervisor
    ).json()
    assert len(mine["items"]) == 1 and mine["next_cursor"] is None
    exported = committee.client.get(url + "&format=csv", headers=supervisor)
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["id", "created_at", "project_id"] and len(rows) == 3
    assert_problem(
        committee.client.get(url + "&cursor=yesterday", headers=supervisor), 422, "bad-filter"
    )
    assert_problem(committee.client.get(url, headers=committee.operator), 403, "role-forbidden")


def test_signature_events_name_the_credential_the_sad_and_the_face_check(award: Award) -> None:
    supervisor = award.center.headers(Role.SUPERVISOR)
    contract = award.contract().json()
    assert award.sign(contract["id"], award.face("tenderer")).status_code == 201
    url = f"/api/v1/supervision/signatures?project_id={award.project_id}"
    items = award.client.get(url, headers=supervisor).json()["items"]
    assert sorted(i["mark"] for i in items) == ["seal", "signature"]
    person = award.representatives["tenderer"]["person_id"]
    for item in items:
        assert item["signer_id"] == person and item["purpose"] == "contract"
        assert item["credential_id"] and item["sad_id"] and item["verification_id"]
        assert item["project_id"] == award.project_id
        assert award.client.get(item["links"]["document"], headers=supervisor).status_code == 200
    seal = next(i for i in items if i["mark"] == "seal")
    assert seal["unit_id"] == award.tenderer["id"]
    by_signer = award.client.get(
        f"/api/v1/supervision/signatures?signer_id={person}&format=csv", headers=supervisor
    )
    assert len(list(csv.reader(io.StringIO(by_signer.text)))) == 3


def test_score_sheets_only_after_the_evaluation_closes(committee: Committee, db: Session) -> None:
    supervisor = committee.center.headers(Role.SUPERVISOR)
    headers = committee.sign_in(committee.members[0])
    committee.declare_no_conflict(headers)
    saved = committee.client.put(
        "/api/v1/evaluation/scores", json={"points": committee.full_sheet(0)}, headers=headers
    )
    assert saved.status_code == 200, saved.text
    url = f"/api/v1/supervision/projects/{committee.project_id}/scores"
    assert_problem(committee.client.get(url, headers=supervisor), 409, "evaluation-not-closed")
    project = db.get(Project, committee.project_id)
    assert project is not None
    project.results = {"recommended": []}
    db.commit()
    [sheet] = committee.client.get(url, headers=supervisor).json()
    assert sheet["expert_id"] == committee.members[0]["expert_id"]
    assert sheet["points"] == committee.full_sheet(0)


def test_draws_across_the_center_with_their_proofs(
    committee: Committee, db: Session, clock: FrozenClock, services: Services
) -> None:
    supervisor = committee.center.headers(Role.SUPERVISOR)
    second = build_committee(
        committee.client, committee.center, db, clock, services, name="第二个项目"
    )
    listed = committee.client.get("/api/v1/supervision/draws", headers=supervisor)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert {i["project_id"] for i in items} == {committee.project_id, second.project_id}
    assert all(i["status"] == "completed" and i["public_entropy"] == "31 07 58" for i in items)
    # The evaluation window is open, so the proof is no longer sealed for a supervisor.
    assert all(i["proof"]["commitment"] == i["commitment"] for i in items)
    assert all("server_secret" in i["proof"] for i in items)
    proof = committee.client.get(items[0]["links"]["document"], headers=supervisor)
    assert proof.status_code == 200 and proof.json()["id"] == items[0]["id"]

    one = committee.client.get(
        "/api/v1/supervision/draws",
        params={"project_id": second.project_id, "format": "csv"},
        headers=supervisor,
    )
    rows = list(csv.reader(io.StringIO(one.text)))
    assert rows[0][:3] == ["id", "project_id", "project_code"] and len(rows) == 2
    assert rows[1][1] == second.project_id
    paged = committee.client.get("/api/v1/supervision/draws?limit=1", headers=supervisor).json()
    rest = committee.client.get(
        f"/api/v1/supervision/draws?limit=1&cursor={paged['next_cursor']}", headers=supervisor
    ).json()
    assert {paged["items"][0]["id"], rest["items"][0]["id"]} == {i["id"] for i in items}
    assert_problem(
        committee.client.get("/api/v1/supervision/draws", headers=committee.operator),
        403,
        "role-forbidden",
    )
