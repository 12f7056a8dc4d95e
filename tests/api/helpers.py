"""Small assertions shared by the API tests."""

from __future__ import annotations

from typing import Any

from httpx2 import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import AuditEntry, Expert, ExpertSpecialty, StaffToken


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def snapshot(db: Session) -> tuple[int, int, int, int]:
    """Row counts of everything a request could change: equal before and after = unchanged."""
    db.expire_all()
    return tuple(  # type: ignore[return-value]
        db.execute(select(func.count()).select_from(model)).scalar_one()
        for model in (Expert, ExpertSpecialty, AuditEntry, StaffToken)
    )
