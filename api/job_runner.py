"""The one job runner: periodic jobs, registered by name, run by every process that runs
the loop (`evalsign worker`, or `serve` while EVALSIGN_JOBS_IN_SERVE is on), and each round
of each job in exactly one of them (a lease per job, evaluation/kernel/leases.py).

To add a job:

    @periodic("my-sweep", every=lambda settings: settings.my_sweep_every_s)
    def my_sweep(services: Services) -> int:
        ...  # open its own transactions (api.deps.transaction); returns how much it did

in a module that api/jobs.py imports. `every` of 0 turns the job off.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from api.deps import transaction
from api.services import Services
from evaluation.kernel import leases
from models.settings import Settings

log = logging.getLogger("evalsign.jobs")

JobFunction = Callable[[Services], int]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: Callable[[Settings], float]  # seconds between rounds; 0 turns the job off
    run: JobFunction
    # Longer than any round takes: past it, another process may take the job over.
    lease: timedelta = timedelta(minutes=15)


_registered: dict[str, PeriodicJob] = {}


def periodic(
    name: str, *, every: Callable[[Settings], float], lease: timedelta = timedelta(minutes=15)
) -> Callable[[JobFunction], JobFunction]:
    """Register a function as a periodic job."""

    def register(run: JobFunction) -> JobFunction:
        if name in _registered and _registered[name].run is not run:
            raise ValueError(f"a periodic job named {name!r} is already registered")
        _registered[name] = PeriodicJob(name, every, run, lease)
        return run

    return register


def registered() -> list[PeriodicJob]:
    return list(_registered.values())


class JobRunner:
    """Runs whichever registered jobs are due and not taken elsewhere; in a thread of its
    own (`start`/`stop`) or in the foreground (`run_forever`)."""

    def __init__(
        self, services: Services, jobs: list[PeriodicJob] | None = None, holder: str | None = None
    ) -> None:
        if jobs is None:
            import api.jobs  # noqa: F401  (registers the project's jobs)

            jobs = registered()
        self.services = services
        self.jobs = [job for job in jobs if job.every(services.settings) > 0]
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> dict[str, int]:
        """One pass: every due job this runner wins, run once; what each returned."""
        services = self.services
        done: dict[str, int] = {}
        for job in self.jobs:
            every = timedelta(seconds=job.every(services.settings))
            with transaction(services) as db:
                taken = leases.claim(
                    db, name=job.name, holder=self.holder, now=services.clock.now(), lease=job.lease
                )
            if not taken:
                continue
            try:
                done[job.name] = job.run(services)
            except Exception:  # the next round tries again; one job must not stop the others
                log.exception("scheduled %s failed", job.name)
            finally:
                with transaction(services) as db:
                    leases.finish(
                        db, name=job.name, holder=self.holder, now=services.clock.now(), every=every
                    )
        return done

    @property
    def tick(self) -> float:
        """How often to look for due jobs: often enough for the most frequent one."""
        shortest = min((job.every(self.services.settings) for job in self.jobs), default=60.0)
        return min(30.0, max(0.5, shortest / 2))

    def run_forever(self, *, once: bool = False, wait_first: bool = False) -> None:
        if wait_first and self._stop.wait(self.tick):
            return
        while True:
            try:
                self.run_due()
            except Exception:  # the database away for a moment: try again next tick
                log.exception("the job runner could not reach the database")
            if once or self._stop.wait(self.tick):
                return

    def start(self) -> None:
        if not self.jobs:
            return
        # A tick after start: a process that comes up only to answer a few requests (a
        # test, a one-off) does not run the jobs on its way in.
        self._thread = threading.Thread(
            target=self.run_forever, kwargs={"wait_first": True}, name="jobs", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
