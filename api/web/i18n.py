"""The pages' strings: one catalogue per language (messages/<lang>.json), Simplified
Chinese by default. Templates call `t(key, **values)`; scripts get the same catalogue as a
JSON data block, so a string lives in exactly one place."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import Request

from api.web.session import LANG_COOKIE

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
MESSAGES = Path(__file__).parent / "messages"


@cache
def catalogue(language: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((MESSAGES / f"{language}.json").read_text("utf-8"))
    return loaded


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT


def translate(language: str, key: str, **values: object) -> str:
    text = catalogue(language).get(key) or catalogue(DEFAULT).get(key) or key
    return text.format(**values) if values else text
