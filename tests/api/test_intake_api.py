"""The trading platform's intake (issue 27, item 4): projects created and revised by the
platform's code over HMAC-signed requests (evalsign-hmac-v1), each write idempotent, units
checked against the register, and after the draw only what the rules allow."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.kernel.actions import Action
from evaluation.registry.staff import Role
from models.tables import AuditEntry, Project, Unit
from signing.request_signatures import sign_request
from tests.api.helpers import assert_problem
from tests.api.test_projects_api import BIDDERS, TENDERER, pool, project_payload
from tests.factories import CenterWithStaff, credit_code

__all__ = ["pool"]

INTAKE = "/api/v1/intake/projects"


class Platform:
    """A trading platform's client: signs each request as the documented scheme says."""

    def __init__(self, client: TestClient, services: Services, key: dict[str, Any]) -> None:
        self.client, self.services = client, services
        self.key_id, self.secret = key["id"], key["secret"]

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
        tamper: bytes | None = None,
    ) -> Response:
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        signed = sign_request(
            secret=self.secret,
            key_id=self.key_id,
            method=method,
            target=path,
            body=content,
            now=now or self.services.clock.now(),
        )
        headers = {"Content-Type": "application/json", **signed.as_dict()}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.client.request(method, path, content=tamper or content, headers=headers)


def _issue(client: TestClient, center: CenterWithStaff, name: str = "ggzy-demo") -> dict[str, Any]:
    answer = client.post(
        "/api/v1/platform-keys", json={"platform": name}, headers=center.headers(Role.ADMIN)
    )
    assert answer.status_code == 201, answer.text
    key: dict[str, Any] = answer.json()
    return key


@pytest.fixture
def platform(client: TestClient, services: Services, center: CenterWithStaff) -> Platform:
    return Platform(client, services, _issue(client, center))


@pytest.fixture
def registered(client: TestClient, center: CenterWithStaff) -> None:
    """The parties are in the center's register, as the platform's units usually are."""
    operator = center.headers(Role.OPERATOR)
    for name, code in (
        ("某市教育局", TENDERER),
        ("甲建设集团有限公司", BIDDERS[0]),
        ("乙建筑工程有限公司", BIDDERS[1]),
    ):
        answer = client.post(
            "/api/v1/units", json={"name": name, "credit_code": code}, headers=operator
        )
        assert answer.status_code in (201, 409), answer.text


def _count(db: Session, model: Any, *where: Any) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _entries(db: Session, action: Action) -> int:
    return _count(db, AuditEntry, AuditEntry.action == action.value)


def test_keys_are_issued_by_admins_and_their_secret_shown_once(
    client: TestClient, center: CenterWithStaff
) -> None:
    key = _issue(client, center)
    assert key["id"].startswith("pk_") and len(key["secret"]) >= 40
    listed = client.get("/api/v1/platform-keys", headers=center.headers(Role.ADMIN)).json()
    assert [k["id"] for k in listed] == [key["id"]]
    assert "secret" not in listed[0]
    operator = client.post(
        "/api/v1/platform-keys", json={"platform": "x-y"}, headers=center.headers(Role.OPERATOR)
    )
    assert_problem(operator, 403, "role-forbidden")
    bad = client.post(
        "/api/v1/platform-keys", json={"platform": "Has Spaces"}, headers=center.headers(Role.ADMIN)
    )
    assert bad.status_code == 422


def test_a_signed_project_is_created_once_however_often_it_is_sent(
    platform: Platform, registered: None, db: Session
) -> None:
    payload = project_payload(code="PLAT-1")
    first = platform.send("POST", INTAKE, payload, idempotency_key="intake-PLAT-1-a")
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "draft"
    # The platform's retry, signed anew a moment later: the stored answer, nothing doubled.
    again = platform.send(
        "POST",
        INTAKE,
        payload,
        idempotency_key="intake-PLAT-1-a",
        now=platform.services.clock.now() + timedelta(seconds=30),
    )
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert _count(db, Project, Project.code == "PLAT-1") == 1
    assert _entries(db, Action.PROJECT_CREATED) == 1
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "project.created")).one()
    assert entry.actor == "platform:ggzy-demo"
    # The same key for another body is a mistake the platform must hear about.
    other = platform.send(
        "POST", INTAKE, project_payload(code="PLAT-2"), idempotency_key="intake-PLAT-1-a"
    )
    assert_problem(other, 422, "idempotency-key-reused")
    # A new key for the same code: the code is taken.
    assert_problem(
        platform.send("POST", INTAKE, payload, idempotency_key="intake-PLAT-1-b"),
        409,
        "duplicate-project",
    )
    read = platform.send("GET", f"{INTAKE}/PLAT-1")
    assert read.status_code == 200 and read.json()["id"] == first.json()["id"]


