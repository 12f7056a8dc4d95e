"""Chinese identifiers as the field uses them: resident ID numbers (GB 11643), unified
social credit codes (GB 32100), mobile numbers, administrative region codes (GB/T 2260),
and how they are shown masked."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_PATTERN = re.compile(r"^\d{17}[\dX]$")

_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_PATTERN = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")

_PHONE_PATTERN = re.compile(r"^1[3-9]\d{9}$")
_SPECIALTY_PATTERN = re.compile(r"^[A-Z][0-9A-Z]{1,15}$")
# Province-level codes of GB/T 2260 (plus Taiwan, Hong Kong, Macao).
_PROVINCES = frozenset(
    str(code)
    for code in (
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
        71,
        81,
        82,
    )
)


def id_number_check_digit(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalize_id_number(value: str) -> str:
    """An 18-character resident ID number with a valid birth date and check digit."""
    number = value.strip().upper()
    if not _ID_PATTERN.match(number):
        raise ValueError("ID number must be 17 digits followed by a digit or X")
    if number[:2] not in _PROVINCES:
        raise ValueError("ID number does not start with a known province code")
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise ValueError("ID number does not contain a valid birth date") from exc
    if id_number_check_digit(number[:17]) != number[17]:
        raise ValueError("ID number check digit does not match")
    return number


def credit_code_check_char(first17: str) -> str:
    total = sum(
        _CREDIT_CHARSET.index(char) * weight
        for char, weight in zip(first17, _CREDIT_WEIGHTS, strict=True)
    )
    return _CREDIT_CHARSET[(31 - total % 31) % 31]


def normalize_credit_code(value: str) -> str:
    """An 18-character unified social credit code whose check character is right."""
    code = value.strip().upper()
    if not _CREDIT_PATTERN.match(code):
        raise ValueError(
            "unified social credit code must be 18 characters of 0-9 and A-Y without I, O, S, V, Z"
        )
    if credit_code_check_char(code[:17]) != code[17]:
        raise ValueError("unified social credit code check character does not match")
    return code


def normalize_phone(value: str) -> str:
    """A mainland mobile number as 11 digits; accepts +86, spaces and dashes."""
    digits = re.sub(r"[\s\-()]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not _PHONE_PATTERN.match(digits):
        raise ValueError("phone must be a mainland mobile number of 11 digits starting with 1")
    return digits


def normalize_region_code(value: str) -> str:
    code = value.strip()
    if not re.fullmatch(r"\d{6}", code) or code[:2] not in _PROVINCES:
        raise ValueError("region code must be a 6-digit GB/T 2260 code of a known province")
    return code


def normalize_specialty(value: str) -> str:
    code = value.strip().upper()
    if not _SPECIALTY_PATTERN.match(code):
        raise ValueError("specialty code must be a letter followed by 1-15 letters or digits")
    return code


# Direction controls make a name read differently from how it sorts and compares
# (CN=\u202eevil\u202c in a certificate subject); names have no use for them.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Letters that draw nothing (Hangul fillers): a name of only these is as blank as spaces.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
# A spreadsheet runs a cell that starts with one of these (see the CSV exports).
_FORMULA_STARTS = ("=", "+", "-", "@")
_BLANKS = " \t\n\r\x0b\x0c"


def check_characters(value: str, *, newlines: bool = False) -> str:
    """The text unchanged if every character can be stored and printed: no control
    characters (tab and line feeds only where ``newlines``) and no unpaired surrogates,
    which PostgreSQL and UTF-8 refuse."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("text must not contain unpaired surrogates")
        if category == "Cc" and not (newlines and char in "\n\t"):
            raise ValueError("text must not contain control characters")
    return value


def normalize_text(value: str) -> str:
    """Trimmed, NFC-normalized text without control characters."""
    if not value.strip():
        raise ValueError("must not be empty")
    # Only ordinary blanks are trimmed before the check: str.strip() would also drop
    # \x1c-\x1f, control characters the check must see.
    text = check_characters(value.strip(_BLANKS))
    text = unicodedata.normalize("NFC", text).strip()
    return text


def normalize_prose(value: str) -> str:
    """Like ``normalize_text``, but several lines are allowed (reasons, statements)."""
    if not value.strip():
        raise ValueError("must not be empty")
    text = check_characters(value.replace("\r\n", "\n"), newlines=True)
    text = unicodedata.normalize("NFC", text).strip()
    return text


def normalize_name(value: str) -> str:
    """A name for people, units and certificates: normalized text without direction
    controls, with something visible in it, not starting like a formula."""
    name = normalize_text(value)
    if any(char in _BIDI_CONTROLS for char in name):
        raise ValueError("name must not contain bidirectional control characters")
    if all(
        unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _BLANK_LETTERS
        for char in name
    ):
        raise ValueError("name must contain visible characters")
    if name.startswith(_FORMULA_STARTS):
        raise ValueError("name must not start with =, +, - or @")
    return name


_LENGTH_AFTER_VALIDATION = re.compile(
    r"^Value should have (at least|at most) (\d+) items? after validation, not (\d+)$"
)


def error_message(message: str) -> str:
    """A validation message as a person should read it, without pydantic's prefix. A
    length limit on one of our normalized strings (an identifier, a URL) is checked after
    its validator, where pydantic counts "items"; for a string they are characters."""
    message = message.removeprefix("Value error, ")
    return _LENGTH_AFTER_VALIDATION.sub(r"Value should have \1 \2 characters, not \3", message)


def mask_id_number(number: str) -> str:
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def _strict_str(value: object) -> object:
    # Refuse numbers for identifiers: 11010119900307453 as a JSON number loses its meaning.
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


IdNumber = Annotated[str, BeforeValidator(_strict_str), AfterValidator(normalize_id_number)]
CreditCode = Annotated[str, BeforeValidator(_strict_str), AfterValidator(normalize_credit_code)]
Phone = Annotated[str, BeforeValidator(_strict_str), AfterValidator(normalize_phone)]
RegionCode = Annotated[str, BeforeValidator(_strict_str), AfterValidator(normalize_region_code)]
SpecialtyCode = Annotated[str, BeforeValidator(_strict_str), AfterValidator(normalize_specialty)]
Text = Annotated[str, AfterValidator(normalize_text)]
Prose = Annotated[str, AfterValidator(normalize_prose)]
Name = Annotated[str, AfterValidator(normalize_name)]
# Ids, tokens and nonces: compared as sent, so not normalized, only kept storable.
Token = Annotated[str, AfterValidator(check_characters)]
