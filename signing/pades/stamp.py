"""The visible stamp: its text drawn with a Type 3 font of cached CJK glyph outlines (a
system CJK font, Noto Sans CJK SC by default), over an optional seal image; and the
strips of a cross-page seal."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp.base import BaseStamp, BaseStampStyle

FONT_ENV = "EVALSIGN_STAMP_FONT"
FONT_INDEX_ENV = "EVALSIGN_STAMP_FONT_INDEX"
# Where distributions put a CJK font; the first that exists is used. A .ttc holds several
# faces: without an explicit index, the Simplified Chinese face is picked by its name.
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


class StampError(Exception):
    """The visible stamp cannot be drawn: no CJK font, a character the font lacks, or a
    box too small for the text."""


@dataclass(frozen=True)
class Stamp:
    """The visible appearance of a signature: `lines` of text in `box` (x1, y1, x2, y2 in
    PDF points) on page `page` (0-based), over an optional seal image."""

    page: int
    box: tuple[float, float, float, float]
    lines: Sequence[str]
    seal_png: bytes | None = None


@dataclass(frozen=True)
class PageMark:
    """An image on a page that is a signature of its own, so no reader finds an empty field
    offered for signing: a strip of a cross-page seal (骑缝章), signed with the seal's
    credential (`sign_page_marks`). The image fills the box; the widget is printable."""

    page: int
    box: tuple[float, float, float, float]
    png: bytes
    name: str  # the field's name, unique in the document
    label: str  # what a viewer shows for it


# --- the stamp: a Type 3 font of cached CJK glyph outlines ---------------------------------


# pyHanko's PDF object constructors carry no annotations; these give them types.
def _int(value: int) -> generic.NumberObject:
    return generic.NumberObject(value)  # type: ignore[no-untyped-call]


def _float(value: float) -> generic.FloatObject:
    return generic.FloatObject(value)  # type: ignore[no-untyped-call]


def _dict(entries: dict[str, Any] | None = None) -> generic.DictionaryObject:
    return generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {pdf_name(key): value for key, value in (entries or {}).items()}
    )


class _PathPen:
    """A fontTools pen (hence the camelCase methods) that writes PDF path operators, in
    font units with y up."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._current: tuple[float, float] = (0.0, 0.0)

    def moveTo(self, point: tuple[float, float]) -> None:
        self.parts.append(f"{_n(point[0])} {_n(point[1])} m")
        self._current = point

    def lineTo(self, point: tuple[float, float]) -> None:
        self.parts.append(f"{_n(point[0])} {_n(point[1])} l")
        self._current = point

    def curveTo(self, *points: tuple[float, float]) -> None:
        # CFF outlines give exactly two control points; anything else is split by
        # fontTools' decomposition helpers before reaching a path.
        from fontTools.pens.basePen import decomposeSuperBezierSegment

        segments = [points] if len(points) == 3 else decomposeSuperBezierSegment(list(points))
        for c1, c2, end in segments:
            self.parts.append(
                f"{_n(c1[0])} {_n(c1[1])} {_n(c2[0])} {_n(c2[1])} {_n(end[0])} {_n(end[1])} c"
            )
            self._current = end

    def qCurveTo(self, *points: tuple[float, float] | None) -> None:
        # TrueType quadratics: raise each to a cubic (exact).
        from fontTools.pens.basePen import decomposeQuadraticSegment

        if points[-1] is None:  # a closed contour of off-curve points only
            raise StampError("TrueType contours without on-curve points are not supported")
        on_points = cast(list[tuple[float, float]], list(points))
        for control, end in decomposeQuadraticSegment(on_points):
            x0, y0 = self._current
            c1 = (x0 + 2 / 3 * (control[0] - x0), y0 + 2 / 3 * (control[1] - y0))
            c2 = (end[0] + 2 / 3 * (control[0] - end[0]), end[1] + 2 / 3 * (control[1] - end[1]))
            self.curveTo(c1, c2, end)

    def closePath(self) -> None:
        self.parts.append("h")

    def endPath(self) -> None:
        pass

    def addComponent(self, glyph_name: str, transformation: Any) -> None:
        raise StampError("composite glyphs reach the pen only through a decomposing pen")


