"""Quality gates on real portraits and degraded copies of them, the head-pose estimate on a
face of known pose, and whole-photo analysis (no face, several faces, a usable face)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from face.analysis import PhotoAnalysis, analyze_bytes, analyze_image
from face.engine import FaceEngine
from face.head_shape import MEAN_FACE
from face.intake import ImageRejected, IntakeLimits, decode_image
from face.matching import similarity
from face.quality import (
    NO_FACE,
    FaceSignals,
    QualityThresholds,
    assess,
    head_pose,
    multiple_faces,
)
from tests.face.corpus import BGR, IMAGES_DIR, encode, face_in, load

CJK = re.compile(r"[\u4e00-\u9fff]")
DEFAULTS = QualityThresholds()


@pytest.fixture(scope="module")
def group_photo() -> BGR:
    return load(IMAGES_DIR / "t1.jpg")


def _analyze(
    face_engine: FaceEngine,
    bgr: BGR,
    thresholds: QualityThresholds = DEFAULTS,
    *,
    single_face: bool = True,
    with_landmarks: bool = False,
) -> PhotoAnalysis:
    # Lossless, so the gates see exactly the pixels the test made.
    return analyze_image(
        face_engine,
        decode_image(encode(bgr, fmt="PNG")),
        thresholds,
        single_face=single_face,
        with_landmarks=with_landmarks,
    )


def _codes(analysis: PhotoAnalysis) -> list[str]:
    return [issue.code for issue in analysis.issues]


def _light(bgr: BGR, gain: float, bias: float = 0) -> BGR:
    return np.clip(bgr.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return overlap / (area_a + area_b - overlap)


def _flagged_on_every_portrait(
    face_engine: FaceEngine, people: dict[str, BGR], degrade: Any, code: str
) -> None:
    missed = {}
    for name, portrait in people.items():
        analysis = _analyze(face_engine, degrade(portrait))
        if code not in _codes(analysis):
            missed[name] = (analysis.signals, _codes(analysis))
    assert missed == {}


# --- the gates on real photos -------------------------------------------------------------


def test_every_corpus_portrait_passes_every_default_gate(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    assert len(people) >= 8
    for name, portrait in people.items():
        analysis = _analyze(face_engine, portrait)
        assert analysis.issues == [], (name, analysis.signals)
        assert analysis.usable


def test_face_half_drowned_in_sensor_noise_is_a_low_detection_score(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    portrait = people["players-6"]
    noise = np.random.default_rng(1).normal(0, 0.25 * 255, portrait.shape)
    noisy = np.clip(portrait + noise, 0, 255).astype(np.uint8)

    analysis = _analyze(face_engine, noisy)

    # Still the real face, not a speck of noise, only detected with less confidence.
    [clean] = face_engine.detect(portrait)
    assert analysis.face is not None
    assert _iou(analysis.face.bbox, clean.bbox) > 0.5
    [issue] = [issue for issue in analysis.issues if issue.code == "low-detection-score"]
    assert issue.value == analysis.face.score
    assert issue.value < issue.limit == DEFAULTS.min_detection_score


def test_face_about_forty_pixels_wide_is_too_small(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    def shrink(portrait: BGR) -> BGR:
        [face] = face_engine.detect(portrait)
        factor = 40 / face.width
        small: BGR = cv2.resize(portrait, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return small

    _flagged_on_every_portrait(face_engine, people, shrink, "face-too-small")


def test_strongly_blurred_portrait_is_too_blurry(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    # Sharpness is measured on the 112 px aligned crop, where a 130-160 px face shrinks to
    # about half: a 9x9 kernel (sigma 1.7) barely registers there, sigma 4 clearly does.
    def blur(portrait: BGR) -> BGR:
        blurred: BGR = cv2.GaussianBlur(portrait, (0, 0), 4)
        return blurred

    _flagged_on_every_portrait(face_engine, people, blur, "too-blurry")


def test_portrait_at_a_quarter_of_its_light_is_too_dark(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    _flagged_on_every_portrait(face_engine, people, lambda img: _light(img, 0.25), "too-dark")


def test_portrait_at_double_light_is_overexposed(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    _flagged_on_every_portrait(face_engine, people, lambda img: _light(img, 2.0, 40), "overexposed")


def test_dimmer_but_sharp_portrait_is_not_called_blurred(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    # Half the light leaves the face well inside the brightness limits and the embedding
    # nearly unchanged; only the focus advice would be wrong. Laplacian variance scales
    # with contrast squared, so a sharp face in a dim room reads as out of focus.
    wrongly_blurred = {}
    for name, portrait in people.items():
        sharp = _analyze(face_engine, portrait)
        dim = _analyze(face_engine, _light(portrait, 0.5))
        assert dim.signals is not None and sharp.signals is not None
        assert dim.embedding is not None and sharp.embedding is not None
        assert "too-dark" not in _codes(dim), name
        assert similarity(sharp.embedding, dim.embedding) > 0.9, name
        if "too-blurry" in _codes(dim):
            wrongly_blurred[name] = (round(sharp.signals.sharpness), round(dim.signals.sharpness))
    assert wrongly_blurred == {}


def test_head_turned_sideways_fails_the_yaw_gate(face_engine: FaceEngine) -> None:
    analysis = _analyze(face_engine, face_in("t1.jpg", 2))

    assert analysis.signals is not None
    assert abs(analysis.signals.yaw_degrees) > DEFAULTS.max_yaw_degrees
    assert "pose-yaw" in _codes(analysis)
    assert "pose-pitch" not in _codes(analysis)


# No shipped photo has a head tipped past the pitch limit, and the landmark model stops
# following a rendered one well before it: the pitch gate is tested on signals below and
# the pitch estimate on rendered nods in test_head_pose.py.


def test_smiling_frontal_faces_are_not_refused_for_pose(face_engine: FaceEngine) -> None:
    # A smile moved the mouth keypoints of a five-point pose fit: these read 45-48 degrees
    # of pitch there. They look at the camera.
    for index in (0, 3):
        analysis = _analyze(face_engine, face_in("t1.jpg", index))
        assert analysis.signals is not None
        assert abs(analysis.signals.pitch_degrees) < 20, index
        assert not {"pose-pitch", "pose-yaw"} & set(_codes(analysis)), index


# --- thresholds and messages --------------------------------------------------------------

TIGHTENED = {
    # field -> (code it raises, a limit the good portrait just fails)
    "min_face_px": ("face-too-small", lambda s: s.face_px + 1),
    "min_detection_score": ("low-detection-score", lambda s: s.detection_score + 0.01),
    "min_sharpness": ("too-blurry", lambda s: s.sharpness + 1),
    "min_brightness": ("too-dark", lambda s: s.brightness + 1),
    "max_brightness": ("overexposed", lambda s: s.brightness - 1),
    "max_yaw_degrees": ("pose-yaw", lambda s: abs(s.yaw_degrees) / 2),
    "max_pitch_degrees": ("pose-pitch", lambda s: abs(s.pitch_degrees) / 2),
}


@pytest.mark.parametrize("field", list(TIGHTENED))
def test_each_configured_threshold_is_the_one_applied(
    face_engine: FaceEngine, people: dict[str, BGR], field: str
) -> None:
    portrait = people["t1-5"]  # a face turned and tilted a little, within the defaults
    signals = _analyze(face_engine, portrait).signals
    assert signals is not None
    code, just_failed = TIGHTENED[field]
    limit = just_failed(signals)

    analysis = _analyze(face_engine, portrait, replace(DEFAULTS, **{field: limit}))

    [issue] = analysis.issues
    assert issue.code == code
    assert issue.limit == limit


def test_relaxed_pose_limit_lets_the_turned_head_through(face_engine: FaceEngine) -> None:
    portrait = face_in("t1.jpg", 2)
    assert "pose-yaw" in _codes(_analyze(face_engine, portrait))

    relaxed = _analyze(face_engine, portrait, replace(DEFAULTS, max_yaw_degrees=80.0))

    assert "pose-yaw" not in _codes(relaxed)


def test_every_issue_explains_itself_in_english_and_chinese() -> None:
    hopeless = FaceSignals(
        face_px=10,
        detection_score=0.31,
        sharpness=0.001,  # normalized units: far below any threshold
        brightness=5,
        yaw_degrees=-70,
        pitch_degrees=55,
    )
    glaring = replace(hopeless, brightness=250)

    issues = [*assess(hopeless, DEFAULTS), *assess(glaring, DEFAULTS), NO_FACE, multiple_faces(3)]

    assert {issue.code for issue in issues} == {
        "low-detection-score",
        "face-too-small",
        "too-blurry",
        "too-dark",
        "overexposed",
        "pose-yaw",
        "pose-pitch",
        "no-face",
        "multiple-faces",
    }
    for issue in issues:
        assert issue.message_en.isascii() and re.search("[a-z]{3}", issue.message_en), issue
        assert CJK.search(issue.message_zh), issue
        assert json.dumps(issue.as_dict(), ensure_ascii=False)
    assert "3" in multiple_faces(3).message_en and "3" in multiple_faces(3).message_zh


def test_signals_inside_every_limit_raise_no_issue() -> None:
    fine = FaceSignals(
        face_px=DEFAULTS.min_face_px,
        detection_score=DEFAULTS.min_detection_score,
        sharpness=DEFAULTS.min_sharpness,
        brightness=DEFAULTS.max_brightness,
        yaw_degrees=-DEFAULTS.max_yaw_degrees,
        pitch_degrees=DEFAULTS.max_pitch_degrees,
    )

    assert assess(fine, DEFAULTS) == []


# --- head pose on a face of known pose ----------------------------------------------------


def _landmarks_at(yaw: float, pitch: float, roll: float = 0.0) -> NDArray[np.float32]:
    """The mean face's 106 points turned by ``yaw`` (positive: nose toward +x) and
    ``pitch`` (positive: chin down), projected orthographically at 60 px per eye distance
    and rolled in the image plane."""
    a, b = math.radians(yaw), math.radians(pitch)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    nod = np.array([[1, 0, 0], [0, math.cos(b), math.sin(b)], [0, -math.sin(b), math.cos(b)]])
    flat = (MEAN_FACE @ (turn @ nod).T)[:, :2]
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    flat = flat @ np.array([[c, s], [-s, c]])
    return (flat * 60 + [320, 240]).astype(np.float32)


@pytest.mark.parametrize(("yaw", "pitch"), [(0, 0), (25, 0), (-40, 0), (0, 20), (0, -30), (40, 25)])
def test_head_pose_recovers_the_rotation_of_the_mean_face(yaw: float, pitch: float) -> None:
    assert head_pose(_landmarks_at(yaw, pitch)) == pytest.approx((yaw, pitch), abs=0.5)


@pytest.mark.parametrize("roll", [-25, 15, 40])
def test_head_pose_ignores_a_tilt_of_the_head_in_the_image_plane(roll: float) -> None:
    upright = head_pose(_landmarks_at(20, 10))

    tilted = head_pose(_landmarks_at(20, 10, roll=roll))

    assert tilted == pytest.approx(upright, abs=0.01)


def test_open_mouth_and_closed_eyes_do_not_move_the_pose() -> None:
    neutral = _landmarks_at(10, 5)
    expressive = neutral.copy()
    expressive[[*range(52, 72), *range(0, 33)], 1] += 25  # lips and jaw 0.4 eye distances down
    expressive[[34, 40, 41, 42, 92, 94, 95, 96], 1] += 6  # upper eyelids closed

    assert head_pose(expressive) == pytest.approx(head_pose(neutral), abs=0.01)


def test_head_pose_of_impossible_landmarks_is_far_from_frontal() -> None:
    nose_above_brows = _landmarks_at(0, 0)
    nose_above_brows[72:87, 1] -= 150

    yaw, pitch = head_pose(nose_above_brows)

    assert abs(yaw) > DEFAULTS.max_yaw_degrees and abs(pitch) > DEFAULTS.max_pitch_degrees


# --- whole-photo analysis -----------------------------------------------------------------


def test_blank_image_has_no_face_and_no_embedding(face_engine: FaceEngine) -> None:
    blank = np.full((480, 640, 3), 127, dtype=np.uint8)

    analysis = _analyze(face_engine, blank)

    assert _codes(analysis) == ["no-face"]
    assert analysis.faces_found == 0
    assert analysis.face is None and analysis.embedding is None
    assert not analysis.usable
    assert analysis.report()["usable"] is False


def test_group_photo_is_refused_when_one_face_is_required(
    face_engine: FaceEngine, group_photo: BGR
) -> None:
    faces = face_engine.detect(group_photo)
    assert len(faces) == 6

    analysis = _analyze(face_engine, group_photo, single_face=True)

    assert _codes(analysis)[0] == "multiple-faces"
    assert analysis.issues[0].value == analysis.faces_found == len(faces)
    assert not analysis.usable


def test_group_photo_analyses_its_largest_face_when_others_are_allowed(
    face_engine: FaceEngine, group_photo: BGR
) -> None:
    faces = face_engine.detect(group_photo)

    analysis = _analyze(face_engine, group_photo, single_face=False)

    assert "multiple-faces" not in _codes(analysis)
    assert analysis.faces_found == len(faces)
    assert analysis.face is not None
    assert analysis.face.width * analysis.face.height == max(f.width * f.height for f in faces)
    areas = [face.width * face.height for face in faces]
    assert areas == sorted(areas, reverse=True)


def test_usable_portrait_yields_a_unit_512_dimension_embedding_and_landmarks(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    analysis = _analyze(face_engine, people["gdp-2"], with_landmarks=True)

    assert analysis.usable
    assert analysis.embedding is not None and analysis.face is not None
    assert analysis.embedding.shape == (512,)
    assert analysis.embedding.dtype == np.float32
    assert float(np.linalg.norm(analysis.embedding)) == pytest.approx(1.0, abs=1e-5)
    assert analysis.landmarks is not None and analysis.landmarks.shape == (106, 2)
    x1, y1, x2, y2 = analysis.face.bbox
    pad = 0.15 * (x2 - x1)
    inside = (
        (analysis.landmarks[:, 0] > x1 - pad)
        & (analysis.landmarks[:, 0] < x2 + pad)
        & (analysis.landmarks[:, 1] > y1 - pad)
        & (analysis.landmarks[:, 1] < y2 + pad)
    )
    assert inside.all()
    report = json.loads(json.dumps(analysis.report()))
    assert report["usable"] is True and report["issues"] == []


def test_aligned_crop_is_the_recognizers_112_pixel_input(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    portrait = people["yaoming-0"]
    [face] = face_engine.detect(portrait)

    crop = face_engine.align(portrait, face)

    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # The face fills the crop: no black border from warping outside the photo.
    assert (crop.reshape(-1, 3).max(axis=1) > 0).mean() > 0.95


def test_analysing_upload_bytes_decodes_first(
    face_engine: FaceEngine, people: dict[str, BGR]
) -> None:
    portrait = people["yaoming-0"]

    from_bytes = analyze_bytes(
        face_engine, encode(portrait, fmt="PNG"), IntakeLimits(), DEFAULTS, single_face=True
    )

    assert from_bytes.usable
    assert (from_bytes.width, from_bytes.height) == (portrait.shape[1], portrait.shape[0])
    with pytest.raises(ImageRejected):
        analyze_bytes(face_engine, b"GIF89a", IntakeLimits(), DEFAULTS, single_face=True)
