"""Quality gates on a detected face, each with a reason code and a message in Chinese and
English that a person holding the camera can act on.

Default thresholds were set from measurements on the photos the model wheels ship and
degraded copies of them (see tests/face/test_quality.py). Sharpness is the Laplacian
variance of the aligned face over its grey-level variance, so that dim light does not read
as blur: sharp faces give 0.035-0.25 (unchanged at half the light), a 3x3 blur keeps at
least 0.03, a sigma-4 blur at most 0.013. Normal exposure gives a mean grey of 100-185, a
30% darkened photo 41, overexposure above 225.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from face.engine import DetectedFace
from face.head_pose import estimate_head_pose


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: float = 64.0
    min_detection_score: float = 0.6
    min_sharpness: float = 0.02
    min_brightness: float = 50.0
    max_brightness: float = 215.0
    max_yaw_degrees: float = 30.0
    max_pitch_degrees: float = 30.0


@dataclass(frozen=True)
class QualityIssue:
    code: str
    message_en: str
    message_zh: str
    value: float
    limit: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_en": self.message_en,
            "message_zh": self.message_zh,
            "value": round(self.value, 3),
            "limit": self.limit,
        }


@dataclass(frozen=True)
class FaceSignals:
    """What the gates measure, kept so a report can show why a photo passed or failed."""

    face_px: float
    detection_score: float
    sharpness: float
    brightness: float
    yaw_degrees: float
    pitch_degrees: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in vars(self).items()}


NO_FACE = QualityIssue("no-face", "no face was found", "未检测到人脸，请正对镜头", 0, 1)


def multiple_faces(count: int) -> QualityIssue:
    return QualityIssue(
        "multiple-faces",
        f"{count} faces were found; only the expert may be in the photo",
        f"检测到 {count} 张人脸，画面中只能有本人",
        count,
        1,
    )


def head_pose(landmarks: NDArray[np.float32]) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the 106 landmarks (see face.head_pose): yaw > 0 is the
    nose towards the image's right, pitch > 0 the chin down. Landmarks no rotation of a
    face can explain read as (90, 90)."""
    pose = estimate_head_pose(landmarks)
    return pose.yaw, pose.pitch


def _sharpness(grey: NDArray[Any]) -> float:
    """Edge energy of the face over its contrast: blur lowers it, dim light does not."""
    laplacian = cv2.Laplacian(grey, cv2.CV_64F)[16:96, 16:96]
    contrast = float(grey[16:96, 16:96].astype(np.float64).var())
    return float(laplacian.var()) / max(contrast, 1.0)


def measure(
    face: DetectedFace,
    aligned: NDArray[np.uint8],
    landmarks: NDArray[np.float32],
    pose: tuple[float, float] | None = None,
) -> FaceSignals:
    """What the gates read; ``pose`` is head_pose(landmarks) when the caller has it."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    inner = grey[16:96, 16:96]  # the face itself, not the background corners
    yaw, pitch = pose if pose is not None else head_pose(landmarks)
    return FaceSignals(
        face_px=min(face.width, face.height),
        detection_score=face.score,
        sharpness=_sharpness(grey),
        brightness=float(inner.mean()),
        yaw_degrees=yaw,
        pitch_degrees=pitch,
    )


def assess(signals: FaceSignals, limits: QualityThresholds) -> list[QualityIssue]:
    """Every gate the face fails; empty when it is good enough."""
    issues: list[QualityIssue] = []
    if signals.detection_score < limits.min_detection_score:
        issues.append(
            QualityIssue(
                "low-detection-score",
                "the face is not clearly visible",
                "人脸不清晰，请摘下遮挡物并正对镜头",
                signals.detection_score,
                limits.min_detection_score,
            )
        )
    if signals.face_px < limits.min_face_px:
        issues.append(
            QualityIssue(
                "face-too-small",
                "the face is too small; move closer",
                "人脸太小，请靠近镜头",
                signals.face_px,
                limits.min_face_px,
            )
        )
    if signals.sharpness < limits.min_sharpness:
        issues.append(
            QualityIssue(
                "too-blurry",
                "the photo is blurred; hold still and refocus",
                "图像模糊，请保持稳定并重新对焦",
                signals.sharpness,
                limits.min_sharpness,
            )
        )
    if signals.brightness < limits.min_brightness:
        issues.append(
            QualityIssue(
                "too-dark",
                "the face is too dark; find more light",
                "光线太暗，请到光线充足处",
                signals.brightness,
                limits.min_brightness,
            )
        )
    if signals.brightness > limits.max_brightness:
        issues.append(
            QualityIssue(
                "overexposed",
                "the face is overexposed; avoid direct light",
                "曝光过度，请避开强光",
                signals.brightness,
                limits.max_brightness,
            )
        )
    if abs(signals.yaw_degrees) > limits.max_yaw_degrees:
        issues.append(
            QualityIssue(
                "pose-yaw",
                "turn your face to the camera",
                "请正脸面对镜头，不要侧脸",
                abs(signals.yaw_degrees),
                limits.max_yaw_degrees,
            )
        )
    if abs(signals.pitch_degrees) > limits.max_pitch_degrees:
        issues.append(
            QualityIssue(
                "pose-pitch",
                "hold your head level",
                "请保持头部平视，不要抬头或低头",
                abs(signals.pitch_degrees),
                limits.max_pitch_degrees,
            )
        )
    return issues
