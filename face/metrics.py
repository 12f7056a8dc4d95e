"""Verification accuracy figures from scored pairs: accuracy at a threshold, equal error
rate, true-accept rate at a fixed false-accept rate, and the best threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairMetrics:
    pairs: int
    genuine: int
    impostor: int
    threshold: float
    accuracy: float
    eer: float
    eer_threshold: float
    tar_at_far_0_1_percent: float
    best_threshold: float
    best_accuracy: float
    genuine_min: float
    genuine_mean: float
    impostor_max: float
    impostor_mean: float


def pair_metrics(scores: Sequence[float], same: Sequence[bool], threshold: float) -> PairMetrics:
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(same, dtype=bool)
    genuine, impostor = values[labels], values[~labels]
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("need at least one genuine and one impostor pair")
    candidates = np.unique(np.concatenate([values, [threshold]]))
    far = np.array([(impostor >= t).mean() for t in candidates])
    frr = np.array([(genuine < t).mean() for t in candidates])
    accuracy = np.array([((values >= t) == labels).mean() for t in candidates])
    crossing = int(np.argmin(np.abs(far - frr)))
    # TAR at FAR <= 0.1%: the lowest threshold that keeps impostor accepts within budget.
    allowed = np.flatnonzero(far <= 0.001)
    tar = float(1 - frr[allowed[0]]) if len(allowed) else 0.0
    best = int(np.argmax(accuracy))
    return PairMetrics(
        pairs=len(values),
        genuine=len(genuine),
        impostor=len(impostor),
        threshold=threshold,
        accuracy=float(((values >= threshold) == labels).mean()),
        eer=float((far[crossing] + frr[crossing]) / 2),
        eer_threshold=float(candidates[crossing]),
        tar_at_far_0_1_percent=tar,
        best_threshold=float(candidates[best]),
        best_accuracy=float(accuracy[best]),
        genuine_min=float(genuine.min()),
        genuine_mean=float(genuine.mean()),
        impostor_max=float(impostor.max()),
        impostor_mean=float(impostor.mean()),
    )
