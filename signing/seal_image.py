"""Pictures of organization seals (电子印章): check an uploaded one, or draw the round red
seal a Chinese unit uses (the unit's name along the rim, a five-pointed star, the seal's
purpose below it), and cut a seal into the strips of a cross-page seal (骑缝章).

The picture is only what a reader sees; what binds the unit is the signature made with
the organization's certificate. Pillow draws; the font is the stamp font (signing/pades).
"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from signing.pades import cjk_font_location

SEAL_RED = (208, 16, 16, 235)
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 120, 2000
GENERATED_SIDE = 480


class SealImageRejected(ValueError):
    """The uploaded picture is not a usable seal image."""


def check_uploaded(data: bytes) -> bytes:
    """A PNG with transparency, square-ish and of a sensible size; returned re-encoded so
    nothing but pixels (no metadata chunks) is kept."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise SealImageRejected(f"the seal image is over {MAX_UPLOAD_BYTES // 1024} KB")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise SealImageRejected("the seal image must be a PNG")
    Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise SealImageRejected(
                    f"the seal image is {width} x {height}; each side must be "
                    f"{MIN_SIDE}-{MAX_SIDE} pixels"
                )
            if max(width, height) > 2 * min(width, height):
                raise SealImageRejected("a seal image is roughly square or round")
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise SealImageRejected(f"the seal image cannot be read: {exc}") from exc
    alpha = rgba.getchannel("A")
    low, high = alpha.getextrema()
    if low == 255:
        raise SealImageRejected(
            "the seal image has no transparent pixels; upload the seal on a transparent "
            "background so the text under it stays readable"
        )
    if high == 0:
        raise SealImageRejected("the seal image is fully transparent")
    return _png(rgba)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont:
    path, index = cjk_font_location()
    return ImageFont.truetype(path, size, index=index)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float) -> None:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.382
        angle = math.radians(-90 + 36 * k)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)


def _rim_text(image: Image.Image, text: str, radius: float, size: int) -> None:
    """The name clockwise along the upper rim, each character upright towards the edge."""
    font = _font(size)
    cx = cy = image.width / 2
    count = len(text)
    # Long names take more of the circle, up to 240 degrees; short ones keep their spacing.
    span = min(240.0, max(120.0, count * 22.0))
    step = span / max(count - 1, 1)
    start = -span / 2
    for i, char in enumerate(text):
        angle = start + i * step if count > 1 else 0.0
        tile = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text((size, size), char, font=font, fill=SEAL_RED, anchor="mm")
        turned = tile.rotate(-angle, resample=Image.Resampling.BICUBIC)
        x = cx + radius * math.sin(math.radians(angle))
        y = cy - radius * math.cos(math.radians(angle))
        image.alpha_composite(turned, (round(x - size), round(y - size)))


def round_seal(unit_name: str, purpose: str, side: int = GENERATED_SIDE) -> bytes:
    """The round red seal: a ring, the name along its upper rim, a star, the purpose."""
    name = unit_name.strip()
    if not name:
        raise SealImageRejected("a seal needs the unit's name")
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    ring = side * 0.035
    draw.ellipse(
        (ring / 2, ring / 2, side - ring / 2, side - ring / 2), outline=SEAL_RED, width=round(ring)
    )
    size = round(side * (0.11 if len(name) <= 12 else 0.085 if len(name) <= 18 else 0.07))
    _rim_text(image, name, side / 2 - ring - size * 0.75, size)
    _star(draw, side / 2, side / 2, side * 0.15)
    if purpose:
        draw.text(
            (side / 2, side * 0.76),
            purpose,
            font=_font(round(side * 0.075)),
            fill=SEAL_RED,
            anchor="mm",
        )
    return _png(image)


def cross_page_strips(seal_png: bytes, pages: int) -> list[bytes]:
    """The seal cut into `pages` vertical strips, left to right: page i shows strip i at its
    right edge, so the pages laid fanned out side by side show the whole seal."""
    with Image.open(io.BytesIO(seal_png)) as image:
        rgba = image.convert("RGBA")
    width = rgba.width
    strips = []
    for i in range(pages):
        left = round(i * width / pages)
        right = max(round((i + 1) * width / pages), left + 1)
        strips.append(_png(rgba.crop((left, 0, right, rgba.height))))
    return strips
