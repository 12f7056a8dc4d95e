"""Concurrent requests against a real server on a real database: nothing lost, nothing
duplicated, the audit chain intact."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from sqlalchemy import func, select

from api.app import create_app
from api.instance import initialize
from api.services import build_services
from evaluation.kernel import audit
from models.clock import SystemClock
from models.db import make_engine, make_session_factory
from models.settings import Settings
from models.tables import AuditEntry, Expert
from tests.factories import expert_payload

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live(
    tmp_path: Path, isolated_database_url: str, document_store: str | None
) -> Iterator[dict[str, Any]]:
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=isolated_database_url,
        document_store=document_store,
    )
    init = initialize(settings, SystemClock())
    engine = make_engine(isolated_database_url)
    app = create_app(build_services(settings, engine=engine))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield {
        "base": f"http://127.0.0.1:{port}",
        "operator": {"Authorization": f"Bearer {init.tokens['operator']}"},
        "center_id": init.center_id,
        "engine": engine,
    }
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def _post_all(live: dict[str, Any], payloads: list[dict[str, Any]]) -> list[int]:
    with httpx2.Client(base_url=live["base"], timeout=60) as client:

        def post(payload: dict[str, Any]) -> int:
            return client.post(
                "/api/v1/experts", json=payload, headers=live["operator"]
            ).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(post, payloads))


def _count(live: dict[str, Any], model: Any) -> int:
    with make_session_factory(live["engine"])() as db:
        return int(db.execute(select(func.count()).select_from(model)).scalar_one())


def test_parallel_registrations_of_one_person_store_exactly_one(live: dict[str, Any]) -> None:
    payload = expert_payload()
    statuses = _post_all(live, [dict(payload, name=f"张伟{n}") for n in range(12)])
    assert Counter(statuses) == {201: 1, 409: 11}
    assert _count(live, Expert) == 1
    with make_session_factory(live["engine"])() as db:
        assert audit.verify_chain(db, live["center_id"]).ok
        registered = db.execute(
            select(func.count()).where(AuditEntry.action == "expert.registered")
        ).scalar_one()
    assert registered == 1  # a refused registration leaves no audit entry behind


def test_parallel_registrations_lose_nothing(live: dict[str, Any]) -> None:
    entries_before = _count(live, AuditEntry)
    statuses = _post_all(live, [expert_payload() for _ in range(40)])
    assert statuses == [201] * 40
    assert _count(live, Expert) == 40
    assert _count(live, AuditEntry) == entries_before + 40
    with make_session_factory(live["engine"])() as db:
        report = audit.verify_chain(db, live["center_id"])
    assert report.ok and report.entries_checked == entries_before + 40


def test_a_sad_spent_by_parallel_requests_signs_once(live: dict[str, Any]) -> None:
    import base64
    import hashlib

    from tests.factories import bound_phone, face_session

    with httpx2.Client(base_url=live["base"], timeout=60) as client:
        expert = client.post(
            "/api/v1/experts", json=expert_payload(), headers=live["operator"]
        ).json()
        credential = client.post(
            f"/api/v1/experts/{expert['id']}/credential", headers=live["operator"]
        ).json()
        with make_session_factory(live["engine"])() as db:
            token, _ = face_session(db, SystemClock(), live["center_id"], expert["id"])
            bound = bound_phone(db, SystemClock(), None, live["center_id"], expert["id"])
        phone = {"Authorization": f"Bearer {token}", "X-Device-Id": "phone-test-1"}
        body = {
            "credentialID": credential["id"],
            "numSignatures": 1,
            "hashes": [base64.b64encode(hashlib.sha256(b"report").digest()).decode()],
            "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
        }
        issued = client.post(
            "/csc/v2/credentials/passkeyChallenge",
            json={"credentialID": credential["id"], "hashes": body["hashes"]},
            headers=phone,
        ).json()
        approval = {"nonce": issued["nonce"], "assertion": bound.get(issued["publicKey"])}
        sad = client.post(
            "/csc/v2/credentials/authorize", json={**body, "passkey": approval}, headers=phone
        ).json()["SAD"]
        request = {**body, "SAD": sad, "signAlgo": "1.2.840.10045.4.3.2"}

        def spend(_: int) -> int:
            return client.post(
                "/csc/v2/signatures/signHash", json=request, headers=phone
            ).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(spend, range(8)))
    assert Counter(statuses) == {200: 1, 409: 7}
    with make_session_factory(live["engine"])() as db:
        actions = Counter(db.execute(select(AuditEntry.action)).scalars())
        assert audit.verify_chain(db, live["center_id"]).ok
    assert actions["signature.created"] == 1 and actions["signature.refused"] == 7


@pytest.mark.parametrize("document_store", ["local", "s3"], indirect=True)
def test_parallel_signers_of_one_document_all_land(live: dict[str, Any]) -> None:
    import json

    from tests.factories import bound_phone, face_session, make_pdf

    signers = 4
    with httpx2.Client(base_url=live["base"], timeout=120) as client:
        phones, slots = [], []
        for index in range(signers):
            expert = client.post(
                "/api/v1/experts", json=expert_payload(), headers=live["operator"]
            ).json()
            issued = client.post(
                f"/api/v1/experts/{expert['id']}/credential", headers=live["operator"]
            )
            assert issued.status_code == 201
            with make_session_factory(live["engine"])() as db:
                token, _ = face_session(
                    db, SystemClock(), live["center_id"], expert["id"], device_id=f"p{index}"
                )
                bound = bound_phone(
                    db, SystemClock(), None, live["center_id"], expert["id"], device_id=f"p{index}"
                )
            phones.append(({"Authorization": f"Bearer {token}", "X-Device-Id": f"p{index}"}, bound))
            x = 40 + 130 * index
            slots.append(
                {
                    "expert_id": expert["id"],
                    "role": "评标专家",
                    "page": 0,
                    "box": [x, 60, x + 120, 120],
                }
            )
        metadata = {"title": "并发签署", "purpose": "report", "slots": slots}
        document = client.post(
            "/api/v1/documents",
            files={"file": ("r.pdf", make_pdf(1), "application/pdf")},
            data={"metadata": json.dumps(metadata)},
            headers=live["operator"],
        ).json()
        client.post(f"/api/v1/documents/{document['id']}/start", headers=live["operator"])

        moved_on: list[str] = []

        def sign(phone: tuple[dict[str, str], Any]) -> int:
            # As the phone page does: a signature prepared before another one landed is
            # refused (document-moved-on) and approved again on the document as it stands.
            headers, bound = phone
            url = f"/api/v1/documents/{document['id']}"
            for _ in range(2 * signers):
                issued = client.post(f"{url}/approval", json={}, headers=headers).json()
                approval = {"nonce": issued["nonce"], "assertion": bound.get(issued["publicKey"])}
                answer = client.post(
                    f"{url}/signatures", json={"passkey": approval}, headers=headers
                )
                if answer.status_code != 409 or answer.json()["code"] != "document-moved-on":
                    return answer.status_code
                moved_on.append(answer.json()["code"])
            return 0

        with ThreadPoolExecutor(max_workers=signers) as pool:
            statuses = list(pool.map(sign, phones))
        assert statuses == [201] * signers, moved_on
        final = client.get(f"/api/v1/documents/{document['id']}", headers=live["operator"]).json()
        assert final["status"] == "completed"
        assert [r["kind"] for r in final["revisions"]] == (
            ["upload"] + ["signature"] * signers + ["timestamp"]
        )
        content = client.get(
            f"/api/v1/documents/{document['id']}/content", headers=live["operator"]
        ).content
        report = client.post(
            "/api/v1/validate",
            files={"file": ("signed.pdf", content, "application/pdf")},
            headers=live["operator"],
        ).json()
    assert report["verdict"] == "valid", report
    assert len(report["signatures"]) == signers
    with make_session_factory(live["engine"])() as db:
        assert audit.verify_chain(db, live["center_id"]).ok
