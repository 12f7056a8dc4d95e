"""Face checks with liveness: challenges, the judgement of a phone's frames, the
verification record supervisors review, verified sessions, and the lockout after repeated
failures.

A submission is handled in two steps so the models never run inside a database
transaction: ``open_challenge`` (a read) refuses unknown, used or expired challenges before
any work; the route then analyzes the frames; ``record_verification`` consumes the
challenge atomically, judges, and stores the outcome.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from evaluation.identity import (
    capture_stream,
    cross_matches,
    face_data,
    remote_review,
    replay_memory,
)
from evaluation.identity.capture_stream import FramesInvalid
from evaluation.identity.faces import FacePolicy, load_templates, references_of
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.kernel.rate_limits import Counter
from evaluation.kernel.tenancy import in_center
from evaluation.kernel.tokens import hash_token, new_secret
from face.actions import HEAD_ACTIONS, RELIABLE_ACTIONS
from face.engine import FaceEngine
from face.liveness import Check, FrameAnalysis, Judgement, LivenessPolicy, Submission, judge
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Expert,
    FaceChallenge,
    FaceLockout,
    FaceVerification,
    Passkey,
    VerificationFrame,
    VerifiedSession,
)
from signing.field_cipher import FieldCipher

SESSION_PREFIX = "evf_"
# What a failed 1:few check may not tell the phone: whether the face was a member's. The
# replay check looks captures up by the person identified, so it too can only fire for a
# member's face.
IDENTITY_REASONS = frozenset({"face-not-identified", "replayed-frames"})
NOT_VERIFIED = "not-verified"
MAX_CANDIDATES = 50


class ChallengeNotFound(DomainError):
    status = 404
    code = "challenge-not-found"
    title = "No such challenge, or the nonce does not belong to it"


class ChallengeUsed(DomainError):
    status = 409
    code = "challenge-used"
    title = "The challenge was already answered; ask for a new one"


class ChallengeExpired(DomainError):
    status = 410
    code = "challenge-expired"
    title = "The challenge expired; ask for a new one"


class FaceCheckLocked(DomainError):
    status = 423
    code = "face-check-locked"
    title = "Too many failed face checks; an operator must unlock the expert"


class DeviceLocked(DomainError):
    status = 423
    code = "device-locked"
    title = "Too many failed face checks from this phone; try again later or ask the operator"


class ExpertNotActive(DomainError):
    status = 409
    code = "expert-not-active"
    title = "A suspended expert cannot take a face check"


class NotLocked(DomainError):
    status = 409
    code = "not-locked"
    title = "The expert's face check is not locked"


class SessionInvalid(DomainError):
    status = 401
    code = "face-session-invalid"
    title = "The verified face session is unknown, expired, revoked or for another device"


@dataclass(frozen=True)
class CaptureHints:
    frame_count: int
    max_frames: int
    min_frames: int
    fps: int
    max_width: int
    max_height: int
    max_frame_bytes: int
    jpeg_quality: float = 0.85
    seconds_per_action: float = 1.5
    # Neutral frames before the first prompt: the person settles in the guide first.
    lead_seconds: float = 0.6
    # How many prompts the steps will reveal (which ones, only as they come).
    action_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class LivenessConfig:
    """The liveness settings a domain call needs, read once from Settings."""

    policy: LivenessPolicy
    challenge_ttl: timedelta
    session_ttl: timedelta
    fps: int
    min_frames: int
    max_frames: int
    frame_max_bytes: int
    frame_max_side: int
    max_failures: int
    failure_window: timedelta
    replay_window: timedelta
    replay_max_sequences: int
    retain_frames: bool
    id_card_threshold: float = 0.30
    # Failures from a phone not bound to the person lock that phone for the failure window.
    device_max_failures: int = 5
    challenge_per_expert: str = "12/10 minutes"  # a rate limit (api/rate_limits.py)
    stall: timedelta = timedelta(seconds=10)

    @classmethod
    def from_settings(cls, settings: Settings, face: FacePolicy) -> LivenessConfig:
        policy = LivenessPolicy(
            min_usable_frames=settings.liveness_min_frames,
            match_threshold=face.match_threshold,
            identify_margin=face.identify_margin,
            min_duration_ms=settings.liveness_min_duration_ms,
            max_duration_ms=settings.liveness_max_duration_ms,
            min_live_probability=settings.liveness_min_live_probability,
        )
        policy = policy.with_quality(face.thresholds)
        return cls(
            policy=policy,
            challenge_ttl=timedelta(seconds=settings.liveness_challenge_ttl_s),
            session_ttl=timedelta(seconds=settings.liveness_session_ttl_s),
            fps=settings.liveness_fps,
            min_frames=settings.liveness_min_frames,
            max_frames=settings.liveness_max_frames,
            frame_max_bytes=settings.liveness_frame_max_bytes,
            frame_max_side=settings.liveness_frame_max_side,
            max_failures=settings.liveness_max_failures,
            failure_window=timedelta(seconds=settings.liveness_failure_window_s),
            replay_window=timedelta(seconds=settings.liveness_replay_window_s),
            replay_max_sequences=settings.liveness_replay_max_sequences,
            retain_frames=settings.liveness_retain_frames,
            id_card_threshold=face.id_card_threshold,
            device_max_failures=settings.liveness_device_max_failures,
            challenge_per_expert=settings.rate_limit_challenge_per_expert,
            stall=timedelta(seconds=settings.liveness_stall_s),
        )

    def hints(self, action_count: int) -> CaptureHints:
        seconds = 0.6 + 1.5 * action_count + 0.3
        return CaptureHints(
            frame_count=min(self.max_frames, max(self.min_frames, round(seconds * self.fps))),
            max_frames=self.max_frames,
            min_frames=self.min_frames,
            fps=self.fps,
            max_width=self.frame_max_side,
            max_height=self.frame_max_side,
            max_frame_bytes=self.frame_max_bytes,
            action_count=action_count,
        )


def draw_actions(rng: secrets.SystemRandom | Any = None) -> list[str]:
    """2-3 actions from a CSPRNG, never the same twice in a row, at least one moving the
    head (the flat-photo check needs depth to judge), drawn only from the actions measured
    reliable on faces nobody here tuned on (face.actions.RELIABLE_ACTIONS)."""
    rng = rng or secrets.SystemRandom()
    while True:
        count = rng.choice((2, 3))
        actions = [rng.choice(RELIABLE_ACTIONS) for _ in range(count)]
        repeats = any(a == b for a, b in itertools.pairwise(actions))
        if not repeats and HEAD_ACTIONS.intersection(actions):
            return actions


@dataclass(frozen=True)
class IssuedChallenge:
    challenge: FaceChallenge
    nonce: str


def _experts(db: Session, center_id: str, expert_ids: Sequence[str]) -> list[Expert]:
    found = {
        expert.id: expert
        for expert in db.execute(
            select(Expert).where(Expert.center_id == center_id, Expert.id.in_(expert_ids))
        ).scalars()
    }
    missing = [expert_id for expert_id in expert_ids if expert_id not in found]
    if missing:
        raise NotFound(f"no expert {', '.join(missing)} in this center", experts=missing)
    return [found[expert_id] for expert_id in expert_ids]


def open_locks(db: Session, expert_ids: Sequence[str]) -> list[FaceLockout]:
    return list(
        db.execute(
            select(FaceLockout).where(
                FaceLockout.expert_id.in_(expert_ids), FaceLockout.unlocked_at.is_(None)
            )
        ).scalars()
    )


def _refuse_if_locked(db: Session, expert_ids: Sequence[str]) -> None:
    locks = open_locks(db, expert_ids)
    if locks:
        locked = sorted(lock.expert_id for lock in locks)
        raise FaceCheckLocked(
            f"face checks are locked for {', '.join(locked)} after repeated failures",
            experts=locked,
        )


def count_challenge(counter: Counter, config: LivenessConfig, expert_ids: Sequence[str]) -> None:
    """A phone's challenge naming one person counts against that person's cap, across
    scans and phones (RateLimited when over). A room's 1:few challenge names the whole
    committee: counting it against each would let one phone spend everyone's."""
    if len(set(expert_ids)) == 1:
        counter.hit("face-challenge", config.challenge_per_expert, "expert", expert_ids[0])


