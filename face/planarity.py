"""Is a face's motion between frames that of a flat picture?

Every view of a flat photo, however it is shifted, scaled, rotated or tilted in front of
the camera, is one homography of any other view. A real head turning or nodding is not:
its nose moves further than its cheeks and its jaw line slides. So the rigid landmarks of
each frame are mapped onto a frontal reference frame by the best homography, and what that
homography cannot explain (RMS residual, as a share of the distance between the eyes) is
the evidence of depth. Measured on the synthetic videos, as the second largest residual
of a sequence: photos shifted, rolled and tilted by up to ~35° leave 0.007-0.026; heads
turning or nodding by 20-30° leave 0.043-0.076. Past ~40° of tilt the landmark model stops
placing the jaw consistently with the nose and a photo read 0.055 once; the other checks
must carry that case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PlanarityReport:
    reference_index: int
    residuals: list[float]  # one per frame, 0 for the reference
    depth_evidence: float  # the second largest residual: one glitchy frame is not enough

    def as_dict(self) -> dict[str, object]:
        return {
            "reference_frame": self.reference_index,
            "depth_evidence": round(self.depth_evidence, 4),
            "max_residual": round(max(self.residuals, default=0.0), 4),
        }


def homography_residual(
    reference: NDArray[np.float32], points: NDArray[np.float32], scale: float
) -> float:
    """RMS distance, over ``scale``, between ``points`` and the best homography image of
    ``reference``."""
    homography, _ = cv2.findHomography(reference.astype(np.float64), points.astype(np.float64), 0)
    if homography is None:
        return float("inf")
    projected = cv2.perspectiveTransform(reference.reshape(1, -1, 2).astype(np.float64), homography)
    error = projected.reshape(-1, 2) - points.astype(np.float64)
    return float(np.sqrt((error**2).sum(axis=1).mean())) / max(scale, 1.0)


def planarity(
    points: Sequence[NDArray[np.float32]], scales: Sequence[float], reference_index: int
) -> PlanarityReport:
    reference = points[reference_index]
    residuals = [
        0.0 if index == reference_index else homography_residual(reference, frame, scale)
        for index, (frame, scale) in enumerate(zip(points, scales, strict=True))
    ]
    ordered = sorted(residuals, reverse=True)
    evidence = ordered[1] if len(ordered) > 1 else 0.0
    return PlanarityReport(reference_index, residuals, evidence)
