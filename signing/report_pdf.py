"""The bid-evaluation report (评标报告) as a PDF, ready for the committee's signatures.

A pure renderer: the caller hands over display-ready content (`ReportContent`), gets back
the PDF bytes and, for every committee member, the empty box on the signature page where
their visible signature stamp goes (`SignatureBox`, in PDF points with the origin at the
bottom-left, which is what `signing.pades.Stamp` takes). No database, no HTTP, no clock:
the same content always gives the same bytes.

The text is set in the CJK font the signature stamps use (`signing.pades.cjk_font_location`,
Noto Sans CJK SC by default). fpdf2 embeds one face of a .ttc (`collection_font_number`) as
a subset CFF CID font; the face matters, as the faces of Noto Sans CJK share their outlines
and differ in which outline each character maps to (SC, TC, JP and KR forms differ). Every
character is checked against that face's cmap before anything is drawn: a glyph the font
lacks is an error naming it, never a blank or a tofu box in a signed document.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align, TableCellFillMode, TextMode, VAlign, WrapMode, XPos, YPos
from fpdf.fonts import FontFace

# pick_face: an explicit .ttc without an index gets the same (Simplified Chinese) face as
# the default font does.
from signing.pades.stamp import StampError, cjk_font_location, pick_face

__all__ = [
    "BidderRow",
    "CriterionRow",
    "DissentRow",
    "MemberRow",
    "RenderedReport",
    "ReportContent",
    "ReportRenderError",
    "ResultRow",
    "ScoreSheetRow",
    "SignatureBox",
    "render_report",
]


class ReportRenderError(Exception):
    """The report cannot be rendered: no CJK font, a character the font lacks, or content
    that does not fit together (a score sheet whose shape is not bidders x criteria)."""


# --- content -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionRow:
    name: str
    max_points: float
    group: str  # price | technical | business


@dataclass(frozen=True)
class BidderRow:
    name: str
    credit_code: str


@dataclass(frozen=True)
class MemberRow:
    expert_id: str
    name: str
    specialty: str
    role: str  # display text: 评标委员会主任, 成员


@dataclass(frozen=True)
class ScoreSheetRow:
    expert_name: str
    # A voided sheet (member replaced after scoring) is still printed, marked 作废.
    void: bool
    void_reason: str | None
    points: Sequence[Sequence[float]]  # points[bidder_index][criterion_index]


@dataclass(frozen=True)
class ResultRow:
    rank: int
    bidder_name: str
    credit_code: str
    score: float
    recommended: bool


@dataclass(frozen=True)
class DissentRow:
    expert_name: str
    text: str


@dataclass(frozen=True)
class ReportContent:
    center_name: str
    project_code: str
    project_name: str
    tenderer_name: str
    regime: str  # display text: 招标投标, 政府采购
    evaluation_window: str  # display text
    mode: str  # display text: 远程评标
    aggregation: str  # display text: 算术平均, 去掉一个最高分和一个最低分后算术平均
    criteria: Sequence[CriterionRow]
    bidders: Sequence[BidderRow]
    members: Sequence[MemberRow]
    sheets: Sequence[ScoreSheetRow]
    results: Sequence[ResultRow]
    dissents: Sequence[DissentRow]
    generated_at: str


@dataclass(frozen=True)
class SignatureBox:
    """Where one member's signature stamp goes: page 0-based, box (x1, y1, x2, y2) in PDF
    points with the origin at the bottom-left of the page. Nothing is drawn inside it."""

    expert_id: str
    page: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    page_count: int
    signature_boxes: Sequence[SignatureBox]


# --- layout constants (mm, fpdf2's unit here) ----------------------------------------------

_FAMILY = "cjk"
_MM_PER_PT = 25.4 / 72
_MARGIN_X = 18.0
_MARGIN_TOP = 18.0
_MARGIN_BOTTOM = 22.0  # room for the footer
_BODY_PT = 10.5
_INK = (20, 20, 24)
_GREY_TEXT = (110, 110, 118)
_RULE = (150, 150, 158)
_HEAD_FILL = (232, 234, 238)
_LABEL_FILL = (245, 246, 248)
_VOID_RED = (190, 30, 30)

# Score sheets put criteria in columns; beyond this many a sheet is split into parts, so a
# column never gets too narrow for "100.00".
_CRITERIA_PER_TABLE = 8

# The signature boxes: 2 per row, each 78 x 30 mm (221 x 85 pt, above the 160 x 60 pt a
# stamp needs), the member's name under it. The dashed frame sits outside the box.
_SIG_COLUMNS = 2
_SIG_BOX_W = 78.0
_SIG_BOX_H = 30.0
_SIG_FRAME_GAP = 1.2
_SIG_ROW_GAP = 7.0

_GROUPS = {"price": "价格", "technical": "技术", "business": "商务"}

# Every fixed string drawn below, so the font check covers them too (a font set through
# EVALSIGN_STAMP_FONT may be a small one).
_LABELS = " ".join(
    [
        "评标报告 一、项目基本信息 交易中心 项目编号 项目名称 招标人 采购人 交易类型 评标时间",
        "评标方式 汇总方法 报告生成时间 二、评标委员会组成 序号 姓名 专业 职务 三、评分标准",
        "评分项 类别 分值（分） 合计 价格 技术 商务 四、专家评分表 评标专家： 【作废】 作废原因：",
        "未说明 本评分表已作废，不计入汇总。 投标人 (续) （续） 分 五、评审结果与排名 排名",
        "统一社会信用代码 最终得分 推荐 推荐中标候选人：第名；无 六、不同意见",
        "七、评标委员会成员签字",
        "本报告经评标委员会全体成员审阅，各成员在本人姓名上方的签名框内以电子签名确认。",
        "第 页 / 共 页 0123456789.-:()",
    ]
)

_CST = timezone(timedelta(hours=8), "CST")


# --- font ----------------------------------------------------------------------------------

_CMAPS: dict[tuple[str, int, int, int], frozenset[int]] = {}
_CMAPS_LOCK = threading.Lock()


def resolve_font(font_path: str | None, font_index: int | None) -> tuple[str, int]:
    if font_path is None:
        try:
            path, index = cjk_font_location()
        except StampError as exc:
            raise ReportRenderError(str(exc)) from exc
        return path, index if font_index is None else font_index
    if not os.path.isfile(font_path):
        raise ReportRenderError(f"the report font {font_path} is not a file")
    if font_index is None:
        font_index = pick_face(font_path)
    return font_path, font_index


def font_cmap(path: str, index: int) -> frozenset[int]:
    """The code points the face maps, read with fontTools and kept per file version (it
    costs 0.1 s for Noto Sans CJK, and every render checks its text against it)."""
    stat = os.stat(path)
    key = (path, index, stat.st_mtime_ns, stat.st_size)
    with _CMAPS_LOCK:
        cached = _CMAPS.get(key)
    if cached is not None:
        return cached
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(path, fontNumber=index, lazy=True)
    except Exception as exc:  # fontTools raises bare TTLibError, struct.error, ...
        raise ReportRenderError(
            f"cannot read the report font {path} (face {index}): {exc}"
        ) from exc
    try:
        codes = frozenset(font.getBestCmap() or {})
    finally:
        font.close()
    with _CMAPS_LOCK:
        _CMAPS[key] = codes
    return codes


def _texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in the content, with where it is (for the error message)."""
    if isinstance(value, str):
        yield where, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _texts(getattr(value, item.name), f"{where}.{item.name}")
    elif isinstance(value, Sequence):
        for number, item in enumerate(value):
            yield from _texts(item, f"{where}[{number}]")


