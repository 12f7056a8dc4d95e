"""The liveness check's parts on real faces in synthetic videos: per-frame signals follow
the rendered blink, turns, nod and open mouth; a flat photo moves by a homography and a
head does not; perceptual hashes survive re-encoding but not a new capture; the action
matcher's reason codes; the optional passive anti-spoof model's interface, with tiny real
ONNX models; and the passive check's effect on the judgement."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper

from face.actions import ActionThresholds, Event, match_actions
from face.antispoof import CROP_SIZE, AntiSpoofModelError, PassiveAntiSpoof
from face.engine import FaceEngine, Vector
from face.frame_signals import FrameSignals
from face.intake import decode_image
from face.liveness import FrameAnalysis, Judgement, LivenessPolicy, Submission, analyze_frame, judge
from face.perceptual_hash import HASH_BYTES, frame_hash, hamming, share_seen_before
from face.planarity import homography_residual, planarity
from face.synthetic import (
    FRAME_H,
    FRAME_W,
    Pose,
    Scene,
    Video,
    _photo_homography,
    genuine,
    make_scene,
    render,
)
from tests.face.corpus import BGR, encode

POLICY = LivenessPolicy()
ACTION = ActionThresholds()
# t1-5 is a real photo with closed, downcast eyes; players-15 is not frontal at rest.
NOT_GENUINE_SUBJECTS = {"t1-5", "players-15"}
CHALLENGE = ["blink", "turn_left"]

# The frames each person is rendered in, every one from the same scene.
POSES = {
    "neutral": Pose(),
    "blink": Pose(eyes_closed=1.0),
    "turn_left_28": Pose(yaw=28.0),
    "turn_right_28": Pose(yaw=-28.0),
    "turn_left_14": Pose(yaw=14.0),
    "turn_right_14": Pose(yaw=-14.0),
    "nod_22": Pose(pitch=22.0),
    "mouth_open": Pose(mouth_open=1.0),
}


def _analyze(face_engine: FaceEngine, bgr: BGR, fmt: str = "JPEG") -> FrameAnalysis:
    # JPEG at the quality the video fixtures use, as a phone would send a frame.
    data = encode(bgr, fmt=fmt, quality=85)
    return analyze_frame(face_engine, decode_image(data), POLICY)


def _signals(face_engine: FaceEngine, bgr: BGR, fmt: str = "JPEG") -> FrameSignals:
    analysis = _analyze(face_engine, bgr, fmt)
    assert analysis.usable, analysis.photo.report()
    assert analysis.signals is not None
    return analysis.signals


@dataclass(frozen=True)
class Rendered:
    scene: Scene
    signals: dict[str, FrameSignals]  # pose name -> what the frame says


@pytest.fixture(scope="module")
def subjects(people: dict[str, BGR]) -> list[str]:
    names = [name for name in people if name not in NOT_GENUINE_SUBJECTS]
    assert len(names) == 7
    return names


@pytest.fixture(scope="module")
def rendered(
    face_engine: FaceEngine, people: dict[str, BGR], subjects: list[str]
) -> dict[str, Rendered]:
    """Each genuine person's scene and the signals of every pose in POSES."""
    result = {}
    for name in subjects:
        scene = make_scene(face_engine, people[name])
        rng = np.random.default_rng(0)
        result[name] = Rendered(
            scene,
            {
                label: _signals(face_engine, render(scene, pose, rng))
                for label, pose in POSES.items()
            },
        )
    return result


def _eyes(frame: FrameSignals, base: FrameSignals) -> float:
    """The combined eye openness the blink detector reads, relative to the open eyes."""
    return (frame.eye_openness / base.eye_openness) * (frame.eye_darkness / base.eye_darkness)


# --- per-frame signals ---------------------------------------------------------------------


