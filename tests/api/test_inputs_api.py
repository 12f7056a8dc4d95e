"""Input at the edge: what the database cannot hold or a certificate should not carry is a
422 naming the field, and nothing is stored (issue 25, the fuzzer's 5xx findings)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.registry.staff import Role
from models.tables import AuditEntry, Expert, Unit
from tests.api.helpers import assert_problem
from tests.api.test_units_api import register
from tests.factories import CenterWithStaff, expert_payload


def _counts(db: Session) -> tuple[int, ...]:
    db.expire_all()
    return tuple(
        db.execute(select(func.count()).select_from(m)).scalar_one()
        for m in (Expert, Unit, AuditEntry)
    )


def _post(client: TestClient, url: str, body: Any, headers: dict[str, str]) -> Any:
    # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it.
    return client.post(
        url, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


def _fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def test_a_sequence_beyond_64_bits_is_a_422(client: TestClient, center: CenterWithStaff) -> None:
    response = client.get(
        "/api/v1/audit/entries",
        params={"after_seq": "310703359026288224370688"},
        headers=center.headers(Role.ADMIN),
    )
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["query.after_seq"]


@pytest.mark.parametrize(
    "name",
    [
        "\ud800张伟",  # a lone surrogate: UnicodeEncodeError at insert before
        "张\x00伟",
        "\u202eevil\u202c",  # reads backwards in a certificate subject
        "\u200b\u200b",  # zero-width only
        "\u3164",  # a Hangul filler: a blank letter
        "=HYPERLINK(1)",
    ],
)
def test_names_the_domain_cannot_carry_are_refused(
    client: TestClient, center: CenterWithStaff, db: Session, name: str
) -> None:
    before = _counts(db)
    response = _post(
        client, "/api/v1/experts", expert_payload(name=name), center.headers(Role.OPERATOR)
    )
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["body.name"]
    assert _counts(db) == before


def test_names_are_stored_in_nfc(client: TestClient, center: CenterWithStaff) -> None:
    decomposed = "Jose\u0301 张"
    created = client.post(
        "/api/v1/experts",
        json=expert_payload(name=decomposed),
        headers=center.headers(Role.OPERATOR),
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Jos\u00e9 张"


def test_a_control_character_in_a_seal_purpose_is_a_422(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    unit = register(client, center).json()
    before = _counts(db)
    response = client.post(
        f"/api/v1/units/{unit['id']}/seal/generate",
        json={"purpose": "<\u001d"},
        headers=center.headers(Role.OPERATOR),
    )
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["body.purpose"]
    assert _counts(db) == before


def test_a_unit_contact_with_a_direction_override_is_refused(
    client: TestClient, center: CenterWithStaff
) -> None:
    response = register(client, center, legal_representative="\u202e王建国")
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["body.legal_representative"]


def test_a_surrogate_in_a_reason_or_an_id_is_a_422(
    client: TestClient, center: CenterWithStaff
) -> None:
    expert = client.post(
        "/api/v1/experts", json=expert_payload(), headers=center.headers(Role.OPERATOR)
    ).json()
    response = _post(
        client,
        f"/api/v1/experts/{expert['id']}/suspend",
        {"reason": "absent \udfff"},
        center.headers(Role.OPERATOR),
    )
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["body.reason"]
    challenge = _post(
        client, "/api/v1/face/challenges", {"expert_ids": ["\ud83d"]}, center.headers(Role.OPERATOR)
    )
    assert_problem(challenge, 422, "validation-failed")
    assert _fields(challenge) == ["body.expert_ids.0"]


def test_control_characters_in_a_path_or_a_query_are_a_422(
    client: TestClient, center: CenterWithStaff
) -> None:
    in_path = client.get("/api/v1/experts/ab%00cd", headers=center.headers(Role.OPERATOR))
    assert_problem(in_path, 422, "validation-failed")
    assert _fields(in_path) == ["path"]
    in_query = client.get(
        "/api/v1/experts", params={"name": "a\x00b"}, headers=center.headers(Role.OPERATOR)
    )
    assert_problem(in_query, 422, "validation-failed")
    assert _fields(in_query) == ["query.name"]


def test_a_nul_in_a_form_field_is_a_422(client: TestClient, center: CenterWithStaff) -> None:
    unit = register(client, center).json()
    response = client.put(
        f"/api/v1/units/{unit['id']}/seal/image",
        files={"file": ("seal.png", b"\x89PNG", "image/png")},
        data={"purpose": "合同\x00专用"},
        headers=center.headers(Role.OPERATOR),
    )
    assert_problem(response, 422, "validation-failed")
    assert _fields(response) == ["body.purpose"]