def _n(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class _Glyph:
    advance: int
    path: bytes


class _OutlineFont:
    """A CJK font parsed once per process; glyph outlines are cached as PDF paths."""

    def __init__(self, path: str, index: int) -> None:
        from fontTools.ttLib import TTFont

        self.path, self.index = path, index
        self._font = TTFont(path, fontNumber=index, lazy=True)
        head = self._font["head"]
        self.units_per_em = int(head.unitsPerEm)
        self.bbox = (int(head.xMin), int(head.yMin), int(head.xMax), int(head.yMax))
        os2 = self._font.get("OS/2")
        ascender = os2.sTypoAscender if os2 is not None else self._font["hhea"].ascent
        self.ascender = int(ascender)
        self.name = str(self._font["name"].getDebugName(4) or Path(path).stem)
        self._cmap: dict[int, str] = self._font.getBestCmap()
        self._glyph_set = self._font.getGlyphSet()
        self._metrics = self._font["hmtx"]
        self._cache: dict[str, _Glyph] = {}
        # fontTools loads tables lazily and is not thread-safe; the service signs from
        # several threads.
        self._lock = threading.Lock()

    def missing(self, text: str) -> list[str]:
        return sorted({c for c in text if ord(c) not in self._cmap})

    def glyph(self, char: str) -> _Glyph:
        with self._lock:
            name = self._cmap[ord(char)]
            cached = self._cache.get(name)
            if cached is None:
                from fontTools.pens.recordingPen import DecomposingRecordingPen

                # Decompose composites (TrueType accents) into plain contours.
                recording = DecomposingRecordingPen(self._glyph_set)
                self._glyph_set[name].draw(recording)
                pen = _PathPen()
                recording.replay(pen)
                cached = _Glyph(int(self._metrics[name][0]), " ".join(pen.parts).encode())
                self._cache[name] = cached
            return cached


_FONTS: dict[tuple[str, int], _OutlineFont] = {}
_FONTS_LOCK = threading.Lock()


def pick_face(path: str) -> int:
    """The Simplified Chinese face of a collection (its name says SC), else the first."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    from fontTools.ttLib import TTCollection

    collection = TTCollection(path, lazy=True)
    try:
        for index, font in enumerate(collection.fonts):
            family = str(font["name"].getDebugName(1) or "")
            if family.endswith((" SC", " CN")) or "GB" in family:
                return index
        return 0
    finally:
        collection.close()


def cjk_font_location() -> tuple[str, int]:
    """The CJK font to draw with: (path, face index). EVALSIGN_STAMP_FONT (and
    EVALSIGN_STAMP_FONT_INDEX) if set, else the first distribution font found; in a .ttc the
    Simplified Chinese face. StampError if there is none. Also used by the report renderer."""
    configured = os.environ.get(FONT_ENV)
    if configured:
        if not Path(configured).is_file():
            raise StampError(f"{FONT_ENV}={configured} is not a file")
        index = os.environ.get(FONT_INDEX_ENV)
        return configured, int(index) if index else pick_face(configured)
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate, pick_face(candidate)
    raise StampError(
        "no CJK font for the visible stamp: install fonts-noto-cjk (Debian) or set "
        f"{FONT_ENV} to a .ttc/.otf/.ttf file with Chinese glyphs; invisible signatures "
        "need no font"
    )


def stamp_font() -> _OutlineFont:
    """The stamp font, loaded on first use (about 0.3 s for Noto Sans CJK) and kept."""
    try:
        import fontTools  # noqa: F401
    except ImportError as exc:
        raise StampError("visible stamps need fontTools (pip install fonttools)") from exc
    location = cjk_font_location()
    with _FONTS_LOCK:
        font = _FONTS.get(location)
        if font is None:
            font = _FONTS[location] = _OutlineFont(*location)
        return font


def preload_stamp_font() -> str:
    """Load the stamp font now (at service start) rather than in the first signature;
    returns the font's name. StampError if there is none."""
    return stamp_font().name


def _to_unicode_cmap(codes: dict[str, int]) -> bytes:
    entries = []
    for char, code in codes.items():
        utf16 = char.encode("utf-16-be").hex().upper()
        entries.append(f"<{code:02X}> <{utf16}>")
    blocks = []
    for i in range(0, len(entries), 100):  # at most 100 entries per block (PDF spec)
        chunk = entries[i : i + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /EvalSign-Stamp-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _stream(writer: BasePdfFileWriter, data: bytes, entries: dict[str, Any] | None = None) -> Any:
    stream = generic.StreamObject(_dict(entries), stream_data=data)
    stream.compress()  # type: ignore[no-untyped-call]
    return writer.add_object(stream)


def _type3_font(writer: BasePdfFileWriter, font: _OutlineFont, codes: dict[str, int]) -> Any:
    """A Type 3 font whose glyph procedures are the outlines of the used characters, one
    byte per character code (a stamp uses far fewer than 255 distinct characters)."""
    x_min, y_min, x_max, y_max = font.bbox
    procs = _dict()
    differences: list[generic.PdfObject] = [_int(1)]
    widths: list[generic.PdfObject] = []
    for char, code in codes.items():
        glyph = font.glyph(char)
        name = pdf_name(f"/c{code:02x}")
        # d1: a shape glyph that takes the text colour; fill with the non-zero rule, as
        # font outlines are drawn.
        proc = b"%d 0 %d %d %d %d d1 %s f" % (glyph.advance, x_min, y_min, x_max, y_max, glyph.path)
        procs[name] = _stream(writer, proc)
        differences.append(name)
        widths.append(_int(glyph.advance))
    scale, zero = _float(1 / font.units_per_em), _int(0)
    encoding = _dict(
        {"/Type": pdf_name("/Encoding"), "/Differences": generic.ArrayObject(differences)}
    )
    return writer.add_object(
        _dict(
            {
                "/Type": pdf_name("/Font"),
                "/Subtype": pdf_name("/Type3"),
                "/Name": pdf_name("/EvalSignStamp"),
                "/FontBBox": generic.ArrayObject([_int(v) for v in font.bbox]),
                "/FontMatrix": generic.ArrayObject([scale, zero, zero, scale, zero, zero]),
                "/CharProcs": procs,
                "/Encoding": encoding,
                "/FirstChar": _int(1),
                "/LastChar": _int(len(codes)),
                "/Widths": generic.ArrayObject(widths),
                "/Resources": _dict(),
                "/ToUnicode": _stream(writer, _to_unicode_cmap(codes)),
            }
        )
    )


_SEALS: dict[bytes, tuple[int, int, bytes, bytes]] = {}
_SEALS_LOCK = threading.Lock()
SEAL_MAX_PIXELS = 400  # a seal is a few centimetres wide; more pixels only add bytes


def _seal_pixels(png: bytes) -> tuple[int, int, bytes, bytes]:
    """(width, height, Flate RGB, Flate alpha) of a seal image, cached by content."""
    key = hashlib.sha256(png).digest()
    with _SEALS_LOCK:
        cached = _SEALS.get(key)
    if cached is not None:
        return cached
    from PIL import Image, UnidentifiedImageError

    try:
        source = Image.open(io.BytesIO(png))
        source.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise StampError("the seal is not a readable image") from exc
    image = source.convert("RGBA")
    image.thumbnail((SEAL_MAX_PIXELS, SEAL_MAX_PIXELS))
    rgb = zlib.compress(image.convert("RGB").tobytes(), 6)
    alpha = zlib.compress(image.getchannel("A").tobytes(), 6)
    result = (image.width, image.height, rgb, alpha)
    with _SEALS_LOCK:
        if len(_SEALS) > 32:
            _SEALS.clear()
        _SEALS[key] = result
    return result


def _seal_image(writer: BasePdfFileWriter, png: bytes) -> tuple[Any, float]:
    width, height, rgb, alpha = _seal_pixels(png)

    def image(data: bytes, colour_space: str, extra: dict[str, Any]) -> Any:
        entries = _dict(
            {
                "/Type": pdf_name("/XObject"),
                "/Subtype": pdf_name("/Image"),
                "/Width": _int(width),
                "/Height": _int(height),
                "/ColorSpace": pdf_name(colour_space),
                "/BitsPerComponent": _int(8),
                "/Filter": pdf_name("/FlateDecode"),
                **extra,
            }
        )
        return writer.add_object(generic.StreamObject(entries, encoded_data=data))

    mask = image(alpha, "/DeviceGray", {})
    return image(rgb, "/DeviceRGB", {"/SMask": mask}), width / height


LINE_SPACING = 1.3  # baseline to baseline, in ems
MAX_FONT_SIZE = 12.0
MIN_FONT_SIZE = 4.0
READABLE_FONT_SIZE = 7.0
TEXT_COLOUR = b"0.1 0.1 0.12 rg"
BORDER_COLOUR = (0.72, 0.11, 0.11)  # seal red


@dataclass(frozen=True)
class CjkStampStyle(BaseStampStyle):
    stamp: Stamp | None = None
    font: _OutlineFont | None = None
    border_width: int = 1
    border_color: tuple[float, float, float] | None = BORDER_COLOUR

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, Any]
    ) -> _CjkStamp:
        return _CjkStamp(writer, self, box)


