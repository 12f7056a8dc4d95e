"""The evaluation report PDF, rendered with the real CJK font and read back with poppler
(pdftotext, pdftoppm) and pyHanko, which know nothing of fpdf2. The pages of the realistic
report are written to var/report-pages/ for a person to look at."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.pades import FONT_ENV, Stamp, check_pdf, cjk_font_location, validate
from signing.report_pdf import (
    BidderRow,
    CriterionRow,
    DissentRow,
    MemberRow,
    RenderedReport,
    ReportContent,
    ReportRenderError,
    ResultRow,
    ScoreSheetRow,
    SignatureBox,
    render_report,
)

ROOT = Path(__file__).resolve().parents[2]
PAGES_DIR = ROOT / "var" / "report-pages"
DPI = 100

pytestmark = pytest.mark.skipif(
    not (shutil.which("pdftotext") and shutil.which("pdftoppm")),
    reason="poppler-utils is not installed",
)

DISSENT_1 = (
    "本人认为华信智能科技有限公司的技术方案中，数据迁移部分仅给出原则性描述，"
    "未提供具体的停机窗口和回退方案，技术分不宜高于18分。"
)
DISSENT_2 = "对第3名投标人的售后服务承诺存疑：其承诺的2小时到场响应与其注册地距离不符。"


def realistic() -> ReportContent:
    criteria = [
        CriterionRow("投标报价", 30, "price"),
        CriterionRow("技术方案", 25, "technical"),
        CriterionRow("项目实施计划", 15, "technical"),
        CriterionRow("企业业绩与信誉", 15, "business"),
        CriterionRow("售后服务承诺", 15, "business"),
    ]
    bidders = [
        BidderRow("华信智能科技有限公司", "91110108MA01A2B3C4"),
        BidderRow("中科远景信息技术股份有限公司", "91310115MA1K4D5E6F"),
        BidderRow("广州南粤数字工程有限公司", "91440101MA5C7G8H9J"),
        BidderRow("成都天府云数据服务有限责任公司", "91510100MA6D1K2L3M"),
    ]
    members = [
        MemberRow("e-01", "王喆", "计算机软件", "评标委员会主任"),
        MemberRow("e-02", "李娜", "信息系统工程", "成员"),
        MemberRow("e-03", "欧阳明", "工程造价", "成员"),
        MemberRow("e-04", "张伟", "网络安全", "成员"),
        MemberRow("e-05", "陈静", "财务管理", "成员"),
        MemberRow("e-06", "刘洋", "数据库技术", "成员"),
        MemberRow("e-07", "赵敏", "招标采购管理（采购人代表）", "成员"),
    ]
    base = [
        [27.5, 21.0, 12.5, 13.0, 12.0],
        [29.0, 22.5, 13.0, 12.0, 13.5],
        [30.0, 18.0, 11.0, 10.5, 12.0],
        [25.0, 20.0, 12.0, 14.0, 11.0],
    ]
    sheets = [
        ScoreSheetRow(
            m.name,
            False,
            None,
            [[min(v + (n % 3) * 0.5, 30) for v in row] for row in base],
        )
        for n, m in enumerate(members)
    ]
    sheets.insert(
        3,
        ScoreSheetRow("孙强", True, "评标专家因回避事由被替换，评分作废", [r[:] for r in base]),
    )
    results = [
        ResultRow(1, bidders[1].name, bidders[1].credit_code, 90.21, True),
        ResultRow(2, bidders[0].name, bidders[0].credit_code, 86.64, True),
        ResultRow(3, bidders[3].name, bidders[3].credit_code, 82.5, True),
        ResultRow(4, bidders[2].name, bidders[2].credit_code, 81.93, False),
    ]
    return ReportContent(
        center_name="某市公共资源交易中心",
        project_code="ZFCG-2026-0417",
        project_name="某市政务云平台扩容及运维服务采购项目",
        tenderer_name="某市大数据管理局",
        regime="政府采购",
        evaluation_window="2026年11月23日 09:00 至 2026年11月23日 17:30",
        mode="远程评标",
        aggregation="去掉一个最高分和一个最低分后算术平均",
        criteria=criteria,
        bidders=bidders,
        members=members,
        sheets=sheets,
        results=results,
        dissents=[DissentRow("李娜", DISSENT_1), DissentRow("张伟", DISSENT_2)],
        generated_at="2026-11-23 17:45",
    )


def big() -> ReportContent:
    groups = ["price", "technical", "technical", "technical", "business", "business"]
    criteria = [
        CriterionRow(f"评分项目{n + 1}：技术响应与偏离情况综合评价", 12.5, groups[n % 6])
        for n in range(8)
    ]
    bidders = [
        BidderRow(
            f"第{n + 1}投标人联合体（牵头人：某某建设集团股份有限公司第{n + 1}工程分公司）",
            f"9111010{n:02d}MA01A2B3C",
        )
        for n in range(12)
    ]
    members = [
        MemberRow(f"e-{n:02d}", f"专家{n + 1:02d}号{'长' * (n % 4)}", "土木工程", "成员")
        for n in range(15)
    ]
    sheets = [
        ScoreSheetRow(
            m.name,
            n == 2,
            "替换" if n == 2 else None,
            [[(b * 7 + c * 3 + n) % 13 for c in range(8)] for b in range(12)],
        )
        for n, m in enumerate(members)
    ]
    results = [
        ResultRow(n + 1, b.name, b.credit_code, 99.0 - n * 1.37, n < 3)
        for n, b in enumerate(bidders)
    ]
    dissent = ("评标委员会在技术部分的评审中存在较大分歧，本人对评分结果持保留意见。" * 60)[:2000]
    return ReportContent(
        center_name="某省公共资源交易中心",
        project_code="JSGC-2026-1234",
        project_name="某省某市城市轨道交通三号线一期工程土建施工总承包项目",
        tenderer_name="某市轨道交通集团有限公司",
        regime="招标投标",
        evaluation_window="2026年11月23日 09:00 至 2026年11月25日 17:30",
        mode="远程异地评标",
        aggregation="算术平均",
        criteria=criteria,
        bidders=bidders,
        members=members,
        sheets=sheets,
        results=results,
        dissents=[DissentRow(members[4].name, dissent)],
        generated_at="2026-11-25T18:00:00+08:00",
    )


@pytest.fixture(scope="module")
def content() -> ReportContent:
    return realistic()


@pytest.fixture(scope="module")
def report(content: ReportContent) -> RenderedReport:
    return render_report(content)


@pytest.fixture(scope="module")
def big_report() -> RenderedReport:
    return render_report(big())


@pytest.fixture(scope="module")
def report_file(report: RenderedReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    path.write_bytes(report.pdf)
    return path


def without_footers(flat: str) -> str:
    """Text with whitespace removed and the page footers cut out, so that a paragraph
    running over a page break reads as one."""
    return re.sub(r"项目编号：[^第]*第\d+页/共\d+页", "", flat)


def text_of(path: Path) -> str:
    result = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True
    )
    return result.stdout.decode()


def page_image(path: Path, page: int) -> Image.Image:
    """Page `page` (0-based) at DPI, greyscale."""
    result = subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-f", str(page + 1), "-l", str(page + 1), "-png", str(path)],
        check=True,
        capture_output=True,
    )
    return Image.open(io.BytesIO(result.stdout)).convert("L")


def media_boxes(pdf: bytes) -> list[tuple[float, float, float, float]]:
    """Each page's /MediaBox, inherited down the page tree as ISO 32000 says (fpdf2 puts
    it on the /Pages node), read with pyHanko's strict reader."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    boxes: list[tuple[float, float, float, float]] = []

    def walk(node: Any, inherited: Any) -> None:
        box = node.get("/MediaBox", inherited)
        if "/Kids" in node:
            for kid in node["/Kids"]:
                walk(kid.get_object(), box)
        else:
            x1, y1, x2, y2 = (float(v) for v in box)
            boxes.append((x1, y1, x2, y2))

    walk(reader.root["/Pages"], None)
    return boxes


