"""The attack classes of the liveness confusion table (bench/liveness_attacks_bench.py)
on a sample of the second generator's faces, read as the service reads them
(face/capture.py): genuine captures pass, every attack these checks can see is refused.
A pre-rendered video of the right actions is not among them: the light challenge and the
server-timed prompts are what refuse it."""

from __future__ import annotations

import random

import pytest

from evaluation.identity.face_checks import draw_actions
from face.actions import ACTIONS
from face.capture import analyze_capture
from face.engine import FaceEngine, Vector
from face.intake import decode_image
from face.liveness import Judgement, LivenessPolicy, Submission, analyze_frame, judge
from tests.face import attacks
from tests.face import second_generator as generator
from tests.face.corpus import BGR, encode

pytestmark = pytest.mark.slow

POLICY = LivenessPolicy()
FACES = ("yaoming-0", "players-6")
# The reason each attack must be refused for (any of them).
EXPECTED = {
    "still": {"planar-motion", "action-not-seen"},
    "planar": {"planar-motion"},
    "screen replay": {"replayed-frames"},
    "perturbed replay": {"replayed-frames"},
    "spliced": {"identity-changed"},
    "wrong order": {"action-out-of-order", "action-not-seen"},
    "loop": {"unchallenged-action", "action-out-of-order"},
}


def _run(
    face_engine: FaceEngine,
    attempt: attacks.Attempt,
    actions: list[str],
    template: Vector,
    earlier: list[Judgement],
) -> Judgement:
    frames = analyze_capture(
        face_engine, [decode_image(data) for data in attempt.frames], POLICY, actions
    )
    submission = Submission(actions, attempt.timestamps_ms, attempt.prompts_ms, 60_000)
    return judge(
        frames,
        submission,
        {"expert": template},
        POLICY,
        earlier_hashes=[j.hashes for j in earlier],
        earlier_signatures=[j.replay_signature for j in earlier if j.replay_signature],
    )


@pytest.fixture(scope="module")
def outcomes(face_engine: FaceEngine, people: dict[str, BGR]) -> list[tuple[str, Judgement]]:
    results = []
    for index, name in enumerate(FACES):
        portrait = people[name]
        enrolled = analyze_frame(face_engine, decode_image(encode(portrait)), POLICY)
        assert enrolled.photo.embedding is not None
        template = enrolled.photo.embedding
        actions = draw_actions(random.Random(index))
        stage = generator.make_stage(face_engine, portrait)
        other = generator.make_stage(face_engine, people[FACES[(index + 1) % len(FACES)]])
        recorded = generator.sequence(stage, actions, seed=index)
        genuine = _run(face_engine, attacks.of(recorded), actions, template, [])
        results.append(("genuine", genuine))
        cases = {
            "still": attacks.still(stage, recorded, seed=index),
            "planar": attacks.planar(stage, recorded, seed=index),
            "screen replay": attacks.screen(recorded, seed=index),
            "perturbed replay": attacks.edited(recorded, "all of them"),
            "spliced": attacks.spliced(recorded, generator.sequence(other, actions, seed=index)),
            "wrong order": attacks.of(
                generator.sequence(stage, actions[1:] + actions[:1], seed=300 + index)
            ),
            "loop": attacks.looped(stage, actions, ACTIONS, seed=700 + index),
        }
        for case, attempt in cases.items():
            results.append((case, _run(face_engine, attempt, actions, template, [genuine])))
    return results


def test_genuine_captures_pass(outcomes: list[tuple[str, Judgement]]) -> None:
    genuine = [j for case, j in outcomes if case == "genuine"]
    assert len(genuine) == len(FACES)
    assert [j.reasons for j in genuine if not j.passed] == []


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_attack_is_refused_for_its_reason(
    outcomes: list[tuple[str, Judgement]], case: str
) -> None:
    judged = [j for c, j in outcomes if c == case]
    assert len(judged) == len(FACES)
    for judgement in judged:
        assert not judgement.passed, case
        assert EXPECTED[case].intersection(judgement.reasons), (case, judgement.reasons)
