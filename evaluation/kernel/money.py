"""Amounts of money as contracts write them: in figures (¥1,234,567.89) and in Chinese
capital numerals (大写: 壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分), the form that cannot be
altered by adding a stroke. Amounts are integers of fen (分); money is never a float."""

from __future__ import annotations

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_PLACES = ("", "拾", "佰", "仟")
_GROUPS = ("", "万", "亿")
MAX_FEN = 10**12 * 100 - 1  # under a trillion (万亿) yuan


def in_figures(fen: int) -> str:
    yuan, cents = divmod(fen, 100)
    return f"¥{yuan:,}.{cents:02d}"


def _yuan_in_words(yuan: int) -> str:
    digits = str(yuan)
    count = len(digits)
    out: list[str] = []
    pending_zero = False
    for index, char in enumerate(digits):
        power = count - 1 - index
        digit = int(char)
        group_end = power % 4 == 0 and power > 0
        if digit == 0:
            pending_zero = True
            # A group (of four digits) with any non-zero digit still gets its 万 or 亿.
            if group_end and int(digits[max(0, index - 3) : index + 1]):
                out.append(_GROUPS[power // 4])
            continue
        if pending_zero and out:
            out.append("零")
        pending_zero = False
        out.append(_DIGITS[digit] + _PLACES[power % 4])
        if group_end:
            out.append(_GROUPS[power // 4])
    return "".join(out)


def in_words(fen: int) -> str:
    """人民币 capitals: 壹拾万零伍元整, 伍角, 壹佰元零伍分, 零元整."""
    if not 0 <= fen <= MAX_FEN:
        raise ValueError(f"amount out of range: {fen} fen")
    yuan, cents = divmod(fen, 100)
    jiao, fen_digit = divmod(cents, 10)
    words = _yuan_in_words(yuan) + "元" if yuan else ""
    if not cents:
        return (words or "零元") + "整"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif yuan:
        words += "零"
    if fen_digit:
        words += _DIGITS[fen_digit] + "分"
    else:
        words += "整"
    return words
