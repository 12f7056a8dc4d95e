"""Real face images for tests and benchmarks, made from the photos the model wheels ship,
and the transformations a phone camera applies to a photo of the same person."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import skimage

from api.services import face_engine_for
from face.engine import FaceEngine
from face.samples import (
    BGR,
    IMAGES_DIR,
    MODEL_DIR,
    crop_face,
    encode,
    load,
    sample_portraits,
)
from models.settings import Settings

__all__ = ["BGR", "IMAGES_DIR", "MODEL_DIR", "crop_face", "encode", "load"]


def engine() -> FaceEngine:
    """The same per-process engine the app uses with default settings."""
    return face_engine_for(Settings())


@lru_cache(maxsize=1)
def portraits(limit: int = 30) -> dict[str, BGR]:
    """One portrait per distinct person whose face passes every default quality gate."""
    return sample_portraits(engine(), limit)


# Portraits nobody here rendered or tuned on, kept outside the repository (their README:
# measure with them, never ship them); the tests that read them skip when they are absent.
# Beside the checkout (../shared/faces), or where this workplace keeps it for a checkout
# elsewhere (CI's fresh clone), or where EVALSIGN_SHARED_FACES says.
def _shared_faces() -> Path:
    candidates = [
        Path(os.environ.get("EVALSIGN_SHARED_FACES", "")),
        Path(__file__).resolve().parents[3] / "shared" / "faces",
        Path("/work/shared/faces"),
    ]
    return next((c for c in candidates if str(c) != "." and c.is_dir()), candidates[1])


SHARED_FACES = _shared_faces()
# Faces of the shipped photos that are visibly turned away (looked at, one by one): the
# rest look at the camera.
TURNED_AWAY = frozenset({"gdp-0", "t1-2", "t1-4", "camera-0"})


def _shipped_photos() -> dict[str, BGR]:
    data = Path(skimage.__file__).parent / "data"
    return {
        "yaoming": load(MODEL_DIR / "yaoming.jpg"),
        "gdp": load(MODEL_DIR / "gdp.jpg"),
        "players": load(MODEL_DIR / "players.jpg"),
        "t1": load(IMAGES_DIR / "t1.jpg"),
        "astronaut": load(data / "astronaut.png"),
        "camera": load(data / "camera.png"),
    }


def _shared_photos() -> dict[str, BGR]:
    if not SHARED_FACES.is_dir():
        return {}
    return {path.stem: load(path) for path in sorted(SHARED_FACES.glob("*.jpg"))}


def _every_face(photos: dict[str, BGR]) -> dict[str, BGR]:
    found = {}
    for name, image in photos.items():
        faces = engine().detect(image)
        for index, face in enumerate(faces):
            if face.width >= 36 and face.score >= 0.5:
                found[f"{name}-{index}"] = crop_face(image, face, others=faces)
    return found


@lru_cache(maxsize=1)
def shipped_frontal_portraits() -> dict[str, BGR]:
    """Every face of the photos installed packages ship (insightface's and its model
    wheel's, scikit-image's astronaut and cameraman) that looks at the camera, whatever
    the quality gates say of it."""
    faces = _every_face(_shipped_photos())
    return {name: face for name, face in faces.items() if name not in TURNED_AWAY}


@lru_cache(maxsize=1)
def shared_portraits() -> dict[str, BGR]:
    """Every face of the measurement photos in ../shared/faces (none turned past 30
    degrees); empty when they are not on this machine."""
    return _every_face(_shared_photos())


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


def id_card_photo(portrait: BGR) -> bytes:
    """A phone's photo of the portrait side of a resident ID card: a pale card with lines
    where the name, sex, birth date and address print, and the holder's portrait, small,
    on the right (the tests make the card from a shipped face photo). An ID photo is a
    tight head shot: the central 80% of the portrait, which leaves out the edge of a
    neighbour's face that a crop from a group photo can carry."""
    height, width = portrait.shape[:2]
    top, left = height // 10, width // 10
    portrait = portrait[top : height - top, left : width - left]
    card = np.full((540, 856, 3), (236, 228, 214), np.uint8)
    cv2.rectangle(card, (0, 0), (855, 539), (200, 190, 170), 6)
    height, width = portrait.shape[:2]
    face = cv2.resize(portrait, (round(width * 300 / height), 300), interpolation=cv2.INTER_AREA)
    left = 856 - face.shape[1] - 50
    card[110:410, left : left + face.shape[1]] = face
    for line, top in enumerate(range(120, 420, 60)):
        cv2.rectangle(card, (60, top), (360 - 30 * line, top + 18), (90, 90, 90), -1)
    ok, data = cv2.imencode(".jpg", card, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return bytes(data.tobytes())
