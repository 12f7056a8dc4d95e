"""The server killed outright (SIGKILL, as a power cut or the OOM killer would) in the middle
of signing the report and in the middle of a burst of audited writes, then started again on
the same data directory and database: the audit chain verifies, every write the server
acknowledged is there with its log entry, the report it serves is whole and every signature
in it validates, and the work left undone can simply be done again."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.demo import (
    CENTER,
    Client,
    approve_report_signature,
    on_local_port,
    seat_and_report,
)
from api.instance import initialize
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from models.clock import SystemClock
from models.db import make_engine
from models.settings import Settings
from models.tables import AuditEntry, Expert
from tests.factories import expert_payload

pytestmark = pytest.mark.slow


@dataclass
class Instance:
    settings: Settings
    tokens: dict[str, str]
    center_id: str
    log: Path

    @property
    def base(self) -> str:
        return f"http://localhost:{urlsplit(self.settings.public_url).port}"

    def staff(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def instance(tmp_path: Path, isolated_database_url: str) -> Instance:
    settings = on_local_port(
        Settings(
            data_dir=tmp_path / "var",
            database_url=isolated_database_url,
            audit_checkpoint_every_s=0,
            face_retention_every_s=0,
        )
    )
    init = initialize(settings, SystemClock(), CENTER)
    return Instance(settings, init.tokens, init.center_id, tmp_path / "server.log")


@contextmanager
def serving(instance: Instance) -> Iterator[subprocess.Popen[bytes]]:
    """`evalsign serve` in a process of its own, on the instance's data and database."""
    settings = instance.settings
    assert settings.database_url is not None
    env = {
        **os.environ,
        "EVALSIGN_DATABASE_URL": settings.database_url,
        "EVALSIGN_PUBLIC_URL": settings.public_url,
        "EVALSIGN_AUDIT_CHECKPOINT_EVERY_S": "0",
        "EVALSIGN_FACE_RETENTION_EVERY_S": "0",
    }
    port = str(urlsplit(settings.public_url).port)
    command = [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(settings.data_dir)]
    with instance.log.open("ab") as log:
        process = subprocess.Popen([*command, "--port", port], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"the server exited: {instance.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if requests.get(f"{instance.base}/readyz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def post_then_kill(
    process: subprocess.Popen[bytes], url: str, headers: dict[str, str], body: Any, after_s: float
) -> int | None:
    """POST, and kill the server ``after_s`` later; the status it answered before it died,
    or None when it never answered."""
    answered: list[int] = []

    def send() -> None:
        with suppress(requests.ConnectionError):
            answered.append(requests.post(url, headers=headers, json=body, timeout=60).status_code)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(after_s)
    kill(process)
    sender.join(timeout=60)
    return answered[0] if answered else None


def chain_of(instance: Instance) -> tuple[audit.ChainReport, Session]:
    assert instance.settings.database_url is not None
    engine = make_engine(instance.settings.database_url)
    db = Session(engine)
    return audit.verify_chain(db, instance.center_id), db


def check_report_is_whole(api: Client, instance: Instance, document_id: str) -> set[str]:
    """The chain verifies; the report served is the stored revision, every signature in it
    validates, and each signed seat has exactly one signature and one log entry. Returns
    the assignment-free ids of the experts who have signed."""
    supervisor = instance.staff("supervisor")
    document = api.call("GET", f"/api/v1/documents/{document_id}", 200, headers=supervisor)
    content: bytes = api.call(
        "GET", f"/api/v1/documents/{document_id}/content", 200, headers=supervisor
    )
    assert hashlib.sha256(content).hexdigest() == document["sha256"]
    assert len(content) == document["size"]
    signed = [slot for slot in document["slots"] if slot["status"] == "signed"]
    signature_revisions = [r for r in document["revisions"] if r["slot_id"] is not None]
    assert sorted(r["slot_id"] for r in signature_revisions) == sorted(s["id"] for s in signed)
    verdict = api.call(
        "POST",
        "/api/v1/validate",
        200,
        headers=supervisor,
        files={"file": ("report.pdf", content, "application/pdf")},
    )
    assert len(verdict["signatures"]) == len(signed), verdict["summary"]
    assert verdict["verdict"] == "valid", verdict["summary"]
    report, db = chain_of(instance)
    with db:
        assert report.ok, report
        logged = db.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == Action.DOCUMENT_SIGNED.value,
                AuditEntry.subject_id == document_id,
            )
        )
    assert logged == len(signed)
    return {str(slot["expert_id"]) for slot in signed}


