"""Work the service does on its own, run by the job runner (api/job_runner.py) once per
cluster: the scheduled audit checkpoints, face data retention, the sweep that compares
new face checks with everyone enrolled, the sweep of stored document objects that no
revision records, call-ups, and events and archives for the trading platform.

The checkpoint writer signs the head of each center's chain when a checkpoint is due (should
two writers ever race, the unique (center, seq) constraint lets one win), the retention
worker deletes face data past its retention period.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from api import platform_http
from api.deps import transaction
from api.job_runner import periodic
from api.services import Services
from evaluation.committee import call_up_answers, call_ups
from evaluation.documents import documents
from evaluation.identity import capture_stream, cross_matches, face_data, replay_memory
from evaluation.kernel import audit
from evaluation.kernel.errors import DomainError
from evaluation.kernel.messaging import MessagingFailed
from evaluation.platform import archive, deliveries
from evaluation.registry import centers
from evaluation.supervision import anomalies
from evaluation.trust import checkpoints
from models.tables import ArchivePush

log = logging.getLogger("evalsign.jobs")


class CheckpointWriter:
    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.policy = checkpoints.CheckpointPolicy(
            every_entries=settings.audit_checkpoint_every_entries,
            every=timedelta(seconds=settings.audit_checkpoint_every_s),
        )

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


class RetentionWorker:
    """Applies the face data retention limits to every center, every
    EVALSIGN_FACE_RETENTION_EVERY_S seconds; each deletion is audited by the domain call."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.policy = face_data.RetentionPolicy.from_settings(services.settings)

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


# Whether a checkpoint is due is looked at a few times per period (an entry count may fall
# due any time); writing it is the policy's decision.
@periodic(
    "audit-checkpoints",
    every=lambda s: (
        min(60.0, max(1.0, s.audit_checkpoint_every_s / 4)) if s.audit_checkpoint_every_s else 0
    ),
)
def write_due_checkpoints(services: Services) -> int:
    return CheckpointWriter(services).run_once()


@periodic("face-retention", every=lambda s: float(s.face_retention_every_s))
def apply_face_retention(services: Services) -> int:
    return RetentionWorker(services).run_once()


@periodic("face-cross-match", every=lambda s: float(s.face_cross_match_every_s))
def sweep_cross_matches(services: Services) -> int:
    """Compare new 1:1 face checks with everyone enrolled, and flag a face that matched
    another person better for the supervisors of the project it was for; returns how many
    matched someone else."""
    with transaction(services) as db:
        found = cross_matches.sweep(
            db,
            services.cipher,
            services.clock.now(),
            limit=services.settings.face_cross_match_batch,
        )
        policy = anomalies.AnomalyPolicy.from_settings(services.settings)
        for project in sorted({(m.center_id, m.project_id) for m in found if m.project_id}):
            center_id, project_id = project
            caller = audit.Caller(center_id, "job:face-cross-match")
            assert project_id is not None
            anomalies.raise_flags(db, caller, services.clock, policy, center_id, project_id)
    return len(found)


@periodic("document-sweep", every=lambda s: float(s.document_sweep_every_s))
def sweep_unrecorded_documents(services: Services) -> int:
    """Delete stored objects no revision records (a crashed signing or upload left them),
    once they are older than the grace period, so nothing still in flight is touched;
    returns how many were removed."""
    grace = timedelta(hours=services.settings.document_sweep_grace_hours)
    with transaction(services) as db:
        removed = documents.sweep_unrecorded(
            db, services.documents.store, services.clock.now() - grace
        )
    if removed:
        log.info("removed %d unrecorded document objects", len(removed))
    return len(removed)


@periodic("replay-forget", every=lambda s: min(3600.0, s.liveness_replay_window_s / 4))
def forget_old_replay_signatures(services: Services) -> int:
    """Delete the replay signatures no check compares with any more (older than the replay
    window): face data kept no longer than it serves; returns how many were deleted."""
    window = timedelta(seconds=services.settings.liveness_replay_window_s)
    with transaction(services) as db:
        return replay_memory.forget_before(db, services.clock.now() - window)


def send_call_ups(services: Services) -> int:
    """Send every call-up that is due, each outside any transaction (a provider may take
    seconds); returns how many the provider took. A message it refuses is tried again later,
    then marked failed for the operator."""
    policy = call_ups.CallUpPolicy.from_settings(services.settings)
    messenger = services.sms.messenger if services.sms is not None else None
    clock = services.clock
    with transaction(services, read_only=True) as db:
        due = call_ups.due(db, clock.now())
    sent = 0
    for call_up_id in due:
        with transaction(services) as db:
            outgoing = call_ups.compose(db, services.cipher, policy, call_up_id, clock.now())
        if outgoing is None:
            continue
        if messenger is None:
            with transaction(services) as db:
                call_ups.not_delivered(
                    db,
                    clock,
                    policy,
                    call_up_id,
                    "no messaging provider is configured (EVALSIGN_MESSAGING=none): "
                    "call the member",
                    final=True,
                )
            continue
        try:
            provider_id = messenger.send(outgoing.message)
        except MessagingFailed as exc:
            log.warning("call-up %s not delivered: %s", call_up_id, exc)
            with transaction(services) as db:
                call_ups.not_delivered(db, clock, policy, call_up_id, str(exc))
            continue
        with transaction(services) as db:
            call_ups.delivered(
                db, clock, call_up_id, messenger.name, provider_id, outgoing.deadline
            )
        sent += 1
    return sent


