"""Replay detection on the second generator: a passing capture sent again after small
edits (brightness, contrast, shift, scale, crop, re-encoding) is refused; a new capture of
the same person doing the same actions is not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from face.engine import FaceEngine, Vector
from face.intake import decode_image
from face.liveness import FrameAnalysis, Judgement, LivenessPolicy, Submission, analyze_frame, judge
from face.replay import ReplaySignature, signature
from tests.face import second_generator as generator
from tests.face.corpus import BGR, encode
from tests.face.perturb import EDITS, perturb

pytestmark = pytest.mark.slow

POLICY = LivenessPolicy()
ACTIONS = ["turn_left", "open_mouth"]


@dataclass
class Capture:
    sequence: generator.Sequence_
    frames: list[FrameAnalysis]


def _analyze(face_engine: FaceEngine, frames: list[bytes]) -> list[FrameAnalysis]:
    return [analyze_frame(face_engine, decode_image(data), POLICY) for data in frames]


def _judge(
    capture: Capture, frames: list[FrameAnalysis], template: Vector, earlier: list[Capture]
) -> Judgement:
    sequence = capture.sequence
    submission = Submission(ACTIONS, sequence.timestamps_ms, sequence.prompts_ms, 60_000)
    signatures = [judge_alone(c, template).replay_signature for c in earlier]
    return judge(
        frames,
        submission,
        {"expert": template},
        POLICY,
        earlier_signatures=[s for s in signatures if s is not None],
    )


def judge_alone(capture: Capture, template: Vector) -> Judgement:
    sequence = capture.sequence
    submission = Submission(ACTIONS, sequence.timestamps_ms, sequence.prompts_ms, 60_000)
    return judge(capture.frames, submission, {"expert": template}, POLICY)


@pytest.fixture(scope="module")
def person(face_engine: FaceEngine, people: dict[str, BGR]) -> tuple[Vector, Capture, Capture]:
    """A face's template, a first capture and a second, new capture of the same actions."""
    portrait = people["yaoming-0"]
    enrolled = analyze_frame(face_engine, decode_image(encode(portrait)), POLICY)
    assert enrolled.photo.embedding is not None
    stage = generator.make_stage(face_engine, portrait)
    first = generator.sequence(stage, ACTIONS, seed=3)
    second = generator.sequence(stage, ACTIONS, seed=53)
    return (
        enrolled.photo.embedding,
        Capture(first, _analyze(face_engine, first.frames)),
        Capture(second, _analyze(face_engine, second.frames)),
    )


def test_both_captures_pass_on_their_own(person: tuple[Vector, Capture, Capture]) -> None:
    template, first, second = person
    assert judge_alone(first, template).reasons == []
    assert judge_alone(second, template).reasons == []


def test_a_new_capture_of_the_same_actions_is_not_a_replay(
    person: tuple[Vector, Capture, Capture],
) -> None:
    template, first, second = person
    judgement = _judge(second, second.frames, template, [first])
    replay = next(c for c in judgement.checks if c.name == "replay")
    assert judgement.passed, judgement.reasons
    assert replay.values["trajectory_share_seen_before"] < POLICY.replay.max_share


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_replay_is_refused(
    face_engine: FaceEngine, person: tuple[Vector, Capture, Capture], edit: str
) -> None:
    template, first, _second = person
    frames = _analyze(face_engine, perturb(first.sequence.frames, edit))
    judgement = _judge(first, frames, template, [first])
    replay = next(c for c in judgement.checks if c.name == "replay")
    assert "replayed-frames" in judgement.reasons, replay.values
    assert replay.values["trajectory_share_seen_before"] >= POLICY.replay.max_share


def test_the_signature_survives_storage(person: tuple[Vector, Capture, Capture]) -> None:
    template, first, _second = person
    stored = judge_alone(first, template).replay_signature
    assert stored is not None and stored.frames >= POLICY.min_usable_frames
    again = ReplaySignature.from_bytes(stored.to_bytes())
    assert np.array_equal(again.shapes, stored.shapes)
    assert np.array_equal(again.embeddings, stored.embeddings)
    # 106 landmarks and a 512-d embedding per frame in float16, compressed.
    assert len(stored.to_bytes()) < stored.frames * (212 + 512) * 2


def test_shifted_and_scaled_landmarks_have_the_same_signature() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 300, (106, 2)).astype(np.float32)
    moved = (points * 1.3 + np.array([17, -9], dtype=np.float32)).astype(np.float32)
    a = signature([points], [None]).shapes.astype(np.float32)
    b = signature([moved], [None]).shapes.astype(np.float32)
    assert np.abs(a - b).max() < 2e-3
