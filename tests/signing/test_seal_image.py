"""Seal pictures: the generated round seal, checks on uploads, and cross-page strips."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from signing import seal_image


def _rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(int)


def test_the_round_seal_is_red_on_transparent_with_a_ring_and_a_star() -> None:
    pixels = _rgba(seal_image.round_seal("北京市测试建设工程有限公司", "合同专用章"))
    side = pixels.shape[0]
    alpha = pixels[..., 3]
    ring = [alpha[side // 2, x] for x in range(side // 10)]
    assert alpha[0, 0] == 0 and max(ring) > 200  # corner clear, the ring near the edge
    centre = pixels[side // 2 - 5 : side // 2 + 5, side // 2 - 5 : side // 2 + 5]
    assert (centre[..., 3] > 200).all() and (centre[..., 0] > 180).all()  # the star
    painted = pixels[alpha > 128]
    assert (painted[:, 0] > 150).all() and (painted[:, 1] < 90).all()  # red, nothing else


def test_a_longer_name_still_fits_inside_the_ring() -> None:
    pixels = _rgba(
        seal_image.round_seal("某某省某某市某某区人民政府办公室采购中心附属单位", "公章")
    )
    side = pixels.shape[0]
    ys, xs = np.nonzero(pixels[..., 3] > 128)
    radius = np.hypot(xs - side / 2, ys - side / 2)
    assert radius.max() <= side / 2  # nothing outside the ring


def test_an_uploaded_seal_is_re_encoded_without_its_metadata() -> None:
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (50, 50, 150, 150))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=_with_text("Author", "someone@example.com"))
    kept = seal_image.check_uploaded(out.getvalue())
    assert b"someone@example.com" in out.getvalue() and b"someone@example.com" not in kept
    assert (_rgba(kept) == np.asarray(image).astype(int)).all()


def _with_text(key: str, value: str):  # type: ignore[no-untyped-def]
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


def test_a_decompression_bomb_is_refused() -> None:
    big = Image.new("RGBA", (4000, 4000), (0, 0, 0, 0))
    out = io.BytesIO()
    big.save(out, format="PNG", optimize=True)
    with pytest.raises(seal_image.SealImageRejected):
        seal_image.check_uploaded(out.getvalue())


@pytest.mark.parametrize("pages", [1, 2, 7])
def test_the_strips_put_together_are_the_seal(pages: int) -> None:
    seal = seal_image.round_seal("测试单位", "合同专用章", side=210)
    strips = [_rgba(png) for png in seal_image.cross_page_strips(seal, pages)]
    assert len(strips) == pages
    assert (np.concatenate(strips, axis=1) == _rgba(seal)).all()
