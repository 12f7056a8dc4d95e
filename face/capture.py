"""The model stage for a whole capture, at a fraction of running every model on every
frame: detect on a few frames and track the face box between them, find landmarks on
every other frame (and on the frames between where the face moved), and embed only the
frames the identity and continuity checks read.

Per frame, the bare models cost about 32 ms (detector at 640), 12 ms (landmarks) and 26 ms
(recognizer) of CPU here. A default challenge (turns and an open mouth, ~1 s each) changes
over several frames, so half of them, plus every frame where the signals jump, still show
each action; a blink lasts ~3 frames, so a challenge that names one reads every frame.
What tracking gives up: a second face that shows only on frames no detector saw.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from face.analysis import PhotoAnalysis
from face.antispoof import PassiveAntiSpoof
from face.engine import DetectedFace, FaceEngine
from face.frame_signals import FrameSignals, frame_signals
from face.intake import DecodedImage
from face.light_response import LightSample
from face.light_response import sample as sample_light
from face.liveness import FrameAnalysis, LivenessPolicy
from face.perceptual_hash import frame_hash
from face.quality import NO_FACE, assess, measure, multiple_faces

# Landmarks (face/frame_signals.py's groups) standing in for the detector's 5 keypoints.
EYE_CENTRES = (38, 88)
NOSE_TIP = 86
MOUTH_CORNERS = (52, 61)


@dataclass(frozen=True)
class CaptureOptions:
    # The detector's input side for capture frames: a phone's face fills a good part of
    # the frame, and at 320 a face of 32 px is still 16 px to the detector.
    detection_size: int = 320
    detect_every: int = 8  # re-anchor the tracked box on every n-th read frame
    # Read every 2nd frame, every 3rd while the face holds still; a skipped frame between
    # two read ones is read too when they differ by this much.
    landmark_stride: int = 2
    still_stride: int = 3
    still_degrees: float = 3.0
    still_mouth: float = 0.02
    refine_degrees: float = 10.0
    refine_mouth: float = 0.06
    # And every frame of a head movement (this far from the median pose) is read: the
    # flat-photo check judges depth from the most turned frames.
    away_degrees: float = 8.0
    continuity_frames: int = 3  # embedded besides the identity frames, spread in time
    dense_actions: frozenset[str] = frozenset({"blink"})


@dataclass
class _Read:
    face: DetectedFace
    faces_found: int
    landmarks: NDArray[np.float32]
    signals: FrameSignals


def _keypoints(landmarks: NDArray[np.float32]) -> NDArray[np.float32]:
    a, b = (landmarks[i] for i in MOUTH_CORNERS)
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    points = [landmarks[EYE_CENTRES[0]], landmarks[EYE_CENTRES[1]], landmarks[NOSE_TIP]]
    return np.asarray([*points, left, right], dtype=np.float32)


def _tracked(
    anchor: DetectedFace, anchor_marks: NDArray[np.float32], marks: NDArray[np.float32]
) -> DetectedFace:
    """The anchor's detector box moved and scaled as the landmarks moved since."""

    def frame_of(points: NDArray[np.float32]) -> tuple[NDArray[np.float64], float]:
        centre = points.astype(np.float64).mean(axis=0)
        radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).mean()))
        return centre, max(radius, 1.0)

    (c0, r0), (c1, r1) = frame_of(anchor_marks), frame_of(marks)
    box = np.asarray(anchor.bbox, dtype=np.float64).reshape(2, 2)
    moved = (box - c0) * (r1 / r0) + c1
    bbox = (float(moved[0, 0]), float(moved[0, 1]), float(moved[1, 0]), float(moved[1, 1]))
    return DetectedFace(bbox, _keypoints(marks), anchor.score)