def bound_experts(db: Session, device_id: str) -> list[str]:
    """Whose bound phone (a passkey not revoked) this device is."""
    return list(
        db.execute(
            select(Passkey.expert_id).where(
                Passkey.device_id == device_id, Passkey.revoked_at.is_(None)
            )
        ).scalars()
    )


def device_failures(
    db: Session, center_id: str, device_id: str, now: datetime, window: timedelta
) -> int:
    """Failed face checks from a device within the window that count against the device:
    every one, except those on a person whose bound phone it is (those count against the
    person, whose own phone it is)."""
    query = (
        select(func.count())
        .select_from(FaceVerification)
        .where(
            FaceVerification.center_id == center_id,
            FaceVerification.device_id == device_id,
            FaceVerification.method == "face",
            FaceVerification.passed.is_(False),
            FaceVerification.created_at > now - window,
        )
    )
    owners = bound_experts(db, device_id)
    if owners:
        query = query.where(
            or_(FaceVerification.expert_id.is_(None), FaceVerification.expert_id.not_in(owners))
        )
    return int(db.execute(query).scalar_one())


def refuse_if_device_locked(
    db: Session, config: LivenessConfig, center_id: str, device_id: str, now: datetime
) -> None:
    """No new challenge for a phone with too many failures in the window: a bystander's
    phone locks itself, not the member whose photo it holds up."""
    failures = device_failures(db, center_id, device_id, now, config.failure_window)
    if failures >= config.device_max_failures:
        minutes = int(config.failure_window.total_seconds() // 60)
        raise DeviceLocked(
            f"this phone had {failures} failed face checks within {minutes} minutes; "
            "try again later or ask the operator"
        )


def issue_challenge(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    config: LivenessConfig,
    expert_ids: Sequence[str],
    rng: Any = None,
    scan_session_id: str | None = None,
) -> IssuedChallenge:
    """A single-use challenge for one expert (1:1) or a set (1:few); `scan_session_id` ties
    it to the task QR scan a phone asked for it from."""
    unique = list(dict.fromkeys(expert_ids))
    if not 1 <= len(unique) <= MAX_CANDIDATES:
        raise FramesInvalid(f"name between 1 and {MAX_CANDIDATES} experts, not {len(unique)}")
    experts = _experts(db, caller.center_id, unique)
    inactive = [expert.id for expert in experts if expert.status != "active"]
    if inactive:
        raise ExpertNotActive(f"not active: {', '.join(inactive)}", experts=inactive)
    face_data.refuse_if_withdrawn(experts)
    _refuse_if_locked(db, unique)
    # Refuse now, not after the phone has filmed: every candidate needs a usable template.
    load_templates(db, cipher, engine, caller.center_id, unique)
    nonce = secrets.token_urlsafe(32)
    actions = draw_actions(rng)
    hints = config.hints(len(actions))
    steps = capture_stream.plan_steps(
        rng or secrets.SystemRandom(),
        actions,
        lead_s=hints.lead_seconds,
        seconds_per_action=hints.seconds_per_action,
    )
    now = clock.now()
    challenge = FaceChallenge(
        center_id=caller.center_id,
        mode="1:1" if len(unique) == 1 else "1:few",
        expert_ids=unique,
        actions=actions,
        nonce_hash=hash_token(nonce),
        capture=hints.as_dict(),
        steps=steps,
        issued_by=caller.actor,
        issued_at=now,
        expires_at=now + config.challenge_ttl,
        used_at=None,
        scan_session_id=scan_session_id,
    )
    db.add(challenge)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.FACE_CHALLENGE_ISSUED,
        "face_challenge",
        challenge.id,
        {"mode": challenge.mode, "experts": unique, "actions": actions, "steps": len(steps)},
    )
    return IssuedChallenge(challenge, nonce)