def test_a_server_killed_while_signing_loses_no_signature_and_serves_a_whole_report(
    instance: Instance,
) -> None:
    api = Client(instance.base)
    with serving(instance):
        reported = seat_and_report(api, instance.tokens, print, None)
        signatures_url = instance.base + reported.report["signatures_url"]
        document_id = reported.report["document_id"]
        # One member signs undisturbed: how long a signature takes here, to aim the kills.
        first, *others = reported.seated
        face, body = approve_report_signature(api, first, reported.report["signatures_url"], print)
        started = time.monotonic()
        api.call("POST", reported.report["signatures_url"], 201, headers=face, json=body)
        took = time.monotonic() - started
    answers: list[int | None] = []
    outcomes: list[tuple[float, int | None, bool]] = []  # (killed after, answer, signed)
    for index, phone in enumerate(others):
        with serving(instance) as process:
            face, body = approve_report_signature(
                api, phone, reported.report["signatures_url"], print
            )
            # From just after the request leaves to well past the time a warm server takes
            # to answer. `took` is a cold process's first signature, slower than these warm
            # ones (more so on a loaded machine), so the earliest kill comes at a tenth of it.
            after = took * (0.1, 0.6, 2, 5)[index % 4]
            answers.append(post_then_kill(process, signatures_url, face, body, after))
        with serving(instance):
            signed = check_report_is_whole(api, instance, document_id)
            outcomes.append((round(after, 3), answers[-1], phone.expert_id in signed))
            if answers[-1] == 201:
                assert phone.expert_id in signed, "an acknowledged signature was lost"
            if phone.expert_id not in signed:
                # Nothing half-done stands in the way: the member signs again.
                face, body = approve_report_signature(
                    api, phone, reported.report["signatures_url"], print
                )
                api.call("POST", reported.report["signatures_url"], 201, headers=face, json=body)
            assert phone.expert_id in check_report_is_whole(api, instance, document_id)
    with serving(instance):
        signed = check_report_is_whole(api, instance, document_id)
        assert signed == {p.expert_id for p in reported.seated}
        document = api.call(
            "GET", f"/api/v1/documents/{document_id}", 200, headers=instance.staff("supervisor")
        )
        assert document["status"] == "completed"
    # At least one kill landed before the server answered, or the test proved nothing.
    assert None in answers, answers
    print(f"crash safety: a signature takes {took:.3f} s; (kill after, answer, signed): {outcomes}")


def test_a_server_killed_during_audited_writes_keeps_the_chain_and_every_acknowledged_write(
    instance: Instance,
) -> None:
    operator = instance.staff("operator")
    acknowledged: list[str] = []
    cut_off = 0
    for burst in range(3):
        with serving(instance) as process:
            dead = threading.Event()

            def register(dead: threading.Event = dead) -> tuple[list[str], int]:
                """Register experts one after another until the server dies; the ids it
                acknowledged, and 1 if a request was in flight when it died."""
                done: list[str] = []
                while not dead.is_set():
                    try:
                        answer = requests.post(
                            f"{instance.base}/api/v1/experts",
                            json=expert_payload(),
                            headers=operator,
                            timeout=60,
                        )
                    except requests.ConnectionError as error:
                        return done, 0 if "refused" in str(error) else 1
                    assert answer.status_code == 201, answer.text
                    done.append(str(answer.json()["id"]))
                return done, 0

            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = [pool.submit(register) for _ in range(8)]
                time.sleep(1.0 + 0.5 * burst)
                kill(process)
                dead.set()
                for future in futures:
                    done, cut = future.result()
                    acknowledged.extend(done)
                    cut_off += cut
        report, db = chain_of(instance)
        with db:
            assert report.ok, report
            stored = set(db.scalars(select(Expert.id)))
            logged = set(
                db.scalars(
                    select(AuditEntry.subject_id).where(
                        AuditEntry.action == Action.EXPERT_REGISTERED.value
                    )
                )
            )
        assert set(acknowledged) <= stored, "an acknowledged expert was lost"
        # Each expert and its log entry commit together, or neither does.
        assert stored == logged
    # Requests were in flight when the server died, or the test proved nothing.
    assert acknowledged and cut_off, (len(acknowledged), cut_off)
    print(f"crash safety: {len(acknowledged)} writes acknowledged, {cut_off} cut off in flight")
