"""What an attacker does to a recorded capture before sending it again: the small edits
that change every pixel but not what the face did."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from face.samples import BGR, encode

Edit = Callable[[BGR], BGR]


def _decode(data: bytes) -> BGR:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    decoded: BGR = np.asarray(image, dtype=np.uint8)
    return decoded


def _levels(gain: float, bias: float) -> Edit:
    def apply(bgr: BGR) -> BGR:
        out: BGR = np.clip(bgr.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        return out

    return apply


def _shift(dx: int, dy: int) -> Edit:
    def apply(bgr: BGR) -> BGR:
        matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
        h, w = bgr.shape[:2]
        moved = cv2.warpAffine(bgr, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(moved, dtype=np.uint8)

    return apply


def _scale(factor: float) -> Edit:
    def apply(bgr: BGR) -> BGR:
        h, w = bgr.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0, factor)
        scaled = cv2.warpAffine(bgr, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(scaled, dtype=np.uint8)

    return apply


def _crop(share: float) -> Edit:
    def apply(bgr: BGR) -> BGR:
        h, w = bgr.shape[:2]
        dy, dx = int(h * share / 2), int(w * share / 2)
        return np.ascontiguousarray(bgr[dy : h - dy, dx : w - dx])

    return apply


# Each edit is applied to every frame, then the frame is JPEG-coded again (quality 80
# unless the edit says otherwise), as a replay tool would send it.
EDITS: dict[str, tuple[Edit, int]] = {
    "brightness+4": (_levels(1.0, 4), 90),
    "contrast x1.1": (_levels(1.1, -12), 90),
    "shift 3px": (_shift(3, 2), 90),
    "scale 0.9": (_scale(0.9), 90),
    "crop 10%": (_crop(0.1), 90),
    "jpeg q80": (lambda bgr: bgr, 80),
    "all of them": (lambda bgr: _crop(0.08)(_shift(3, -2)(_levels(1.08, 6)(bgr))), 75),
}


def perturb(frames: list[bytes], edit: str) -> list[bytes]:
    apply, quality = EDITS[edit]
    return [encode(apply(_decode(data)), quality=quality) for data in frames]
