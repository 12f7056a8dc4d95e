"""The pages' strings: one catalogue per language (messages/<lang>.json), Simplified
Chinese by default. Templates call `t(key, **values)`; scripts get the same catalogue as a
JSON data block, so a string lives in exactly one place.

Problem titles: the English title is the error class's own (`DomainError.title`), the
Chinese one lives in messages/problems.zh.json; a problem answers in the language the
page chose or the client's Accept-Language asks for, English otherwise."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import Request
from starlette.requests import HTTPConnection

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


@cache
def problem_titles(language: str) -> dict[str, str]:
    """Problem titles by code in a language other than English (the classes' own)."""
    path = MESSAGES / f"problems.{language}.json"
    loaded: dict[str, str] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return loaded


def problem_title(language: str, code: str, english: str) -> str:
    return problem_titles(language).get(code, english) if language != "en" else english


def problem_language(connection: HTTPConnection) -> str:
    """The page's chosen language, else the best of Accept-Language we speak, else English:
    an API client that asks nothing keeps the titles it always had."""
    chosen = connection.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return accepted_language(connection.headers.get("accept-language", "")) or "en"


def accepted_language(header: str) -> str | None:
    """The highest-weighted language of an Accept-Language header that we speak."""
    best: tuple[float, str] | None = None
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        language = tag.strip().lower().split("-")[0]
        if language not in LANGUAGES:
            continue
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        # Equal weights keep the header's order.
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, language)
    return best[1] if best else None
