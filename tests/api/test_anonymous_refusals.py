"""Anonymous requests cannot flood the audit chain: their refusals are rate limited and
tallied per center, minute, source and reason; a signed-in person's stay entries."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import transaction
from api.services import Services
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from models.clock import FrozenClock
from models.tables import AuditEntry
from tests.api import rate_limiting
from tests.api.committee import Committee
from tests.api.helpers import anonymous_refusals, assert_problem, refused_reasons
from tests.factories import CenterWithStaff

# The fixtures that run each test on memory and on Redis, with the limits it sets.
backend, limits, settings = rate_limiting.backend, rate_limiting.limits, rate_limiting.settings

FLOOD = 300


def _entries(db: Session) -> int:
    db.expire_all()
    return int(db.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def _forged(committee: Committee) -> str:
    room = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/qr", headers=committee.operator
    ).json()
    token = str(room["token"])
    # The project id is on every screen; the signature is what a forger cannot make.
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


def _flood(client: TestClient, forged: str) -> tuple[dict[int, int], float]:
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    for index in range(FLOOD):
        answer = client.post(
            "/api/v1/scan", json={"token": forged, "device_id": f"forger-{index:05d}"}
        )
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return statuses, time.perf_counter() - started


def test_forged_scans_are_rate_limited_and_tallied_not_chained(
    committee: Committee, db: Session, settings: Any
) -> None:
    """300 forged room codes from one address, a new device id each (devices cost a forger
    nothing): the address's refusal budget is spent, then everything is 429; not one entry
    joins the hash chain, and the tally counts exactly the refusals made."""
    forged = _forged(committee)
    before = _entries(db)
    statuses, seconds = _flood(committee.client, forged)
    budget = int(settings.rate_limit_refusals_per_address.split("/")[0])
    assert statuses == {401: budget, 429: FLOOD - budget}, statuses
    assert _entries(db) == before
    rows = anonymous_refusals(db)
    assert [(r.source, r.action, r.reason) for r in rows] == [
        ("testclient", "task.scan_refused", "qr-token-invalid")
    ]
    assert rows[0].count == budget
    assert rows[0].last_details["device_id"] == f"forger-{budget - 1:05d}"
    assert rows[0].last_details["subject_id"] == committee.project_id
    print(f"\n{FLOOD} forged scans in {seconds:.2f} s: {statuses}")
    # The 429 tells when to come back, and the room's other addresses are not held up.
    over = committee.client.post("/api/v1/scan", json={"token": forged, "device_id": "late-1234"})
    assert_problem(over, 429, "rate-limited")
    assert int(over.headers["retry-after"]) >= 1


@pytest.mark.parametrize("limits", [{"rate_limit_enabled": False}])
def test_without_limits_every_refusal_is_still_one_row_a_minute(
    committee: Committee, db: Session, clock: FrozenClock
) -> None:
    forged = _forged(committee)
    before = _entries(db)
    statuses, _ = _flood(committee.client, forged)
    assert statuses == {401: FLOOD}
    clock.advance(timedelta(minutes=1))
    committee.client.post("/api/v1/scan", json={"token": forged, "device_id": "forger-next"})
    assert _entries(db) == before
    assert [r.count for r in anonymous_refusals(db)] == [FLOOD, 1]  # one row per minute
    assert refused_reasons(db) == {"qr-token-invalid": FLOOD + 1}


@pytest.mark.parametrize("limits", [{"rate_limit_enabled": False}])
def test_supervisors_read_the_tallies_operators_do_not(
    committee: Committee, center: CenterWithStaff, clock: FrozenClock
) -> None:
    forged = _forged(committee)
    for _ in range(3):
        committee.client.post("/api/v1/scan", json={"token": forged, "device_id": "forger-1"})
    listed = committee.client.get("/api/v1/audit/refusals", headers=center.headers("supervisor"))
    assert listed.status_code == 200, listed.text
    [row] = listed.json()
    assert row["count"] == 3 and row["reason"] == "qr-token-invalid"
    assert row["source"] == "testclient" and row["action"] == "task.scan_refused"
    later = committee.client.get(
        "/api/v1/audit/refusals",
        params={"since": (clock.now() + timedelta(minutes=1)).isoformat()},
        headers=center.headers("supervisor"),
    )
    assert later.json() == []
    refused = committee.client.get("/api/v1/audit/refusals", headers=center.headers("operator"))
    assert_problem(refused, 403, "role-forbidden")


class _Refused(DomainError):
    status = 409
    code = "refused-for-test"


def test_a_signed_in_persons_refusal_stays_an_entry_of_its_own(
    db: Session, services: Services, center: CenterWithStaff
) -> None:
    db.commit()
    before = _entries(db)
    expert = audit.Caller(center.id, "expert:e-1", None, "rid-1")
    event = audit.AuditEvent(Action.PASSKEY_REFUSED, "passkey", None, {"reason": "x"})
    with pytest.raises(_Refused), transaction(services):
        raise audit.refused(_Refused("no"), expert, event)
    assert _entries(db) == before + 1
    anonymous = audit.Caller(center.id, "device:d-1", None, "rid-2")
    scan = audit.AuditEvent(Action.TASK_SCAN_REFUSED, "project", "p-1", {"reason": "y"})
    with pytest.raises(_Refused), transaction(services):
        raise audit.refused(_Refused("no"), anonymous, scan, anonymous_from="10.1.2.3")
    assert _entries(db) == before + 1
    assert [(r.source, r.reason, r.count) for r in anonymous_refusals(db)] == [("10.1.2.3", "y", 1)]
    assert audit.verify_chain(db, center.id).ok