def crop_box(
    image: Image.Image, box: tuple[float, float, float, float], inset: int = 1
) -> Image.Image:
    """The pixels of a box given in PDF points from the bottom-left."""
    scale = DPI / 72
    x1, y1, x2, y2 = box
    return image.crop(
        (
            round(x1 * scale) + inset,
            round(image.height - y2 * scale) + inset,
            round(x2 * scale) - inset,
            round(image.height - y1 * scale) - inset,
        )
    )


def darkest(image: Image.Image) -> int:
    """The darkest grey level in a greyscale image (255 is white)."""
    return min(image.tobytes())


def signature_page(report: RenderedReport) -> int:
    return report.signature_boxes[0].page


def check_boxes(report: RenderedReport, expert_ids: list[str]) -> None:
    assert [b.expert_id for b in report.signature_boxes] == expert_ids
    pages = media_boxes(report.pdf)
    assert len(pages) == report.page_count
    for item in report.signature_boxes:
        assert 0 <= item.page < report.page_count
        x1, y1, x2, y2 = item.box
        mx1, my1, mx2, my2 = pages[item.page]
        assert mx1 <= x1 < x2 <= mx2 and my1 <= y1 < y2 <= my2, item
        assert x2 - x1 >= 160 and y2 - y1 >= 60, item
    for n, a in enumerate(report.signature_boxes):
        for b in report.signature_boxes[n + 1 :]:
            if a.page != b.page:
                continue
            apart = (
                a.box[2] <= b.box[0]
                or b.box[2] <= a.box[0]
                or a.box[3] <= b.box[1]
                or b.box[3] <= a.box[1]
            )
            assert apart, (a, b)