class _CjkStamp(BaseStamp):
    def __init__(
        self, writer: BasePdfFileWriter, style: CjkStampStyle, box: layout.BoxConstraints
    ) -> None:
        super().__init__(writer=writer, style=style, box=box)
        assert style.stamp is not None and style.font is not None
        self.stamp, self.font = style.stamp, style.font

    def _render_inner_content(self) -> list[bytes]:
        font, lines = self.font, list(self.stamp.lines)
        width, height = float(self.box.width), float(self.box.height)
        text = "".join(lines)
        missing = font.missing(text)
        if missing:
            raise StampError(f"the stamp font {font.name} has no glyph for {''.join(missing)!r}")
        codes: dict[str, int] = {}
        for char in text:
            codes.setdefault(char, len(codes) + 1)
        if len(codes) > 255:
            raise StampError("the stamp text uses more than 255 distinct characters")

        commands: list[bytes] = []
        pad = max(2.0, min(width, height) * 0.06)
        usable_w, usable_h = width - 2 * pad, height - 2 * pad
        seal_w = 0.0
        if self.stamp.seal_png:
            image_ref, aspect = _seal_image(self._ensure_writer, self.stamp.seal_png)
            self.set_resource(ResourceType.XOBJECT, pdf_name("/Seal"), image_ref)
            seal_h = min(usable_h, (width * 0.5) / aspect)
            seal_w = seal_h * aspect
            x, y = width - pad - seal_w, (height - seal_h) / 2
            commands.append(b"q %s 0 0 %s %s %s cm /Seal Do Q" % _nums(seal_w, seal_h, x, y))
        if not lines:
            return commands

        em = font.units_per_em
        widest = max(sum(font.glyph(c).advance for c in line) for line in lines) or em
        by_height = min(MAX_FONT_SIZE, usable_h / (LINE_SPACING * (len(lines) - 1) + 1))
        size = min(by_height, usable_w * em / widest)
        if seal_w:
            # Beside the seal if the text stays readable there; otherwise over it, as a
            # seal stamped across the signature is the familiar look anyway.
            beside = min(by_height, (usable_w - seal_w - pad) * em / widest)
            if beside >= READABLE_FONT_SIZE:
                size = beside
        if size < MIN_FONT_SIZE:
            raise StampError(
                f"the stamp box ({width:.0f} x {height:.0f} pt) is too small for its text"
            )
        block = size * (LINE_SPACING * (len(lines) - 1) + 1)
        top = height - pad - (usable_h - block) / 2
        baseline = top - size * font.ascender / em
        font_ref = _type3_font(self._ensure_writer, font, codes)
        self.set_resource(ResourceType.FONT, pdf_name("/S1"), font_ref)
        commands.append(b"BT /S1 %s Tf %s" % (_nums(size)[0], TEXT_COLOUR))
        commands.append(b"%s %s Td" % _nums(pad, baseline))
        for index, line in enumerate(lines):
            if index:
                commands.append(b"0 %s Td" % _nums(-size * LINE_SPACING))
            commands.append(b"<%s> Tj" % "".join(f"{codes[c]:02X}" for c in line).encode())
        commands.append(b"ET")
        return commands


@dataclass(frozen=True)
class MarkStampStyle(BaseStampStyle):
    mark: PageMark | None = None

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, Any]
    ) -> _MarkStamp:
        return _MarkStamp(writer=writer, style=self, box=box)


class _MarkStamp(BaseStamp):
    """A page mark's appearance: its image stretched over the whole box, nothing else (the
    strips of a seal meet the page edge and each other)."""

    def _render_inner_content(self) -> list[bytes]:
        assert isinstance(self.style, MarkStampStyle) and self.style.mark is not None
        image_ref, _ = _seal_image(self._ensure_writer, self.style.mark.png)
        self.set_resource(ResourceType.XOBJECT, pdf_name("/Mark"), image_ref)
        width, height = float(self.box.width), float(self.box.height)
        return [b"q %s 0 0 %s 0 0 cm /Mark Do Q" % _nums(width, height)]


def _nums(*values: float) -> tuple[bytes, ...]:
    return tuple(_n(round(v, 3)).encode() for v in values)
