"""Hostile PDFs over HTTP: upload and validation answer 422 naming the budget the file
broke, and no refused upload leaves its temporary file behind (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.registry.staff import Role
from models.tables import AuditEntry, Document
from tests.api.helpers import assert_problem
from tests.factories import CenterWithStaff, make_pdf
from tests.signing.hostile_pdfs import CORPUS

pytestmark = pytest.mark.slow

REFUSED = [name for name, (_, limit) in CORPUS.items() if limit != "ok" and "bomb" not in name]


def _upload(client: TestClient, headers: dict[str, str], pdf: bytes) -> Any:
    box = [60, 60, 260, 140]
    slot = {"signer_kind": "party", "party_name": "某公司", "role": "甲方", "box": box}
    metadata = {"title": "合同", "purpose": "other", "slots": [slot]}
    return client.post(
        "/api/v1/documents",
        files={"file": ("x.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        headers=headers,
    )


def _incoming(services: Services) -> list[Path]:
    folder = services.documents.store.root / "incoming"
    return sorted(folder.iterdir()) if folder.exists() else []


def _counts(db: Session) -> tuple[int, int]:
    db.expire_all()
    return (
        db.execute(select(func.count()).select_from(Document)).scalar_one(),
        db.execute(select(func.count()).select_from(AuditEntry)).scalar_one(),
    )


@pytest.mark.parametrize("name", REFUSED)
def test_a_hostile_upload_is_a_422_naming_its_limit(
    client: TestClient, center: CenterWithStaff, services: Services, db: Session, name: str
) -> None:
    build, limit = CORPUS[name]
    pdf = build()
    before = _counts(db)
    response = _upload(client, center.headers(Role.OPERATOR), pdf)
    assert_problem(response, 422, "pdf-rejected")
    if limit is not None:
        assert response.json()["limit"] == limit
    assert _counts(db) == before
    assert _incoming(services) == []
    checked = client.post(
        "/api/v1/validate",
        files={"file": ("x.pdf", pdf, "application/pdf")},
        headers=center.headers(Role.SUPERVISOR),
    )
    # A file upload refuses is refused by validation too, not reported as unsigned.
    assert_problem(checked, 422, "pdf-rejected")
    if limit is not None:
        assert checked.json()["limit"] == limit
    assert _incoming(services) == []


def test_a_refusal_of_any_kind_removes_the_temporary_upload(
    client: TestClient, center: CenterWithStaff, services: Services, db: Session
) -> None:
    before = _counts(db)
    # A supervisor may not upload: the body had been received before the role was checked.
    refused = _upload(client, center.headers(Role.SUPERVISOR), make_pdf(1))
    assert refused.status_code == 403
    anonymous = _upload(client, {}, make_pdf(1))
    assert anonymous.status_code == 401
    assert _incoming(services) == []
    assert _counts(db) == before


def test_an_ordinary_upload_is_kept_and_leaves_nothing_in_incoming(
    client: TestClient, center: CenterWithStaff, services: Services
) -> None:
    pdf = make_pdf(1)
    response = _upload(client, center.headers(Role.OPERATOR), pdf)
    assert response.status_code == 201, response.text
    assert _incoming(services) == []
    stored = client.get(
        f"/api/v1/documents/{response.json()['id']}/content",
        headers=center.headers(Role.OPERATOR),
    )
    assert stored.status_code == 200 and stored.content == pdf
