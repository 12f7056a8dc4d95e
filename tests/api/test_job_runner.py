"""The job runner: with two processes running the loop on one database, each round of
each periodic job runs in one of them (a lease per job), audited once."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from api.instance import initialize
from api.job_runner import JobRunner, PeriodicJob, registered
from api.services import Services, build_services
from evaluation.identity import cross_matches
from evaluation.kernel import audit
from evaluation.kernel.tokens import hash_token
from evaluation.registry import centers
from evaluation.registry import experts as registry_experts
from evaluation.registry import staff as staff_tokens
from evaluation.registry.experts import NewExpert
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.db import make_engine, make_session_factory
from models.settings import Settings
from models.tables import (
    AuditCheckpoint,
    FaceChallenge,
    FaceCrossCheck,
    FaceVerification,
    JobLease,
)
from tests.factories import enrolled_template, expert_payload

pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(tmp_path: Path, isolated_database_url: str) -> Iterator[list[Services]]:
    """Two replicas' services (engine and pool each) over one initialized database."""
    clock = FrozenClock(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=isolated_database_url,
        audit_checkpoint_every_s=3600,
        audit_checkpoint_every_entries=1_000_000,
    )
    initialize(settings, clock)
    engines = [make_engine(isolated_database_url) for _ in range(2)]
    yield [build_services(settings, engine=engine, clock=clock) for engine in engines]
    for engine in engines:
        engine.dispose()


def _race(runners: list[JobRunner]) -> list[dict[str, int]]:
    """Both runners look for due jobs at the same moment."""
    start = threading.Barrier(len(runners))
    results: list[dict[str, int]] = [{} for _ in runners]

    def run(index: int) -> None:
        start.wait()
        results[index] = runners[index].run_due()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(runners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_replicas_write_each_scheduled_checkpoint_once(replicas: list[Services]) -> None:
    runners = [JobRunner(services) for services in replicas]
    clock = replicas[0].clock
    assert isinstance(clock, FrozenClock)
    rounds = 0
    for _ in range(4):
        results = _race(runners)
        ran = [r["audit-checkpoints"] for r in results if "audit-checkpoints" in r]
        assert len(ran) == 1, results  # one replica took the round, the other skipped it
        rounds += 1
        clock.advance(timedelta(hours=1))  # a checkpoint is due again, and so is the job
        with make_session_factory(replicas[0].engine)() as db, db.begin():
            # A new audited entry, or there is nothing to sign.
            center = centers.list_centers(db)[0]
            caller = audit.Caller(center.id, "test")
            staff_tokens.issue_staff_token(db, caller, clock, Role.OPERATOR, f"round {rounds}")
    with make_session_factory(replicas[0].engine)() as db:
        written = db.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).all()
        lease = db.get(JobLease, "audit-checkpoints")
    assert len(written) == rounds  # one per round, not one per replica
    assert (
        lease is not None
        and lease.expires_at is None
        and lease.holder in {r.holder for r in runners}
    )


def test_a_registered_job_runs_once_per_round_across_replicas(replicas: list[Services]) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def count(services: Services) -> int:
        with lock:
            calls.append(services.engine.url.render_as_string())
        return 1

    job = PeriodicJob("count", every=lambda s: 10.0, run=count)
    runners = [
        JobRunner(services, [job], holder=f"replica-{i}") for i, services in enumerate(replicas)
    ]
    clock = replicas[0].clock
    assert isinstance(clock, FrozenClock)
    for _ in range(10):
        _race(runners)
        _race(runners)  # not due again within the period
        clock.advance(timedelta(seconds=10))
    assert len(calls) == 10


