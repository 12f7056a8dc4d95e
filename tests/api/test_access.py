"""Every route checks the role and the center: the whole matrix, and isolation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from tests.api.helpers import assert_problem, snapshot
from tests.api.test_projects_api import project_payload
from tests.face.corpus import encode, portraits
from tests.factories import (
    CenterWithStaff,
    credit_code,
    establish_pki,
    expert_payload,
    external_root,
    id_number,
    make_pdf,
)


def portrait() -> Any:
    return portraits()["yaoming-0"]


ALL = frozenset(Role)
OPERATOR = frozenset({Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
REVIEWERS = frozenset({Role.ADMIN, Role.SUPERVISOR})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    allowed: frozenset[Role]
    ok: int
    json: Any = None
    csv: str | None = None
    files: str | None = None


def _root_pem() -> dict[str, str]:
    certificate, _ = external_root()
    return {"certificate_pem": certificate.public_bytes(Encoding.PEM).decode()}


def _csv() -> str:
    row = expert_payload()
    row["specialties"] = ";".join(row["specialties"])
    return ",".join(row) + "\n" + ",".join(row.values()) + "\n"


ROUTES = [
    Route("GET", "/api/v1/center", ALL, 200),
    Route("GET", "/api/v1/experts", ALL, 200),
    Route("POST", "/api/v1/experts", OPERATOR, 201, json=lambda ids: expert_payload()),
    Route("GET", "/api/v1/experts/import/template", OPERATOR, 200),
    Route("POST", "/api/v1/experts/import", OPERATOR, 200, csv="csv"),
    Route("GET", "/api/v1/experts/{expert_id}", ALL, 200),
    Route("PATCH", "/api/v1/experts/{expert_id}", OPERATOR, 200, json={"region_code": "310101"}),
    Route("POST", "/api/v1/experts/{expert_id}/suspend", OPERATOR, 200, json={"reason": "病假"}),
    Route("POST", "/api/v1/experts/{expert_id}/reactivate", OPERATOR, 409, json={}),
    Route("GET", "/api/v1/staff/tokens", ADMIN, 200),
    Route("POST", "/api/v1/staff/tokens", ADMIN, 201, json={"role": "operator", "label": "新"}),
    Route("POST", "/api/v1/staff/tokens/{token_id}/revoke", ADMIN, 200),
    Route("PUT", "/api/v1/experts/{expert_id}/face", OPERATOR, 201, files="face"),
    Route("GET", "/api/v1/experts/{expert_id}/face", ALL, 409),  # not enrolled yet
    Route("DELETE", "/api/v1/experts/{expert_id}/face", OPERATOR, 409),
    Route("POST", "/api/v1/face/compare", OPERATOR, 200, files="compare"),
    Route(
        "POST",
        "/api/v1/face/challenges",
        OPERATOR,
        409,  # the expert has no enrolled face yet
        json=lambda ids: {"expert_ids": [ids["expert_id"]]},
    ),
    Route("GET", "/api/v1/face/verifications", ALL, 200),
    Route("GET", "/api/v1/face/verifications/{verification_id}", ALL, 404),
    Route(
        "POST", "/api/v1/experts/{expert_id}/face/unlock", OPERATOR, 409, json={"reason": "核实"}
    ),
    Route("GET", "/api/v1/experts/{expert_id}/face/lockout", ALL, 404),
    Route("POST", "/api/v1/experts/{expert_id}/credential", OPERATOR, 201),
    Route("GET", "/api/v1/experts/{expert_id}/credential", ALL, 404),  # none issued yet
    Route("GET", "/api/v1/experts/{expert_id}/credentials", ALL, 200),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/credential/revoke",
        OPERATOR,
        404,  # none issued yet
        json={"reason": "affiliationChanged", "note": "调离"},
    ),
    Route("GET", "/api/v1/pki/authorities", ALL, 200),
    Route("GET", "/api/v1/pki/trust-anchors", ALL, 200),
    Route("POST", "/api/v1/pki/trust-anchors", ADMIN, 201, json=lambda ids: _root_pem()),
    Route("DELETE", "/api/v1/pki/trust-anchors/{anchor_id}", ADMIN, 404),
    Route("GET", "/api/v1/pki/signing-providers", ADMIN, 200),
    Route(
        "PUT",
        "/api/v1/pki/signing-providers/{name}",
        ADMIN,
        200,
        json=lambda ids: {
            "base_url": "https://sign.ca.example",
            "token_url": "https://sign.ca.example/oauth2/token",
            "client_id": "center-1",
            "client_secret": "s3cret",
            "root_pem": _root_pem()["certificate_pem"],
        },
    ),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/credential/remote",
        OPERATOR,
        409,  # no provider by that name
        json={"provider": "some-ca", "credential_id": "cred-1"},
    ),
    Route(
        "POST",
        "/api/v1/pki/issuing-ca",
        ADMIN,
        409,  # no PKCS#11 token configured here
        json=lambda ids: {**_root_pem(), "pkcs11_key_label": "ca", "note": "银行 CA"},
    ),
    Route("POST", "/api/v1/documents", OPERATOR, 201, files="document"),
    Route("GET", "/api/v1/documents", ALL, 200),
    Route("GET", "/api/v1/documents/{document_id}", ALL, 404),
    Route("GET", "/api/v1/documents/{document_id}/content", ALL, 404),
    Route("POST", "/api/v1/documents/{document_id}/start", OPERATOR, 404),
    Route("POST", "/api/v1/documents/{document_id}/cancel", OPERATOR, 404, json={"reason": "x"}),
    Route("POST", "/api/v1/validate", ALL, 200, files="validate"),
    Route("POST", "/api/v1/projects", OPERATOR, 201, json=lambda ids: project_payload()),
    Route("GET", "/api/v1/projects", ALL, 200),
    Route("GET", "/api/v1/projects/{project_id}", ALL, 404),
    Route("POST", "/api/v1/projects/{project_id}/draws", OPERATOR, 404),
    Route(
        "POST",
        "/api/v1/projects/{project_id}/draws/{draw_id}/run",
        OPERATOR,
        404,
        json={"public_entropy": "1 2 3"},
    ),
    Route("GET", "/api/v1/projects/{project_id}/draws/{draw_id}", ALL, 404),
    Route("POST", "/api/v1/projects/{project_id}/draws/supplementary", OPERATOR, 404, json={}),
    Route("GET", "/api/v1/projects/{project_id}/draws/chain", ALL, 404),
    Route("GET", "/api/v1/projects/{project_id}/committee", ALL, 404),
    Route("GET", "/api/v1/projects/{project_id}/call-ups", ALL, 404),
    Route("POST", "/api/v1/platform-keys", ADMIN, 201, json={"platform": "ggzy-access"}),
    Route("GET", "/api/v1/platform-keys", ADMIN, 200),
    Route("DELETE", "/api/v1/platform-keys/{key_id}", ADMIN, 404),
    Route(
        "POST",
        "/api/v1/projects/{project_id}/assignments/{assignment_id}/response",
        OPERATOR,
        404,
        json={"accept": True},
    ),
    Route("POST", "/api/v1/projects/{project_id}/qr", OPERATOR, 404),
    Route("POST", "/api/v1/projects/{project_id}/assignments/{assignment_id}/qr", OPERATOR, 404),
    Route(
        "POST",
        "/api/v1/projects/{project_id}/chair",
        OPERATOR,
        404,
        json={"assignment_id": "00000000-0000-0000-0000-000000000000"},
    ),
    Route(
        "POST",
        "/api/v1/projects/{project_id}/assignments/{assignment_id}/replace",
        OPERATOR,
        404,
        json={"reason": "缺席"},
    ),
    Route("GET", "/api/v1/projects/{project_id}/results", ALL, 404),
    Route("GET", "/api/v1/projects/{project_id}/sessions", ALL, 404),
    Route(
        "POST",
        "/api/v1/evaluation-sessions/{session_id}/revoke",
        OPERATOR,
        404,
        json={"reason": "手机丢失"},
    ),
    Route("POST", "/api/v1/projects/{project_id}/report", OPERATOR, 404),
    Route("GET", "/api/v1/projects/{project_id}/evidence", REVIEWERS, 404),
    Route("GET", "/api/v1/audit/entries", REVIEWERS, 200),
    Route("GET", "/api/v1/audit/verify", REVIEWERS, 200),
    Route("GET", "/api/v1/audit/refusals", REVIEWERS, 200),
    Route("GET", "/api/v1/audit/checkpoints", REVIEWERS, 200),
    Route("GET", "/api/v1/anomalies", REVIEWERS, 200),
    Route("GET", "/api/v1/webhooks/event-types", ADMIN, 200),
    Route(
        "POST",
        "/api/v1/webhooks/subscriptions",
        ADMIN,
        201,
        json={"url": "https://platform.example.cn/evalsign/events"},
    ),
    Route("GET", "/api/v1/webhooks/subscriptions", ADMIN, 200),
    Route("GET", "/api/v1/webhooks/subscriptions/{subscription_id}", ADMIN, 404),
    Route("POST", "/api/v1/webhooks/subscriptions/{subscription_id}/disable", ADMIN, 404),
    Route("POST", "/api/v1/webhooks/subscriptions/{subscription_id}/secret", ADMIN, 404),
    Route("GET", "/api/v1/webhooks/deliveries", REVIEWERS, 200),
    Route("GET", "/api/v1/webhooks/deliveries/{delivery_id}/attempts", REVIEWERS, 404),
    Route("GET", "/api/v1/projects/{project_id}/platform-events", REVIEWERS, 404),
    Route(
        "POST",
        "/api/v1/anomalies/{flag_id}/acknowledge",
        REVIEWERS,
        404,
        json={"note": "已核实"},
    ),
    Route("POST", "/api/v1/anomalies/{flag_id}/resolve", REVIEWERS, 404, json={"note": "已核实"}),
    Route("POST", "/api/v1/projects/{project_id}/anomalies/recompute", REVIEWERS, 404),
    Route("POST", "/api/v1/audit/checkpoints", ADMIN, 201),
    Route("GET", "/api/v1/projects/{project_id}/timeline", REVIEWERS, 404),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/face/consent/withdraw",
        OPERATOR,
        200,
        json={"note": "本人撤回"},
    ),
    Route("GET", "/api/v1/faces/holdings", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/sign-ins", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/signatures", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/draws", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/overview", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/projects", REVIEWERS, 200),
    Route("GET", "/api/v1/supervision/projects/{project_id}/scores", REVIEWERS, 404),
    Route("POST", "/api/v1/faces/retention", ADMIN, 200),
    Route("POST", "/api/v1/units", OPERATOR, 201, json=lambda ids: _unit()),
    Route("GET", "/api/v1/units", ALL, 200),
    Route("GET", "/api/v1/units/{unit_id}", ALL, 404),
    Route("PATCH", "/api/v1/units/{unit_id}", OPERATOR, 404, json={"name": "某公司"}),
    Route("PUT", "/api/v1/units/{unit_id}/seal/image", OPERATOR, 404, files="seal"),
    Route("POST", "/api/v1/units/{unit_id}/seal/generate", OPERATOR, 404, json={}),
    Route("GET", "/api/v1/units/{unit_id}/seal/image", ALL, 404),
    Route("POST", "/api/v1/units/{unit_id}/seal/credentials", OPERATOR, 404),
    Route("GET", "/api/v1/units/{unit_id}/seal/credentials", ALL, 404),
    Route(
        "POST",
        "/api/v1/units/{unit_id}/seal/credentials/{credential_id}/revoke",
        OPERATOR,
        404,
        json={"reason": "keyCompromise", "note": "泄露"},
    ),
    Route("POST", "/api/v1/units/{unit_id}/representatives", OPERATOR, 404, files="letter"),
    Route("GET", "/api/v1/units/{unit_id}/representatives", ALL, 404),
    Route(
        "POST",
        "/api/v1/units/{unit_id}/representatives/{authorization_id}/revoke",
        OPERATOR,
        404,
        json={"reason": "离职"},
    ),
    Route(
        "POST", "/api/v1/projects/{project_id}/contracts", OPERATOR, 404, json={"amount_yuan": "1"}
    ),
    Route("GET", "/api/v1/projects/{project_id}/contracts", ALL, 404),
    Route("GET", "/api/v1/contracts/{contract_id}", ALL, 404),
    Route(
        "POST",
        "/api/v1/contracts/{contract_id}/links",
        OPERATOR,
        404,
        json={"authorization_id": "00000000-0000-0000-0000-000000000000"},
    ),
    Route(
        "PUT",
        "/api/v1/experts/{expert_id}/signing-pin",
        OPERATOR,
        409,  # the fixture's expert, another ID card
        json=lambda ids: {"id_number": id_number(), "pin": "480317"},
    ),
    Route(
        "GET",
        "/api/v1/experts/{expert_id}/face/remote-enrollment",
        frozenset({Role.OPERATOR, Role.SUPERVISOR}),  # supervisors see who decided
        404,
    ),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/face/remote-enrollment/decision",
        OPERATOR,
        404,
        json={"decision": "confirm", "note": "核实"},
    ),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/passkeys/enrollments",
        OPERATOR,
        409,  # the fixture's expert, another ID card
        json=lambda ids: {"id_number": id_number()},
    ),
    Route("GET", "/api/v1/experts/{expert_id}/passkeys", ALL, 200),
    Route(
        "POST",
        "/api/v1/experts/{expert_id}/passkeys/{passkey_id}/revoke",
        OPERATOR,
        404,
        json={"reason": "手机丢失"},
    ),
    Route(
        "POST",
        "/api/v1/projects/{project_id}/in-person-checks",
        OPERATOR,
        404,
        json=lambda ids: {"expert_id": ids["expert_id"], "id_number": id_number()},
    ),
    Route("GET", "/api/v1/projects/{project_id}/in-person-checks", ALL, 404),
    Route(
        "POST", "/api/v1/in-person-checks/{check_id}/void", OPERATOR, 404, json={"reason": "误录"}
    ),
]


def _unit() -> dict[str, str]:
    return {"name": "某建设集团有限公司", "credit_code": credit_code()}


# Routes a phone calls without a staff token: the challenge's nonce, or the verified face
# session, is the credential (tests/api/test_liveness_api.py covers their refusals).
NOT_STAFF = {
    ("POST", "/api/v1/face/challenges/{challenge_id}/frames"),
    ("GET", "/api/v1/face/session"),
    ("POST", "/api/v1/documents/{document_id}/signatures"),  # test_documents_api.py
    ("POST", "/api/v1/documents/{document_id}/approval"),
    ("POST", "/api/v1/documents/{document_id}/approval/sms"),  # test_sms_codes.py
    ("POST", "/api/v1/contracts/{contract_id}/signatures"),  # test_contracts_api.py
    ("POST", "/api/v1/contracts/{contract_id}/approval"),
    # test_remote_enrollment.py: a representative binds their phone on the link.
    ("POST", "/api/v1/contracts/{contract_id}/passkey-binding"),
    ("POST", "/api/v1/contracts/{contract_id}/passkey-binding/complete"),
    # A contract link's scan session (test_contract_pages_api.py).
    ("GET", "/api/v1/contract"),
    ("GET", "/api/v1/contract/pages/{page}.png"),
    ("GET", "/api/v1/contract/file"),
    ("GET", "/api/v1/contract/validation"),
    ("PUT", "/api/v1/scan/id-card"),  # test_remote_enrollment.py
    # A task code, the scan session or the evaluation session is the credential
    # (test_tasks_api.py, test_evaluation_api.py).
    ("POST", "/api/v1/scan"),
    ("POST", "/api/v1/scan/consent"),
    ("GET", "/api/v1/consent/face"),  # public text
    ("POST", "/api/v1/scan/challenge"),
    ("POST", "/api/v1/scan/sign-in"),
    ("POST", "/api/v1/scan/passkey"),
    ("POST", "/api/v1/scan/sms-code"),
    # The desk's binding QR is the credential (test_passkeys_api.py).
    ("POST", "/api/v1/passkey-enrollment/open"),
    ("POST", "/api/v1/passkey-enrollment/challenge"),
    ("POST", "/api/v1/passkey-enrollment/options"),
    ("POST", "/api/v1/passkey-enrollment/complete"),
    ("GET", "/api/v1/evaluation"),
    ("POST", "/api/v1/evaluation/response"),
    ("POST", "/api/v1/evaluation/recusal"),
    ("PUT", "/api/v1/evaluation/scores"),
    ("POST", "/api/v1/evaluation/scores/submit"),
    ("POST", "/api/v1/evaluation/chair/vote"),
    ("POST", "/api/v1/evaluation/aggregate"),
    ("POST", "/api/v1/evaluation/dissent"),
    ("POST", "/api/v1/evaluation/results/agree"),
    ("POST", "/api/v1/evaluation/challenge"),
    # The non-face path's PIN (test_alternative_api.py).
    ("POST", "/api/v1/scan/pin"),
    ("POST", "/api/v1/evaluation/pin"),
    ("POST", "/api/v1/evaluation/report"),
    ("POST", "/api/v1/evaluation/report/refusal"),
    ("GET", "/api/v1/evaluation/report"),  # test_report_pages_api.py
    ("GET", "/api/v1/evaluation/report/pages/{page}.png"),
    ("GET", "/api/v1/evaluation/report/file"),
    # A call-up's answer link, with its own face check and passkey
    # (test_call_up_checks_api.py).
    ("POST", "/api/v1/call/{token}/challenge"),
    ("POST", "/api/v1/call/{token}/passkey"),
    ("POST", "/api/v1/call/{token}/answer"),
    # A trading platform's signed requests, not staff (test_intake_api.py).
    ("POST", "/api/v1/intake/projects"),
    ("GET", "/api/v1/intake/projects/{code}"),
    ("PATCH", "/api/v1/intake/projects/{code}"),
}


def _call(client: TestClient, route: Route, ids: dict[str, str], headers: dict[str, str]) -> Any:
    path = route.path.format(**ids)
    if route.files == "face":
        photo = ("me.jpg", encode(portrait()), "image/jpeg")
        return client.request(
            route.method,
            path,
            files={"photos": photo},
            data={"consent": "true"},
            headers=headers,
        )
    if route.files == "compare":
        image = ("a.jpg", encode(portrait()), "image/jpeg")
        return client.request(
            route.method, path, files={"image_a": image, "image_b": image}, headers=headers
        )
    if route.files == "document":
        metadata = {
            "title": "报告",
            "purpose": "report",
            "slots": [
                {
                    "expert_id": ids["expert_id"],
                    "role": "专家",
                    "page": 0,
                    "box": [50, 50, 250, 130],
                }
            ],
        }
        return client.request(
            route.method,
            path,
            files={"file": ("r.pdf", make_pdf(1), "application/pdf")},
            data={"metadata": json.dumps(metadata)},
            headers=headers,
        )
    if route.files == "seal":
        return client.request(
            route.method,
            path,
            files={"file": ("seal.png", b"\x89PNG\r\n\x1a\n", "image/png")},
            headers=headers,
        )
    if route.files == "letter":
        metadata = {
            "name": "陈授权",
            "id_number": id_number(),
            "phone": "13800000000",
            "scope": "contracts",
            "valid_from": "2026-11-01T00:00:00+00:00",
            "valid_until": "2027-11-01T00:00:00+00:00",
        }
        return client.request(
            route.method,
            path,
            files={"letter": ("l.pdf", make_pdf(1), "application/pdf")},
            data={"metadata": json.dumps(metadata)},
            headers=headers,
        )
    if route.files == "validate":
        return client.request(
            route.method,
            path,
            files={"file": ("r.pdf", make_pdf(1), "application/pdf")},
            headers=headers,
        )
    if route.csv:
        return client.request(
            route.method, path, content=_csv(), headers={**headers, "content-type": "text/csv"}
        )
    body = route.json(ids) if callable(route.json) else route.json
    return client.request(route.method, path, json=body, headers=headers)


NOBODY = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def ids(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> dict[str, str]:
    establish_pki(db, clock, services, center)
    created = client.post(
        "/api/v1/experts", json=expert_payload(), headers=center.headers(Role.OPERATOR)
    )
    spare = staff_tokens.issue_staff_token(db, center.caller, clock, Role.OPERATOR, "spare")
    db.commit()
    return {
        **placeholders(),
        "expert_id": created.json()["id"],
        "token_id": spare.token_id,
    }


def placeholders() -> dict[str, str]:
    """Ids for every path parameter; requests without a valid token never look them up."""
    return {
        "expert_id": NOBODY,
        "token_id": NOBODY,
        "verification_id": "00000000-0000-0000-0000-000000000000",
        "anchor_id": "00000000-0000-0000-0000-000000000000",
        "passkey_id": "00000000-0000-0000-0000-000000000000",
        "document_id": "00000000-0000-0000-0000-000000000000",
        "project_id": "00000000-0000-0000-0000-000000000000",
        "draw_id": "00000000-0000-0000-0000-000000000000",
        "assignment_id": "00000000-0000-0000-0000-000000000000",
        "flag_id": "00000000-0000-0000-0000-000000000000",
        "session_id": "00000000-0000-0000-0000-000000000000",
        "unit_id": "00000000-0000-0000-0000-000000000000",
        "credential_id": "00000000-0000-0000-0000-000000000000",
        "authorization_id": "00000000-0000-0000-0000-000000000000",
        "contract_id": "00000000-0000-0000-0000-000000000000",
        "check_id": "00000000-0000-0000-0000-000000000000",
        "key_id": "pk_000000000000000000000000",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "delivery_id": "00000000-0000-0000-0000-000000000000",
        "name": "some-ca",
    }


def test_matrix_covers_every_api_route(app: FastAPI) -> None:
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    staff_routes = {(route.method, route.path) for route in ROUTES}
    assert served == staff_routes | NOT_STAFF
    assert not staff_routes & NOT_STAFF


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_role_matrix(
    client: TestClient,
    center: CenterWithStaff,
    ids: dict[str, str],
    db: Session,
    route: Route,
    role: Role,
) -> None:
    before = snapshot(db)
    response = _call(client, route, ids, center.headers(role))
    if role in route.allowed:
        assert response.status_code == route.ok, response.text
    else:
        assert_problem(response, 403, "role-forbidden")
        assert snapshot(db) == before


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer evs_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer ", "evs_missing-scheme"],
)
def test_unauthenticated_requests_are_refused(
    client: TestClient, db: Session, route: Route, authorization: str | None
) -> None:
    before = snapshot(db)
    headers = {"Authorization": authorization} if authorization else {}
    response = _call(client, route, placeholders(), headers)
    assert_problem(response, 401, "invalid-credentials")
    assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(db) == before


def test_revoked_token_stops_working_at_once(
    client: TestClient, center: CenterWithStaff, db: Session, clock: FrozenClock
) -> None:
    issued = staff_tokens.issue_staff_token(db, center.caller, clock, Role.OPERATOR, "temp")
    db.commit()
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert client.get("/api/v1/experts", headers=headers).status_code == 200
    revoke = client.post(
        f"/api/v1/staff/tokens/{issued.token_id}/revoke", headers=center.headers(Role.ADMIN)
    )
    assert revoke.status_code == 200 and revoke.json()["revoked_at"]
    assert_problem(client.get("/api/v1/experts", headers=headers), 401, "invalid-credentials")
    again = client.post(
        f"/api/v1/staff/tokens/{issued.token_id}/revoke", headers=center.headers(Role.ADMIN)
    )
    assert_problem(again, 409, "invalid-transition")


def test_issued_token_is_shown_once_and_stored_as_hash(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    response = client.post(
        "/api/v1/staff/tokens",
        json={"role": "supervisor", "label": "监督科 王"},
        headers=center.headers(Role.ADMIN),
    )
    assert response.status_code == 201
    secret = response.json()["token"]
    assert (
        client.get("/api/v1/center", headers={"Authorization": f"Bearer {secret}"}).json()["id"]
        == center.id
    )
    listed = client.get("/api/v1/staff/tokens", headers=center.headers(Role.ADMIN)).json()
    assert all("token" not in item for item in listed)
    assert secret not in str(listed)
    from models.tables import StaffToken

    stored = db.get(StaffToken, response.json()["id"])
    assert stored is not None and stored.token_hash == staff_tokens.hash_token(secret)
    assert secret not in stored.token_hash


class TestCenterIsolation:
    """Staff of one center can neither read nor change another center's records."""

    @pytest.fixture
    def foreign_expert(self, client: TestClient, other_center: CenterWithStaff) -> str:
        response = client.post(
            "/api/v1/experts", json=expert_payload(), headers=other_center.headers("operator")
        )
        assert response.status_code == 201
        return str(response.json()["id"])

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PATCH", "", {"name": "冒名"}),
            ("POST", "/suspend", {"reason": "越权"}),
            ("POST", "/reactivate", {}),
        ],
    )
    def test_foreign_expert_is_not_found(
        self,
        client: TestClient,
        center: CenterWithStaff,
        foreign_expert: str,
        db: Session,
        method: str,
        suffix: str,
        body: Any,
    ) -> None:
        before = snapshot(db)
        response = client.request(
            method,
            f"/api/v1/experts/{foreign_expert}{suffix}",
            json=body,
            headers=center.headers("operator"),
        )
        assert_problem(response, 404, "not-found")
        assert snapshot(db) == before

    def test_lists_and_logs_show_only_own_center(
        self,
        client: TestClient,
        center: CenterWithStaff,
        other_center: CenterWithStaff,
        foreign_expert: str,
    ) -> None:
        experts = client.get("/api/v1/experts", headers=center.headers("operator")).json()
        assert experts["total"] == 0 and experts["items"] == []
        entries = client.get("/api/v1/audit/entries", headers=center.headers("supervisor"))
        assert foreign_expert not in entries.text
        assert other_center.id not in entries.text
        assert client.get("/api/v1/center", headers=center.headers("admin")).json()["id"] == (
            center.id
        )

    def test_foreign_token_cannot_be_revoked(
        self,
        client: TestClient,
        center: CenterWithStaff,
        other_center: CenterWithStaff,
        db: Session,
        clock: FrozenClock,
    ) -> None:
        issued = staff_tokens.issue_staff_token(
            db, other_center.caller, clock, Role.OPERATOR, "theirs"
        )
        db.commit()
        response = client.post(
            f"/api/v1/staff/tokens/{issued.token_id}/revoke", headers=center.headers("admin")
        )
        assert_problem(response, 404, "not-found")
        assert staff_tokens.is_live(db, issued.token_id)

    def test_same_id_number_may_serve_two_centers(
        self, client: TestClient, center: CenterWithStaff, other_center: CenterWithStaff
    ) -> None:
        payload = expert_payload()
        for staff in (center, other_center):
            response = client.post(
                "/api/v1/experts", json=payload, headers=staff.headers("operator")
            )
            assert response.status_code == 201
