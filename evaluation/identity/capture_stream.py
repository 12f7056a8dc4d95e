"""A face check filmed as a stream: the server reveals each step (a screen colour, and now
and then an action's prompt) when the previous step's frames arrived, stamps every arrival
with its own clock, and keeps the chunks in the database so any replica takes the next one.

Client timestamps only order the frames; what the server trusts is its own: a step's
frames cannot arrive before the step was revealed plus most of its duration (faster than
real time), nor be for a step not yet revealed, nor come a second time (a second stream).
Every refusal consumes the challenge and drops what the stream had stored.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from face import light_response as light
from face.liveness import Check
from models.tables import CaptureChunk, FaceChallenge
from signing.field_cipher import FieldCipher

# The first step is revealed with the challenge: the phone opens its camera first.
FIRST_STEP_GRACE = timedelta(seconds=15)
# A step's frames may arrive a little before its full duration (the phone's timers).
REAL_TIME_SHARE = 0.8


class CaptureStalled(DomainError):
    status = 408
    code = "capture-stalled"
    title = "The phone stopped sending frames; the check must start again"


class CaptureTooFast(DomainError):
    status = 422
    code = "capture-too-fast"
    title = "Frames arrived faster than they can be filmed"


class StepNotRevealed(DomainError):
    status = 409
    code = "step-not-revealed"
    title = "Frames answered a step (a colour or a prompt) before the server showed it"


class FramesOutOfOrder(DomainError):
    status = 422
    code = "frames-out-of-order"
    title = "The frames' times go backwards"


class StreamConflict(DomainError):
    status = 409
    code = "capture-stream-conflict"
    title = "This challenge is already being answered by another stream"


class FramesInvalid(DomainError):
    """A frame submission that breaks the protocol's form (also raised by face_checks and
    the frames route, which import it from here: one class for one code)."""

    status = 422
    code = "frames-invalid"
    title = "The frame submission is malformed"


def plan_steps(
    rng: Any, actions: Sequence[str], *, lead_s: float, seconds_per_action: float
) -> list[dict[str, Any]]:
    """Colour steps covering the capture, with each action's prompt on the first step that
    starts once its time has come (the lead, then one per ``seconds_per_action``)."""
    total_ms = round(1000 * (lead_s + seconds_per_action * len(actions) + 0.3))
    steps = light.draw_steps(rng, total_ms)
    planned: list[dict[str, Any]] = []
    start = 0
    due = [round(1000 * (lead_s + seconds_per_action * k)) for k in range(len(actions))]
    pending = list(actions)
    for step in steps:
        prompt = None
        if pending and start >= due[len(actions) - len(pending)]:
            prompt = pending.pop(0)
        planned.append({"colour": step.colour, "ms": step.ms, "prompt": prompt})
        start += step.ms
    while pending:  # never in practice: the steps outlast the last prompt by 300 ms
        planned.append({"colour": planned[-1]["colour"], "ms": 400, "prompt": pending.pop(0)})
    return planned


def step_view(challenge: FaceChallenge, index: int) -> dict[str, Any]:
    """What the phone is told of one step: its colour, how long to film, the prompt."""
    steps = challenge.steps or []
    step = steps[index]
    r, g, b = light.PALETTE[step["colour"]]
    return {
        "index": index,
        "of": len(steps),
        "colour": f"#{r:02x}{g:02x}{b:02x}",
        "ms": step["ms"],
        "prompt": step["prompt"],
    }


@dataclass(frozen=True)
class Chunk:
    """One step's upload, as parsed."""

    step: int
    frames: list[bytes]
    timestamps_ms: list[int]
    device_id: str
    # How many of the first frames were filmed while the previous step still showed.
    carried: int = 0


@dataclass(frozen=True)
class Received:
    closed: bool  # the last step arrived: judge now
    next_step: dict[str, Any] | None
    frames_so_far: int


def _pack(frames: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(frame)) + frame for frame in frames)


def _unpack(blob: bytes) -> list[bytes]:
    frames, offset = [], 0
    while offset < len(blob):
        (size,) = struct.unpack_from(">I", blob, offset)
        frames.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return frames


