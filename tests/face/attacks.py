"""Presentation and replay attacks built from the second generator's faces (tests/face/
second_generator.py), one builder per class of the liveness confusion table. Each returns
the frames an attacker would send with their timestamps and the prompt times the client
would claim; replays also name the earlier capture the service has already seen."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from face.samples import BGR, encode
from tests.face import second_generator as generator
from tests.face.perturb import perturb


@dataclass
class Attempt:
    frames: list[bytes]
    timestamps_ms: list[int]
    prompts_ms: list[int]


def _decode(data: bytes) -> BGR:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    decoded: BGR = np.asarray(image, dtype=np.uint8)
    return decoded


def of(sequence: generator.Sequence_) -> Attempt:
    return Attempt(list(sequence.frames), list(sequence.timestamps_ms), list(sequence.prompts_ms))


def still(stage: generator.Stage, template: generator.Sequence_, seed: int) -> Attempt:
    """A printed photo held in front of the camera: the neutral face, the hand's small
    shifts and the sensor's noise, nothing else."""
    rng = np.random.default_rng(seed)
    frames = [
        encode(generator.render(stage, generator.Look(), rng), quality=85) for _ in template.frames
    ]
    return Attempt(frames, list(template.timestamps_ms), list(template.prompts_ms))


def _plane(yaw: float, pitch: float, shift: tuple[float, float]) -> np.ndarray:
    """Where a flat photo's corners land when it is turned by yaw and pitch (degrees) in
    front of a pinhole camera: a homography."""
    focal, w, h = 800.0, generator.FRAME_W, generator.FRAME_H
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    plane = np.column_stack([corners[:, 0] - w / 2, corners[:, 1] - h / 2, np.zeros(4)])
    rotation, _ = cv2.Rodrigues(np.array([math.radians(pitch), math.radians(yaw), 0.0]))
    placed = plane @ rotation.T + np.array([shift[0], shift[1], focal])
    projected = focal * placed[:, :2] / placed[:, 2:3] + np.array([w / 2, h / 2])
    return np.asarray(
        cv2.getPerspectiveTransform(corners.astype(np.float32), projected.astype(np.float32))
    )


def planar(stage: generator.Stage, template: generator.Sequence_, seed: int) -> Attempt:
    """The photo turned and tilted like the head would turn, on the genuine capture's
    timing: the actions' yaw and pitch become the photo's tilt."""
    rng = np.random.default_rng(seed)
    face = generator.render(stage, generator.Look(), rng)
    frames = []
    for index, look in enumerate(template.looks):
        shift = (8 * math.sin(index / 3), 5 * math.cos(index / 4))
        warped = cv2.warpPerspective(
            face,
            _plane(look.yaw * 1.2, look.pitch * 1.2, shift),
            (generator.FRAME_W, generator.FRAME_H),
            borderMode=cv2.BORDER_REPLICATE,
        )
        noisy = np.clip(warped + rng.normal(0, 2.5, warped.shape), 0, 255).astype(np.uint8)
        frames.append(encode(noisy, quality=85))
    return Attempt(frames, list(template.timestamps_ms), list(template.prompts_ms))


def screen(recorded: generator.Sequence_, seed: int) -> Attempt:
    """A recorded capture played on a monitor and filmed by the phone: smaller, a little
    keystoned, the screen's gamma and blue cast, its pixel grid's moire, some blur."""
    rng = np.random.default_rng(seed)
    w, h = generator.FRAME_W, generator.FRAME_H
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    moire = 4.0 * np.sin(2 * np.pi * (xs * 0.31 + ys * 0.07))[:, :, None]
    homography = _plane(4.0, -3.0, (6.0, -4.0)) @ np.array(
        [[0.9, 0, 0.05 * w], [0, 0.9, 0.05 * h], [0, 0, 1]]
    )
    frames = []
    for data in recorded.frames:
        shown = cv2.warpPerspective(_decode(data), homography, (w, h), borderValue=(20, 20, 20))
        lit = (
            255
            * (shown.astype(np.float32) / 255) ** 0.9
            * np.array([1.08, 1.0, 0.94], dtype=np.float32)
        )
        filmed = cv2.GaussianBlur(lit + moire, (0, 0), 0.8) + rng.normal(0, 2.0, lit.shape)
        frames.append(encode(np.clip(filmed, 0, 255).astype(np.uint8), quality=85))
    return Attempt(frames, list(recorded.timestamps_ms), list(recorded.prompts_ms))


def edited(recorded: generator.Sequence_, edit: str) -> Attempt:
    """A recorded capture sent again after one of tests/face/perturb.py's edits."""
    return Attempt(
        perturb(list(recorded.frames), edit),
        list(recorded.timestamps_ms),
        list(recorded.prompts_ms),
    )


def spliced(first: generator.Sequence_, second: generator.Sequence_) -> Attempt:
    """The first half of one person's capture, then the second half of another's."""
    half = len(first.frames) // 2
    frames = list(first.frames[:half]) + list(second.frames[half : len(first.frames)])
    return Attempt(frames, list(first.timestamps_ms[: len(frames)]), list(first.prompts_ms))


def looped(
    stage: generator.Stage, actions: Sequence[str], every: Sequence[str], seed: int
) -> Attempt:
    """Every action once, in a loop, with the client claiming each challenged prompt came
    just when the loop reached that action."""
    sequence = generator.sequence(stage, every, seed=seed)
    prompts = sorted(sequence.prompts_ms[list(every).index(a)] for a in actions)
    return Attempt(list(sequence.frames), list(sequence.timestamps_ms), prompts)