def check_boxes_empty(path: Path, boxes: list[SignatureBox]) -> None:
    for page in sorted({b.page for b in boxes}):
        image = page_image(path, page)
        for item in (b for b in boxes if b.page == page):
            crop = crop_box(image, item.box)
            assert darkest(crop) >= 245, f"something is drawn in {item}"
            # The dashed frame just outside the box is drawn: the box is where it should be.
            ring = crop_box(image, grow(item.box, 6), inset=0)
            assert darkest(ring) < 200, f"no frame around {item}"


def grow(box: tuple[float, float, float, float], by: float) -> tuple[float, float, float, float]:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


# --- tests ---------------------------------------------------------------------------------


def test_the_text_is_all_there(content: ReportContent, report_file: Path) -> None:
    text = text_of(report_file)
    flat = "".join(text.split())
    assert "评标报告" in text
    assert content.project_name in flat
    assert content.project_code in text
    for member in content.members:
        assert member.name in text
    for bidder in content.bidders:
        assert bidder.name in flat
        assert bidder.credit_code in text
    for dissent in content.dissents:
        assert "".join(dissent.text.split()) in flat
    assert "作废" in text and "孙强" in text
    assert "评标委员会成员签字" in text
    assert (
        "推荐中标候选人：第1名中科远景信息技术股份有限公司；第2名华信智能科技有限公司；"
        "第3名成都天府云数据服务有限责任公司"
    ) in flat
    assert "90.21" in text and "82.50" in text
    pages = len(media_boxes(report_file.read_bytes()))
    for page in range(1, pages + 1):
        assert f"项目编号：{content.project_code}第{page}页/共{pages}页" in flat


def embedded_fonts(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdffonts", str(path)], check=True, capture_output=True).stdout.decode()


def test_the_simplified_chinese_face_is_embedded(
    report: RenderedReport, content: ReportContent, tmp_path: Path
) -> None:
    fonts = embedded_fonts(report.pdf, tmp_path)
    assert "CID Type 0C" in fonts or "CID TrueType" in fonts
    path, index = cjk_font_location()
    if not path.endswith("NotoSansCJK-Regular.ttc"):
        pytest.skip("the face names below are those of Noto Sans CJK")
    # Face 0 of the collection is Japanese; the SC face is found by its name, also for a
    # .ttc handed in without an index.
    assert index == 2
    assert "NotoSansCJKSC" in fonts, fonts
    explicit = render_report(content, font_path=path)
    assert "NotoSansCJKSC" in embedded_fonts(explicit.pdf, tmp_path)
    japanese = render_report(content, font_path=path, font_index=0)
    assert "NotoSansCJKJP" in embedded_fonts(japanese.pdf, tmp_path)


def test_pages_render_and_are_written_for_a_person(
    report: RenderedReport, report_file: Path
) -> None:
    PAGES_DIR.mkdir(parents=True, exist_ok=True)
    for old in PAGES_DIR.glob("report-*.png"):
        old.unlink()
    for page in range(report.page_count):
        image = page_image(report_file, page)
        image.save(PAGES_DIR / f"report-{page + 1}.png")
        if page in (0, signature_page(report)):
            stat = ImageStat.Stat(image)
            dark = sum(image.histogram()[:128]) / (image.width * image.height)
            # White paper with ink on it: text and table rules on page 1, the box frames
            # and names on the signature page.
            assert 200 < stat.mean[0] < 254.5, stat.mean
            assert stat.stddev[0] > 8, stat.stddev
            assert dark > (0.01 if page == 0 else 0.002), dark
    assert (PAGES_DIR / "report-1.png").is_file()


def test_signature_boxes_are_on_their_pages_apart_and_empty(
    content: ReportContent, report: RenderedReport, report_file: Path
) -> None:
    check_boxes(report, [m.expert_id for m in content.members])
    # The signature section starts on its own page, after everything else.
    assert signature_page(report) == report.page_count - 1
    check_boxes_empty(report_file, list(report.signature_boxes))


def test_the_signing_code_accepts_it(report: RenderedReport, report_file: Path) -> None:
    info = check_pdf(report_file)
    assert info.page_count == report.page_count
    assert all(abs(w - 595.28) < 0.5 and abs(h - 841.89) < 0.5 for w, h in info.page_sizes)
    assert info.signature_fields == [] and not info.encrypted


def test_metadata(report: RenderedReport, content: ReportContent) -> None:
    reader = PdfFileReader(io.BytesIO(report.pdf), strict=True)
    info = reader.trailer["/Info"]
    assert info["/Creator"] == "EvalSign"
    assert "评标报告" in str(info["/Title"]) and content.project_code in str(info["/Title"])
    assert str(info["/CreationDate"]).startswith("D:20261123174500+08")


def test_a_character_missing_from_the_font_is_named(content: ReportContent) -> None:
    odd = replace(
        content,
        dissents=[DissentRow("李娜", "同意\U0001f600"), DissentRow("张伟", "\U0010fffd")],
    )
    with pytest.raises(ReportRenderError) as raised:
        render_report(odd)
    message = str(raised.value)
    assert "U+1F600" in message and "U+10FFFD" in message
    assert "dissents[0].text" in message


def test_no_font_is_a_render_error(
    content: ReportContent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ReportRenderError, match="not a file"):
        render_report(content, font_path=str(tmp_path / "missing.ttc"))
    not_a_font = tmp_path / "notes.ttf"
    not_a_font.write_bytes(b"not a font at all")
    with pytest.raises(ReportRenderError, match="cannot read"):
        render_report(content, font_path=str(not_a_font), font_index=0)
    # The default comes from the stamp font's configuration.
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "gone.otf"))
    with pytest.raises(ReportRenderError, match=FONT_ENV):
        render_report(content)