def test_unsigned_stale_tampered_or_revoked_requests_are_refused(
    client: TestClient, platform: Platform, registered: None, center: CenterWithStaff, db: Session
) -> None:
    payload = project_payload(code="PLAT-3")
    unsigned = client.post(INTAKE, json=payload, headers={"Idempotency-Key": "unsigned-1"})
    assert_problem(unsigned, 401, "platform-signature-invalid")
    stale = platform.send(
        "POST",
        INTAKE,
        payload,
        idempotency_key="stale-0001",
        now=platform.services.clock.now() - timedelta(minutes=6),
    )
    assert "from our clock" in assert_problem(stale, 401, "platform-signature-invalid")["detail"]
    tampered_body = json.dumps(project_payload(code="PLAT-X")).encode()
    tampered = platform.send(
        "POST", INTAKE, payload, idempotency_key="tamper-01", tamper=tampered_body
    )
    assert "does not match" in assert_problem(tampered, 401, "platform-signature-invalid")["detail"]
    staff_token = client.post(INTAKE, json=payload, headers=center.headers(Role.OPERATOR))
    assert_problem(staff_token, 401, "platform-signature-invalid")
    unkeyed = platform.send("POST", INTAKE, payload)
    assert_problem(unkeyed, 428, "idempotency-key-required")
    revoked = client.delete(
        f"/api/v1/platform-keys/{platform.key_id}", headers=center.headers(Role.ADMIN)
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    after = platform.send("POST", INTAKE, payload, idempotency_key="revoked-1")
    assert "revoked" in assert_problem(after, 401, "platform-signature-invalid")["detail"]
    assert _count(db, Project) == 0
    assert _entries(db, Action.PLATFORM_KEY_REVOKED) == 1


def test_a_credit_code_the_register_does_not_hold_is_refused(
    platform: Platform, registered: None, db: Session
) -> None:
    stranger = credit_code()
    payload = project_payload(
        code="PLAT-4",
        bidders=[
            {"name": "甲建设集团有限公司", "credit_code": BIDDERS[0]},
            {"name": "丙公司", "credit_code": stranger},
        ],
    )
    refused = platform.send("POST", INTAKE, payload, idempotency_key="unknown-unit-1")
    body = assert_problem(refused, 422, "unit-unknown")
    assert body["credit_codes"] == [stranger]
    assert _count(db, Project) == 0 and _count(db, Unit, Unit.credit_code == stranger) == 0
    # A code whose check character is wrong never reaches the register.
    typo = BIDDERS[0][:17] + ("0" if BIDDERS[0][17] != "0" else "1")
    bad = platform.send(
        "POST",
        INTAKE,
        project_payload(code="PLAT-5", bidders=[{"name": "甲", "credit_code": typo}]),
        idempotency_key="typo-unit-1",
    )
    assert bad.status_code == 422 and "check character" in bad.text


class TestRegisteringUnits:
    @pytest.fixture
    def settings(self, tmp_path: Any, database_url: str) -> Any:
        from models.settings import Settings

        return Settings(
            data_dir=tmp_path,
            database_url=database_url,
            audit_checkpoint_every_s=0,
            jobs_in_serve=False,
            intake_registers_units=True,
        )

    def test_a_center_may_let_intake_register_new_units(
        self, platform: Platform, db: Session
    ) -> None:
        answer = platform.send(
            "POST", INTAKE, project_payload(code="PLAT-6"), idempotency_key="register-1"
        )
        assert answer.status_code == 201, answer.text
        assert _count(db, Unit, Unit.credit_code.in_([TENDERER, *BIDDERS])) == 3


def test_a_committee_that_breaks_the_rules_is_refused(
    platform: Platform, registered: None, db: Session
) -> None:
    payload = project_payload(code="PLAT-7", committee=[{"specialty": "A01", "seats": 4}])
    refused = platform.send("POST", INTAKE, payload, idempotency_key="rules-0001")
    assert "at least 5" in assert_problem(refused, 422, "committee-rule-violated")["detail"]
    assert _count(db, Project) == 0


def test_revisions_before_the_draw_and_only_a_later_end_after_it(
    client: TestClient,
    platform: Platform,
    registered: None,
    center: CenterWithStaff,
    pool: Any,
    db: Session,
) -> None:
    created = platform.send(
        "POST", INTAKE, project_payload(code="PLAT-8"), idempotency_key="revise-create"
    ).json()
    path = f"{INTAKE}/PLAT-8"
    seats = [
        {"specialty": "A01", "seats": 3, "backups": 1},
        {"specialty": "B02", "seats": 2, "backups": 1},
    ]
    revised = platform.send(
        "PATCH", path, {"name": "教学楼（二期）", "committee": seats}, idempotency_key="revise-0001"
    )
    assert revised.status_code == 200, revised.text
    assert revised.json()["changed"] == ["name"]  # the committee was already so
    unlawful = platform.send(
        "PATCH",
        path,
        {"committee": [{"specialty": "A01", "seats": 2}]},
        idempotency_key="revise-0002",
    )
    assert_problem(unlawful, 422, "committee-rule-violated")
    backwards = platform.send(
        "PATCH",
        path,
        {"evaluation_end": created["evaluation_start"]},
        idempotency_key="revise-0003",
    )
    assert (
        "after evaluation_start"
        in assert_problem(backwards, 422, "project-revision-invalid")["detail"]
    )

    operator = center.headers(Role.OPERATOR)
    draw = client.post(f"/api/v1/projects/{created['id']}/draws", headers=operator).json()
    ran = client.post(
        f"/api/v1/projects/{created['id']}/draws/{draw['id']}/run",
        json={"public_entropy": "PLAT-8"},
        headers=operator,
    )
    assert ran.status_code == 200, ran.text

    locked = platform.send(
        "PATCH",
        path,
        {"bidders": [{"name": "甲建设集团有限公司", "credit_code": BIDDERS[0]}], "name": "x"},
        idempotency_key="revise-0004",
    )
    body = assert_problem(locked, 409, "project-field-locked")
    assert body["fields"] == ["bidders", "name"]
    end = datetime.fromisoformat(created["evaluation_end"])
    earlier = platform.send(
        "PATCH",
        path,
        {"evaluation_end": (end - timedelta(hours=1)).isoformat()},
        idempotency_key="revise-0005",
    )
    assert_problem(earlier, 409, "project-field-locked")
    later = platform.send(
        "PATCH",
        path,
        {"evaluation_end": (end + timedelta(hours=2)).isoformat()},
        idempotency_key="revise-0006",
    )
    assert later.status_code == 200, later.text
    assert later.json()["changed"] == ["evaluation_end"]
    db.expire_all()
    project = db.get(Project, created["id"])
    assert project is not None
    assert project.name == "教学楼（二期）" and len(project.bidders) == 2
    assert project.evaluation_end == end + timedelta(hours=2)
    assert _entries(db, Action.PROJECT_REVISED) == 2


def test_a_platform_sees_only_its_own_projects(
    client: TestClient,
    services: Services,
    platform: Platform,
    registered: None,
    center: CenterWithStaff,
) -> None:
    assert (
        platform.send(
            "POST", INTAKE, project_payload(code="PLAT-9"), idempotency_key="own-00001"
        ).status_code
        == 201
    )
    other = Platform(client, services, _issue(client, center, "ggzy-other"))
    assert_problem(other.send("GET", f"{INTAKE}/PLAT-9"), 404, "not-found")
    assert_problem(
        other.send("PATCH", f"{INTAKE}/PLAT-9", {"name": "x"}, idempotency_key="own-00002"),
        404,
        "not-found",
    )
    by_operator = client.post(
        "/api/v1/projects",
        json=project_payload(code="DESK-1"),
        headers=center.headers(Role.OPERATOR),
    )
    assert by_operator.status_code == 201
    assert_problem(platform.send("GET", f"{INTAKE}/DESK-1"), 404, "not-found")
    # A key rotated under the same platform name still reaches its projects.
    rotated = Platform(client, services, _issue(client, center, "ggzy-demo"))
    assert rotated.send("GET", f"{INTAKE}/PLAT-9").status_code == 200