def expire_call_ups(services: Services) -> int:
    """Members who let their call-up's deadline pass count as declining; returns how many."""
    with transaction(services) as db:
        return call_up_answers.expire_overdue(db, services.clock)


@periodic("call-ups", every=lambda s: float(s.call_up_every_s))
def call_up_members(services: Services) -> int:
    return send_call_ups(services) + expire_call_ups(services)


def deliver_webhooks(services: Services, rng: random.Random | None = None) -> int:
    """Send the due webhook deliveries, each outside any transaction (a receiver may take
    seconds), a project's line on as soon as its head is delivered; returns how many were
    delivered. A subscription that could not be reached is left alone for the rest of the
    round, so a receiver that is down costs one timeout per round, not one per project."""
    policy = deliveries.RetryPolicy.from_settings(services.settings)
    rng = rng or random.SystemRandom()
    clock = services.clock
    delivered = 0
    tried: set[str] = set()
    unreachable: set[str] = set()
    while len(tried) < policy.batch:
        with transaction(services, read_only=True) as db:
            heads = [d for d in deliveries.due(db, clock.now(), policy.batch) if d not in tried]
        if not heads:
            break
        progressed = False
        for delivery_id in heads[: policy.batch - len(tried)]:
            tried.add(delivery_id)
            with transaction(services) as db:
                outgoing = deliveries.compose(db, services.cipher, delivery_id, clock.now())
            if outgoing is None or outgoing.subscription_id in unreachable:
                continue
            outcome = platform_http.deliver(outgoing, policy.timeout_s)
            with transaction(services) as db:
                row = deliveries.settle(db, clock, policy, rng, delivery_id, outcome)
            if row.status != "pending":  # delivered, or given up: the line moves on
                delivered += row.status == "delivered"
                progressed = True
            elif outcome.status_code is None:
                log.warning("webhook %s not delivered: %s", delivery_id, outcome.error)
                unreachable.add(outgoing.subscription_id)
        if not progressed:
            break
    return delivered


def push_archives(services: Services, rng: random.Random | None = None) -> int:
    """Build the queued archives' evidence packages (announcing each) and push their files
    to the archive target, file by file outside transactions; returns how many archives
    were completed."""
    policy = deliveries.RetryPolicy.from_settings(services.settings)
    rng = rng or random.SystemRandom()
    clock = services.clock
    target = platform_http.archive_target(services.settings, clock)
    with transaction(services, read_only=True) as db:
        due = archive.due(db, clock.now())
    done = 0
    for push_id in due:
        try:
            with transaction(services) as db:
                built = archive.build(
                    db,
                    clock,
                    services.vault,
                    services.pki,
                    services.documents.store,
                    push_id,
                    has_target=target is not None,
                )
        except Exception as error:  # the next round tries again; the operator sees why
            if isinstance(error, DomainError):  # no completed draw: nothing to prove yet
                log.warning("cannot build archive %s: %s", push_id, error)
            else:
                log.exception("cannot build archive %s", push_id)
            with transaction(services) as db:
                push = db.get(ArchivePush, push_id, with_for_update=True)
                assert push is not None
                archive.failed(db, clock, policy, rng, push, f"building: {error}")
            continue
        if built is not None and target is None:
            done += 1
        if target is None:
            continue
        while True:
            with transaction(services, read_only=True) as db:
                pending = archive.next_file(db, services.documents.store, push_id)
            if pending is None:
                break
            outcome = target.put(pending.key, pending.data, pending.content_type)
            with transaction(services) as db:
                push = archive.settle(
                    db, clock, policy, rng, pending, target.describe(pending.key), outcome
                )
            if not outcome.delivered:
                log.warning("archive %s: %s not pushed: %s", push_id, pending.name, outcome.error)
                break
            if push.status == "pushed":
                done += 1
    return done


@periodic("webhooks", every=lambda s: float(s.webhook_every_s))
def send_platform_events(services: Services) -> int:
    return deliver_webhooks(services)


@periodic("archive", every=lambda s: float(s.archive_every_s))
def send_archives(services: Services) -> int:
    return push_archives(services)
