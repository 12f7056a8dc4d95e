"""Upload intake: what decodes (JPEG, PNG, WebP, upright), what is refused and why, and that
a decompression bomb is refused from its header alone."""

from __future__ import annotations

import io
import re
import struct
import time
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image

from face.engine import FaceEngine
from face.intake import ImageRejected, IntakeLimits, decode_image
from tests.face.corpus import BGR, encode, portraits

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def portrait() -> BGR:
    return portraits()["yaoming-0"]


def _pillow_bytes(bgr: BGR, fmt: str, mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).convert(mode).save(
        out, format=fmt, **options
    )
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels, with one tiny scanline of
    data: what a decompression bomb looks like before anything is inflated."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _rejection(data: bytes, limits: IntakeLimits = IntakeLimits()) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, limits)
    return caught.value


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_format_decodes_to_bgr_pixels_of_the_same_size(portrait: BGR, fmt: str) -> None:
    decoded = decode_image(encode(portrait, fmt=fmt, quality=95))

    assert decoded.format == fmt
    assert decoded.bgr.shape == portrait.shape
    assert decoded.bgr.dtype == np.uint8
    assert (decoded.width, decoded.height) == (portrait.shape[1], portrait.shape[0])
    assert not decoded.rotated_by_exif
    # Channels in OpenCV's order: swapped red and blue would differ by far more than
    # compression noise.
    difference = np.abs(decoded.bgr.astype(np.int16) - portrait.astype(np.int16))
    assert difference.mean() < 4
    if fmt == "PNG":
        assert np.array_equal(decoded.bgr, portrait)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "L"), ("PNG", "RGBA"), ("PNG", "P"), ("JPEG", "CMYK")]
)
def test_grey_alpha_palette_and_cmyk_images_decode_to_three_channels(
    portrait: BGR, fmt: str, mode: str
) -> None:
    decoded = decode_image(_pillow_bytes(portrait, fmt, mode))

    assert decoded.bgr.shape == portrait.shape
    assert decoded.bgr.dtype == np.uint8


def _cut_in_half(portrait: BGR) -> bytes:
    data = encode(portrait)
    return data[: len(data) // 2]


REJECTIONS: dict[str, tuple[Callable[[BGR], bytes], IntakeLimits, str]] = {
    "empty": (lambda _: b"", IntakeLimits(), "empty"),
    "random-bytes": (
        lambda _: np.random.default_rng(7).bytes(4096),
        IntakeLimits(),
        "not-an-image",
    ),
    "text": (
        lambda _: "专家名单 expert list\n".encode() * 50,
        IntakeLimits(),
        "not-an-image",
    ),
    "bmp": (lambda img: _pillow_bytes(img, "BMP"), IntakeLimits(), "unsupported-format"),
    "gif": (lambda img: _pillow_bytes(img, "GIF"), IntakeLimits(), "unsupported-format"),
    "tiff": (lambda img: _pillow_bytes(img, "TIFF"), IntakeLimits(), "unsupported-format"),
    "jpeg-cut-in-half": (_cut_in_half, IntakeLimits(), "truncated"),
    "over-max-bytes": (encode, IntakeLimits(max_bytes=10_000), "too-large"),
    "over-max-pixels": (encode, IntakeLimits(max_pixels=100 * 100), "too-many-pixels"),
    "declared-10000x10000": (
        lambda _: _png_declaring(10_000, 10_000),
        IntakeLimits(),
        "too-many-pixels",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_refused_upload_says_why_in_english_and_chinese(portrait: BGR, case: str) -> None:
    make, limits, code = REJECTIONS[case]

    rejected = _rejection(make(portrait), limits)

    assert rejected.code == code
    assert rejected.message_en.strip()
    assert str(rejected) == rejected.message_en
    assert CJK.search(rejected.message_zh), rejected.message_zh


def test_byte_limit_is_inclusive(portrait: BGR) -> None:
    data = encode(portrait)

    assert decode_image(data, IntakeLimits(max_bytes=len(data))).format == "JPEG"
    assert _rejection(data, IntakeLimits(max_bytes=len(data) - 1)).code == "too-large"


def test_pixel_limit_is_inclusive(portrait: BGR) -> None:
    data = encode(portrait, fmt="PNG")
    pixels = portrait.shape[0] * portrait.shape[1]

    assert decode_image(data, IntakeLimits(max_pixels=pixels)).format == "PNG"
    rejected = _rejection(data, IntakeLimits(max_pixels=pixels - 1))
    assert rejected.code == "too-many-pixels"
    assert f"{portrait.shape[1]}x{portrait.shape[0]}" in rejected.message_en


def test_decompression_bomb_is_refused_from_its_header_without_decoding() -> None:
    # 10^10 declared pixels would need 30 GB once decoded; the file is under 200 bytes.
    bomb = _png_declaring(100_000, 100_000)
    assert len(bomb) < 200

    started = time.perf_counter()
    rejected = _rejection(bomb)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5
    # The client should learn the image is too big, not that it is not an image.
    assert rejected.code == "too-many-pixels", rejected.message_en


def test_phone_jpeg_with_a_second_mpf_picture_is_accepted(portrait: BGR) -> None:
    # Phones write a depth map or preview as a second picture in the same .jpg (CIPA MPF);
    # Pillow reports such a file as "MPO" although it is an ordinary JPEG to any viewer.
    image = Image.fromarray(np.ascontiguousarray(portrait[:, :, ::-1]))
    out = io.BytesIO()
    image.save(out, format="MPO", save_all=True, append_images=[image.resize((96, 96))])
    data = out.getvalue()
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG stream

    decoded = decode_image(data)

    assert decoded.bgr.shape == portrait.shape


@pytest.mark.parametrize(
    ("orientation", "sensor_rotation"),
    [(6, cv2.ROTATE_90_COUNTERCLOCKWISE), (8, cv2.ROTATE_90_CLOCKWISE)],
)
def test_sideways_phone_photo_is_turned_upright_by_its_exif_orientation(
    face_engine: FaceEngine, portrait: BGR, orientation: int, sensor_rotation: int
) -> None:
    sideways = cv2.rotate(portrait, sensor_rotation)

    decoded = decode_image(encode(sideways, exif_orientation=orientation))

    assert decoded.rotated_by_exif
    assert decoded.bgr.shape == portrait.shape
    assert (decoded.width, decoded.height) == (portrait.shape[1], portrait.shape[0])
    upright = face_engine.detect(portrait)[0]
    [found] = face_engine.detect(decoded.bgr)
    assert np.allclose(found.bbox, upright.bbox, atol=4)
    assert found.height > found.width
    # The pixels as stored hold a face lying on its side: if the detector finds it at
    # all, its box is wider than tall, so skipping EXIF would change what is analysed.
    on_its_side = face_engine.detect(sideways)
    assert not on_its_side or on_its_side[0].width > on_its_side[0].height


def test_photo_without_orientation_tag_is_not_marked_rotated(portrait: BGR) -> None:
    assert not decode_image(encode(portrait, exif_orientation=1)).rotated_by_exif
    assert not decode_image(encode(portrait)).rotated_by_exif
