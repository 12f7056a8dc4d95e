"""Page images of a PDF (PNG, drawn by pdfium through pypdfium2), for phones that show a
document as pictures rather than trusting their own PDF viewer.

pdfium is not thread-safe: every call into it, closing included, runs under one module
lock, and every object is closed explicitly so that no garbage-collector finalizer calls
pdfium from another thread. PNG encoding runs outside the lock.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image

__all__ = [
    "MAX_HEIGHT",
    "MAX_WIDTH",
    "MIN_WIDTH",
    "PageImage",
    "PageOutOfRange",
    "PdfUnreadable",
    "count_pages",
    "render_page",
]

MIN_WIDTH = 320
MAX_WIDTH = 1600
# A page far taller than wide is scaled to this height instead of to the asked width, so
# no page size makes a bitmap larger than MAX_WIDTH x MAX_HEIGHT.
MAX_HEIGHT = 3 * MAX_WIDTH

_PDFIUM = threading.Lock()


class PdfUnreadable(Exception):
    """pdfium cannot open the bytes as a PDF (not a PDF, damaged, encrypted) or draw them."""


class PageOutOfRange(Exception):
    """The document has no page with that number."""

    def __init__(self, page: int, page_count: int) -> None:
        super().__init__(f"page {page} does not exist (pages 1 to {page_count})")
        self.page = page
        self.page_count = page_count


@dataclass(frozen=True)
class PageImage:
    png: bytes
    width: int
    height: int
    page_count: int


def _open(pdf: bytes, *, forms: bool = False) -> pdfium.PdfDocument:
    """Callers hold _PDFIUM. With `forms`, a form environment draws the widgets, among them
    the visible signature stamps (pdfium leaves widgets out of the page otherwise). It has
    no JavaScript platform and no XFA, whatever the pdfium build supports."""
    try:
        document = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise PdfUnreadable(str(exc)) from exc
    if forms:
        try:
            document.init_forms(pdfium.raw.FPDF_FORMFILLINFO(version=2, xfa_disabled=True))
        except pdfium.PdfiumError as exc:
            document.close()
            raise PdfUnreadable(str(exc)) from exc
    return document


def count_pages(pdf: bytes) -> int:
    """The number of pages of `pdf`; PdfUnreadable when pdfium cannot open it."""
    with _PDFIUM:
        document = _open(pdf)
        try:
            return len(document)
        finally:
            document.close()


def _scale(page_width: float, page_height: float, width: int) -> float:
    """Points to pixels: `width` pixels across (at most MAX_HEIGHT down). pypdfium2 sizes
    the bitmap as ceil(points * scale), so the scale is nudged down until that is exact."""
    scale = min(width / page_width, MAX_HEIGHT / page_height)
    while math.ceil(page_width * scale) > width or math.ceil(page_height * scale) > MAX_HEIGHT:
        scale = math.nextafter(scale, 0.0)
    return scale


PALETTE_COLOURS = 64


def render_page(pdf: bytes, page: int, width: int) -> PageImage:
    """Page `page` (1-based) of `pdf` as an RGB PNG `width` pixels wide (MIN_WIDTH to
    MAX_WIDTH), annotations such as visible signature stamps included.

    Raises PdfUnreadable when pdfium cannot open or draw the PDF, PageOutOfRange for a page
    number the document does not have, ValueError for a width out of bounds.
    """
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"width must be {MIN_WIDTH} to {MAX_WIDTH} pixels, not {width}")
    with _PDFIUM:
        document = _open(pdf, forms=True)
        try:
            page_count = len(document)
            if not 1 <= page <= page_count:
                raise PageOutOfRange(page, page_count)
            pixels, size, stride, mode = _draw(document, page - 1, width)
        finally:
            document.close()
    image = Image.frombytes("RGB", size, pixels, "raw", mode, stride)
    # A report page is black text, grey rules and red stamps: a 64-colour palette keeps
    # every one of them and makes the PNG a quarter of the size, for phones on slow links.
    palette = image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return PageImage(out.getvalue(), size[0], size[1], page_count)


def _draw(
    document: pdfium.PdfDocument, index: int, width: int
) -> tuple[bytes, tuple[int, int], int, str]:
    """The page's pixels, copied out of pdfium's bitmap: (bytes, (w, h), stride, raw mode).
    Callers hold _PDFIUM."""
    try:
        page = document[index]
    except pdfium.PdfiumError as exc:
        raise PdfUnreadable(f"page {index + 1}: {exc}") from exc
    try:
        page_width, page_height = page.get_size()  # in points, after the page's /Rotate
        if page_width <= 0 or page_height <= 0:
            raise PdfUnreadable(f"page {index + 1} has no area")
        bitmap = page.render(
            scale=_scale(page_width, page_height, width),
            may_draw_forms=True,
            draw_annots=True,
            rev_byteorder=True,
        )
        try:
            return bytes(bitmap.buffer), (bitmap.width, bitmap.height), bitmap.stride, bitmap.mode
        finally:
            bitmap.close()
    finally:
        page.close()