def check_glyphs(
    content: object, codes: frozenset[int], font_name: str, labels: str = _LABELS
) -> None:
    """Every character of the content (a dataclass tree) and of the fixed labels is in the
    font, or ReportRenderError naming each missing one and where it is."""
    missing: dict[str, str] = {}
    for where, text in [*_texts(content, "content"), ("labels", labels)]:
        for char in text:
            if char not in "\n\r\t" and ord(char) not in codes and char not in missing:
                missing[char] = where
    if missing:
        listed = ", ".join(
            f"U+{ord(char):04X} {char!r} (in {where})" for char, where in missing.items()
        )
        raise ReportRenderError(f"the report font {font_name} has no glyph for {listed}")


# --- text helpers --------------------------------------------------------------------------

# Chinese line breaking (kinsoku, 避头尾): these never start a line, those never end one.
_NO_LINE_START = frozenset("，。、；：？！）》」』】〕〉”’…%,.;:?!)]}")
_NO_LINE_END = frozenset("（《「『【〔〈“‘([{")
# An ASCII word (kept whole when it fits), a run of spaces, or any one other character:
# Chinese breaks between any two characters.
_TOKENS = re.compile(r"[!-~]+| +|.", re.DOTALL)


def wrap_text(measure: Callable[[str], float], text: str, width: float) -> list[str]:
    """Break text into lines no wider than width. fpdf2's CHAR mode breaks anywhere,
    leaving a "，" or "。" at the start of a line; WORD mode only breaks at spaces."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(measure, paragraph, width))
    return lines


def _wrap_paragraph(measure: Callable[[str], float], text: str, width: float) -> list[str]:
    pieces: list[str] = []
    for token in _TOKENS.findall(text):
        if not token.isspace() and len(token) > 1 and measure(token) > width:
            pieces.extend(token)  # a word wider than the line breaks anywhere
        else:
            pieces.append(token)
    lines: list[list[str]] = [[]]
    used = 0.0
    for piece in pieces:
        line = lines[-1]
        size = measure(piece)
        if piece.isspace():
            if line:  # no spaces at the start of a line
                line.append(piece)
                used += size
            continue
        if not line or used + size <= width:
            line.append(piece)
            used += size
            continue
        while line and line[-1].isspace():
            line.pop()
        carried: list[str] = []
        start = piece[0]
        while len(line) > 1 and (start in _NO_LINE_START or line[-1][-1] in _NO_LINE_END):
            carried.insert(0, line.pop())
            start = carried[0][0]
            while len(line) > 1 and line[-1].isspace():
                line.pop()
        lines.append([*carried, piece])
        used = sum(measure(p) for p in lines[-1])
    # No last line of a single character (孤字) when the line above can spare one.
    if len(lines) > 1 and len(lines[-1]) == 1 and len(lines[-1][0]) == 1 and len(lines[-2]) > 2:
        above = lines[-2]
        if (
            not above[-1].isspace()
            and above[-1][0] not in _NO_LINE_START
            and above[-2][-1] not in _NO_LINE_END
        ):
            lines[-1].insert(0, above.pop())
    return ["".join(line).rstrip() for line in lines]


def _line(text: str) -> str:
    """A one-line field: line breaks and tabs become spaces."""
    return re.sub(r"[\r\n\t]+", " ", text).strip()


def _paragraphs(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").strip()


def _points(value: float) -> str:
    """Maximum points as a tender document writes them: 30, 12.5."""
    if not math.isfinite(value):
        raise ReportRenderError(f"a maximum is not a number: {value!r}")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _score(value: float) -> str:
    if not math.isfinite(value):
        raise ReportRenderError(f"a score is not a number: {value!r}")
    return f"{value:.2f}"


def creation_date(generated_at: str) -> datetime:
    """The PDF's /CreationDate, from generated_at so that rendering is deterministic. A time
    without a zone is China Standard Time (these are Chinese trading centers); text that is
    not a time gives the Unix epoch, the usual "no date" of reproducible builds."""
    text = generated_at.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        for layout in ("%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日"):
            try:
                moment = datetime.strptime(text, layout)
                break
            except ValueError:
                continue
        else:
            return datetime(1970, 1, 1, tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=_CST)


# --- the document --------------------------------------------------------------------------

_Colour = tuple[int, int, int]


class _ReportPdf(FPDF):
    def __init__(self, project_code: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.project_code = project_code

    def footer(self) -> None:
        self.set_y(-15)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_y(-13)
        self.set_font(_FAMILY, size=8.5)
        self.set_text_color(*_GREY_TEXT)
        half = self.epw / 2
        self.cell(half, 5, f"项目编号：{self.project_code}", align=Align.L)
        # {nb} is fpdf2's alias for the page count, filled in at output.
        self.cell(half, 5, f"第 {self.page_no()} 页 / 共 {{nb}} 页", align=Align.R)


@dataclass(frozen=True)
class _Table:
    """A table laid out before it is drawn: cell text already broken into lines, and its
    height known, so that a heading can be kept with it."""

    widths: list[float]
    aligns: list[Align]
    heading: list[str] | None
    rows: list[list[str]]
    size: float
    line_h: float
    height: float
    first_rows_height: float  # the heading row and the first two rows


_PAD_X, _PAD_Y = 1.5, 1.2


class _Renderer:
    def __init__(self, content: ReportContent, font_path: str, font_index: int) -> None:
        self.c = content
        pdf = _ReportPdf(_line(content.project_code))
        try:
            pdf.add_font(_FAMILY, fname=font_path, collection_font_number=font_index)
        except TypeError as exc:
            # Face selection in a .ttc (and CID-keyed CFF outlines, as in Noto CJK) came
            # with fpdf2 2.8.6.
            raise ReportRenderError(f"the report needs fpdf2 >= 2.8.6: {exc}") from exc
        except (ValueError, OSError) as exc:  # e.g. a file name fpdf2 does not take
            raise ReportRenderError(f"fpdf2 cannot use the font {font_path}: {exc}") from exc
        pdf.set_margins(_MARGIN_X, _MARGIN_TOP, _MARGIN_X)
        pdf.set_auto_page_break(True, margin=_MARGIN_BOTTOM)
        pdf.set_title(f"评标报告 {_line(content.project_code)} {_line(content.project_name)}")
        pdf.set_subject(_line(content.project_name))
        pdf.set_author(_line(content.center_name))
        pdf.set_creator("EvalSign")
        pdf.set_lang("zh-CN")
        pdf.set_creation_date(creation_date(content.generated_at))
        pdf.set_font(_FAMILY, size=_BODY_PT)
        pdf.set_text_color(*_INK)
        self.pdf = pdf
        self.boxes: list[SignatureBox] = []
        self._widths: dict[tuple[str, float], float] = {}

    # -- building blocks --

    def measure(self, text: str) -> float:
        key = (text, self.pdf.font_size_pt)
        width = self._widths.get(key)
        if width is None:
            width = self._widths[key] = self.pdf.get_string_width(text)
        return width

    def wrap(self, text: str, width: float) -> str:
        # A little slack, so that fpdf2 never breaks a line again on rounding.
        return "\n".join(wrap_text(self.measure, text, width - 0.2))

    def text(
        self,
        text: str,
        size: float = _BODY_PT,
        colour: _Colour = _INK,
        *,
        align: Align = Align.L,
        indent: float = 0.0,
        bold: bool = False,
        leading: float = 1.55,
    ) -> None:
        """A paragraph across the page (breaking onto the next page if need be). The font
        has no bold face (the stamp font is a Regular .ttc): bold glyphs are filled and
        stroked with a thin outline in the same colour."""
        pdf = self.pdf
        pdf.set_font(_FAMILY, size=size)
        pdf.set_text_color(*colour)
        width = pdf.epw - indent
        with pdf.local_context(
            text_mode=TextMode.FILL_STROKE if bold else TextMode.FILL,
            line_width=size * 0.012,
            draw_color=colour,
        ):
            pdf.set_x(pdf.l_margin + indent)
            pdf.multi_cell(
                width,
                size * _MM_PER_PT * leading,
                self.wrap(text, width - 2 * pdf.c_margin),
                align=align,
                wrapmode=WrapMode.CHAR,
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        pdf.set_text_color(*_INK)
        pdf.set_font(_FAMILY, size=_BODY_PT)

    def section(self, title: str, keep_with: float = 30.0) -> None:
        """A numbered section heading, moved to the next page rather than left alone at
        the bottom of this one (keep_with: mm of what follows that must fit with it)."""
        self.ensure_space(12 + keep_with)
        self.pdf.ln(4)
        self.text(title, 13, bold=True, leading=1.3)
        self.pdf.ln(1.5)

    def ensure_space(self, height: float) -> None:
        pdf = self.pdf
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()

    def layout(
        self,
        widths: Sequence[float],
        heading: Sequence[str] | None,
        rows: Sequence[Sequence[str]],
        *,
        size: float = 9.5,
        align: Sequence[Align] | None = None,
    ) -> _Table:
        pdf = self.pdf
        pdf.set_font(_FAMILY, size=size)
        line_h = size * _MM_PER_PT * 1.4
        aligns = list(align) if align else [Align.C] * len(widths)
        wrapped: list[list[str]] = []
        heights: list[float] = []
        for values in [*([heading] if heading else []), *rows]:
            cells = [
                self.wrap(text, w - 2 * _PAD_X) for text, w in zip(values, widths, strict=True)
            ]
            wrapped.append(cells)
            heights.append(max(cell.count("\n") + 1 for cell in cells) * line_h + 2 * _PAD_Y)
        pdf.set_font(_FAMILY, size=_BODY_PT)
        first = 3 if heading else 2
        return _Table(
            list(widths),
            aligns,
            wrapped[0] if heading else None,
            wrapped[1:] if heading else wrapped,
            size,
            line_h,
            sum(heights),
            sum(heights[:first]),
        )

    def table(self, table: _Table, colour: _Colour = _INK, label_column: bool = False) -> None:
        """Draw a bordered table: rows never split; the heading row repeats on every page
        the table runs onto."""
        pdf = self.pdf
        pdf.set_font(_FAMILY, size=table.size)
        pdf.set_text_color(*colour)
        pdf.set_draw_color(*_RULE)
        pdf.set_line_width(0.2)
        try:
            with pdf.table(
                col_widths=tuple(table.widths),
                width=min(sum(table.widths), pdf.epw),
                align=Align.L,
                v_align=VAlign.M,
                line_height=table.line_h,
                padding=(_PAD_Y, _PAD_X),
                wrapmode=WrapMode.CHAR,
                first_row_as_headings=table.heading is not None,
                headings_style=FontFace(emphasis="", fill_color=_HEAD_FILL, color=colour),
                cell_fill_color=_LABEL_FILL,
                cell_fill_mode=(
                    TableCellFillMode.COLUMNS if label_column else TableCellFillMode.NONE
                ),
            ) as drawn:
                if table.heading is not None:
                    header = drawn.row()
                    for text in table.heading:
                        header.cell(text, align=Align.C)
                for values in table.rows:
                    row = drawn.row()
                    for text, align in zip(values, table.aligns, strict=True):
                        row.cell(text, align=align)
        except ValueError as exc:
            # fpdf2 refuses a row taller than a page rather than overflow it.
            raise ReportRenderError(f"a table row does not fit on a page: {exc}") from exc
        pdf.set_text_color(*_INK)
        pdf.set_font(_FAMILY, size=_BODY_PT)
        pdf.set_x(pdf.l_margin)

    def keep_together(self, extra: float, table: _Table) -> None:
        """Start a new page unless the whole table and `extra` mm (its heading, a line
        under it) fit on this one; a table longer than a page only needs its first rows."""
        pdf = self.pdf
        usable = pdf.page_break_trigger - pdf.t_margin
        if extra + table.height <= usable:
            self.ensure_space(extra + table.height)
        else:
            self.ensure_space(extra + table.first_rows_height)

    # -- sections --

    def title(self) -> None:
        pdf, c = self.pdf, self.c
        pdf.add_page()
        self.text(_line(c.center_name), 11, _GREY_TEXT, align=Align.C)
        pdf.ln(3)
        self.text("评标报告", 24, align=Align.C, bold=True, leading=1.3)
        pdf.ln(3)
        self.text(_line(c.project_name), 13, align=Align.C, leading=1.4)
        pdf.ln(3)
        pdf.set_draw_color(*_RULE)
        pdf.set_line_width(0.4)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)

    def project(self) -> None:
        c = self.c
        self.section("一、项目基本信息")
        # 政府采购 has a purchaser (采购人), a tender a tenderer (招标人).
        buyer = "采购人" if "采购" in c.regime else "招标人"
        rows = [
            ("交易中心", c.center_name),
            ("项目编号", c.project_code),
            ("项目名称", c.project_name),
            (buyer, c.tenderer_name),
            ("交易类型", c.regime),
            ("评标时间", c.evaluation_window),
            ("评标方式", c.mode),
            ("汇总方法", c.aggregation),
            ("报告生成时间", c.generated_at),
        ]
        epw = self.pdf.epw
        table = self.layout(
            [32, epw - 32],
            None,
            [(label, _line(value)) for label, value in rows],
            align=[Align.C, Align.L],
        )
        self.table(table, label_column=True)

    def committee(self) -> None:
        self.section("二、评标委员会组成")
        epw = self.pdf.epw
        rows = [
            (str(number), _line(m.name), _line(m.specialty), _line(m.role))
            for number, m in enumerate(self.c.members, 1)
        ]
        table = self.layout(
            [14, 40, epw - 14 - 40 - 46, 46],
            ["序号", "姓名", "专业", "职务"],
            rows,
            align=[Align.C, Align.C, Align.L, Align.C],
        )
        self.table(table)

    def criteria(self) -> None:
        self.section("三、评分标准")
        epw = self.pdf.epw
        rows: list[tuple[str, ...]] = []
        for number, criterion in enumerate(self.c.criteria, 1):
            group = _GROUPS.get(criterion.group)
            if group is None:
                raise ReportRenderError(
                    f"criterion {criterion.name!r} has an unknown group {criterion.group!r}"
                )
            rows.append((str(number), _line(criterion.name), group, _points(criterion.max_points)))
        total = math.fsum(criterion.max_points for criterion in self.c.criteria)
        rows.append(("", "合计", "", _points(total)))
        table = self.layout(
            [14, epw - 14 - 26 - 30, 26, 30],
            ["序号", "评分项", "类别", "分值（分）"],
            rows,
            align=[Align.C, Align.L, Align.C, Align.C],
        )
        self.table(table)

    def sheets(self) -> None:
        c = self.c
        for sheet in c.sheets:
            if len(sheet.points) != len(c.bidders) or any(
                len(row) != len(c.criteria) for row in sheet.points
            ):
                raise ReportRenderError(
                    f"the score sheet of {sheet.expert_name!r} is not "
                    f"{len(c.bidders)} bidders x {len(c.criteria)} criteria"
                )
        if not c.sheets:
            return
        # The section heading stays with the first sheet.
        first = c.sheets[0]
        self.keep_together(16 + (22 if first.void else 12), self.sheet_tables(first)[0])
        self.section("四、专家评分表", keep_with=0)
        for number, sheet in enumerate(c.sheets, 1):
            self.sheet(number, sheet)

    def sheet_tables(self, sheet: ScoreSheetRow) -> list[_Table]:
        """The sheet as tables of at most _CRITERIA_PER_TABLE criteria each; the total
        goes in the last one."""
        pdf, criteria = self.pdf, list(self.c.criteria)
        totals = [math.fsum(row) for row in sheet.points]
        parts = [
            list(range(start, min(start + _CRITERIA_PER_TABLE, len(criteria))))
            for start in range(0, max(len(criteria), 1), _CRITERIA_PER_TABLE)
        ]
        tables: list[_Table] = []
        for part_number, columns in enumerate(parts):
            last = part_number == len(parts) - 1
            heading = [
                f"{_line(criteria[i].name)}\n({_points(criteria[i].max_points)}分)" for i in columns
            ]
            rows = [
                [_line(bidder.name)]
                + [_score(sheet.points[b][i]) for i in columns]
                + ([_score(totals[b])] if last else [])
                for b, bidder in enumerate(self.c.bidders)
            ]
            if last:
                heading.append("合计")
            count = len(heading)
            # Score columns as wide as they need (up to 20 mm); the bidder's name gets the rest.
            score_w = min(20.0, (pdf.epw - 40) / count)
            tables.append(
                self.layout(
                    [pdf.epw - score_w * count] + [score_w] * count,
                    ["投标人", *heading],
                    rows,
                    size=9.0 if count <= 6 else 8.0,
                    align=[Align.L] + [Align.C] * count,
                )
            )
        return tables

    def sheet(self, number: int, sheet: ScoreSheetRow) -> None:
        pdf = self.pdf
        tables = self.sheet_tables(sheet)
        colour = _GREY_TEXT if sheet.void else _INK
        heading = f"{number}. 评标专家：{_line(sheet.expert_name)}"
        reason = _line(sheet.void_reason or "") or "未说明"
        reason = f"作废原因：{reason}。本评分表已作废，不计入汇总。"
        self.keep_together(22 if sheet.void else 12, tables[0])
        pdf.ln(2)
        if sheet.void:
            pdf.set_font(_FAMILY, size=11)
            if self.measure(heading + " 【作废】") < pdf.epw - 2 * pdf.c_margin:
                pdf.cell(self.measure(heading + " "), 6, heading + " ")
            else:  # a very long name: the mark goes on a line of its own
                self.text(heading, 11)
                pdf.set_font(_FAMILY, size=11)
            with pdf.local_context(
                text_mode=TextMode.FILL_STROKE, line_width=0.13, draw_color=_VOID_RED
            ):
                pdf.set_text_color(*_VOID_RED)
                pdf.cell(0, 6, "【作废】", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_text_color(*_INK)
            self.text(reason, 9.5, _VOID_RED)
        else:
            self.text(heading, 11)
        pdf.ln(1)
        for part_number, table in enumerate(tables):
            if part_number:
                self.keep_together(10, table)
                pdf.ln(2)
                self.text(f"{_line(sheet.expert_name)}（续）", 9.5, colour)
                pdf.ln(1)
            self.table(table, colour)

    def results(self) -> None:
        c = self.c
        epw = self.pdf.epw
        ordered = sorted(c.results, key=lambda r: r.rank)
        rows = [
            (
                str(result.rank),
                _line(result.bidder_name),
                _line(result.credit_code),
                _score(result.score),
                "推荐" if result.recommended else "",
            )
            for result in ordered
        ]
        table = self.layout(
            [14, epw - 14 - 50 - 26 - 18, 50, 26, 18],
            ["排名", "投标人", "统一社会信用代码", "最终得分", "推荐"],
            rows,
            align=[Align.C, Align.L, Align.C, Align.C, Align.C],
        )
        recommended = [r for r in ordered if r.recommended]
        listed = "；".join(f"第{r.rank}名 {_line(r.bidder_name)}" for r in recommended) or "无"
        conclusion = f"推荐中标候选人：{listed}"
        # The heading, the ranking and the conclusion under it stay on one page if they can.
        self.pdf.set_font(_FAMILY, size=_BODY_PT)
        lines = self.wrap(conclusion, epw - 2 * self.pdf.c_margin).count("\n") + 1
        self.keep_together(16 + 3 + lines * _BODY_PT * _MM_PER_PT * 1.55, table)
        self.section("五、评审结果与排名", keep_with=0)
        self.table(table)
        self.pdf.ln(3)
        self.text(conclusion)

    def dissents(self) -> None:
        self.section("六、不同意见", keep_with=12)
        if not self.c.dissents:
            self.text("无")
            return
        for number, dissent in enumerate(self.c.dissents, 1):
            self.ensure_space(16)
            self.text(f"{number}. {_line(dissent.expert_name)}：")
            self.text(_paragraphs(dissent.text), 10, indent=6)
            self.pdf.ln(2)

    def signatures(self) -> None:
        pdf = self.pdf
        pdf.add_page()
        self.text("七、评标委员会成员签字", 13, bold=True, leading=1.3)
        pdf.ln(1.5)
        self.text(
            "本报告经评标委员会全体成员审阅，各成员在本人姓名上方的签名框内以电子签名确认。",
            9.5,
            _GREY_TEXT,
        )
        pdf.ln(4)
        column_w = pdf.epw / _SIG_COLUMNS
        members = list(self.c.members)
        pdf.set_font(_FAMILY, size=10)
        for start in range(0, len(members), _SIG_COLUMNS):
            row = members[start : start + _SIG_COLUMNS]
            labels = [self.wrap(f"{_line(m.name)}（{_line(m.role)}）", _SIG_BOX_W - 2) for m in row]
            label_h = max(label.count("\n") + 1 for label in labels) * 5.0
            height = 2 * _SIG_FRAME_GAP + _SIG_BOX_H + 1.5 + label_h
            if pdf.get_y() + height > pdf.page_break_trigger:
                pdf.add_page()
                self.text("评标委员会成员签字（续）", 13, bold=True, leading=1.3)
                pdf.ln(5)
                pdf.set_font(_FAMILY, size=10)
            top = pdf.get_y() + _SIG_FRAME_GAP
            for column, (member, label) in enumerate(zip(row, labels, strict=True)):
                left = pdf.l_margin + column * column_w + (column_w - _SIG_BOX_W) / 2
                self.signature_box(member, left, top, label)
            pdf.set_xy(pdf.l_margin, top - _SIG_FRAME_GAP + height + _SIG_ROW_GAP)

    def signature_box(self, member: MemberRow, left: float, top: float, label: str) -> None:
        pdf = self.pdf
        gap = _SIG_FRAME_GAP
        pdf.set_draw_color(*_RULE)
        pdf.set_line_width(0.25)
        # The frame is drawn outside the box: the box itself stays empty for the stamp.
        with pdf.local_context(dash_pattern={"dash": 1.2, "gap": 0.8}):
            pdf.rect(left - gap, top - gap, _SIG_BOX_W + 2 * gap, _SIG_BOX_H + 2 * gap)
        pdf.set_xy(left, top + _SIG_BOX_H + gap + 1.5)
        pdf.multi_cell(_SIG_BOX_W, 5, label, align=Align.C, wrapmode=WrapMode.CHAR)
        # fpdf2 measures from the top-left in mm; PDF user space (and pyHanko) from the
        # bottom-left in points.
        k, page_h = pdf.k, pdf.h
        box = (
            round(left * k, 2),
            round((page_h - top - _SIG_BOX_H) * k, 2),
            round((left + _SIG_BOX_W) * k, 2),
            round((page_h - top) * k, 2),
        )
        self.boxes.append(SignatureBox(member.expert_id, pdf.page - 1, box))

    def render(self) -> RenderedReport:
        self.title()
        self.project()
        self.committee()
        self.criteria()
        self.sheets()
        self.results()
        self.dissents()
        self.signatures()
        pdf = self.pdf
        data = bytes(pdf.output())
        # The cmap check makes this impossible; fpdf2 itself would only log a warning.
        font = pdf.fonts[_FAMILY]
        lost: list[int] = getattr(font, "missing_glyphs", [])
        if lost:
            chars = ", ".join(f"U+{code:04X}" for code in lost)
            raise ReportRenderError(f"the report font has no glyph for {chars}")
        return RenderedReport(data, pdf.pages_count, tuple(self.boxes))


def render_report(
    content: ReportContent, font_path: str | None = None, font_index: int | None = None
) -> RenderedReport:
    """Lay out the report. font_path/font_index default to the stamp font (a .ttc's
    Simplified Chinese face). ReportRenderError if there is no font, if it lacks a
    character of the content (all of them are named), or if a score sheet's shape does not
    match the bidders and criteria."""
    path, index = resolve_font(font_path, font_index)
    codes = font_cmap(path, index)
    check_glyphs(content, codes, f"{os.path.basename(path)} (face {index})")
    return _Renderer(content, path, index).render()