def _check_nonce(challenge: FaceChallenge | None, nonce: str) -> FaceChallenge:
    if challenge is None or not hmac.compare_digest(challenge.nonce_hash, hash_token(nonce)):
        raise ChallengeNotFound("no challenge with this id and nonce")
    return challenge


def open_challenge(
    db: Session, challenge_id: str, nonce: str, received_at: datetime, meta: dict[str, Any]
) -> FaceChallenge:
    """The challenge a submission answers, if it still can be answered (a read). A used or
    expired one is refused and logged: a possible replay."""
    challenge = _check_nonce(db.get(FaceChallenge, challenge_id), nonce)
    if challenge.used_at is not None:
        used = ChallengeUsed("this challenge was already answered", challenge_id=challenge.id)
        raise _refused(challenge, used, meta)
    if received_at >= challenge.expires_at:
        expired = ChallengeExpired(
            f"the challenge expired at {challenge.expires_at.isoformat()}",
            challenge_id=challenge.id,
        )
        # A stream left open until now goes with it.
        challenge_id = challenge.id
        raise _refused(
            challenge, expired, meta, also=lambda s: capture_stream.drop_chunks(s, challenge_id)
        )
    return challenge


def _refused(
    challenge: FaceChallenge,
    error: DomainError,
    meta: dict[str, Any],
    also: Callable[[Session], None] | None = None,
) -> DomainError:
    caller = audit.Caller(challenge.center_id, f"challenge:{challenge.id}", None, meta.get("rid"))
    event = audit.AuditEvent(
        Action.FACE_SUBMISSION_REFUSED,
        "face_challenge",
        challenge.id,
        {"reason": error.code, "experts": challenge.expert_ids, **_client(meta)},
    )
    # The nonce's holder has not been verified: counted per address and minute.
    source = meta.get("ip") or f"device:{meta.get('device_id')}"
    return audit.refused(error, caller, event, also=also, anonymous_from=source)


