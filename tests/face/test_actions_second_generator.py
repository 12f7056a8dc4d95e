"""Every action a default challenge can ask for is seen, in order and alone, when faces
this code was not tuned on perform it in the second generator's sequences (different faces,
turn sizes, timings and head sway from face/synthetic.py's)."""

from __future__ import annotations

import pytest

from face.actions import HEAD_ACTIONS, RELIABLE_ACTIONS, detect_events, match_actions
from face.engine import FaceEngine
from face.frame_signals import FrameSignals, frame_signals
from face.intake import decode_image
from tests.face import second_generator as generator
from tests.face.corpus import BGR, shared_portraits, shipped_frontal_portraits

# A smiling face, a small face of a team photo, a beard, glasses (when ../shared/faces is
# on this machine).
SHIPPED = ["astronaut-0", "players-8", "t1-0"]
SHARED = ["carell-0", "clapton-2-0", "kate_siegel-0"]


def _portraits() -> dict[str, BGR]:
    shipped = shipped_frontal_portraits()
    shared = shared_portraits()
    return {
        **{name: shipped[name] for name in SHIPPED},
        **{name: shared[name] for name in SHARED if name in shared},
    }


def _signals(
    engine: FaceEngine, video: generator.Sequence_
) -> tuple[list[int], list[FrameSignals]]:
    times, found = [], []
    for stamp, data in zip(video.timestamps_ms, video.frames, strict=True):
        image = decode_image(data).bgr
        faces = engine.detect(image)
        assert faces, stamp
        times.append(stamp)
        found.append(frame_signals(image, faces[0], engine.landmarks(image, faces[0])))
    return times, found


def test_the_default_challenge_draws_only_from_head_and_mouth_actions() -> None:
    assert set(RELIABLE_ACTIONS) == {"turn_left", "turn_right", "open_mouth"}
    assert HEAD_ACTIONS.intersection(RELIABLE_ACTIONS)


@pytest.mark.parametrize("name", [*SHIPPED, *SHARED])
def test_every_default_action_is_seen_in_order_on_a_face_nobody_tuned_on(
    face_engine: FaceEngine, name: str
) -> None:
    portraits = _portraits()
    if name not in portraits:
        pytest.skip("../shared/faces is not on this machine")
    index = [*SHIPPED, *SHARED].index(name)
    # Each face gets the three actions in another order.
    actions = [RELIABLE_ACTIONS[(index + k) % 3] for k in range(3)]
    stage = generator.make_stage(face_engine, portraits[name])
    video = generator.sequence(stage, actions, seed=100 + index)

    times, signals = _signals(face_engine, video)
    events, _ = detect_events(times, signals)
    match = match_actions(events, actions, video.prompts_ms)

    assert match.passed, (match.reason, match.detail, [e.as_dict() for e in events])
    assert [e.action for e in events if e.action != "blink"] == actions
