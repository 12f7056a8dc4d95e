"""Every word a person reads comes in Chinese and English: each problem code (the API's
errors, which the phone pages and the console show), each key the pages and scripts use,
each face-quality issue, failure reason and action. A code or key added without both
languages fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import face.quality
from api.errors import PLAIN_CODES
from api.problem_catalogue import render_markdown, service_problem_classes
from api.web import i18n
from evaluation.kernel.actions import LEGACY_SPELLINGS, Action
from face.actions import ACTIONS
from face.liveness import REASON_MESSAGES

WEB = Path(i18n.__file__).parent
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Names that stay as they are in Chinese text.
TECHNICAL = {"PDF", "PIN", "SAD", "CSV", "CSC", "OCSP", "CRL", "PKCS", "QR", "ID", "JSON", "CA"}


def _problem_codes() -> set[str]:
    return {cls.code for cls in service_problem_classes()} | set(PLAIN_CODES)


def test_every_problem_code_has_a_chinese_and_an_english_title() -> None:
    chinese = i18n.problem_titles("zh")
    codes = _problem_codes()
    assert len(codes) > 100
    missing = sorted(codes - set(chinese))
    assert not missing, f"no Chinese title for {missing}"
    stale = sorted(set(chinese) - codes)
    assert not stale, f"Chinese titles for codes nothing raises: {stale}"
    for code, title in chinese.items():
        assert title.strip() and not set(LATIN_WORD.findall(title)) - TECHNICAL, (code, title)
    for cls in service_problem_classes():
        assert cls.title.strip() and cls.title.isascii(), cls


def test_the_catalogues_cover_every_page_key() -> None:
    chinese, english = i18n.catalogue("zh"), i18n.catalogue("en")
    assert set(chinese) == set(english)
    used: set[str] = set()
    for path in [*(WEB / "static").rglob("*.js"), *(WEB / "templates").rglob("*.html")]:
        used |= set(re.findall(r'\bt\(\s*["\']([a-z_.]+[a-z_.-]*)["\']', path.read_text("utf-8")))
    assert len(used) > 100, "the pages' keys were not found"
    # Keys built from a prefix ("start.kind." + kind) are checked by their prefix.
    missing = {key for key in used - set(chinese) if not any(k.startswith(key) for k in chinese)}
    assert not missing, missing
    for key in chinese:
        assert chinese[key].strip() and english[key].strip(), key


def test_face_words_are_in_both_catalogues() -> None:
    chinese = i18n.catalogue("zh")
    source = Path(face.quality.__file__).read_text("utf-8")
    issues = set(re.findall(r'QualityIssue\(\s*"([a-z-]+)"', source))
    assert {"no-face", "multiple-faces", "pose-pitch"} <= issues
    wanted = (
        {f"issue.{issue}" for issue in issues}
        | {f"reason.{reason}" for reason in REASON_MESSAGES}
        | {f"action.{action}" for action in ACTIONS}
    )
    assert not wanted - set(chinese), sorted(wanted - set(chinese))


@pytest.mark.parametrize(
    ("accept", "cookie", "language"),
    [
        (None, None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", None, "en"),
        ("fr-FR, zh;q=0.5", None, "zh"),
        ("zh;q=0.2, en;q=0.7", None, "en"),
        ("zh-CN", "en", "en"),  # the language the page switched to wins
        ("zh;q=bad, *", None, "en"),
    ],
)
def test_problems_answer_in_the_asked_language(
    client: TestClient, accept: str | None, cookie: str | None, language: str
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    client.cookies.clear()
    if cookie:
        client.cookies.set(i18n.LANG_COOKIE, cookie)
    answer = client.get("/api/v1/experts", headers=headers)
    client.cookies.clear()
    assert answer.status_code == 401
    body = answer.json()
    assert body["code"] == "invalid-credentials"
    expected = i18n.problem_title(language, "invalid-credentials", "")
    assert body["title"] == (expected or answer.json()["title"])
    assert answer.headers["content-language"] == ("zh-CN" if language == "zh" else "en")
    chinese = re.search(r"[\u4e00-\u9fff]", body["title"]) is not None
    assert chinese == (language == "zh")


def test_the_problem_page_gives_both_titles(client: TestClient) -> None:
    answer = client.get("/problems/face-check-locked")
    assert answer.status_code == 200
    titles = answer.json()["titles"]
    assert titles["en"] == answer.json()["title"]
    assert (
        titles["zh"]
        == json.loads((WEB / "messages/problems.zh.json").read_text("utf-8"))["face-check-locked"]
    )


def test_every_audit_action_reads_as_words_in_both_languages() -> None:
    chinese, english = i18n.catalogue("zh"), i18n.catalogue("en")
    spelled = {action.value for action in Action} | set(LEGACY_SPELLINGS.values())
    for value in spelled:
        key = f"console.event.{value}"
        assert chinese.get(key, "").strip() and english.get(key, "").strip(), key


def test_the_problem_catalogue_page_is_current() -> None:
    page = Path(__file__).parents[2] / "docs" / "problems.md"
    assert page.read_text("utf-8") == render_markdown(), (
        "docs/problems.md is stale: python -m api.problem_catalogue > docs/problems.md"
    )
