"""Quality gates on a detected face, each with a reason code and a message in Chinese and
English that a person holding the camera can act on.

Default thresholds were set from measurements on the photos the model wheels ship and
degraded copies of them (see tests/face/test_quality.py): sharp faces give a Laplacian
variance of 120-430 on the aligned crop, a 5x5 Gaussian blur 55, 9x9 22; normal exposure
gives a mean grey of 100-185, a 30% darkened photo 41, overexposure above 225.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from face.engine import DetectedFace

# Nose depth in front of the eye plane over half the inter-eye distance, for a typical
# adult face: turns the keypoint ratio into an approximate yaw angle.
_NOSE_DEPTH_RATIO = 0.8
_FRONTAL_PITCH_RATIO = 0.52


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: float = 64.0
    min_detection_score: float = 0.6
    min_sharpness: float = 40.0
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


def head_pose(face: DetectedFace) -> tuple[float, float]:
    """Approximate (yaw, pitch) in degrees from the five keypoints, roll removed first."""
    left_eye, right_eye, nose, mouth_left, mouth_right = face.keypoints.astype(np.float64)
    eye_mid = (left_eye + right_eye) / 2
    half_eye_distance = float(np.linalg.norm(right_eye - left_eye)) / 2
    roll = math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    cos, sin = math.cos(-roll), math.sin(-roll)
    unroll = np.array([[cos, -sin], [sin, cos]])
    nose_offset = unroll @ (nose - eye_mid)
    mouth_offset = unroll @ ((mouth_left + mouth_right) / 2 - eye_mid)
    if half_eye_distance <= 0 or mouth_offset[1] <= 0:
        return 90.0, 90.0  # degenerate keypoints: treat as far from frontal
    yaw = math.degrees(math.atan(nose_offset[0] / half_eye_distance / _NOSE_DEPTH_RATIO))
    pitch_ratio = (nose_offset[1] / mouth_offset[1] - _FRONTAL_PITCH_RATIO) / 0.45
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, pitch_ratio))))
    return yaw, pitch


def measure(face: DetectedFace, aligned: NDArray[np.uint8]) -> FaceSignals:
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    inner = grey[16:96, 16:96]  # the face itself, not the background corners
    yaw, pitch = head_pose(face)
    return FaceSignals(
        face_px=min(face.width, face.height),
        detection_score=face.score,
        sharpness=float(cv2.Laplacian(grey, cv2.CV_64F).var()),
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
