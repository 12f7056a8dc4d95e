"""The demo's supplementary draw step (api/demo.py, step 16) against the app in process:
the full demo (tests/api/test_evaluation_flow.py) films faces and takes minutes; this step
needs none, so it is checked here on every run."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from api.demo import Phone, Staged, supplementary_draw
from evaluation.committee.draw_proof import SUPPLEMENTARY, verify_chain
from evaluation.registry.staff import Role
from tests.api.test_projects_api import pool
from tests.factories import CenterWithStaff

__all__ = ["pool"]  # the drawable experts, a fixture of the projects tests


class InProcess:
    """The demo's Client over the TestClient: same call(), same refusal on a surprise."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.base = ""

    def call(
        self, method: str, path: str, expect: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        response = self.client.request(method, path, headers=headers, **kw)
        assert response.status_code == expect, f"{method} {path}: {response.text[:500]}"
        return response.json()


def test_the_demo_fills_a_vacant_seat_by_a_chained_supplementary_draw(
    client: TestClient, center: CenterWithStaff, pool: dict[str, list[str]]
) -> None:
    api = InProcess(client)
    blank = np.zeros((1, 1, 3), dtype=np.uint8)
    phones = {
        expert_id: Phone(f"专家{n}", expert_id, blank)
        for n, expert_id in enumerate(e for ids in pool.values() for e in ids)
    }
    staged = Staged(
        api,  # type: ignore[arg-type]
        center.headers(Role.OPERATOR),
        center.headers(Role.ADMIN),
        center.headers(Role.SUPERVISOR),
        phones,
        {"code": "DEMO-1"},
        {},
        "",
        {},
        {},
        [],
        {},
    )
    said: list[str] = []
    summary = supplementary_draw(staged, said.append)

    proofs = summary["proofs"]
    assert verify_chain(proofs) == proofs
    assert [p["algorithm"] for p in proofs] == ["evalsign-draw-v1", SUPPLEMENTARY]
    assert summary["project"] == "DEMO-1-2" and len(summary["draws"]) == 2
    assert summary["drawn"] != summary["vacated"]
    assert any(line.startswith("16. 补充抽取") for line in said)