def _client(meta: dict[str, Any]) -> dict[str, Any]:
    return {"client_ip": meta.get("ip"), "device_id": meta.get("device_id")}


@dataclass(frozen=True)
class FrameUpload:
    """A decoded submission, before analysis: what the phone sent besides the pixels."""

    timestamps_ms: list[int]
    prompts_ms: list[int]
    device: dict[str, Any]
    device_id: str
    client_ip: str | None
    user_agent: str | None
    request_id: str | None


@dataclass(frozen=True)
class VerificationOutcome:
    verification: FaceVerification
    judgement: Judgement
    session_token: str | None
    session: VerifiedSession | None
    attempts_remaining: int | None
    locked: bool
    # The remote enrollment review this check now waits in, for the identity provider.
    review_id: str | None = None

    @property
    def phone_reasons(self) -> list[str]:
        """The reasons the phone is told. A failed 1:few check never says whether the face
        was one of the candidates (that would tell a stranger who sits on the committee):
        the identity reason is left out, and a check that failed on it alone is
        "not-verified". Supervisors see the full record."""
        reasons = self.judgement.reasons
        if self.judgement.passed or self.verification.mode != "1:few":
            return reasons
        shown = [reason for reason in reasons if reason not in IDENTITY_REASONS]
        return shown or [NOT_VERIFIED]


def _consume(db: Session, challenge_id: str, nonce: str, at: datetime) -> FaceChallenge:
    """Mark the challenge used, atomically: of two concurrent submissions one wins."""
    used = db.execute(
        update(FaceChallenge)
        .where(
            FaceChallenge.id == challenge_id,
            FaceChallenge.nonce_hash == hash_token(nonce),
            FaceChallenge.used_at.is_(None),
        )
        .values(used_at=at)
        .returning(FaceChallenge.id)
    ).first()
    challenge = db.get(FaceChallenge, challenge_id, populate_existing=True)
    if used is None:
        _check_nonce(challenge, nonce)
        raise ChallengeUsed("this challenge was already answered", challenge_id=challenge_id)
    assert challenge is not None
    return challenge


@dataclass(frozen=True)
class FaceCheckTools:
    """What judging a capture needs besides the database: the clock, the cipher the
    templates and kept frames are under, the face models and the center's liveness rules."""

    clock: Clock
    cipher: FieldCipher
    engine: FaceEngine
    config: LivenessConfig


@dataclass(frozen=True)
class Capture:
    """A phone's answer to a challenge: its frames, as the models read them and as they
    came, with the request's metadata and the checks made outside the models."""

    challenge_id: str
    nonce: str
    received_at: datetime
    frames: Sequence[FrameAnalysis]
    raw_frames: Sequence[bytes]
    upload: FrameUpload
    live_probabilities: Sequence[float] | None = None
    extra_checks: Sequence[Check] = ()