def test_a_dead_holders_lease_is_taken_over_when_it_expires(replicas: list[Services]) -> None:
    calls: list[str] = []

    def crash(services: Services) -> int:
        calls.append("run")
        return 0

    job = PeriodicJob("takeover", every=lambda s: 60.0, run=crash, lease=timedelta(minutes=5))
    first, second = (JobRunner(s, [job], holder=f"r{i}") for i, s in enumerate(replicas))
    clock = replicas[0].clock
    assert isinstance(clock, FrozenClock)
    from api.deps import transaction
    from evaluation.kernel import leases

    with transaction(replicas[0]) as db:  # r0 takes the round and dies before finishing it
        assert leases.claim(db, name="takeover", holder="r0", now=clock.now(), lease=job.lease)
    assert second.run_due() == {}
    clock.advance(timedelta(minutes=5))
    assert second.run_due() == {"takeover": 0}
    assert calls == ["run"]
    assert first.run_due() == {}  # the round after is a minute away


def test_the_project_jobs_are_registered() -> None:
    import api.jobs  # noqa: F401

    names = {job.name for job in registered()}
    assert {"audit-checkpoints", "face-retention"} <= names


def _queued_checks(services: Services, count: int) -> list[str]:
    """`count` 1:1 checks waiting for the cross-match sweep, each made by someone who looks
    like another enrolled person; the people inserted as enrollment stores them."""
    rng = np.random.default_rng(3)
    now = services.clock.now()
    ids = []
    with make_session_factory(services.engine)() as db, db.begin():
        center = centers.list_centers(db)[0]
        caller = audit.Caller(center.id, "test")
        people = []
        for _ in range(count + 1):
            expert = registry_experts.register_expert(
                db, caller, services.clock, services.cipher, NewExpert(**expert_payload())
            )
            vector = rng.normal(size=512).astype(np.float32)
            vector /= np.linalg.norm(vector)
            enrolled_template(
                db,
                services.cipher,
                center_id=center.id,
                expert_id=expert.id,
                vector=vector,
                model_id="synthetic-512",
                now=now,
            )
            people.append((expert.id, vector))
        for n in range(count):
            claimed, claimed_face = people[n]
            _other, other_face = people[n + 1]
            challenge = FaceChallenge(
                center_id=center.id,
                mode="1:1",
                expert_ids=[claimed],
                actions=["blink"],
                nonce_hash=hash_token(secrets.token_hex(8)),
                capture={},
                issued_by="test",
                issued_at=now,
                expires_at=now,
                used_at=now,
            )
            db.add(challenge)
            db.flush()
            verification = FaceVerification(
                center_id=center.id,
                challenge_id=challenge.id,
                mode="1:1",
                candidate_ids=[claimed],
                expert_id=claimed,
                passed=False,
                reasons=["face-mismatch"],
                checks=[],
                similarity=float(other_face @ claimed_face),
                model_id="synthetic-512",
                device_id="phone",
                device={"id": "phone"},
                client_ip="127.0.0.1",
                user_agent="test",
                frame_count=0,
                frame_hashes=[],
                frames=[],
                frames_retained=False,
                created_at=now,
            )
            db.add(verification)
            db.flush()
            cross_matches.queue(
                db,
                services.cipher,
                verification,
                other_face,
                threshold=0.4,
                claimed_similarity=float(other_face @ claimed_face),
            )
            ids.append(verification.id)
    return ids


def test_two_sweeps_at_once_decide_each_check_once(replicas: list[Services]) -> None:
    """Past the lease, the sweep itself skips the checks another sweep has locked: run
    side by side (a lease expired under a slow round), they still decide each check once."""
    queued = _queued_checks(replicas[0], 12)
    found: list[list[cross_matches.CrossMatch]] = [[], []]
    start = threading.Barrier(2)

    def sweep(index: int) -> None:
        services = replicas[index]
        start.wait()
        for _ in range(6):
            with make_session_factory(services.engine)() as db, db.begin():
                found[index] += cross_matches.sweep(
                    db, services.cipher, services.clock.now(), limit=2
                )

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    decided = [m.verification_id for both in found for m in both]
    assert sorted(decided) == sorted(queued)  # every check once, none twice
    with make_session_factory(replicas[0].engine)() as db:
        rows = db.execute(select(FaceCrossCheck)).scalars().all()
    assert all(row.swept_at is not None and row.probe_ciphertext is None for row in rows)
    assert all(row.other_expert_id is not None for row in rows)
