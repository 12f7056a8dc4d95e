"""Work the service does on its own: the scheduled audit checkpoints and face data
retention.

A thread per job and process wakes up every so often: the checkpoint writer signs the
head of each center's chain when a checkpoint is due (several workers may race for the
same head; the unique (center, seq) constraint lets one win and the others skip), the
retention worker deletes face data past its retention period.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from api.deps import transaction
from api.services import Services
from evaluation.identity import capture_stream, face_data
from evaluation.kernel import audit
from evaluation.registry import centers
from evaluation.trust import checkpoints

log = logging.getLogger("evalsign.jobs")


class PeriodicJob:
    """A daemon thread that calls `run_once` every `every` seconds until stopped; a failed
    round is logged and the next one tries again."""

    name = "job"

    def __init__(self, every: float) -> None:
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run_once()
            except Exception:  # the next round tries again; a failure must not end the thread
                log.exception("scheduled %s failed", self.name)


class CheckpointWriter(PeriodicJob):
    name = "checkpoints"

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.policy = checkpoints.CheckpointPolicy(
            every_entries=settings.audit_checkpoint_every_entries,
            every=timedelta(seconds=settings.audit_checkpoint_every_s),
        )
        super().__init__(min(60.0, max(1.0, settings.audit_checkpoint_every_s / 4)))

    def run_once(self) -> int:
        """Sign every center's head that is due; returns how many checkpoints were written."""
        services = self.services
        written = 0
        with transaction(services, read_only=True) as db:
            ids = [center.id for center in centers.list_centers(db)]
        for center_id in ids:
            try:
                with transaction(services) as db:
                    if not checkpoints.due(db, center_id, self.policy, services.clock.now()):
                        continue
                    checkpoints.write_checkpoint(
                        db, services.clock, services.vault, services.pki, center_id, "scheduled"
                    )
                    written += 1
            except IntegrityError:
                log.info("another worker signed center %s's head first", center_id)
            except Exception:  # one center's trouble (no PKI yet) must not stop the others
                log.exception("cannot write center %s's audit checkpoint", center_id)
        return written


class RetentionWorker(PeriodicJob):
    """Applies the face data retention limits to every center, every
    EVALSIGN_FACE_RETENTION_EVERY_S seconds; each deletion is audited by the domain call."""

    name = "face-retention"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.policy = face_data.RetentionPolicy.from_settings(services.settings)
        super().__init__(float(services.settings.face_retention_every_s))

    def run_once(self) -> int:
        """Apply the limits everywhere; returns how many deletions were made."""
        services = self.services
        deleted = 0
        with transaction(services, read_only=True) as db:
            ids = [center.id for center in centers.list_centers(db)]
        for center_id in ids:
            try:
                with transaction(services) as db:
                    caller = audit.Caller(center_id, "job:face-retention")
                    done = face_data.apply_retention(
                        db, caller, services.clock, self.policy, center_id
                    )
                    deleted += done.verifications + done.templates_deleted
            except Exception:  # one center's trouble must not stop the others
                log.exception("face data retention failed for center %s", center_id)
        with transaction(services) as db:
            # Streams a phone opened and never finished: their frames go once they expire.
            deleted += capture_stream.drop_expired_streams(db, services.clock.now())
        return deleted
