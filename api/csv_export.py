"""CSV exports that a spreadsheet opens as data: a cell that would start a formula is
prefixed with an apostrophe (OWASP's CSV injection advice)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

# A spreadsheet evaluates a cell starting with these; tab and CR hide a prefix from the eye.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: object) -> str:
    """The cell as text, with an apostrophe in front when a spreadsheet would run it."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header and rows as CSV text, every cell neutralized."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralize(column) for column in columns])
    for row in rows:
        writer.writerow([neutralize(value) for value in row])
    return out.getvalue()
