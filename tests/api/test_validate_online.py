"""POST /api/v1/validate on a signature from a CA the center recognizes (an external
trust anchor): its revocation status comes from the CA's own responder, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from evaluation.registry.staff import Role
from models.clock import FrozenClock
from tests.factories import CenterWithStaff
from tests.foreign_ca import ForeignCa, RevocationServer, build_foreign_ca
from tests.signing.test_online_revocation import sign_foreign


@pytest.fixture
def clock() -> FrozenClock:
    # The foreign CA signs and answers on the real clock.
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def foreign() -> Iterator[tuple[RevocationServer, ForeignCa]]:
    server = RevocationServer()
    server.ca = build_foreign_ca(server.url)
    yield server, server.ca
    server.stop()


def _recognize(client: TestClient, center: CenterWithStaff, ca: ForeignCa) -> None:
    added = client.post(
        "/api/v1/pki/trust-anchors",
        json={"certificate_pem": ca.root.public_bytes(Encoding.PEM).decode(), "name": "外省CA"},
        headers=center.headers(Role.ADMIN),
    )
    assert added.status_code == 201, added.text


def _validate(client: TestClient, center: CenterWithStaff, path: Path) -> dict[str, object]:
    response = client.post(
        "/api/v1/validate",
        files={"file": ("foreign.pdf", path.read_bytes(), "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_an_external_ca_s_signature_is_checked_with_its_own_responder(
    client: TestClient,
    center: CenterWithStaff,
    foreign: tuple[RevocationServer, ForeignCa],
    tmp_path: Path,
) -> None:
    server, ca = foreign
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    _recognize(client, center, ca)
    body = _validate(client, center, path)
    assert body["verdict"] == "valid", body
    [signature] = body["signatures"]  # type: ignore[misc]
    assert signature["revocation_source"] == "online"
    assert server.hits["/ocsp"] == 2
    printed = client.post(
        "/api/v1/validate?format=html",
        files={"file": ("foreign.pdf", path.read_bytes(), "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    )
    assert "Revocation data from</th><td>online" in printed.text
    # The answers are kept until their nextUpdate: the responder going away changes nothing.
    server.stop()
    assert _validate(client, center, path)["verdict"] == "valid"


def test_an_unreachable_responder_leaves_it_indeterminate_and_says_so(
    client: TestClient,
    center: CenterWithStaff,
    foreign: tuple[RevocationServer, ForeignCa],
    tmp_path: Path,
) -> None:
    server, ca = foreign
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    _recognize(client, center, ca)
    server.stop()
    body = _validate(client, center, path)
    assert body["verdict"] == "indeterminate", body
    [signature] = body["signatures"]  # type: ignore[misc]
    assert any(
        "revocation status unavailable" in p and "connection refused" in p
        for p in signature["problems"]
    ), signature