def test_a_misshapen_score_sheet_is_refused(content: ReportContent) -> None:
    sheet = replace(content.sheets[0], points=[[1.0, 2.0]])
    with pytest.raises(ReportRenderError, match="bidders x"):
        render_report(replace(content, sheets=[sheet]))


def test_no_dissent_prints_none(content: ReportContent, tmp_path: Path) -> None:
    path = tmp_path / "quiet.pdf"
    path.write_bytes(render_report(replace(content, dissents=[])).pdf)
    text = text_of(path)
    assert "不同意见" in text
    after = text.split("不同意见", 1)[1].split("评标委员会成员签字", 1)[0]
    assert after.split()[0] == "无"


def test_a_big_report_breaks_across_pages(
    report: RenderedReport, big_report: RenderedReport, tmp_path: Path
) -> None:
    content = big()
    assert big_report.page_count > report.page_count
    check_boxes(big_report, [m.expert_id for m in content.members])
    # 15 members do not fit one page of boxes.
    assert len({b.page for b in big_report.signature_boxes}) >= 2
    path = tmp_path / "big.pdf"
    path.write_bytes(big_report.pdf)
    check_boxes_empty(path, list(big_report.signature_boxes))
    assert check_pdf(path).page_count == big_report.page_count
    flat = "".join(text_of(path).split())
    for bidder in content.bidders:
        assert bidder.credit_code in flat
    assert "".join(content.dissents[0].text.split()) in without_footers(flat)
    for page in range(1, big_report.page_count + 1):
        assert f"第{page}页/共{big_report.page_count}页" in flat


def test_rendering_is_deterministic(content: ReportContent, report: RenderedReport) -> None:
    again = render_report(content)
    assert again.pdf == report.pdf
    assert again.signature_boxes == report.signature_boxes


def test_stamps_land_in_the_boxes(
    report: RenderedReport, report_file: Path, tmp_path: Path
) -> None:
    """Sign the report with visible stamps in two of the boxes (our PAdES code, pyHanko
    underneath): the signatures validate, each stamp has ink inside its box, and nothing
    else on the page changed."""
    from tests.signing.test_pades import build_pki, sign_step

    pki = build_pki()
    path = tmp_path / "signed.pdf"
    path.write_bytes(report.pdf)
    boxes = list(report.signature_boxes[:2])
    assert boxes[0].page == boxes[1].page
    for index, item in enumerate(boxes):
        lines = ["评标专家 签名", "2026-11-23 17:50 (UTC+8)", "证书序列号 5F3A9C0B"]
        sign_step(pki, path, index, Stamp(item.page, item.box, lines))
    assert validate(path, [pki.root]).verdict == "valid"
    before = page_image(report_file, boxes[0].page)
    after = page_image(path, boxes[0].page)
    for item in boxes:
        crop = crop_box(after, item.box, inset=3)
        dark = sum(crop.histogram()[:128]) / (crop.width * crop.height)
        assert dark > 0.01, item
    changes = ImageChops.difference(before, after)
    for item in boxes:
        # A pixel of slack around each box for the stamp border's anti-aliasing.
        scale = DPI / 72
        x1, y1, x2, y2 = item.box
        top, bottom = after.height - y2 * scale, after.height - y1 * scale
        changes.paste(0, (int(x1 * scale) - 1, int(top) - 1, int(x2 * scale) + 2, int(bottom) + 2))
    assert changes.getbbox() is None, changes.getbbox()
