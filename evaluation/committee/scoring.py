"""Scores and their aggregation, as pure functions: validating a member's sheet against
the criteria, each member's total per bidder, the committee's aggregate (the mean, or the
mean without the single highest and lowest total when at least 5 members scored), and
the ranking with the recommended candidates.

Points are kept to two decimals, as score sheets are written; aggregation uses Decimal so
a tie on paper is a tie here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

MEAN = "mean"
TRIMMED_MEAN = "trimmed_mean"
TRIM_MINIMUM = 5  # members needed before the highest and lowest are dropped
RECOMMENDED = 3  # candidates recommended, in rank order (1-3 under the regulations)
CENT = Decimal("0.01")

Points = Mapping[str, Mapping[str, Any]]  # bidder credit code -> criterion name -> points


@dataclass(frozen=True)
class Criterion:
    name: str
    max_points: float
    group: str


def criteria_of(rows: Sequence[Mapping[str, Any]]) -> list[Criterion]:
    return [Criterion(str(r["name"]), float(r["max_points"]), str(r["group"])) for r in rows]


def sheet_problems(
    points: Points, bidders: Sequence[str], criteria: Sequence[Criterion], *, complete: bool
) -> list[str]:
    """What is wrong with a sheet: unknown bidders or criteria, points that are not numbers,
    negative, above the criterion's maximum or finer than 0.01; with `complete`, every
    bidder scored on every criterion."""
    problems = []
    known = {criterion.name: criterion for criterion in criteria}
    for bidder in points:
        if bidder not in bidders:
            problems.append(f"{bidder} is not a bidder of this project")
    for bidder, row in points.items():
        for name, value in row.items():
            criterion = known.get(name)
            where = f"{bidder} / {name}"
            if criterion is None:
                problems.append(f"{where}: no such criterion")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{where}: points must be a number")
            elif not 0 <= value <= criterion.max_points:
                problems.append(f"{where}: {value} is outside 0-{criterion.max_points:g}")
            elif Decimal(str(value)) != Decimal(str(value)).quantize(CENT):
                problems.append(f"{where}: give points to at most two decimals")
    if complete:
        for bidder in bidders:
            row = points.get(bidder, {})
            missing = [c.name for c in criteria if c.name not in row]
            if missing:
                problems.append(f"{bidder}: not scored on {', '.join(missing)}")
    return problems


def total(row: Mapping[str, Any], criteria: Sequence[Criterion]) -> Decimal:
    return sum((Decimal(str(row[c.name])) for c in criteria), Decimal(0))


def group_total(row: Mapping[str, Any], criteria: Sequence[Criterion], group: str) -> Decimal:
    return sum((Decimal(str(row[c.name])) for c in criteria if c.group == group), Decimal(0))


def combine(totals: Sequence[Decimal], rule: str) -> Decimal:
    """The committee's score of one bidder from the members' totals."""
    if not totals:
        raise ValueError("no totals to combine")
    kept = sorted(totals)
    if rule == TRIMMED_MEAN:
        if len(kept) < TRIM_MINIMUM:
            raise ValueError(f"dropping the extremes needs {TRIM_MINIMUM} scores")
        kept = kept[1:-1]
    elif rule != MEAN:
        raise ValueError(f"unknown aggregation rule {rule!r}")
    return (sum(kept, Decimal(0)) / len(kept)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Standing:
    credit_code: str
    name: str
    score: Decimal
    price_score: Decimal
    rank: int
    recommended: bool
    totals: Mapping[str, Decimal]  # member key -> their total for this bidder


def rank_bidders(
    sheets: Mapping[str, Points],
    bidders: Sequence[Mapping[str, Any]],
    criteria: Sequence[Criterion],
    rule: str,
) -> list[Standing]:
    """Rank the bidders by the combined score, highest first. Equal scores share a rank
    (1, 1, 3); listing order between them is by the price group's mean, then name, so the
    report is stable. The first three ranks (at most three bidders) are recommended."""
    rows = []
    for bidder in bidders:
        code = str(bidder["credit_code"])
        totals = {member: total(points[code], criteria) for member, points in sheets.items()}
        prices = [group_total(points[code], criteria, "price") for points in sheets.values()]
        score = combine(list(totals.values()), rule)
        price = combine(prices, MEAN)
        rows.append((code, str(bidder["name"]), score, price, totals))
    rows.sort(key=lambda row: (-row[2], -row[3], row[1]))
    standings: list[Standing] = []
    for index, (code, name, score, price, totals) in enumerate(rows):
        rank = standings[-1].rank if standings and standings[-1].score == score else index + 1
        standings.append(Standing(code, name, score, price, rank, index < RECOMMENDED, totals))
    return standings