@dataclass(frozen=True)
class _Judged:
    judgement: Judgement
    policy: LivenessPolicy
    against_card: bool  # a 1:1 check against an ID card's portrait
    # Whom the outcome counts for: the claimed expert, or the one a 1:few check identified.
    expert_id: str | None


def record_verification(
    db: Session, tools: FaceCheckTools, capture: Capture
) -> VerificationOutcome:
    """Judge analyzed frames against their challenge and store the outcome."""
    challenge = _open_challenge(db, capture)
    judged = _judge_capture(db, tools, challenge, capture)
    verification = _store_verification(db, tools, challenge, capture, judged)
    review_id = _keep_evidence(db, tools, verification, capture, judged)
    caller = audit.Caller(
        challenge.center_id, f"challenge:{challenge.id}", None, capture.upload.request_id
    )
    if judged.judgement.passed:
        token, session = _pass(db, tools, caller, verification, capture, judged)
        return VerificationOutcome(
            verification, judged.judgement, token, session, None, False, review_id
        )
    remaining, locked = _fail(db, tools, caller, challenge, verification, capture, judged)
    return VerificationOutcome(
        verification, judged.judgement, None, None, remaining, locked, review_id
    )


def _open_challenge(db: Session, capture: Capture) -> FaceChallenge:
    """The challenge, consumed, in time, and its candidates' rows locked and not locked out."""
    challenge = _consume(db, capture.challenge_id, capture.nonce, capture.received_at)
    capture_stream.drop_chunks(db, challenge.id)
    if capture.received_at >= challenge.expires_at:
        raise ChallengeExpired("the challenge expired", challenge_id=challenge.id)
    # Lock the candidates' rows: failures counted and locks set below must not race.
    db.execute(select(Expert.id).where(Expert.id.in_(challenge.expert_ids)).with_for_update()).all()
    _refuse_if_locked(db, challenge.expert_ids)
    return challenge


def _judge_capture(
    db: Session, tools: FaceCheckTools, challenge: FaceChallenge, capture: Capture
) -> _Judged:
    config = tools.config
    templates = load_templates(
        db, tools.cipher, tools.engine, challenge.center_id, challenge.expert_ids
    )
    window_ms = int((capture.received_at - challenge.issued_at).total_seconds() * 1000)
    upload = capture.upload
    submission = Submission(challenge.actions, upload.timestamps_ms, upload.prompts_ms, window_ms)
    earlier = replay_memory.earlier_captures(
        db,
        tools.cipher,
        expert_ids=challenge.expert_ids,
        since=capture.received_at - config.replay_window,
        limit=config.replay_max_sequences,
    )
    policy = config.policy
    against_card = (
        challenge.mode == "1:1"
        and references_of(db, challenge.expert_ids).get(challenge.expert_ids[0]) == "id-card"
    )
    if against_card:
        # Matched against an ID card's portrait: its own threshold (the identity check
        # records which one it used).
        policy = replace(policy, match_threshold=config.id_card_threshold)
    judgement = judge(
        capture.frames,
        submission,
        templates,
        policy,
        earlier_hashes=earlier.hashes,
        live_probabilities=capture.live_probabilities,
        extra_checks=capture.extra_checks,
        earlier_signatures=earlier.signatures,
    )
    # A failure counts against the expert it was for: the claimed one, or the one the face
    # was identified as in a 1:few check.
    expert_id = challenge.expert_ids[0] if challenge.mode == "1:1" else judgement.expert_id
    return _Judged(judgement, policy, against_card, expert_id)


