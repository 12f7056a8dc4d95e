"""What one video frame says about a face's expression and pose, from the 106 landmarks
and the pixels around the eyes.

Index groups of insightface's 2d106det model (checked by drawing them on a shipped photo):
0-32 jaw contour, 33-42 the image-left eye (38 its centre), 43-51 and 97-105 the brows,
52-71 the lips (52 and 61 the corners, 62 and 60 the inner upper and lower lip), 72-86 the
nose, 87-96 the image-right eye (88 its centre).

Eye openness has two parts because one is not enough: the landmark model's eyelid points
collapse only weakly (a closed eye still reads 0.3-0.8 of the open eye's area), so the
eye's appearance is measured as well: the share of the eye box darker than the cheek
below it, which is the visible iris, pupil and lashes, and which a closing lid covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from face.engine import DetectedFace
from face.quality import head_pose

EYES = (
    ([33, 34, 35, 36, 37, 39, 40, 41, 42], 35, 39, 38),  # points, corners, centre
    ([87, 89, 90, 91, 92, 93, 94, 95, 96], 89, 93, 88),
)
UPPER_LIP, LOWER_LIP = 62, 60
# Points that stay put on a face when it blinks or opens its mouth: what the flat-photo
# check compares between frames.
RIGID_POINTS = [*range(0, 33), *range(43, 52), *range(72, 87), *range(97, 106)]
# A pixel is "dark" (iris, pupil, lashes) below this share of the cheek's brightness.
DARK_FRACTION_OF_SKIN = 0.55
# Each eye's patch: corners at (4, 6) and (20, 6) of a 24 x 12 grey image.
PATCH_W, PATCH_H = 24, 12


@dataclass(frozen=True)
class FrameSignals:
    eye_openness: float  # eye area over squared width, both eyes' mean
    eye_darkness: float  # share of the eye boxes darker than the cheek
    mouth_openness: float  # inner-lip gap over the eye-to-mouth distance
    yaw_degrees: float
    pitch_degrees: float
    interocular_px: float
    rigid_points: NDArray[np.float32]
    eye_patch: NDArray[np.float32]  # both eyes' patches, zero mean and unit length

    def as_dict(self) -> dict[str, Any]:
        return {
            "eye_openness": round(self.eye_openness, 4),
            "eye_darkness": round(self.eye_darkness, 4),
            "mouth_openness": round(self.mouth_openness, 4),
            "yaw_degrees": round(self.yaw_degrees, 2),
            "pitch_degrees": round(self.pitch_degrees, 2),
        }


def _eye_area_ratio(landmarks: NDArray[np.float32], points: list[int], a: int, b: int) -> float:
    hull = cv2.convexHull(landmarks[points].astype(np.float32))
    width = float(np.linalg.norm(landmarks[a] - landmarks[b]))
    return float(cv2.contourArea(hull)) / max(width * width, 1.0)


def _eye_darkness(
    grey: NDArray[np.uint8], landmarks: NDArray[np.float32], points: list[int]
) -> float:
    eye = landmarks[points]
    (x0, y0), (x1, y1) = eye.min(axis=0), eye.max(axis=0)
    width = float(x1 - x0)
    cx, cy = float(x0 + x1) / 2, float(y0 + y1) / 2
    h, w = grey.shape

    def region(top: float, bottom: float, left: float, right: float) -> NDArray[np.uint8]:
        return grey[max(0, int(top)) : min(h, int(bottom)), max(0, int(left)) : min(w, int(right))]

    box = region(cy - 0.3 * width, cy + 0.3 * width, cx - 0.6 * width, cx + 0.6 * width)
    cheek = region(cy + 0.5 * width, cy + width, cx - 0.4 * width, cx + 0.4 * width)
    if box.size == 0 or cheek.size == 0:
        return 0.0
    skin = float(np.median(cheek))
    return float((box < DARK_FRACTION_OF_SKIN * skin).mean())


def _eye_patch(grey: NDArray[np.uint8], landmarks: NDArray[np.float32]) -> NDArray[np.float32]:
    patches = []
    for _points, a, b, _centre in EYES:
        left, right = landmarks[a], landmarks[b]
        normal = np.array([left[1] - right[1], right[0] - left[0]], np.float32)
        source = np.array([left, right, left + normal / 2], np.float32)
        target = np.array([[4, 6], [20, 6], [4, 14]], np.float32)
        matrix = cv2.getAffineTransform(source, target)
        patch = cv2.warpAffine(grey, matrix, (PATCH_W, PATCH_H), flags=cv2.INTER_AREA)
        patches.append(np.asarray(patch, dtype=np.float32).ravel())
    vector = np.concatenate(patches)
    vector -= vector.mean()
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def frame_signals(
    bgr: NDArray[np.uint8],
    face: DetectedFace,
    landmarks: NDArray[np.float32],
    grey: NDArray[np.uint8] | None = None,
) -> FrameSignals:
    """The frame's signals; ``grey`` is the frame converted to grey, when the caller has it."""
    if grey is None:
        grey = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    openness = [_eye_area_ratio(landmarks, points, a, b) for points, a, b, _ in EYES]
    darkness = [_eye_darkness(grey, landmarks, points) for points, *_ in EYES]
    eyes_mid = (landmarks[EYES[0][3]] + landmarks[EYES[1][3]]) / 2
    mouth_mid = (landmarks[UPPER_LIP] + landmarks[LOWER_LIP]) / 2
    # Normalized by the eye-to-mouth distance, which a head turn barely shortens (the
    # mouth's width, which it does shorten, would make a turn look like an open mouth).
    face_height = float(np.linalg.norm(mouth_mid - eyes_mid))
    gap = float(np.linalg.norm(landmarks[UPPER_LIP] - landmarks[LOWER_LIP]))
    yaw, pitch = head_pose(landmarks)
    return FrameSignals(
        eye_openness=float(np.mean(openness)),
        eye_darkness=float(np.mean(darkness)),
        mouth_openness=gap / max(face_height, 1.0),
        yaw_degrees=yaw,
        pitch_degrees=pitch,
        interocular_px=float(np.linalg.norm(landmarks[EYES[0][3]] - landmarks[EYES[1][3]])),
        rigid_points=np.asarray(landmarks[RIGID_POINTS], dtype=np.float32),
        eye_patch=_eye_patch(grey, landmarks),
    )