def abandon(db: Session, challenge_id: str, at: datetime) -> None:
    """Consume the challenge and drop its stream (a refused or finished stream)."""
    db.execute(
        update(FaceChallenge)
        .where(FaceChallenge.id == challenge_id, FaceChallenge.used_at.is_(None))
        .values(used_at=at)
    )
    drop_chunks(db, challenge_id)


def drop_chunks(db: Session, challenge_id: str) -> None:
    db.execute(delete(CaptureChunk).where(CaptureChunk.challenge_id == challenge_id))


def drop_expired_streams(db: Session, now: datetime) -> int:
    """Drop the chunks of challenges that expired with their stream still open (a phone
    that stopped sending); returns how many chunks went."""
    expired = select(FaceChallenge.id).where(FaceChallenge.expires_at <= now)
    result = db.execute(delete(CaptureChunk).where(CaptureChunk.challenge_id.in_(expired)))
    return int(getattr(result, "rowcount", 0) or 0)


def _refuse(
    challenge: FaceChallenge, error: DomainError, at: datetime, meta: dict[str, Any]
) -> DomainError:
    caller = audit.Caller(challenge.center_id, f"challenge:{challenge.id}", None, meta.get("rid"))
    event = audit.AuditEvent(
        Action.FACE_SUBMISSION_REFUSED,
        "face_challenge",
        challenge.id,
        {
            "reason": error.code,
            "experts": challenge.expert_ids,
            "client_ip": meta.get("ip"),
            "device_id": meta.get("device_id"),
        },
    )
    challenge_id = challenge.id
    return audit.refused(error, caller, event, also=lambda s: abandon(s, challenge_id, at))


def _chunks(db: Session, challenge_id: str) -> list[CaptureChunk]:
    return list(
        db.execute(
            select(CaptureChunk)
            .where(CaptureChunk.challenge_id == challenge_id)
            .order_by(CaptureChunk.step)
        ).scalars()
    )


def _revealed_at(challenge: FaceChallenge, earlier: Sequence[CaptureChunk], step: int) -> datetime:
    return challenge.issued_at if step == 0 else earlier[step - 1].received_at


