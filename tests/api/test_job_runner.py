"""The job runner: with two processes running the loop on one database, each round of
each periodic job runs in one of them (a lease per job), audited once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from api.instance import initialize
from api.job_runner import JobRunner, PeriodicJob, registered
from api.services import Services, build_services
from evaluation.kernel import audit
from evaluation.registry import centers
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.db import make_engine, make_session_factory
from models.settings import Settings
from models.tables import AuditCheckpoint, JobLease

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