def analyze_capture(
    engine: FaceEngine,
    images: Sequence[DecodedImage],
    policy: LivenessPolicy,
    actions: Sequence[str],
    options: CaptureOptions = CaptureOptions(),
    passive: PassiveAntiSpoof | None = None,
) -> list[FrameAnalysis]:
    """One FrameAnalysis per frame, in order; frames the models did not read are marked
    ``skipped`` and left out of the judgement."""
    size = (options.detection_size, options.detection_size)
    stride = 1 if options.dense_actions.intersection(actions) else options.landmark_stride
    reads: dict[int, _Read | None] = {}
    anchor: tuple[DetectedFace, NDArray[np.float32]] | None = None
    last: _Read | None = None
    since_detection = options.detect_every
    # Each frame in grey once: the hash and the eye signals both read it.
    greys: dict[int, NDArray[np.uint8]] = {}

    def grey(index: int) -> NDArray[np.uint8]:
        if index not in greys:
            bgr = images[index].bgr
            greys[index] = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        return greys[index]

    def read(index: int, detect: bool) -> _Read | None:
        nonlocal anchor
        bgr = images[index].bgr
        if detect or last is None or anchor is None:
            faces = engine.detect(bgr, input_size=size)
            if not faces:
                return None
            floor = policy.frame_thresholds.min_detection_score
            found = 1 + sum(1 for other in faces[1:] if other.score >= floor)
            face = faces[0]
            marks = engine.landmarks(bgr, face)
            anchor = (face, marks)
        else:
            face = _tracked(anchor[0], anchor[1], last.landmarks)
            marks = engine.landmarks(bgr, face)
            face = _tracked(anchor[0], anchor[1], marks)
            found = 1
        return _Read(face, found, marks, frame_signals(bgr, face, marks, grey(index)))

    index, previous = 0, None
    while index < len(images):
        detect = since_detection >= options.detect_every
        reads[index] = read(index, detect)
        since_detection = 0 if detect or reads[index] is None else since_detection + 1
        current, last = reads[index], reads[index]
        still = (
            current is not None
            and previous is not None
            and not _moved(previous, current, options.still_degrees, options.still_mouth)
        )
        previous = current
        index += options.still_stride if still and stride > 1 else stride
    if stride > 1:
        done = sorted(reads)
        first = [r.signals for r in reads.values() if r is not None]
        yaw = float(np.median([s.yaw_degrees for s in first])) if first else 0.0
        pitch = float(np.median([s.pitch_degrees for s in first])) if first else 0.0

        def away(r: _Read) -> bool:
            return (
                abs(r.signals.yaw_degrees - yaw) >= options.away_degrees
                or abs(r.signals.pitch_degrees - pitch) >= options.away_degrees
            )

        for before_index, after_index in itertools.pairwise(done):
            before, after = reads[before_index], reads[after_index]
            if (
                before is not None
                and after is not None
                and not _moved(before, after, options.refine_degrees, options.refine_mouth)
                and not away(before)
                and not away(after)
            ):
                continue
            for between in range(before_index + 1, after_index):
                last = reads[between - 1]
                reads[between] = read(between, last is None)
    embedded = _to_embed(reads, policy, options)
    analyses = []
    for index, image in enumerate(images):
        if index not in reads:
            analyses.append(_skipped(image, grey(index)))
            continue
        found = reads[index]
        analyses.append(
            _analysis(engine, image, grey(index), policy, found, index in embedded, passive)
        )
    return analyses


def _moved(a: _Read, b: _Read, degrees: float, mouth: float) -> bool:
    sa, sb = a.signals, b.signals
    return (
        abs(sa.yaw_degrees - sb.yaw_degrees) >= degrees
        or abs(sa.pitch_degrees - sb.pitch_degrees) >= degrees
        or abs(sa.mouth_openness - sb.mouth_openness) >= mouth
    )


def _to_embed(
    reads: dict[int, _Read | None], policy: LivenessPolicy, options: CaptureOptions
) -> set[int]:
    """The most frontal frames (what the identity check averages, as face.liveness orders
    them) and a few spread over the capture (what the continuity check compares)."""
    found = sorted(index for index, value in reads.items() if value is not None)
    if not found:
        return set()
    signals = [reads[i].signals for i in found if reads[i] is not None]  # type: ignore[union-attr]
    yaw = float(np.median([s.yaw_degrees for s in signals]))
    pitch = float(np.median([s.pitch_degrees for s in signals]))
    frontal = sorted(
        range(len(found)),
        key=lambda k: abs(signals[k].yaw_degrees - yaw) + abs(signals[k].pitch_degrees - pitch),
    )
    # More frontal frames than the identity check reads: some may fail a quality gate.
    chosen = {found[k] for k in frontal[: policy.identity_frames]}
    spread = np.linspace(0, len(found) - 1, options.continuity_frames)
    chosen.update(found[int(k + 0.5)] for k in spread)
    return chosen


def _skipped(image: DecodedImage, grey: NDArray[np.uint8]) -> FrameAnalysis:
    photo = PhotoAnalysis(image.width, image.height, 0, None, None, None, None, [])
    return FrameAnalysis(photo, None, frame_hash(image.bgr, grey), skipped=True)


def _analysis(
    engine: FaceEngine,
    image: DecodedImage,
    grey: NDArray[np.uint8],
    policy: LivenessPolicy,
    found: _Read | None,
    embed: bool,
    passive: PassiveAntiSpoof | None,
) -> FrameAnalysis:
    if found is None:
        photo = PhotoAnalysis(image.width, image.height, 0, None, None, None, None, [NO_FACE])
        return FrameAnalysis(photo, None, frame_hash(image.bgr, grey))
    aligned = engine.align(image.bgr, found.face)
    pose = found.signals.yaw_degrees, found.signals.pitch_degrees
    signals = measure(found.face, aligned, found.landmarks, pose)
    issues = assess(signals, policy.frame_thresholds)
    if found.faces_found > 1:
        issues.insert(0, multiple_faces(found.faces_found))
    photo = PhotoAnalysis(
        image.width,
        image.height,
        found.faces_found,
        found.face,
        signals,
        engine.embed(aligned) if embed else None,
        found.landmarks,
        issues,
    )
    crop = passive.crop(image.bgr, found.face) if passive is not None else None
    return FrameAnalysis(photo, found.signals, frame_hash(image.bgr, grey), crop)


def light_samples(
    images: Sequence[DecodedImage], analyses: Sequence[FrameAnalysis]
) -> list[LightSample | None]:
    """The screen's light on the face in every frame (no model needed): a frame the models
    skipped takes the face box of the nearest frame they read (the face moves little in a
    frame's time); None for every frame when no frame found a face."""
    read = [
        (index, analysis.photo.face.bbox)
        for index, analysis in enumerate(analyses)
        if analysis.photo.face is not None
    ]
    if not read:
        return [None] * len(analyses)
    return [
        sample_light(image.bgr, min(read, key=lambda found: abs(found[0] - index))[1])
        for index, image in enumerate(images)
    ]
