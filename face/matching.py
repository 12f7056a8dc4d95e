"""Comparing embeddings: 1:1 verification against a template, 1:few identification among a
set of templates, and templates built from several enrollment photos."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float32]


def normalize(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    if norm == 0:
        raise ValueError("cannot normalize a zero vector")
    return (vector / norm).astype(np.float32)


def mean_template(embeddings: Sequence[Vector]) -> Vector:
    """The normalized mean of unit embeddings: one template from several photos."""
    if not embeddings:
        raise ValueError("a template needs at least one embedding")
    return normalize(np.mean(np.stack([normalize(e) for e in embeddings]), axis=0))


def similarity(a: Vector, b: Vector) -> float:
    """Cosine similarity of two embeddings, in [-1, 1]."""
    return float(np.dot(normalize(a), normalize(b)))


@dataclass(frozen=True)
class Verification:
    similarity: float
    threshold: float

    @property
    def matched(self) -> bool:
        return self.similarity >= self.threshold


def verify(template: Vector, probe: Vector, threshold: float) -> Verification:
    return Verification(similarity(template, probe), threshold)


@dataclass(frozen=True)
class Identification:
    """``candidate`` is set only when the best match is above threshold and clearly ahead."""

    candidate: str | None
    outcome: str  # "identified", "no-match" or "ambiguous"
    scores: dict[str, float]
    threshold: float
    margin: float


def identify(
    templates: Mapping[str, Vector], probe: Vector, threshold: float, margin: float
) -> Identification:
    """The one candidate whose template the probe matches, ahead of the runner-up."""
    scores = {key: similarity(template, probe) for key, template in templates.items()}
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if not ranked or ranked[0][1] < threshold:
        return Identification(None, "no-match", scores, threshold, margin)
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < margin:
        return Identification(None, "ambiguous", scores, threshold, margin)
    return Identification(ranked[0][0], "identified", scores, threshold, margin)
