"""Chinese identifiers: ID numbers (GB 11643), credit codes (GB 32100), mobile numbers,
region and specialty codes, masking, and the text rule every free-text field follows."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from evaluation.kernel.identifiers import (
    CreditCode,
    IdNumber,
    Phone,
    Text,
    credit_code_check_char,
    id_number_check_digit,
    mask_id_number,
    mask_phone,
    normalize_credit_code,
    normalize_id_number,
    normalize_phone,
    normalize_region_code,
    normalize_specialty,
    normalize_text,
)
from tests import factories

# The worked examples of the standards themselves (GB 11643-1999 and GB 32100-2015).
STANDARD_ID_NUMBER = "11010519491231002X"
STANDARD_ID_NUMBER_1880 = "440524188001010014"
STANDARD_CREDIT_CODE = "91350100M000100Y43"


def _other_char(char: str, alphabet: str) -> str:
    return next(candidate for candidate in alphabet if candidate != char)


# ID numbers


@pytest.mark.parametrize("number", [STANDARD_ID_NUMBER, STANDARD_ID_NUMBER_1880])
def test_standard_example_id_numbers_are_valid(number: str) -> None:
    assert normalize_id_number(number) == number


def test_check_digit_of_standard_example_is_x() -> None:
    assert id_number_check_digit(STANDARD_ID_NUMBER[:17]) == "X"


def test_generated_id_numbers_are_valid() -> None:
    for _ in range(50):
        number = factories.id_number()
        assert normalize_id_number(number) == number


def test_lowercase_x_is_accepted_and_upper_cased() -> None:
    assert normalize_id_number("11010519491231002x") == STANDARD_ID_NUMBER


def test_surrounding_whitespace_is_trimmed_from_id_number() -> None:
    assert normalize_id_number(f"  {STANDARD_ID_NUMBER}\t") == STANDARD_ID_NUMBER


@pytest.mark.parametrize("position", range(18))
def test_any_single_character_change_of_an_id_number_is_rejected(position: int) -> None:
    # Every weight is non-zero modulo 11, so one changed digit always breaks the checksum.
    alphabet = "0123456789X" if position == 17 else "0123456789"
    for replacement in alphabet:
        if replacement == STANDARD_ID_NUMBER[position]:
            continue
        changed = STANDARD_ID_NUMBER[:position] + replacement + STANDARD_ID_NUMBER[position + 1 :]
        with pytest.raises(ValueError):
            normalize_id_number(changed)


def test_wrong_check_digit_is_rejected_with_its_reason() -> None:
    with pytest.raises(ValueError, match="check digit"):
        normalize_id_number("110105194912310021")


@pytest.mark.parametrize(
    "number",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X0",  # 19 characters
        "110105491231002",  # the old 15-digit form
        "1101051949123100X2",  # X not in last place
        "11010519491231002Y",
        "11010519491231 02X",
    ],
)
def test_id_number_of_wrong_shape_is_rejected(number: str) -> None:
    with pytest.raises(ValueError, match="17 digits"):
        normalize_id_number(number)


@pytest.mark.parametrize("birth", ["19900230", "19900431", "19901301", "19900001", "19010229"])
def test_id_number_with_impossible_birth_date_is_rejected(birth: str) -> None:
    first17 = f"110101{birth}123"
    with pytest.raises(ValueError, match="birth date"):
        normalize_id_number(first17 + id_number_check_digit(first17))


def test_id_number_born_on_leap_day_is_valid() -> None:
    first17 = "11010120000229123"
    number = first17 + id_number_check_digit(first17)
    assert normalize_id_number(number) == number


@pytest.mark.parametrize("province", ["00", "10", "20", "39", "66", "90", "99"])
def test_id_number_with_unknown_province_is_rejected(province: str) -> None:
    first17 = f"{province}010119800101123"
    with pytest.raises(ValueError, match="province"):
        normalize_id_number(first17 + id_number_check_digit(first17))


def test_id_number_given_as_a_json_number_is_rejected() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(IdNumber).validate_python(110105194912310021)


def test_id_number_type_normalizes() -> None:
    assert TypeAdapter(IdNumber).validate_python("11010519491231002x") == STANDARD_ID_NUMBER


# Unified social credit codes


def test_standard_example_credit_code_is_valid() -> None:
    assert normalize_credit_code(STANDARD_CREDIT_CODE) == STANDARD_CREDIT_CODE
    assert credit_code_check_char(STANDARD_CREDIT_CODE[:17]) == "3"


def test_generated_credit_codes_are_valid() -> None:
    for _ in range(50):
        code = factories.credit_code()
        assert normalize_credit_code(code) == code


def test_lowercase_credit_code_is_upper_cased() -> None:
    assert normalize_credit_code(STANDARD_CREDIT_CODE.lower()) == STANDARD_CREDIT_CODE


@pytest.mark.parametrize("position", range(18))
def test_any_single_character_change_of_a_credit_code_is_rejected(position: int) -> None:
    # Every weight is non-zero modulo 31, so one changed character breaks the checksum.
    original = STANDARD_CREDIT_CODE[position]
    alphabet = "0123456789" if 2 <= position < 8 else "0123456789ABCDEFGHJKLMNPQRTUWXY"
    replacement = _other_char(original, alphabet)
    changed = STANDARD_CREDIT_CODE[:position] + replacement + STANDARD_CREDIT_CODE[position + 1 :]
    with pytest.raises(ValueError):
        normalize_credit_code(changed)


def test_wrong_credit_code_check_char_is_rejected_with_its_reason() -> None:
    with pytest.raises(ValueError, match="check character"):
        normalize_credit_code(STANDARD_CREDIT_CODE[:17] + "4")


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_credit_code_with_forbidden_letter_is_rejected(letter: str) -> None:
    in_body = STANDARD_CREDIT_CODE[:8] + letter + STANDARD_CREDIT_CODE[9:]
    as_check = STANDARD_CREDIT_CODE[:17] + letter
    for code in (in_body, as_check, in_body.lower()):
        with pytest.raises(ValueError, match="without I, O, S, V, Z"):
            normalize_credit_code(code)


@pytest.mark.parametrize(
    "code",
    ["", STANDARD_CREDIT_CODE[:17], STANDARD_CREDIT_CODE + "0", "91350100M000100Y4-"],
)
def test_credit_code_of_wrong_shape_is_rejected(code: str) -> None:
    with pytest.raises(ValueError):
        normalize_credit_code(code)


def test_credit_code_with_letter_in_region_part_is_rejected() -> None:
    with pytest.raises(ValueError):
        normalize_credit_code("9135A100M000100Y43")


def test_credit_code_given_as_a_number_is_rejected() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(CreditCode).validate_python(913501001000100143)


# Mobile numbers


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+8613800138000",
        "+86 138 0013 8000",
        "0086 13800138000",
        "008613800138000",
        "138-0013-8000",
        "+86-138-0013-8000",
        "(+86) 138 0013 8000",
        " 13800138000 ",
    ],
)
def test_mobile_number_is_normalized_to_eleven_digits(raw: str) -> None:
    assert normalize_phone(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    [
        "010-12345678",  # Beijing landline
        "021 6432 1234",  # Shanghai landline
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "12800138000",  # no mobile prefix starts with 12
        "23800138000",
        "+1 138 0013 8000",
        "8613800138000",  # country code without + or 00
        "1380013800O",
        "",
    ],
)
def test_landlines_and_malformed_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="mobile"):
        normalize_phone(raw)


def test_phone_given_as_a_number_is_rejected() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Phone).validate_python(13800138000)


# Region and specialty codes


@pytest.mark.parametrize("code", ["110101", "310115", "440305", "650102", "710000", "820000"])
def test_region_code_of_known_province_is_accepted(code: str) -> None:
    assert normalize_region_code(code) == code


def test_region_code_is_trimmed() -> None:
    assert normalize_region_code(" 110101 ") == "110101"


@pytest.mark.parametrize("code", ["", "11010", "1101011", "11010a", "000000", "990101", "1 0101"])
def test_malformed_or_unknown_region_code_is_rejected(code: str) -> None:
    with pytest.raises(ValueError, match="region code"):
        normalize_region_code(code)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("A01", "A01"), ("a0101", "A0101"), (" b02 ", "B02"), ("Z" + "9" * 15, "Z" + "9" * 15)],
)
def test_specialty_code_is_upper_cased_and_trimmed(raw: str, expected: str) -> None:
    assert normalize_specialty(raw) == expected


@pytest.mark.parametrize("raw", ["", "A", "1A", "01", "A01-01", "A 01", "A" + "1" * 16, "甲01"])
def test_malformed_specialty_code_is_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="specialty code"):
        normalize_specialty(raw)


# Masking


def test_masked_id_number_shows_first_three_and_last_four() -> None:
    assert mask_id_number(STANDARD_ID_NUMBER) == "110" + "*" * 11 + "002X"


def test_masked_phone_shows_first_three_and_last_four() -> None:
    assert mask_phone("13800138000") == "138****8000"


def test_masked_values_keep_their_length() -> None:
    number = factories.id_number()
    assert len(mask_id_number(number)) == 18
    assert mask_id_number(number)[7:14] == "*" * 7
    assert len(mask_phone(factories.phone())) == 11


# Free text


def test_text_is_trimmed_and_nfc_normalized() -> None:
    assert normalize_text("  Jose\u0301 张伟 ") == "Jos\u00e9 张伟"


@pytest.mark.parametrize("raw", ["张\x00伟", "张\x07伟", "line\nbreak", "tab\tinside", "del\x7f"])
def test_text_with_control_characters_is_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        normalize_text(raw)


@pytest.mark.parametrize("raw", ["", "   ", "\u3000", "\n\t "])
def test_blank_text_is_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        normalize_text(raw)


def test_text_type_rejects_control_characters_through_pydantic() -> None:
    adapter = TypeAdapter(Text)
    assert adapter.validate_python(" 北京市 ") == "北京市"
    with pytest.raises(ValidationError):
        adapter.validate_python("北京\r市")


def test_a_length_limit_on_a_normalized_string_is_told_in_characters() -> None:
    from typing import Annotated

    from pydantic import Field

    from evaluation.kernel.identifiers import Token, error_message

    short = TypeAdapter(Annotated[Token, Field(min_length=8)])
    with pytest.raises(ValidationError) as caught:
        short.validate_python("ftp://x")
    [error] = caught.value.errors()
    assert error_message(error["msg"]) == "Value should have at least 8 characters, not 7"
    # A list's own wording is left as pydantic says it.
    assert error_message("List should have at least 1 item after validation, not 0") == (
        "List should have at least 1 item after validation, not 0"
    )
