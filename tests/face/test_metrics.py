"""Verification figures from scored pairs, on scores small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from face.metrics import pair_metrics


def _pairs(genuine: list[float], impostor: list[float]) -> tuple[list[float], list[bool]]:
    return genuine + impostor, [True] * len(genuine) + [False] * len(impostor)


def test_perfectly_separated_scores_have_no_errors() -> None:
    scores, same = _pairs([0.9, 0.8, 0.7], [0.1, 0.2, 0.3])

    metrics = pair_metrics(scores, same, threshold=0.5)

    assert (metrics.pairs, metrics.genuine, metrics.impostor) == (6, 3, 3)
    assert metrics.accuracy == 1.0
    assert metrics.eer == 0.0
    assert metrics.tar_at_far_0_1_percent == 1.0
    assert metrics.best_accuracy == 1.0
    assert 0.3 < metrics.best_threshold <= 0.7
    assert 0.3 < metrics.eer_threshold <= 0.7


def test_overlapping_scores_have_the_equal_error_rate_worked_out_by_hand() -> None:
    # genuine  0.35 0.6 0.7 0.8      impostor 0.1 0.2 0.3 0.65
    # Accepting at >= t, for t in (0.35, 0.6]: one genuine (0.35) is rejected, FRR 1/4, and
    # one impostor (0.65) accepted, FAR 1/4; below, FRR falls to 0 with FAR still 1/4;
    # above, FRR rises to 2/4 first. So EER = 0.25 on that interval.
    # At 0.5: 0.6 0.7 0.8 accepted, 0.1 0.2 0.3 rejected, 6 of 8 right.
    # At 0.35 (the best): all genuine accepted, only 0.65 wrongly, 7 of 8 right.
    # TAR at FAR 0.1% of 4 impostors means no impostor: t above 0.65, only 0.7 0.8 pass.
    scores, same = _pairs([0.35, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.65])

    metrics = pair_metrics(scores, same, threshold=0.5)

    assert metrics.eer == pytest.approx(0.25)
    assert 0.35 < metrics.eer_threshold <= 0.6
    assert metrics.accuracy == pytest.approx(6 / 8)
    assert metrics.best_accuracy == pytest.approx(7 / 8)
    assert 0.3 < metrics.best_threshold <= 0.35
    assert metrics.tar_at_far_0_1_percent == pytest.approx(0.5)


GENUINE = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95]


def test_one_impostor_in_a_thousand_is_within_the_false_accept_budget() -> None:
    # 0.1% of 1000 impostors is exactly one: the strong impostor at 0.72 may be accepted,
    # so every genuine pair above the mass of weak impostors counts.
    impostor = [*np.linspace(0.0, 0.3, 999).tolist(), 0.72]
    scores, same = _pairs(GENUINE, impostor)

    metrics = pair_metrics(scores, same, threshold=0.4)

    assert metrics.impostor == 1000
    assert metrics.tar_at_far_0_1_percent == 1.0


def test_one_impostor_in_fewer_than_a_thousand_sets_the_bar_above_it() -> None:
    # With 999 impostors one accept is 0.1001%: over budget, so the threshold must clear
    # 0.72 and only the five genuine scores 0.75 .. 0.95 are accepted.
    impostor = [*np.linspace(0.0, 0.3, 998).tolist(), 0.72]
    scores, same = _pairs(GENUINE, impostor)

    metrics = pair_metrics(scores, same, threshold=0.4)

    assert metrics.impostor == 999
    assert metrics.tar_at_far_0_1_percent == pytest.approx(0.5)


def test_two_strong_impostors_in_a_thousand_exceed_the_budget() -> None:
    # Accepting both (0.62 and 0.82) is 0.2%; the lowest threshold accepting only 0.82 is
    # 0.65, which keeps 0.65 .. 0.95: seven of ten genuine pairs.
    impostor = [*np.linspace(0.0, 0.3, 998).tolist(), 0.62, 0.82]
    scores, same = _pairs(GENUINE, impostor)

    metrics = pair_metrics(scores, same, threshold=0.4)

    assert metrics.tar_at_far_0_1_percent == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("scores", "same"),
    [([0.9, 0.8], [True, True]), ([0.1, 0.2], [False, False]), ([], [])],
    ids=["only-genuine", "only-impostor", "none"],
)
def test_figures_need_both_genuine_and_impostor_pairs(
    scores: list[float], same: list[bool]
) -> None:
    with pytest.raises(ValueError, match="genuine"):
        pair_metrics(scores, same, threshold=0.4)
