"""Score validation and aggregation: both rules, ties, recommended candidates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from evaluation.committee import scoring

CRITERIA = [
    scoring.Criterion("投标报价", 60, "price"),
    scoring.Criterion("施工组织设计", 30, "technical"),
    scoring.Criterion("企业信誉", 10, "business"),
]
BIDDERS = [{"name": "甲公司", "credit_code": "A"}, {"name": "乙公司", "credit_code": "B"}]


def sheet(
    a: tuple[float, float, float], b: tuple[float, float, float]
) -> dict[str, dict[str, float]]:
    names = [c.name for c in CRITERIA]
    return {"A": dict(zip(names, a, strict=True)), "B": dict(zip(names, b, strict=True))}


@pytest.mark.parametrize(
    ("points", "fragment"),
    [
        ({"Z": {"投标报价": 1}}, "not a bidder"),
        ({"A": {"价格": 1}}, "no such criterion"),
        ({"A": {"投标报价": 61}}, "outside 0-60"),
        ({"A": {"投标报价": -1}}, "outside 0-60"),
        ({"A": {"投标报价": "50"}}, "must be a number"),
        ({"A": {"投标报价": True}}, "must be a number"),
        ({"A": {"投标报价": 50.123}}, "two decimals"),
    ],
)
def test_bad_points_are_named(points: dict[str, dict[str, object]], fragment: str) -> None:
    problems = scoring.sheet_problems(points, ["A", "B"], CRITERIA, complete=False)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_a_draft_may_be_partial_but_a_submission_is_complete() -> None:
    partial = {"A": {"投标报价": 50.5}}
    assert scoring.sheet_problems(partial, ["A", "B"], CRITERIA, complete=False) == []
    problems = scoring.sheet_problems(partial, ["A", "B"], CRITERIA, complete=True)
    assert problems == [
        "A: not scored on 施工组织设计, 企业信誉",
        "B: not scored on 投标报价, 施工组织设计, 企业信誉",
    ]


def test_mean_ranks_highest_first() -> None:
    sheets = {
        "m1": sheet((50, 20, 8), (55, 25, 9)),  # A 78, B 89
        "m2": sheet((52, 22, 8), (50, 20, 7)),  # A 82, B 77
        "m3": sheet((40, 20, 5), (56, 26, 9)),  # A 65, B 91
    }
    standings = scoring.rank_bidders(sheets, BIDDERS, CRITERIA, scoring.MEAN)
    assert [(s.credit_code, s.score, s.rank) for s in standings] == [
        ("B", Decimal("85.67"), 1),
        ("A", Decimal("75.00"), 2),
    ]
    assert all(s.recommended for s in standings)


def test_trimmed_mean_drops_one_highest_and_one_lowest() -> None:
    totals = [Decimal(v) for v in ("90", "80", "80", "70", "10")]
    assert scoring.combine(totals, scoring.TRIMMED_MEAN) == Decimal("76.67")
    assert scoring.combine(totals, scoring.MEAN) == Decimal("66.00")
    with pytest.raises(ValueError, match="needs 5"):
        scoring.combine(totals[:4], scoring.TRIMMED_MEAN)
    # Equal extremes: only one copy of each is dropped.
    same = [Decimal(80)] * 5
    assert scoring.combine(same, scoring.TRIMMED_MEAN) == Decimal("80.00")


def test_ties_share_a_rank_and_only_three_are_recommended() -> None:
    bidders = [{"name": n, "credit_code": n} for n in ("丁", "丙", "乙", "甲")]
    row = {"投标报价": 50, "施工组织设计": 20, "企业信誉": 5}
    cheaper = {"投标报价": 55, "施工组织设计": 15, "企业信誉": 5}  # same total, more price
    low = {"投标报价": 10, "施工组织设计": 10, "企业信誉": 5}
    points = {"m1": {"丁": row, "丙": cheaper, "乙": row, "甲": low}}
    standings = scoring.rank_bidders(points, bidders, CRITERIA, scoring.MEAN)
    # All three at 75 share rank 1; the price subtotal, then the name, order them.
    assert [(s.name, s.rank) for s in standings] == [("丙", 1), ("丁", 1), ("乙", 1), ("甲", 4)]
    assert [s.recommended for s in standings] == [True, True, True, False]
