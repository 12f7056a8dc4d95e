"""The light challenge's measurement: does the face's colour, relative to the background,
follow the colours the screen showed, frame by frame?

A phone's screen a forearm away lights the face far more than the room behind it, so a
live face filmed under a random sequence of screen colours takes on each colour as it is
shown; the background barely does. Comparing the face with the background cancels what
changes both alike (the camera's white balance and exposure, the room's light). A video
made before the colours were chosen (a recording, a replay, a pre-rendered clip) follows
some other sequence or none.

Pure: frames, face boxes and the expected colours in, signals and a decision out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

# The colours the screen may show (RGB): far apart in chroma, so each step moves the
# reflection a different way.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 40, 40),
    "green": (40, 255, 40),
    "blue": (40, 40, 255),
    "yellow": (255, 255, 40),
    "magenta": (255, 40, 255),
    "cyan": (40, 255, 255),
}


@dataclass(frozen=True)
class LightThresholds:
    # Second generator, 12 faces: a live face correlates 0.854-0.998; a recording made
    # without the colours -0.22-0.28, a replay under another challenge's -0.31-0.41, the
    # right colours a step (400 ms) late 0.18-0.55 (tests/face/test_light_response.py).
    min_correlation: float = 0.6
    # Chroma swing of the face (log ratio to the background) per unit of screen chroma: a
    # recording's sensor noise can correlate by chance but does not swing this much.
    min_gain: float = 0.02
    # Camera and screen latency: the response may trail the colour by a frame or two.
    max_lag_frames: int = 2
    min_steps: int = 6


@dataclass(frozen=True)
class LightSample:
    """One frame's mean colour (RGB, 0-255) on the face and on the background."""

    face: tuple[float, float, float]
    background: tuple[float, float, float]


def sample(bgr: NDArray[np.uint8], bbox: tuple[float, float, float, float]) -> LightSample:
    """The face's centre (cheeks, nose, forehead; not the hair or the edges) and the
    frame's borders away from the head."""
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    face = (
        _Span(int(max(0, y1 + 0.25 * h)), int(min(height, y2 - 0.15 * h)), height),
        _Span(int(max(0, x1 + 0.25 * w)), int(min(width, x2 - 0.25 * w)), width),
    )
    # The background: the frame's outer band, less anything near the head.
    band_x, band_y = max(4, width // 8), max(4, height // 8)
    head = (
        _Span(int(max(0, y1 - 0.5 * h)), height, height),
        _Span(int(max(0, x1 - 0.5 * w)), int(min(width, x2 + 0.5 * w)), width),
    )
    if 2 * band_x > width or band_y >= height:
        # A frame too small for the band to be three separate strips.
        return _sample_masked(bgr, face, head, band_x, band_y)
    # Sums over rectangles, not a mask over the whole frame: the top strip and the left
    # and right strips below it, each less its overlap with the head. The same pixels
    # summed exactly, so the same means, for a fiftieth of the work.
    strips = (
        (_Span(0, band_y, height), _Span(0, width, width)),
        (_Span(band_y, height, height), _Span(0, band_x, width)),
        (_Span(band_y, height, height), _Span(width - band_x, width, width)),
    )
    total, count = np.zeros(3), 0
    for rows, cols in strips:
        for sign, part in ((1, (rows, cols)), (-1, (rows & head[0], cols & head[1]))):
            part_sum, part_count = _sum(bgr, part)
            total += sign * part_sum
            count += sign * part_count
    whole, pixels = _sum(bgr, (_Span(0, height, height), _Span(0, width, width)))
    face_sum, face_count = _sum(bgr, face)
    f = face_sum / face_count if face_count else whole / pixels
    b = total / count if count else whole / pixels
    return LightSample(
        (float(f[2]), float(f[1]), float(f[0])), (float(b[2]), float(b[1]), float(b[0]))
    )


def _sum(bgr: NDArray[np.uint8], part: tuple[_Span, _Span]) -> tuple[NDArray[np.float64], int]:
    """Each channel's sum over a rectangle (exact: integers well below 2**53), and its
    pixel count."""
    rows, cols = part
    if not rows.size or not cols.size:
        return np.zeros(3), 0
    sums = cv2.sumElems(bgr[rows.start : rows.stop, cols.start : cols.stop])
    return np.asarray(sums[:3], dtype=np.float64), rows.size * cols.size


@dataclass(frozen=True)
class _Span:
    """Rows or columns ``start:stop`` of a frame ``length`` long, as numpy slices them
    (a negative end counts from the far side)."""

    start: int
    stop: int
    length: int

    def __post_init__(self) -> None:
        start, stop, _ = slice(self.start, self.stop).indices(self.length)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "stop", max(start, stop))

    @property
    def size(self) -> int:
        return self.stop - self.start

    def __and__(self, other: _Span) -> _Span:
        start = max(self.start, other.start)
        return _Span(start, max(start, min(self.stop, other.stop)), self.length)