def _store_verification(
    db: Session,
    tools: FaceCheckTools,
    challenge: FaceChallenge,
    capture: Capture,
    judged: _Judged,
) -> FaceVerification:
    judgement, upload = judged.judgement, capture.upload
    verification = FaceVerification(
        center_id=challenge.center_id,
        challenge_id=challenge.id,
        mode=challenge.mode,
        candidate_ids=challenge.expert_ids,
        expert_id=judged.expert_id,
        passed=judgement.passed,
        reasons=judgement.reasons,
        checks=[check.as_dict() for check in judgement.checks],
        similarity=judgement.similarity,
        model_id=tools.engine.model_id,
        device_id=upload.device_id,
        device=upload.device,
        client_ip=upload.client_ip,
        user_agent=upload.user_agent,
        frame_count=len(capture.frames),
        frame_hashes=[value.hex() for value in judgement.hashes],
        frames=judgement.frames,
        frames_retained=tools.config.retain_frames,
        created_at=tools.clock.now(),
    )
    db.add(verification)
    db.flush()
    return verification


def _keep_evidence(
    db: Session,
    tools: FaceCheckTools,
    verification: FaceVerification,
    capture: Capture,
    judged: _Judged,
) -> str | None:
    """What the check leaves for later: the background cross-match, the replay memory, an
    ID card's review, and the frames when the center keeps them. The review's id, if any."""
    judgement, cipher = judged.judgement, tools.cipher
    if (
        verification.mode == "1:1"
        and judgement.probe is not None
        and judgement.similarity is not None
    ):
        # Whether the face matches another enrolled person better is a pattern for
        # supervisors (anomaly face-matches-other), not this check's outcome: the
        # comparison with everyone enrolled runs in the background (cross_matches.sweep).
        cross_matches.queue(
            db,
            cipher,
            verification,
            judgement.probe,
            threshold=judged.policy.match_threshold,
            claimed_similarity=judgement.similarity,
        )
    if judgement.replay_signature is not None:
        replay_memory.remember(db, cipher, verification, judgement.replay_signature)
    review_id = None
    if judged.against_card and capture.raw_frames:
        # The card is confirmed against the live face (by the identity provider or an
        # operator) before anything is sealed.
        review_id = remote_review.attach_live_check(db, cipher, verification, capture.raw_frames[0])
    if tools.config.retain_frames:
        for seq, data in enumerate(capture.raw_frames):
            db.add(
                VerificationFrame(
                    verification_id=verification.id,
                    seq=seq,
                    center_id=verification.center_id,
                    ciphertext=cipher.encrypt_bytes(
                        data, f"face_verifications/{verification.id}/frames/{seq}"
                    ),
                )
            )
    return review_id


def _audit_details(
    verification: FaceVerification, capture: Capture, judged: _Judged
) -> dict[str, Any]:
    similarity = judged.judgement.similarity
    return {
        "verification_id": verification.id,
        "mode": verification.mode,
        "expert_id": judged.expert_id,
        "reasons": judged.judgement.reasons,
        "similarity": None if similarity is None else round(similarity, 4),
        "device_id": capture.upload.device_id,
        "client_ip": capture.upload.client_ip,
        "frames": len(capture.frames),
    }


def _pass(
    db: Session,
    tools: FaceCheckTools,
    caller: audit.Caller,
    verification: FaceVerification,
    capture: Capture,
    judged: _Judged,
) -> tuple[str, VerifiedSession]:
    """A passed check opens the verified session its phone signs with."""
    assert judged.expert_id is not None
    token, session = open_session(
        db,
        verification,
        capture.upload.device_id,
        verification.created_at,
        tools.config.session_ttl,
    )
    audit.record(
        db,
        caller,
        tools.clock,
        Action.FACE_VERIFICATION_PASSED,
        "face_verification",
        verification.id,
        {**_audit_details(verification, capture, judged), "session_id": session.id},
    )
    return token, session


def _fail(
    db: Session,
    tools: FaceCheckTools,
    caller: audit.Caller,
    challenge: FaceChallenge,
    verification: FaceVerification,
    capture: Capture,
    judged: _Judged,
) -> tuple[int, bool]:
    """A failed check counts against its expert on their own bound phone, else against the
    phone; (attempts remaining, locked now)."""
    clock, config, device_id = tools.clock, tools.config, capture.upload.device_id
    audit.record(
        db,
        caller,
        clock,
        Action.FACE_VERIFICATION_FAILED,
        "face_verification",
        verification.id,
        _audit_details(verification, capture, judged),
    )
    now, expert_id = verification.created_at, judged.expert_id
    if expert_id is not None and expert_id in bound_experts(db, device_id):
        # The person's own bound phone: their failures, their lock (an operator unlocks).
        failures = recent_failures(db, expert_id, now, config.failure_window)
        if failures >= config.max_failures:
            _lock(db, caller, clock, challenge.center_id, expert_id, failures)
            return 0, True
        return config.max_failures - failures, False
    # Any other phone, and every failure to identify anyone: they count against the phone
    # alone, and the answer is the same whoever's face it was.
    failures = device_failures(db, challenge.center_id, device_id, now, config.failure_window)
    remaining = max(0, config.device_max_failures - failures)
    return remaining, remaining == 0


