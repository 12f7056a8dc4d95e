"""/api/v1/experts as a client uses it: registration, reading, updating, suspension,
CSV import, and every bad input answered with problem+json and no change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from evaluation.kernel.identifiers import mask_id_number, mask_phone
from models.clock import FrozenClock
from tests.api.helpers import assert_problem, snapshot
from tests.factories import CenterWithStaff, credit_code, expert_payload, id_number

URL = "/api/v1/experts"


@pytest.fixture
def operator(center: CenterWithStaff) -> dict[str, str]:
    return center.headers("operator")


def _register(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post(URL, json=expert_payload(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _csv(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(rows[0])]
    for row in rows:
        cells = dict(row, specialties=";".join(row["specialties"]))
        lines.append(",".join(str(value) for value in cells.values()))
    return ("\n".join(lines) + "\n").encode()


def test_registration_returns_the_expert_masked(
    client: TestClient, operator: dict[str, str]
) -> None:
    payload = expert_payload(id_number=id_number().lower(), phone="+86 138-0013-8000")
    response = client.post(URL, json=payload, headers=operator)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{URL}/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["id_number_masked"] == mask_id_number(payload["id_number"].upper())
    assert payload["id_number"].upper() not in response.text
    assert body["phone"] == "13800138000"
    assert body["status"] == "active" and body["version"] == 1
    assert client.get(body["id"] and f"{URL}/{body['id']}", headers=operator).json() == body


def test_supervisor_sees_phone_masked(
    client: TestClient, center: CenterWithStaff, operator: dict[str, str]
) -> None:
    expert = _register(client, operator)
    seen = client.get(f"{URL}/{expert['id']}", headers=center.headers("supervisor")).json()
    assert seen["phone"] == mask_phone(expert["phone"]) != expert["phone"]


def test_duplicate_id_number_is_409_and_changes_nothing(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    first = _register(client, operator)
    number = expert_payload()["id_number"]
    client.post(URL, json=expert_payload(id_number=number), headers=operator)
    before = snapshot(db)
    response = client.post(URL, json=expert_payload(id_number=number), headers=operator)
    assert_problem(response, 409, "duplicate-id-number")
    assert snapshot(db) == before
    assert client.get(f"{URL}/{first['id']}", headers=operator).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id_number": "110101198003072814"}, "body.id_number"),  # wrong check digit
        ({"id_number": 110101198003072813}, "body.id_number"),  # a number, not a string
        ({"employer_credit_code": "91110000101121376I"}, "body.employer_credit_code"),
        ({"phone": "010-12345678"}, "body.phone"),
        ({"region_code": "990000"}, "body.region_code"),
        ({"specialties": "A0101"}, "body.specialties"),
        ({"specialties": []}, "body.specialties"),
        ({"specialties": ["a-01"]}, "body.specialties.0"),
        ({"name": "   "}, "body.name"),
        ({"name": "x" * 101}, "body.name"),
        ({"nickname": "小张"}, "body.nickname"),  # unknown field
    ],
)
def test_invalid_registration_names_the_field(
    client: TestClient,
    operator: dict[str, str],
    db: Session,
    change: dict[str, Any],
    field: str,
) -> None:
    before = snapshot(db)
    response = client.post(URL, json=expert_payload(**change), headers=operator)
    body = assert_problem(response, 422, "validation-failed")
    assert field in [error["field"] for error in body["errors"]]
    assert all("input" not in error for error in body["errors"])  # no PII echoed back
    assert not any(error["message"].startswith("Value error") for error in body["errors"])
    assert snapshot(db) == before


def test_missing_fields_are_each_named(client: TestClient, operator: dict[str, str]) -> None:
    body = assert_problem(
        client.post(URL, json={"name": "张伟"}, headers=operator), 422, "validation-failed"
    )
    named = {error["field"] for error in body["errors"]}
    assert {"body.id_number", "body.phone", "body.specialties", "body.region_code"} <= named


@pytest.mark.parametrize("raw", [b"{", b'{"name": }', b"\xff\xfe", b"[1,2"])
def test_malformed_json_is_400(
    client: TestClient, operator: dict[str, str], db: Session, raw: bytes
) -> None:
    before = snapshot(db)
    response = client.post(
        URL, content=raw, headers={**operator, "content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed-json")
    assert snapshot(db) == before


def test_oversized_body_is_413_before_parsing(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    before = snapshot(db)
    huge = expert_payload(name="张" * 600_000)
    response = client.post(URL, json=huge, headers=operator)
    body = assert_problem(response, 413, "request-too-large")
    assert body["limit_bytes"] == 1024 * 1024
    assert snapshot(db) == before


def test_oversized_chunked_body_is_413(client: TestClient, operator: dict[str, str]) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 65536

    response = client.post(
        URL, content=chunks(), headers={**operator, "content-type": "application/json"}
    )
    assert_problem(response, 413, "request-too-large")


def test_audit_search_by_a_mistyped_action_is_refused_not_empty(
    client: TestClient, operator: dict[str, str], center: CenterWithStaff
) -> None:
    expert = _register(client, operator)
    found = client.get(
        "/api/v1/audit/entries",
        params={"action": "expert.registered"},
        headers=center.headers("supervisor"),
    )
    assert [entry["subject_id"] for entry in found.json()["items"]] == [expert["id"]]
    mistyped = client.get(
        "/api/v1/audit/entries",
        params={"action": "expert.registerd"},
        headers=center.headers("supervisor"),
    )
    body = assert_problem(mistyped, 422, "validation-failed")
    assert "action" in str(body)


def test_update_changes_fields_and_version(
    client: TestClient, operator: dict[str, str], center: CenterWithStaff
) -> None:
    expert = _register(client, operator)
    response = client.patch(
        f"{URL}/{expert['id']}",
        json={"phone": "13900001111", "specialties": ["C03", "A0101", "C03"]},
        headers={**operator, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["phone"] == "13900001111"
    assert body["specialties"] == ["A0101", "C03"]
    assert body["version"] == 2 and response.headers["etag"] == '"2"'
    log = client.get(
        "/api/v1/audit/entries",
        params={"subject_id": expert["id"]},
        headers=center.headers("supervisor"),
    ).json()["items"]
    assert [entry["action"] for entry in log] == ["expert.registered", "expert.updated"]
    assert log[1]["details"]["phone"] == "changed"
    assert "13900001111" not in str(log)


def test_update_with_stale_version_is_412_and_changes_nothing(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    expert = _register(client, operator)
    before = snapshot(db)
    response = client.patch(
        f"{URL}/{expert['id']}", json={"name": "李四"}, headers={**operator, "If-Match": '"7"'}
    )
    body = assert_problem(response, 412, "version-mismatch")
    assert body["current_version"] == 1
    assert snapshot(db) == before
    assert client.get(f"{URL}/{expert['id']}", headers=operator).json()["name"] == expert["name"]


def test_malformed_if_match_is_400(client: TestClient, operator: dict[str, str]) -> None:
    expert = _register(client, operator)
    response = client.patch(
        f"{URL}/{expert['id']}", json={"name": "李四"}, headers={**operator, "If-Match": "*x"}
    )
    assert_problem(response, 400, "bad-precondition")


def test_update_to_anothers_id_number_is_409(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    taken = expert_payload()
    _register(client, operator, id_number=taken["id_number"])
    other = _register(client, operator)
    before = snapshot(db)
    response = client.patch(
        f"{URL}/{other['id']}", json={"id_number": taken["id_number"]}, headers=operator
    )
    assert_problem(response, 409, "duplicate-id-number")
    assert snapshot(db) == before


def test_update_refuses_unknown_and_status_fields(
    client: TestClient, operator: dict[str, str]
) -> None:
    expert = _register(client, operator)
    response = client.patch(f"{URL}/{expert['id']}", json={"status": "active"}, headers=operator)
    assert_problem(response, 422, "validation-failed")


def test_suspend_and_reactivate_follow_the_status_machine(
    client: TestClient, operator: dict[str, str], db: Session
) -> None:
    expert = _register(client, operator)
    path = f"{URL}/{expert['id']}"
    assert_problem(
        client.post(f"{path}/suspend", json={}, headers=operator), 422, "validation-failed"
    )  # a reason is required
    suspended = client.post(
        f"{path}/suspend", json={"reason": "本年度考核不合格"}, headers=operator
    )
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "本年度考核不合格"
    before = snapshot(db)
    again = client.post(f"{path}/suspend", json={"reason": "again"}, headers=operator)
    body = assert_problem(again, 409, "invalid-transition")
    assert body["current_status"] == "suspended"
    assert snapshot(db) == before
    listed = client.get(URL, params={"status": "suspended"}, headers=operator).json()
    assert [item["id"] for item in listed["items"]] == [expert["id"]]
    back = client.post(f"{path}/reactivate", json={}, headers=operator)
    assert back.json()["status"] == "active"


def test_unknown_expert_is_404(client: TestClient, operator: dict[str, str]) -> None:
    assert_problem(client.get(f"{URL}/does-not-exist", headers=operator), 404, "not-found")


def test_list_filters_and_pages(
    client: TestClient, operator: dict[str, str], clock: FrozenClock
) -> None:
    employer = credit_code()
    variants: list[dict[str, Any]] = [
        {"specialties": ["A0101"], "region_code": "110105"},
        {
            "specialties": ["A0102", "B01"],
            "region_code": "310101",
            "employer_credit_code": employer,
            "employer_name": "上海市政工程设计研究总院",
        },
        {"specialties": ["B0201"], "region_code": "110108"},
    ]
    made = []
    for variant in variants:
        made.append(_register(client, operator, **variant))
        clock.advance(timedelta(seconds=1))  # listing is in registration order

    def ids(**params: Any) -> list[str]:
        return [
            item["id"] for item in client.get(URL, params=params, headers=operator).json()["items"]
        ]

    assert ids(specialty="A01") == [made[0]["id"], made[1]["id"]]
    assert ids(specialty="b02") == [made[2]["id"]]
    assert ids(region="11") == [made[0]["id"], made[2]["id"]]
    assert ids(employer_credit_code=employer) == [made[1]["id"]]
    assert ids(employer="市政") == [made[1]["id"]]
    assert ids(specialty="A01", region="31") == [made[1]["id"]]
    assert ids(employer="%") == []  # a LIKE wildcard is matched literally

    first = client.get(URL, params={"limit": 2}, headers=operator).json()
    assert first["total"] == 3 and len(first["items"]) == 2
    second = client.get(
        URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=operator
    ).json()
    assert second["next_cursor"] is None
    assert [i["id"] for i in first["items"] + second["items"]] == [m["id"] for m in made]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"limit": 0}, 422, "validation-failed"),
        ({"limit": 501}, 422, "validation-failed"),
        ({"limit": "many"}, 422, "validation-failed"),
        ({"status": "retired"}, 422, "validation-failed"),
        ({"region": "beijing"}, 422, "validation-failed"),
        ({"cursor": "not-a-cursor"}, 400, "invalid-cursor"),
        ({"cursor": "WyIyMDI2LTAxLTAxIiwgMV0"}, 400, "invalid-cursor"),
    ],
)
def test_bad_list_parameters(
    client: TestClient, operator: dict[str, str], params: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(client.get(URL, params=params, headers=operator), status, code)


class TestImport:
    def test_csv_body_stores_every_row(
        self, client: TestClient, operator: dict[str, str], db: Session
    ) -> None:
        rows = [expert_payload() for _ in range(5)]
        response = client.post(
            f"{URL}/import", content=_csv(rows), headers={**operator, "content-type": "text/csv"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["created"] == 5
        listed = client.get(URL, headers=operator).json()
        assert listed["total"] == 5
        assert sorted(i["name"] for i in listed["items"]) == sorted(r["name"] for r in rows)

    def test_multipart_upload_in_gb18030_with_chinese_headings(
        self, client: TestClient, operator: dict[str, str]
    ) -> None:
        row = expert_payload()
        text = (
            "姓名,身份证号,手机号,专业,工作单位,统一社会信用代码,地区代码\n"
            f"{row['name']},{row['id_number']},{row['phone']},A0101；B02,"
            f"{row['employer_name']},{row['employer_credit_code']},{row['region_code']}\n"
        )
        response = client.post(
            f"{URL}/import",
            files={"file": ("专家.csv", text.encode("gb18030"), "text/csv")},
            headers=operator,
        )
        assert response.status_code == 200, response.text
        expert = client.get(f"{URL}/{response.json()['expert_ids'][0]}", headers=operator).json()
        assert expert["name"] == row["name"] and expert["specialties"] == ["A0101", "B02"]

    def test_one_bad_row_stores_nothing_and_names_rows(
        self, client: TestClient, operator: dict[str, str], db: Session
    ) -> None:
        existing = _register(client, operator)
        taken = client.get(URL, headers=operator)  # noqa: F841  (the registration is visible)
        rows = [expert_payload() for _ in range(4)]
        rows[1]["phone"] = "12345"
        rows[3]["id_number"] = rows[0]["id_number"]
        before = snapshot(db)
        response = client.post(
            f"{URL}/import", content=_csv(rows), headers={**operator, "content-type": "text/csv"}
        )
        body = assert_problem(response, 422, "import-rejected")
        assert {(e["row"], e["field"]) for e in body["errors"]} == {(3, "phone"), (5, "id_number")}
        assert snapshot(db) == before
        assert client.get(URL, headers=operator).json()["total"] == 1
        assert existing["id"]

    def test_dry_run_validates_without_storing(
        self, client: TestClient, operator: dict[str, str], db: Session
    ) -> None:
        before = snapshot(db)
        response = client.post(
            f"{URL}/import",
            params={"dry_run": "true"},
            content=_csv([expert_payload()]),
            headers={**operator, "content-type": "text/csv"},
        )
        assert response.json() == {"created": 1, "dry_run": True, "expert_ids": []}
        assert snapshot(db) == before

    @pytest.mark.parametrize(
        ("content", "content_type", "status", "code"),
        [
            (b"", "text/csv", 422, "import-rejected"),
            (b"name,id_number\n", "text/csv", 422, "import-rejected"),
            (b'{"rows": []}', "application/json", 415, "unsupported-media-type"),
            (b"\x00\xff\xfe\xfa" * 10, "text/csv", 422, "import-rejected"),
        ],
    )
    def test_unusable_files_are_refused(
        self,
        client: TestClient,
        operator: dict[str, str],
        db: Session,
        content: bytes,
        content_type: str,
        status: int,
        code: str,
    ) -> None:
        before = snapshot(db)
        response = client.post(
            f"{URL}/import", content=content, headers={**operator, "content-type": content_type}
        )
        assert_problem(response, status, code)
        assert snapshot(db) == before

    def test_import_over_the_byte_limit_is_413(
        self, client: TestClient, operator: dict[str, str], services: Any
    ) -> None:
        too_big = b"x" * (services.settings.max_import_bytes + 1)
        response = client.post(
            f"{URL}/import", content=too_big, headers={**operator, "content-type": "text/csv"}
        )
        assert_problem(response, 413, "request-too-large")

    def test_template_lists_the_columns(self, client: TestClient, operator: dict[str, str]) -> None:
        response = client.get(f"{URL}/import/template", headers=operator)
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text.strip().split(",") == list(expert_payload())
