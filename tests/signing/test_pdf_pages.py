"""Page images of a PDF: the asked width, the page's own rotation, bounded sizes, clear
errors, and the same pixels from many threads at once."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from PIL import Image

from signing.pdf_pages import (
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_WIDTH,
    PageOutOfRange,
    PdfUnreadable,
    count_pages,
    render_page,
)

# Height over width; pdfium sizes a bitmap ceil(points x scale), so heights are +-1.
A4 = 297 / 210
RED = (255, 0, 0)
WHITE = (255, 255, 255)


def _pdf(*, encrypt: bool = False) -> bytes:
    """Page 1: A4 portrait, a red square 20 mm from the top-left corner, 50 mm wide.
    Page 2: A4 landscape, a black bar across. Page 3: blank."""
    pdf = FPDF(unit="mm", format="A4")
    pdf.add_page()
    pdf.set_fill_color(*RED)
    pdf.rect(20, 20, 50, 50, style="F")
    pdf.add_page(orientation="L")
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(10, 90, 277, 30, style="F")
    pdf.add_page()
    if encrypt:
        pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    return bytes(pdf.output())


def _image(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.mode == "P"  # a palette: documents need few colours, phones few bytes
    return image.convert("RGB")


def _rotated(pdf: bytes, degrees: int) -> bytes:
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        page.set_rotation(degrees)
        page.close()
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
    finally:
        document.close()


def test_a_page_is_drawn_at_the_asked_width() -> None:
    pdf = _pdf()
    rendered = render_page(pdf, 1, 420)
    image = _image(rendered.png)
    assert image.size == (rendered.width, rendered.height)
    assert rendered.width == 420 and abs(rendered.height - 420 * A4) <= 1
    assert rendered.page_count == 3 == count_pages(pdf)
    per_mm = 420 / 210
    assert image.getpixel((int(45 * per_mm), int(45 * per_mm))) == RED  # the square's middle
    assert image.getpixel((int(10 * per_mm), int(10 * per_mm))) == WHITE  # above-left of it
    assert image.getpixel((int(100 * per_mm), int(45 * per_mm))) == WHITE  # right of it


@pytest.mark.parametrize("width", [MIN_WIDTH, 333, 801, 1111, MAX_WIDTH])
def test_the_width_is_exact_for_any_width_in_bounds(width: int) -> None:
    assert _image(render_page(_pdf(), 1, width).png).size[0] == width


def test_a_landscape_page_is_wider_than_tall() -> None:
    image = _image(render_page(_pdf(), 2, 600).png)
    assert image.size[0] == 600 and abs(image.size[1] - 600 / A4) <= 1
    assert image.getpixel((300, image.size[1] // 2)) == (0, 0, 0)


def test_a_blank_page_is_white() -> None:
    image = _image(render_page(_pdf(), 3, MIN_WIDTH).png)
    assert image.getextrema() == ((255, 255), (255, 255), (255, 255))


def test_the_pages_own_rotation_is_applied() -> None:
    # /Rotate 90 (clockwise): the portrait page shows as landscape, the square top-right.
    image = _image(render_page(_rotated(_pdf(), 90), 1, 600).png)
    width, height = image.size
    assert width == 600 and abs(height - 600 / A4) <= 1
    per_mm = 600 / 297
    assert image.getpixel((width - 1 - int(45 * per_mm), int(45 * per_mm))) == RED
    assert image.getpixel((int(45 * per_mm), int(45 * per_mm))) == WHITE
    # /Rotate 180: portrait again, the square bottom-right.
    image = _image(render_page(_rotated(_pdf(), 180), 1, 600).png)
    width, height = image.size
    per_mm = 600 / 210
    assert image.getpixel((width - 1 - int(45 * per_mm), height - 1 - int(45 * per_mm))) == RED
    assert image.getpixel((int(45 * per_mm), int(45 * per_mm))) == WHITE


def test_a_very_tall_page_is_scaled_to_the_height_bound() -> None:
    pdf = FPDF(unit="pt", format=(200, 14000))
    pdf.add_page()
    rendered = render_page(bytes(pdf.output()), 1, MAX_WIDTH)
    assert rendered.height <= MAX_HEIGHT and rendered.width < MAX_WIDTH
    assert _image(rendered.png).size == (rendered.width, rendered.height)


@pytest.mark.parametrize("width", [0, MIN_WIDTH - 1, MAX_WIDTH + 1, 100_000])
def test_a_width_out_of_bounds_is_refused(width: int) -> None:
    with pytest.raises(ValueError, match="width"):
        render_page(_pdf(), 1, width)


@pytest.mark.parametrize("page", [0, -1, 4, 999])
def test_a_page_the_document_lacks_is_refused(page: int) -> None:
    with pytest.raises(PageOutOfRange) as raised:
        render_page(_pdf(), page, 400)
    assert raised.value.page == page and raised.value.page_count == 3


@pytest.mark.parametrize(
    "data",
    [b"", b"not a pdf at all", b"%PDF-1.7\n%%EOF\n", _pdf(encrypt=True)],
    ids=["empty", "text", "no-objects", "encrypted"],
)
def test_what_pdfium_cannot_open_is_unreadable(data: bytes) -> None:
    with pytest.raises(PdfUnreadable):
        count_pages(data)
    with pytest.raises(PdfUnreadable):
        render_page(data, 1, 400)


def test_many_threads_get_the_same_pixels() -> None:
    pdf = _pdf()
    jobs = [(page, width) for page in (1, 2, 3) for width in (320, 640, 1000)] * 4
    alone = {job: render_page(pdf, *job).png for job in set(jobs)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda job: render_page(pdf, *job).png, jobs))
    assert together == [alone[job] for job in jobs]