def test_a_rendered_blink_clearly_closes_the_eyes_of_every_person(
    rendered: dict[str, Rendered],
) -> None:
    still_open = {}
    for name, person in rendered.items():
        base, blink = person.signals["neutral"], person.signals["blink"]
        closed = _eyes(blink, base)
        # Clearly past the blink detector's "closed" level (0.5), not merely at it.
        if not closed < ACTION.blink_closed - 0.05:
            still_open[name] = round(closed, 3)
    assert still_open == {}


def test_the_eyes_appearance_alone_darkens_less_in_a_blink(
    rendered: dict[str, Rendered],
) -> None:
    # The lid covers the iris, pupil and lashes: fewer dark pixels, without the landmarks.
    unchanged = {}
    for name, person in rendered.items():
        base, blink = person.signals["neutral"], person.signals["blink"]
        assert base.eye_darkness >= 0.05, name  # open eyes do show dark pixels
        ratio = blink.eye_darkness / base.eye_darkness
        if not ratio < 0.9:
            unchanged[name] = round(ratio, 3)
    assert unchanged == {}


def test_a_blink_does_not_read_as_a_head_movement(rendered: dict[str, Rendered]) -> None:
    for name, person in rendered.items():
        base, blink = person.signals["neutral"], person.signals["blink"]
        assert abs(blink.yaw_degrees - base.yaw_degrees) < ACTION.return_degrees, name
        assert abs(blink.pitch_degrees - base.pitch_degrees) < ACTION.return_degrees, name


def test_yaw_follows_the_rendered_turn_in_sign_and_size(rendered: dict[str, Rendered]) -> None:
    wrong = {}
    for name, person in rendered.items():
        base = person.signals["neutral"].yaw_degrees
        change = {label: s.yaw_degrees - base for label, s in person.signals.items()}
        # A turn to the person's own left shows the nose towards the image's right: yaw > 0.
        ok = (
            change["turn_left_28"] >= ACTION.turn_degrees
            and change["turn_right_28"] <= -ACTION.turn_degrees
            and change["turn_left_28"] > change["turn_left_14"] > 0
            and change["turn_right_28"] < change["turn_right_14"] < 0
        )
        if not ok:
            wrong[name] = {label: round(v, 1) for label, v in change.items() if "turn" in label}
    assert wrong == {}


def test_pitch_follows_a_rendered_nod(rendered: dict[str, Rendered]) -> None:
    wrong = {}
    for name, person in rendered.items():
        base, nod = person.signals["neutral"], person.signals["nod_22"]
        pitch = nod.pitch_degrees - base.pitch_degrees
        yaw = nod.yaw_degrees - base.yaw_degrees
        # Chin down is positive; the nod must also dominate any yaw it reads as.
        if not (pitch >= ACTION.nod_degrees and abs(yaw) < pitch):
            wrong[name] = (round(pitch, 1), round(yaw, 1))
    assert wrong == {}


def test_mouth_openness_rises_when_the_mouth_opens(rendered: dict[str, Rendered]) -> None:
    wrong = {}
    for name, person in rendered.items():
        base, mouth = person.signals["neutral"], person.signals["mouth_open"]
        rise = mouth.mouth_openness - base.mouth_openness
        if not rise >= ACTION.mouth_open:
            wrong[name] = round(rise, 3)
        # An open mouth is not a blink or a turn.
        assert _eyes(mouth, base) > ACTION.blink_reopened, name
    assert wrong == {}


