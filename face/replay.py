"""Is a capture a replay of an earlier one, even after brightness, contrast, a shift, a
rescale, a crop or a re-encoding?

Pixels change under those edits; what the face did does not. Each usable frame keeps its
106 landmarks, normalized to the face (centred on their mean and divided by their RMS
radius, so a shift or a scale of the frame cancels), and, where the frame was embedded, its
face embedding (which brightness, contrast and JPEG barely move). A frame of the new
capture is *seen* in an earlier one when it pairs with an earlier frame that has nearly the
same normalized landmarks (and, where both were embedded, the same face), the pairs in the
order of both captures (their longest common subsequence, so dropped, doubled or shifted
frames do not hide a replay). A new capture of the same person does not repeat the
trajectory: the head sways, the actions start at other moments and reach other angles.

Measured on the second generator (tests/face/second_generator.py; two captures of the same
face doing the same two actions, and the first one edited): aligned frames of a replay lie
0.002-0.009 apart (brightness and JPEG at the low end, a 10% rescale or crop at the high
end), those of a new capture 0.02-0.03 (median). At 0.015, 92-100% of a replay's frames are
seen and at most 57% of a new capture's, reading every frame; as the service reads them
(face/capture.py, a subset), 72-100% of a replay's or a screen replay's and 16-33% of a new
capture's (bench/liveness_attacks_bench.py prints both).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SIGNATURE_VERSION = 1
POINTS = 106
EMBEDDING_SIZE = 512


@dataclass(frozen=True)
class ReplayThresholds:
    # RMS distance between two frames' normalized landmarks, in units of the face's RMS
    # radius (module docstring).
    max_shape_distance: float = 0.015
    # Two frames pair only if they show the same face: different people's landmarks can
    # lie close, their embeddings do not (the same face re-encoded stays above 0.96).
    min_embedding_similarity: float = 0.8
    # A capture is a replay when this share of its frames is seen in one earlier capture.
    max_share: float = 0.6


@dataclass(frozen=True)
class ReplaySignature:
    """What a capture's usable frames did, compactly: float16 normalized landmarks
    (frames x 212) and embeddings (frames x 512, zero rows for frames not embedded)."""

    shapes: NDArray[np.float16]
    embeddings: NDArray[np.float16]

    @property
    def frames(self) -> int:
        return int(self.shapes.shape[0])

    def to_bytes(self) -> bytes:
        header = np.array([SIGNATURE_VERSION, self.frames], dtype="<u4").tobytes()
        body = self.shapes.astype("<f2").tobytes() + self.embeddings.astype("<f2").tobytes()
        return header + zlib.compress(body, 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReplaySignature:
        version, frames = (int(v) for v in np.frombuffer(data[:8], dtype="<u4"))
        if version != SIGNATURE_VERSION:
            raise ValueError(f"unknown replay signature version {version}")
        body = zlib.decompress(data[8:])
        split = frames * POINTS * 2 * 2
        shapes = np.frombuffer(body[:split], dtype="<f2").reshape(frames, POINTS * 2)
        embeddings = np.frombuffer(body[split:], dtype="<f2").reshape(frames, EMBEDDING_SIZE)
        return cls(shapes.astype(np.float16), embeddings.astype(np.float16))


def normalized_shape(landmarks: NDArray[np.float32]) -> NDArray[np.float32]:
    """The landmarks centred on their mean and scaled to unit RMS radius, flattened."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    centred = points - points.mean(axis=0)
    radius = float(np.sqrt((centred**2).sum(axis=1).mean()))
    return np.asarray(centred / max(radius, 1e-6), dtype=np.float32).ravel()


def signature(
    landmarks: Sequence[NDArray[np.float32]],
    embeddings: Sequence[NDArray[np.float32] | None],
) -> ReplaySignature:
    """The signature of a capture's usable frames, in capture order."""
    shapes = np.zeros((len(landmarks), POINTS * 2), dtype=np.float16)
    vectors = np.zeros((len(landmarks), EMBEDDING_SIZE), dtype=np.float16)
    for index, (points, embedding) in enumerate(zip(landmarks, embeddings, strict=True)):
        shapes[index] = normalized_shape(points)
        if embedding is not None:
            vectors[index] = embedding
    return ReplaySignature(shapes, vectors)


@dataclass(frozen=True)
class ReplayMatch:
    share: float  # the largest share of frames seen in one earlier capture
    index: int  # which earlier capture (-1: none)
    compared_with: int

    def replayed(self, thresholds: ReplayThresholds) -> bool:
        return self.share >= thresholds.max_share


def _seen(
    current: ReplaySignature, earlier: ReplaySignature, thresholds: ReplayThresholds
) -> float:
    if current.frames == 0 or earlier.frames == 0:
        return 0.0
    a, b = current.shapes.astype(np.float32), earlier.shapes.astype(np.float32)
    # RMS over the points of the distance between each pair of frames' shapes.
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2 * a @ b.T
    shape = np.sqrt(np.clip(squared, 0, None) / POINTS)
    close = shape <= thresholds.max_shape_distance
    ea, eb = current.embeddings.astype(np.float32), earlier.embeddings.astype(np.float32)
    has_a, has_b = np.abs(ea).sum(axis=1) > 0, np.abs(eb).sum(axis=1) > 0
    both = has_a[:, None] & has_b[None, :]
    similar = (ea @ eb.T) >= thresholds.min_embedding_similarity
    close &= ~both | similar
    return _ordered_pairs(close) / current.frames


def _ordered_pairs(close: NDArray[np.bool_]) -> int:
    """The length of the longest common subsequence: how many frames pair in order."""
    previous = np.zeros(close.shape[1] + 1, dtype=np.int32)
    for row in close:
        current = np.zeros_like(previous)
        for j, paired in enumerate(row):
            current[j + 1] = previous[j] + 1 if paired else max(previous[j + 1], current[j])
        previous = current
    return int(previous[-1])


def match_replay(
    current: ReplaySignature,
    earlier: Sequence[ReplaySignature],
    thresholds: ReplayThresholds,
) -> ReplayMatch:
    """The earlier capture that shares the most frames with this one, and that share."""
    best, best_index = 0.0, -1
    for index, previous in enumerate(earlier):
        share = _seen(current, previous, thresholds)
        if share > best:
            best, best_index = share, index
    return ReplayMatch(best, best_index, len(earlier))