def receive_chunk(
    db: Session,
    cipher: FieldCipher,
    challenge: FaceChallenge,
    chunk: Chunk,
    received_at: datetime,
    meta: dict[str, Any],
    *,
    max_frames: int,
    stall: timedelta,
    check_frames: Callable[[list[bytes]], object],
) -> Received:
    """Store one step's frames if they answer the step now showing, in real time; reveal
    the next. ``challenge`` was checked open (nonce, unused, unexpired) by the caller."""
    steps = challenge.steps or []
    earlier = _chunks(db, challenge.id)
    expected = len(earlier)

    def refuse(error: DomainError) -> DomainError:
        return _refuse(challenge, error, received_at, meta)

    if chunk.step < expected or chunk.step >= len(steps):
        if chunk.step < expected:
            raise refuse(
                StreamConflict(
                    f"step {chunk.step} was already received; one stream per challenge",
                    step=chunk.step,
                )
            )
        raise refuse(FramesInvalid(f"the challenge has {len(steps)} steps", step=chunk.step))
    if chunk.step > expected:
        raise refuse(
            StepNotRevealed(
                f"step {chunk.step} is not shown yet; step {expected} is", step=chunk.step
            )
        )
    if earlier and earlier[0].device_id != chunk.device_id:
        raise refuse(StreamConflict("another device is answering this challenge"))
    so_far = sum(len(c.timestamps_ms) for c in earlier)
    if len(chunk.frames) - chunk.carried < 1:
        raise refuse(FramesInvalid("send the frames filmed under this step", frames=0))
    if chunk.carried and chunk.step == 0:
        raise refuse(FramesInvalid("the first step has no step before it to carry"))
    if so_far + len(chunk.frames) > max_frames:
        raise refuse(
            FramesInvalid(
                f"{so_far + len(chunk.frames)} frames; at most {max_frames} per check",
                max_frames=max_frames,
            )
        )
    last = earlier[-1].timestamps_ms[-1] if earlier else -1
    times = [last, *chunk.timestamps_ms]
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise refuse(FramesOutOfOrder("each frame's time must follow the one before"))
    revealed = _revealed_at(challenge, earlier, chunk.step)
    elapsed = received_at - revealed
    duration = timedelta(milliseconds=steps[chunk.step]["ms"])
    if elapsed < duration * REAL_TIME_SHARE:
        raise refuse(
            CaptureTooFast(
                f"step {chunk.step} lasts {duration.total_seconds() * 1000:.0f} ms but its "
                f"frames came {elapsed.total_seconds() * 1000:.0f} ms after it was shown",
                step=chunk.step,
            )
        )
    if elapsed > stall + (FIRST_STEP_GRACE if chunk.step == 0 else timedelta(0)):
        raise refuse(
            CaptureStalled(
                f"step {chunk.step} came {elapsed.total_seconds():.1f} s after it was shown",
                step=chunk.step,
            )
        )
    try:
        check_frames(chunk.frames)
    except DomainError as error:
        raise refuse(error) from error
    db.add(
        CaptureChunk(
            challenge_id=challenge.id,
            step=chunk.step,
            center_id=challenge.center_id,
            device_id=chunk.device_id,
            received_at=received_at,
            timestamps_ms=chunk.timestamps_ms,
            carried=chunk.carried,
            ciphertext=cipher.encrypt_bytes(
                _pack(chunk.frames), f"face_challenges/{challenge.id}/chunks/{chunk.step}"
            ),
        )
    )
    try:
        db.flush()
    except IntegrityError as exc:  # a concurrent request stored this step first
        raise refuse(StreamConflict("this step arrived twice; one stream per challenge")) from exc
    closed = chunk.step == len(steps) - 1
    return Received(
        closed,
        None if closed else step_view(challenge, chunk.step + 1),
        so_far + len(chunk.frames),
    )


@dataclass(frozen=True)
class Collected:
    """A closed stream's frames in order, with the step each was filmed under."""

    frames: list[bytes]
    timestamps_ms: list[int]
    steps: list[int]
    colours: list[tuple[int, int, int]]
    prompts_ms: list[int]  # per action: the first frame filmed under its prompt's step


def collect(db: Session, cipher: FieldCipher, challenge: FaceChallenge) -> Collected:
    """Everything a closed stream sent, and the prompt times the server's steps give."""
    planned = challenge.steps or []
    frames: list[bytes] = []
    times: list[int] = []
    labels: list[int] = []
    first: dict[int, int] = {}
    for chunk in _chunks(db, challenge.id):
        data = _unpack(
            cipher.decrypt_bytes(
                chunk.ciphertext, f"face_challenges/{challenge.id}/chunks/{chunk.step}"
            )
        )
        first[chunk.step] = chunk.timestamps_ms[chunk.carried]
        frames.extend(data)
        times.extend(chunk.timestamps_ms)
        labels.extend([chunk.step - 1] * chunk.carried + [chunk.step] * (len(data) - chunk.carried))
    prompts = [first[i] for i, step in enumerate(planned) if step["prompt"] and i in first]
    colours = [light.PALETTE[planned[i]["colour"]] for i in labels]
    return Collected(frames, times, labels, colours, prompts)


def light_check(
    collected: Collected,
    samples: Sequence[light.LightSample | None],
    thresholds: light.LightThresholds = light.LightThresholds(),
) -> Check:
    """The light challenge's verdict as one of the judgement's checks."""
    kept = [i for i, found in enumerate(samples) if found is not None]
    result = light.judge_light(
        [s for s in samples if s is not None],
        [collected.colours[i] for i in kept],
        [collected.steps[i] for i in kept],
        thresholds,
    )
    return Check(
        "light",
        result.passed,
        result.reason,
        "" if result.passed else "the face did not take on the screen's colours as they were shown",
        {
            **result.as_dict(),
            "needed_correlation": thresholds.min_correlation,
            "needed_gain": thresholds.min_gain,
        },
    )
