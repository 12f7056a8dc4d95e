"""Head pose (yaw, pitch) from the 106 landmarks: the rotation of a 3D mean face
(face/head_shape.py) that best explains the points a smile, an open mouth or a blink does not
move, in a scaled orthographic camera (a face is far from the camera compared to its depth).

Five keypoints (eyes, nose tip, mouth corners) were not enough: two of them sit on the
mouth, so a smile read as 30-47 degrees of pitch on frontal portraits. The fit here uses the
eye corners, the nose and the brows (37 points). Not the face contour: the landmark model
places it by the head's outline, which barely moves when a head nods, so with the contour
in the fit a 20 degree nod read as 4-7 degrees, and on a turned head it puts the far side's
contour on the silhouette, which made a 50 degree turn read as 35. The fit is a linear
least-squares affine map from the mean face, made a scaled rotation by its SVD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from face.head_shape import MEAN_FACE

_EYE_CORNERS = [35, 39, 89, 93]
_NOSE = list(range(72, 87))
_BROWS = [*range(43, 52), *range(97, 106)]
RIGID_POSE_POINTS = [*_EYE_CORNERS, *_NOSE, *_BROWS]
# Residual (in eye distances, RMS) past which the points are not a face in any pose.
_MAX_RESIDUAL = 0.25  # real faces, frontal to 45 degrees: at most 0.1


@dataclass(frozen=True)
class HeadPose:
    """Degrees. Yaw > 0: nose towards the image's right; pitch > 0: chin down (a tilt in
    the image plane changes neither). ``residual`` is the fit's RMS error in eye distances."""

    yaw: float
    pitch: float
    residual: float


IMPOSSIBLE = HeadPose(90.0, 90.0, math.inf)

_MODEL = MEAN_FACE[RIGID_POSE_POINTS]
# The least-squares fit is one matrix product: image = [model, 1] @ affine (4 x 2).
_SOLVER = np.linalg.pinv(np.column_stack([_MODEL, np.ones(len(_MODEL))]))


def estimate_head_pose(landmarks: NDArray[np.float32]) -> HeadPose:
    """The head's rotation from 106 landmark points in image pixels. Points no rotation of
    a face explains read as IMPOSSIBLE (90, 90): far from frontal, never a pass."""
    points = np.asarray(landmarks, dtype=np.float64)[RIGID_POSE_POINTS]
    affine = _SOLVER @ points
    projection = affine[:3].T  # 2 x 3: a scaled, rolled rotation's top two rows
    u, singular, vt = np.linalg.svd(projection, full_matrices=False)
    scale = float(singular.mean())
    if scale <= 1e-6:
        return IMPOSSIBLE
    rows = u @ vt
    fitted = _MODEL @ (scale * rows).T + affine[3]
    residual = float(np.sqrt(((fitted - points) ** 2).sum(axis=1).mean())) / scale
    if residual > _MAX_RESIDUAL:
        return IMPOSSIBLE
    # The rotation's third row, the face's forward axis seen from the camera, does not
    # depend on the roll in the image plane.
    forward = np.cross(rows[0], rows[1])
    yaw = math.degrees(math.asin(float(np.clip(-forward[0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(float(-forward[1]), float(forward[2])))
    return HeadPose(yaw, pitch, residual)
