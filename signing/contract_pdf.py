"""The transaction contract (合同书) as a PDF, ready for both parties' seals and signatures.

A pure renderer like signing/report_pdf.py: display-ready content in, the PDF and the empty
boxes where each party's seal and its representative's signature go out (PDF points, origin
bottom-left, what `signing.pades.Stamp` takes). Same font, same glyph check: a character
the font lacks is an error naming it, never a blank in a signed contract.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from signing.report_pdf import (
    ReportRenderError,
    check_glyphs,
    creation_date,
    font_cmap,
    resolve_font,
    wrap_text,
)

_FAMILY = "cjk"
_PT_PER_MM = 72 / 25.4
_MARGIN = 20.0
_INK = (20, 20, 24)
_GREY = (110, 110, 118)
_FRAME = (170, 170, 178)
# Each party's column on the signature page: the seal box over the signature box (mm).
_SEAL_W, _SEAL_H = 78.0, 42.0
_SIGN_W, _SIGN_H = 78.0, 24.0
_BLOCK_H = 8 + _SEAL_H + 10 + _SIGN_H + 14

_LABELS = (
    "合同编号 甲方 乙方 统一社会信用代码 法定代表人 （盖章） 授权代表（签字） 第 页 / 共 页 "
    "0123456789：-"
)


class ContractRenderError(ReportRenderError):
    """The contract cannot be rendered (no CJK font, a character the font lacks)."""


@dataclass(frozen=True)
class ContractParty:
    label: str  # 甲方（招标人） / 乙方（中标人）
    name: str
    credit_code: str
    legal_representative: str


@dataclass(frozen=True)
class ContractContent:
    title: str
    number: str
    parties: Sequence[ContractParty]
    clauses: Sequence[str]  # the template with its placeholders filled, one per paragraph
    generated_at: str


@dataclass(frozen=True)
class PartyBoxes:
    """Where a party's seal and its representative's signature go: page 0-based, boxes
    (x1, y1, x2, y2) in PDF points, origin bottom-left. Nothing is drawn inside them."""

    page: int
    seal: tuple[float, float, float, float]
    signature: tuple[float, float, float, float]


@dataclass(frozen=True)
class RenderedContract:
    pdf: bytes
    page_count: int
    boxes: Sequence[PartyBoxes]


class _ContractPdf(FPDF):
    number = ""

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(_FAMILY, size=8.5)
        self.set_text_color(*_GREY)
        half = self.epw / 2
        self.cell(half, 5, f"合同编号：{self.number}", align=Align.L)
        self.cell(half, 5, f"第 {self.page_no()} 页 / 共 {{nb}} 页", align=Align.R)


def _box_points(pdf: FPDF, x: float, y_top: float, w: float, h: float) -> tuple[float, ...]:
    """An fpdf2 box (mm, origin top-left) as PDF points with the origin bottom-left."""
    page_h = pdf.h
    return (
        round(x * _PT_PER_MM, 2),
        round((page_h - y_top - h) * _PT_PER_MM, 2),
        round((x + w) * _PT_PER_MM, 2),
        round((page_h - y_top) * _PT_PER_MM, 2),
    )


def _frame(pdf: FPDF, x: float, y: float, w: float, h: float) -> None:
    """A dashed frame just outside the box, so a reader sees where the mark goes."""
    pdf.set_draw_color(*_FRAME)
    pdf.set_line_width(0.2)
    with pdf.local_context():
        pdf.set_dash_pattern(dash=1.2, gap=1.0)
        pdf.rect(x - 1, y - 1, w + 2, h + 2)


def _text(pdf: FPDF, text: str, line_h: float) -> None:
    """Paragraph text broken the Chinese way (between any two characters, never before a
    closing mark), which fpdf2's word wrapping does not do."""
    for line in wrap_text(pdf.get_string_width, text, pdf.epw - 0.2):
        pdf.cell(0, line_h, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_contract(
    content: ContractContent, font_path: str | None = None, font_index: int | None = None
) -> RenderedContract:
    path, index = resolve_font(font_path, font_index)
    codes = font_cmap(path, index)
    try:
        check_glyphs(content, codes, f"{os.path.basename(path)} (face {index})", _LABELS)
    except ReportRenderError as exc:
        raise ContractRenderError(str(exc).replace("report font", "contract font")) from exc
    pdf = _ContractPdf(orientation="P", unit="mm", format="A4")
    pdf.number = content.number
    pdf.add_font(_FAMILY, fname=path, collection_font_number=index)
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, margin=22)
    pdf.set_title(content.title)
    pdf.set_creator("EvalSign")
    pdf.set_creation_date(creation_date(content.generated_at))
    pdf.add_page()
    pdf.set_text_color(*_INK)
    pdf.set_font(_FAMILY, size=18)
    pdf.cell(0, 12, content.title, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=9.5)
    pdf.set_text_color(*_GREY)
    pdf.cell(
        0, 6, f"合同编号：{content.number}", align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.ln(3)
    pdf.set_text_color(*_INK)
    pdf.set_font(_FAMILY, size=11)
    for party in content.parties:
        _text(
            pdf,
            f"{party.label}：{party.name}\n统一社会信用代码：{party.credit_code}\n"
            f"法定代表人：{party.legal_representative}",
            6.5,
        )
        pdf.ln(2)
    pdf.ln(2)
    for clause in content.clauses:
        _text(pdf, clause, 6.8)
        pdf.ln(1.5)
    # The signature block stays whole: on a new page if it does not fit.
    if pdf.get_y() + _BLOCK_H > pdf.h - 22:
        pdf.add_page()
    pdf.ln(6)
    top = pdf.get_y()
    column_w = pdf.epw / max(len(content.parties), 1)
    boxes = []
    for number, party in enumerate(content.parties):
        x = pdf.l_margin + number * column_w
        pdf.set_xy(x, top)
        pdf.set_font(_FAMILY, size=11)
        pdf.cell(column_w, 6, f"{party.label}（盖章）：", new_x=XPos.LEFT, new_y=YPos.NEXT)
        seal_y = top + 8
        _frame(pdf, x, seal_y, _SEAL_W, _SEAL_H)
        pdf.set_xy(x, seal_y + _SEAL_H + 3)
        pdf.cell(column_w, 6, "授权代表（签字）：", new_x=XPos.LEFT, new_y=YPos.NEXT)
        sign_y = seal_y + _SEAL_H + 10
        _frame(pdf, x, sign_y, _SIGN_W, _SIGN_H)
        boxes.append(
            PartyBoxes(
                page=pdf.page_no() - 1,
                seal=_box_points(pdf, x, seal_y, _SEAL_W, _SEAL_H),  # type: ignore[arg-type]
                signature=_box_points(pdf, x, sign_y, _SIGN_W, _SIGN_H),  # type: ignore[arg-type]
            )
        )
    data = bytes(pdf.output())
    return RenderedContract(pdf=data, page_count=pdf.page_no(), boxes=boxes)


__all__ = [
    "ContractContent",
    "ContractParty",
    "ContractRenderError",
    "PartyBoxes",
    "RenderedContract",
    "render_contract",
]