def _sample_masked(
    bgr: NDArray[np.uint8],
    face: tuple[_Span, _Span],
    head: tuple[_Span, _Span],
    band_x: int,
    band_y: int,
) -> LightSample:
    height, width = bgr.shape[:2]
    mask = np.zeros((height, width), bool)
    mask[:band_y, :] = True
    mask[:, :band_x] = True
    mask[:, width - band_x :] = True
    mask[head[0].start : head[0].stop, head[1].start : head[1].stop] = False
    background = bgr[mask] if mask.any() else bgr.reshape(-1, 3)
    pixels = bgr[face[0].start : face[0].stop, face[1].start : face[1].stop].reshape(-1, 3)
    if pixels.size == 0:
        pixels = bgr.reshape(-1, 3)
    f = pixels.mean(axis=0)
    b = background.mean(axis=0)
    return LightSample(
        (float(f[2]), float(f[1]), float(f[0])), (float(b[2]), float(b[1]), float(b[0]))
    )


def _chroma(rgb: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of RGB as zero-sum log chroma (intensity removed)."""
    logs = np.log(rgb + 8.0)
    return np.asarray(logs - logs.mean(axis=1, keepdims=True), dtype=np.float64)


def response(samples: Sequence[LightSample]) -> NDArray[np.float64]:
    """Per frame, the face's chroma relative to the background's (3 zero-sum values)."""
    face = np.asarray([s.face for s in samples], np.float64)
    background = np.asarray([s.background for s in samples], np.float64)
    return _chroma(face) - _chroma(background)


def expected(colours: Sequence[tuple[int, int, int]]) -> NDArray[np.float64]:
    """Per frame, the screen colour's chroma (3 zero-sum values)."""
    rgb = np.asarray(colours, np.float64) / 255.0
    return np.asarray(rgb - rgb.mean(axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class LightResult:
    passed: bool
    reason: str | None
    correlation: float
    lag_frames: int
    gain: float
    steps: int
    frames: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "correlation": round(self.correlation, 4),
            "lag_frames": self.lag_frames,
            "gain": round(self.gain, 4),
            "steps": self.steps,
            "frames": self.frames,
        }


def _fit(got: NDArray[np.float64], want: NDArray[np.float64]) -> tuple[float, float]:
    """Pearson correlation and least-squares gain of the centred responses on the colours."""
    x = (want - want.mean(axis=0)).ravel()
    y = (got - got.mean(axis=0)).ravel()
    xx, yy = float(x @ x), float(y @ y)
    if xx <= 1e-12 or yy <= 1e-12:
        return 0.0, 0.0
    return float(x @ y / np.sqrt(xx * yy)), float(x @ y / xx)


def judge_light(
    samples: Sequence[LightSample],
    colours: Sequence[tuple[int, int, int]],
    steps: Sequence[int],
    thresholds: LightThresholds = LightThresholds(),
) -> LightResult:
    """Whether the face followed the screen: ``colours[i]`` is what the screen showed when
    frame ``i`` was filmed, ``steps[i]`` the index of that colour step.

    The response may trail the screen by up to ``max_lag_frames``; the best lag counts."""
    if len(samples) != len(colours) or len(colours) != len(steps):
        raise ValueError("one sample, colour and step per frame")
    count = len(set(steps))
    if count < thresholds.min_steps or len(samples) < 2 * thresholds.min_steps:
        return LightResult(False, "light-not-followed", 0.0, 0, 0.0, count, len(samples))
    got, want = response(samples), expected(colours)
    best = (-2.0, 0.0, 0)
    for lag in range(thresholds.max_lag_frames + 1):
        correlation, gain = _fit(got[lag:], want[: len(want) - lag])
        if correlation > best[0]:
            best = (correlation, gain, lag)
    correlation, gain, lag = best
    passed = correlation >= thresholds.min_correlation and gain >= thresholds.min_gain
    return LightResult(
        passed,
        None if passed else "light-not-followed",
        correlation,
        lag,
        gain,
        count,
        len(samples),
    )


@dataclass(frozen=True)
class LightStep:
    colour: str
    ms: int


def draw_steps(rng: Any, total_ms: int, *, min_ms: int = 300, max_ms: int = 500) -> list[LightStep]:
    """Colour steps covering ``total_ms``, each a few hundred ms, never the same colour
    twice in a row. ``rng`` is a ``secrets.SystemRandom`` in service (a ``random.Random``
    in tests)."""
    names = sorted(PALETTE)
    steps: list[LightStep] = []
    elapsed = 0
    while elapsed < total_ms:
        choices = [name for name in names if not steps or name != steps[-1].colour]
        ms = rng.randrange(min_ms // 10, max_ms // 10 + 1) * 10
        steps.append(LightStep(rng.choice(choices), ms))
        elapsed += ms
    return steps


def colour_at(steps: Sequence[LightStep], t_ms: float) -> tuple[int, tuple[int, int, int]]:
    """The step showing at ``t_ms`` from the first step's start, and its colour (the last
    step's past the end)."""
    start = 0
    for index, step in enumerate(steps):
        if t_ms < start + step.ms:
            return index, PALETTE[step.colour]
        start += step.ms
    return len(steps) - 1, PALETTE[steps[-1].colour]