def open_session(
    db: Session,
    verification: FaceVerification,
    device_id: str,
    now: datetime,
    ttl: timedelta,
) -> tuple[str, VerifiedSession]:
    """What a passed check grants: a verified session bound to the person and the device;
    the token is returned once and stored hashed."""
    assert verification.passed and verification.expert_id is not None
    token = new_secret(SESSION_PREFIX)
    session = VerifiedSession(
        center_id=verification.center_id,
        token_hash=hash_token(token),
        expert_id=verification.expert_id,
        verification_id=verification.id,
        device_id=device_id,
        verified_at=now,
        expires_at=now + ttl,
        revoked_at=None,
    )
    db.add(session)
    db.flush()
    return token, session


def recent_failures(db: Session, expert_id: str, now: datetime, window: timedelta) -> int:
    """Failures on the person from their own bound phones within the window, not counting
    those before the last unlock (other phones' failures lock those phones instead)."""
    last_unlock = db.execute(
        select(func.max(FaceLockout.unlocked_at)).where(FaceLockout.expert_id == expert_id)
    ).scalar_one()
    since = now - window
    if last_unlock is not None and last_unlock > since:
        since = last_unlock
    phones = select(Passkey.device_id).where(
        Passkey.expert_id == expert_id, Passkey.revoked_at.is_(None)
    )
    count = db.execute(
        select(func.count())
        .select_from(FaceVerification)
        .where(
            FaceVerification.expert_id == expert_id,
            FaceVerification.method == "face",  # wrong PINs void their own in-person check
            FaceVerification.passed.is_(False),
            FaceVerification.created_at > since,
            FaceVerification.device_id.in_(phones),
        )
    ).scalar_one()
    return int(count)


def _lock(
    db: Session, caller: audit.Caller, clock: Clock, center_id: str, expert_id: str, failures: int
) -> None:
    lock = FaceLockout(
        center_id=center_id,
        expert_id=expert_id,
        failures=failures,
        locked_at=clock.now(),
        unlocked_at=None,
        unlocked_by=None,
        unlock_reason=None,
    )
    db.add(lock)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.FACE_CHECK_LOCKED,
        "expert",
        expert_id,
        {"lockout_id": lock.id, "failures": failures},
    )


def unlock(
    db: Session, caller: audit.Caller, clock: Clock, expert_id: str, reason: str
) -> FaceLockout:
    """An operator lets a locked expert try again, saying why."""
    _experts(db, caller.center_id, [expert_id])
    locks = open_locks(db, [expert_id])
    if not locks:
        raise NotLocked("the expert's face check is not locked")
    lock = locks[0]
    lock.unlocked_at = clock.now()
    lock.unlocked_by = caller.actor
    lock.unlock_reason = reason
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.FACE_CHECK_UNLOCKED,
        "expert",
        expert_id,
        {"lockout_id": lock.id, "reason": reason, "failures": lock.failures},
    )
    return lock


def authenticate_session(
    db: Session, token: str, device_id: str | None, now: datetime
) -> VerifiedSession:
    """The verified session a token names, if live and used from the device it was bound to."""
    session = db.execute(
        select(VerifiedSession).where(VerifiedSession.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if session is None or session.revoked_at is not None or now >= session.expires_at:
        raise SessionInvalid("the face session is unknown, revoked or expired; verify again")
    if device_id is None or not hmac.compare_digest(session.device_id, device_id):
        raise SessionInvalid("the face session belongs to another device")
    return session


def get_verification(db: Session, center_id: str, verification_id: str) -> FaceVerification:
    return in_center(db, FaceVerification, verification_id, center_id, "face verification")