def test_a_real_closed_eye_reads_narrower_than_every_open_eye(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    # No rendering here: t1-5 is a real photo of a woman whose eyes are closed, cast down.
    openness = {
        name: _signals(face_engine, portrait, fmt="PNG").eye_openness
        for name, portrait in people.items()
    }
    closed = openness.pop("t1-5")

    assert len(openness) == 8
    assert closed < min(openness.values()), (closed, openness)


def test_turned_head_does_not_read_as_an_open_mouth(rendered: dict[str, Rendered]) -> None:
    # Normalized by the eye-to-mouth distance, which a turn barely shortens.
    for name, person in rendered.items():
        base = person.signals["neutral"].mouth_openness
        for label in ("turn_left_28", "turn_right_28"):
            rise = person.signals[label].mouth_openness - base
            assert rise < ACTION.mouth_open, (name, label, rise)


# --- planarity -----------------------------------------------------------------------------


def _apply(homography: NDArray[np.float64], points: NDArray[np.float32]) -> NDArray[np.float32]:
    mapped = cv2.perspectiveTransform(points.reshape(1, -1, 2).astype(np.float64), homography)
    return np.asarray(mapped.reshape(-1, 2), dtype=np.float32)


def _face_like_points() -> NDArray[np.float32]:
    rng = np.random.default_rng(3)
    return np.asarray(rng.uniform(-80, 80, (68, 2)) + np.array([320, 240]), dtype=np.float32)


def test_points_moved_by_an_exact_homography_leave_no_residual() -> None:
    points = _face_like_points()
    for tilt in [(0.0, 0.0), (0.5, 0.0), (-0.3, 0.4)]:
        homography = _photo_homography(shift=(30, -12), scale=1.15, roll=10, tilt=tilt)

        residual = homography_residual(points, _apply(homography, points), scale=60)

        assert residual < 1e-4, tilt


def test_points_moved_off_any_plane_leave_a_residual() -> None:
    # The same homography, plus a bump in the middle (as a nose moves more than the cheeks).
    points = _face_like_points()
    homography = _photo_homography(shift=(30, -12), scale=1.15, roll=10, tilt=(0.3, 0.0))
    moved = _apply(homography, points)
    centre = points.mean(axis=0)
    bump = np.exp(-(((points - centre) / 40) ** 2).sum(axis=1))
    moved[:, 0] += 15 * bump

    assert homography_residual(points, moved, scale=60) > POLICY.min_depth_evidence


def test_photo_tilted_in_front_of_the_camera_moves_almost_like_a_plane(
    face_engine: FaceEngine, rendered: dict[str, Rendered]
) -> None:
    residuals = {}
    for name, person in rendered.items():
        reference = _signals(face_engine, person.scene.frame)
        for tilt in [(0.4, 0.0), (-0.3, 0.25)]:
            homography = _photo_homography(shift=(20, -10), scale=1.1, roll=6, tilt=tilt)
            photo = np.asarray(
                cv2.warpPerspective(
                    person.scene.frame,
                    homography,
                    (FRAME_W, FRAME_H),
                    borderMode=cv2.BORDER_REFLECT,
                ),
                dtype=np.uint8,
            )
            moved = _signals(face_engine, photo)
            residuals[name, tilt] = homography_residual(
                reference.rigid_points, moved.rigid_points, reference.interocular_px
            )
    too_deep = {key: round(value, 4) for key, value in residuals.items() if value > 0.03}
    assert too_deep == {}


def test_a_rendered_head_turn_or_nod_is_not_a_homography(rendered: dict[str, Rendered]) -> None:
    flat = {}
    for name, person in rendered.items():
        base = person.signals["neutral"]
        for label, least in [
            ("turn_left_28", 0.05),
            ("turn_right_28", 0.05),
            ("nod_22", POLICY.min_depth_evidence),
        ]:
            residual = homography_residual(
                base.rigid_points, person.signals[label].rigid_points, base.interocular_px
            )
            if not residual >= least:
                flat[name, label] = round(residual, 4)
    assert flat == {}


def test_depth_evidence_ignores_one_glitchy_frame() -> None:
    points = _face_like_points()
    shifted = points + np.array([5, 3], dtype=np.float32)
    glitch = points.copy()
    glitch[:10] += 40
    frames = [points, shifted, glitch, shifted]

    report = planarity(frames, [60.0] * 4, reference_index=0)

    assert report.residuals[0] == 0.0
    assert report.residuals[2] > 0.1
    assert report.depth_evidence < 1e-4  # the second largest: only one frame glitched


# --- perceptual hash -----------------------------------------------------------------------

HASHED_PEOPLE = ["yaoming-0", "players-5"]  # the two whose captures look most alike


@pytest.fixture(scope="module")
def captures(rendered: dict[str, Rendered]) -> dict[tuple[str, int], Video]:
    """Two separate genuine captures (seeds 0 and 5) of each hashed person."""
    return {
        (name, seed): genuine(rendered[name].scene, CHALLENGE, seed=seed)
        for name in HASHED_PEOPLE
        for seed in (0, 5)
    }


def _hashes(video: Video) -> list[bytes]:
    return [frame_hash(decode_image(frame).bgr) for frame in video.frames]


def test_hash_is_256_bits_and_zero_bits_from_itself(rendered: dict[str, Rendered]) -> None:
    frame = rendered["yaoming-0"].scene.frame
    digest = frame_hash(frame)

    assert len(digest) == HASH_BYTES == 32
    assert hamming(digest, digest) == 0
    assert hamming(digest, frame_hash(frame.copy())) == 0
    assert hamming(digest, frame_hash(rendered["gdp-2"].scene.frame)) > 30


def test_frames_re_encoded_at_jpeg_quality_70_keep_their_hash(
    captures: dict[tuple[str, int], Video],
) -> None:
    for name in HASHED_PEOPLE:
        video = captures[name, 0]
        for index, frame in enumerate(video.frames):
            bgr = decode_image(frame).bgr
            again = decode_image(encode(bgr, quality=70)).bgr
            assert hamming(frame_hash(bgr), frame_hash(again)) <= 6, (name, index)


def test_the_same_sequence_is_recognized_as_seen_before(
    captures: dict[tuple[str, int], Video],
) -> None:
    first = _hashes(captures["yaoming-0", 0])
    other = _hashes(captures["players-5", 0])

    assert share_seen_before(first, [first], POLICY.replay_max_distance) == (1.0, 0)
    # Which earlier sequence it was.
    assert share_seen_before(first, [other, first], POLICY.replay_max_distance) == (1.0, 1)
    assert share_seen_before(first, [], POLICY.replay_max_distance) == (0.0, -1)
    assert share_seen_before([], [first], POLICY.replay_max_distance) == (0.0, -1)


def test_a_new_capture_of_the_same_person_is_not_a_replay(
    captures: dict[tuple[str, int], Video],
) -> None:
    for name in HASHED_PEOPLE:
        earlier = _hashes(captures[name, 0])
        again = _hashes(captures[name, 5])

        share, _ = share_seen_before(again, [earlier], POLICY.replay_max_distance)

        assert share < POLICY.replay_max_share, (name, share)


# --- matching events to the challenge ------------------------------------------------------

PROMPTS = [600, 2100, 3600]


def _event(action: str, start_ms: int) -> Event:
    return Event(action, start_ms, start_ms + 150, start_ms + 400, 1.0)


def test_actions_in_order_each_after_its_prompt_pass() -> None:
    events = [_event("blink", 900), _event("turn_left", 2300)]

    match = match_actions(events, ["blink", "turn_left"], PROMPTS[:2])

    assert match.passed and match.reason is None
    assert match.matched == events
    assert match.unchallenged == []


def test_an_action_ahead_of_its_turn_is_out_of_order() -> None:
    events = [_event("nod", 900), _event("turn_left", 2300), _event("open_mouth", 3800)]

    match = match_actions(events, ["turn_left", "open_mouth", "nod"], PROMPTS)

    assert not match.passed
    assert match.reason == "action-out-of-order"
    assert match.unchallenged == [events[0]]
    assert "expected turn_left first" in match.detail


def test_two_actions_swapped_are_out_of_order() -> None:
    events = [_event("turn_right", 900), _event("turn_left", 2300)]

    match = match_actions(events, ["turn_left", "turn_right"], PROMPTS[:2])

    assert not match.passed
    assert match.reason == "action-out-of-order"
    assert match.unchallenged == [events[0]]


def test_the_next_action_first_with_the_expected_one_never_done_is_not_seen() -> None:
    events = [_event("turn_right", 900)]

    match = match_actions(events, ["turn_left", "turn_right"], PROMPTS[:2])

    assert not match.passed
    assert match.reason == "action-not-seen"
    assert "turn_left" in match.detail
    assert match.unchallenged == []


def test_an_action_before_its_prompt_fails() -> None:
    early_turn = _event("turn_left", 1800)  # the turn's prompt comes at 2100
    events = [_event("blink", 900), early_turn]

    match = match_actions(events, ["blink", "turn_left"], PROMPTS[:2])

    assert not match.passed
    assert match.reason == "action-before-prompt"
    assert match.unchallenged == [early_turn]


def test_a_missing_action_is_not_seen() -> None:
    blink = _event("blink", 900)

    match = match_actions([blink], ["blink", "turn_left"], PROMPTS[:2])

    assert not match.passed
    assert match.reason == "action-not-seen"
    assert match.matched == [blink, None]
    assert "turn_left" in match.detail


def test_no_events_at_all_is_an_action_not_seen() -> None:
    match = match_actions([], ["nod"], PROMPTS[:1])

    assert (match.passed, match.reason) == (False, "action-not-seen")


def test_an_extra_unasked_turn_fails_the_check() -> None:
    extra = _event("turn_right", 3000)
    events = [_event("blink", 900), _event("turn_left", 2300), extra]

    match = match_actions(events, ["blink", "turn_left"], PROMPTS[:2])

    assert not match.passed
    assert match.reason == "unchallenged-action"
    assert match.unchallenged == [extra]


def test_an_unasked_action_before_the_first_prompt_fails_the_check() -> None:
    nod = _event("nod", 200)
    events = [nod, _event("blink", 900), _event("turn_left", 2300)]

    match = match_actions(events, ["blink", "turn_left"], PROMPTS[:2])

    assert (match.passed, match.reason) == (False, "unchallenged-action")
    assert match.unchallenged == [nod]


def test_spontaneous_blinks_are_tolerated_when_no_blink_is_asked_for() -> None:
    events = [
        _event("blink", 200),  # before any prompt
        _event("turn_left", 700),
        _event("blink", 1500),  # between the actions
        _event("nod", 2200),
        _event("blink", 3000),  # after the last one
    ]

    match = match_actions(events, ["turn_left", "nod"], PROMPTS[:2])

    assert match.passed, match.detail
    assert [e.action if e else None for e in match.matched] == ["turn_left", "nod"]


def test_a_blink_before_its_prompt_is_ignored_when_a_later_one_follows() -> None:
    later = _event("blink", 2400)
    events = [_event("turn_left", 700), _event("blink", 1700), later]

    match = match_actions(events, ["turn_left", "blink"], PROMPTS[:2])

    assert match.passed, match.detail
    assert match.matched[1] == later


def test_a_blink_only_before_its_prompt_is_not_seen() -> None:
    events = [_event("turn_left", 700), _event("blink", 1700)]

    match = match_actions(events, ["turn_left", "blink"], PROMPTS[:2])

    assert (match.passed, match.reason) == (False, "action-not-seen")


# --- the passive anti-spoof model ----------------------------------------------------------

# Tiny real models: the live probability is sigmoid(WEIGHT * mean pixel + BIAS), so a
# bright crop reads as live and a dark one as a spoof.
WEIGHT, BIAS = 0.05, -0.05 * 128


def _write_model(path: Path, output: str = "probability", side: int = CROP_SIZE) -> Path:
    """``output``: "probability" ([N, 1]), "flat" ([N]) or "classes" ([N, 2] scores)."""
    crop = helper.make_tensor_value_info("crop", TensorProto.FLOAT, ["N", 3, side, side])
    keep = 0 if output == "flat" else 1
    nodes = [
        helper.make_node("Flatten", ["crop"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mean"], axes=[1], keepdims=keep),
    ]
    if output == "classes":
        # Scores -z and z for (spoof, live): softmax gives sigmoid(2z) for live.
        initializers = [
            helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [-WEIGHT / 2, WEIGHT / 2]),
            helper.make_tensor("b", TensorProto.FLOAT, [2], [-BIAS / 2, BIAS / 2]),
        ]
        nodes += [
            helper.make_node("MatMul", ["mean", "w"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b"], ["out"]),
        ]
        shape: list[str | int] = ["N", 2]
    else:
        initializers = [
            helper.make_tensor("w", TensorProto.FLOAT, [], [WEIGHT]),
            helper.make_tensor("b", TensorProto.FLOAT, [], [BIAS]),
        ]
        nodes += [
            helper.make_node("Mul", ["mean", "w"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["out"]),
        ]
        shape = ["N"] if output == "flat" else ["N", 1]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "liveness", [crop], [out], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _expected(crop: NDArray[np.float32]) -> float:
    return 1 / (1 + math.exp(-(WEIGHT * float(crop.mean()) + BIAS)))


def _flat_crop(value: float) -> NDArray[np.float32]:
    return np.full((3, CROP_SIZE, CROP_SIZE), value, dtype=np.float32)


@pytest.mark.parametrize("output", ["probability", "flat", "classes"])
def test_model_outputs_read_as_live_probabilities(tmp_path: Path, output: str) -> None:
    model = PassiveAntiSpoof(_write_model(tmp_path / f"{output}.onnx", output))
    bright, middle, dark = _flat_crop(200), _flat_crop(128), _flat_crop(40)

    probabilities = model.live_probabilities([bright, middle, dark])

    assert probabilities == pytest.approx([_expected(c) for c in (bright, middle, dark)], abs=1e-4)
    assert probabilities[0] > 0.95 and probabilities[2] < 0.05
    assert probabilities[1] == pytest.approx(0.5, abs=1e-4)
    assert model.live_probabilities([]) == []
    assert model.name == f"{output}.onnx"


def test_model_for_another_crop_size_is_refused(tmp_path: Path) -> None:
    path = _write_model(tmp_path / "wide.onnx", side=112)

    with pytest.raises(AntiSpoofModelError, match="80, 80"):
        PassiveAntiSpoof(path)


def test_missing_or_broken_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AntiSpoofModelError, match="no anti-spoof model"):
        PassiveAntiSpoof(tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(AntiSpoofModelError, match="not a loadable ONNX model"):
        PassiveAntiSpoof(broken)


def test_crop_of_a_real_portrait_is_the_models_input(
    face_engine: FaceEngine, people: dict[str, BGR], tmp_path: Path
) -> None:
    portrait = people["gdp-2"]
    [face] = face_engine.detect(portrait)

    crop = PassiveAntiSpoof.crop(portrait, face)

    assert crop.shape == (3, CROP_SIZE, CROP_SIZE) and crop.dtype == np.float32
    assert crop.min() >= 0 and crop.max() <= 255
    # The face is at the centre (the box enlarged 2.7 times): real pixels there.
    middle = crop[:, 30:50, 30:50]
    assert middle.mean() > 30 and middle.std() > 5
    model = PassiveAntiSpoof(_write_model(tmp_path / "live.onnx"))
    [probability] = model.live_probabilities([crop])
    assert probability == pytest.approx(_expected(crop), abs=1e-4)


# --- the passive check in the judgement ----------------------------------------------------


@pytest.fixture(scope="module")
def template(face_engine: FaceEngine, people: dict[str, BGR]) -> Vector:
    """yaoming-0's enrolled template, from the portrait."""
    analysis = _analyze(face_engine, people["yaoming-0"], fmt="PNG")
    assert analysis.photo.embedding is not None
    return analysis.photo.embedding


@pytest.fixture(scope="module")
def analyzed(
    face_engine: FaceEngine, captures: dict[tuple[str, int], Video]
) -> tuple[Video, list[FrameAnalysis]]:
    video = captures["yaoming-0", 0]
    return video, [
        analyze_frame(face_engine, decode_image(frame), POLICY) for frame in video.frames
    ]


def _judge(
    analyzed: tuple[Video, list[FrameAnalysis]],
    template: Vector,
    live_probabilities: list[float] | None,
) -> Judgement:
    video, frames = analyzed
    submission = Submission(
        CHALLENGE, video.timestamps_ms, video.prompts_ms, video.timestamps_ms[-1] + 1500
    )
    return judge(
        frames,
        submission,
        {"expert": template},
        POLICY,
        live_probabilities=live_probabilities,
    )


def test_genuine_capture_passes_every_check_without_a_passive_model(
    analyzed: tuple[Video, list[FrameAnalysis]], template: Vector
) -> None:
    judgement = _judge(analyzed, template, None)

    assert judgement.passed, [c.as_dict() for c in judgement.checks if not c.passed]
    assert [event.action for event in judgement.events] == CHALLENGE
    assert "passive" not in [check.name for check in judgement.checks]


def test_low_live_probability_fails_the_passive_check(
    analyzed: tuple[Video, list[FrameAnalysis]], template: Vector
) -> None:
    low = POLICY.min_live_probability - 0.2
    judgement = _judge(analyzed, template, [low] * 20)

    assert not judgement.passed
    assert judgement.reasons == ["passive-spoof"]  # everything else still passes
    [passive] = [check for check in judgement.checks if check.name == "passive"]
    assert passive.values["live_probability"] == pytest.approx(low)


def test_high_live_probability_passes_the_passive_check(
    analyzed: tuple[Video, list[FrameAnalysis]], template: Vector
) -> None:
    high = POLICY.min_live_probability + 0.3
    # The median counts: two glitchy frames do not fail a capture.
    judgement = _judge(analyzed, template, [high] * 18 + [0.0, 0.0])

    assert judgement.passed
    assert "passive-spoof" not in judgement.reasons
    [passive] = [check for check in judgement.checks if check.name == "passive"]
    assert passive.passed


def test_no_crop_to_judge_fails_the_passive_check(
    analyzed: tuple[Video, list[FrameAnalysis]], template: Vector
) -> None:
    judgement = _judge(analyzed, template, [])

    assert judgement.reasons == ["passive-spoof"]


def test_frame_analysis_with_a_model_keeps_the_crop_it_judges(
    face_engine: FaceEngine, analyzed: tuple[Video, list[FrameAnalysis]], tmp_path: Path
) -> None:
    video, _ = analyzed
    model = PassiveAntiSpoof(_write_model(tmp_path / "live.onnx"))

    frame = analyze_frame(face_engine, decode_image(video.frames[0]), POLICY, model)

    assert frame.usable and frame.spoof_crop is not None
    assert frame.spoof_crop.shape == (3, CROP_SIZE, CROP_SIZE)
    assert frame.spoof_crop.dtype == np.float32
    [probability] = model.live_probabilities([frame.spoof_crop])
    assert 0 < probability < 1
    assert probability == pytest.approx(_expected(frame.spoof_crop), abs=1e-4)


def test_a_prompt_outside_the_capture_is_a_timing_failure(
    captures: dict[tuple[str, int], Video],
) -> None:
    from face.liveness import Submission, _check_timing

    times = [0, 500, 1000, 1500]
    assert _check_timing(Submission(["blink", "nod"], times, [100, 900], 60_000), POLICY).passed
    after = _check_timing(Submission(["blink", "nod"], times, [100, 2000], 60_000), POLICY)
    before = _check_timing(
        Submission(["blink", "nod"], [500, *times[2:]], [100, 900], 60_000), POLICY
    )
    assert after.reason == before.reason == "timing-invalid"
