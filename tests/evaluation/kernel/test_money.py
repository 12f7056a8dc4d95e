"""Amounts as contracts write them: figures and Chinese capital numerals (大写)."""

from __future__ import annotations

import pytest

from evaluation.kernel.money import MAX_FEN, in_figures, in_words


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (5, "伍分"),
        (50, "伍角整"),
        (1000, "壹拾元整"),
        (10050, "壹佰元伍角整"),
        (10005, "壹佰元零伍分"),
        (1000100, "壹万零壹元整"),
        (10000100, "壹拾万零壹元整"),
        (100000000, "壹佰万元整"),
        (100500000, "壹佰万零伍仟元整"),
        (123456789, "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
        (1000000000, "壹仟万元整"),
        (10000000100, "壹亿零壹元整"),
        (10000001000, "壹亿零壹拾元整"),
        (10100000000, "壹亿零壹佰万元整"),
        (2000000000000, "贰佰亿元整"),
        (MAX_FEN, "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
    ],
)
def test_capital_numerals(fen: int, words: str) -> None:
    assert in_words(fen) == words


@pytest.mark.parametrize("fen", [-1, MAX_FEN + 1])
def test_out_of_range_amounts_are_refused(fen: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        in_words(fen)


def test_figures_group_thousands() -> None:
    assert in_figures(123456789) == "¥1,234,567.89"
    assert in_figures(7) == "¥0.07"
