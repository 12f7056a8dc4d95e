"""One photo or frame, end to end: decode, detect, align, measure quality, embed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from face.engine import DetectedFace, FaceEngine, Vector
from face.intake import DecodedImage, IntakeLimits, decode_image
from face.quality import (
    NO_FACE,
    FaceSignals,
    QualityIssue,
    QualityThresholds,
    assess,
    measure,
    multiple_faces,
)


@dataclass(frozen=True)
class PhotoAnalysis:
    """The largest face of a photo, its quality, and its embedding."""

    width: int
    height: int
    faces_found: int
    face: DetectedFace | None
    signals: FaceSignals | None
    embedding: Vector | None
    landmarks: NDArray[np.float32] | None
    issues: list[QualityIssue] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.embedding is not None and not self.issues

    def report(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "faces_found": self.faces_found,
            "face": self.face.as_dict() if self.face else None,
            "signals": self.signals.as_dict() if self.signals else None,
            "issues": [issue.as_dict() for issue in self.issues],
            "usable": self.usable,
        }


def analyze_image(
    engine: FaceEngine,
    image: DecodedImage,
    thresholds: QualityThresholds,
    *,
    single_face: bool,
    with_landmarks: bool = False,
) -> PhotoAnalysis:
    """Analyze the largest face; with ``single_face`` a second face is itself an issue."""
    faces = engine.detect(image.bgr)
    if not faces:
        return PhotoAnalysis(image.width, image.height, 0, None, None, None, None, [NO_FACE])
    face = faces[0]
    # Weak detections (a patterned shirt, a poster's corner) are not a second person.
    faces = [face, *(other for other in faces[1:] if other.score >= thresholds.min_detection_score)]
    aligned = engine.align(image.bgr, face)
    # The pose gate reads the landmarks, so they are found for every photo.
    landmarks = engine.landmarks(image.bgr, face)
    signals = measure(face, aligned, landmarks)
    issues = assess(signals, thresholds)
    if single_face and len(faces) > 1:
        issues.insert(0, multiple_faces(len(faces)))
    return PhotoAnalysis(
        image.width,
        image.height,
        len(faces),
        face,
        signals,
        engine.embed(aligned),
        landmarks if with_landmarks else None,
        issues,
    )


def analyze_bytes(
    engine: FaceEngine,
    data: bytes,
    limits: IntakeLimits,
    thresholds: QualityThresholds,
    *,
    single_face: bool,
    with_landmarks: bool = False,
) -> PhotoAnalysis:
    """Decode (raising ImageRejected for bad input) and analyze."""
    return analyze_image(
        engine,
        decode_image(data, limits),
        thresholds,
        single_face=single_face,
        with_landmarks=with_landmarks,
    )
