"""The model stage's speed-ups change no number: the light sample's rectangle sums against
the plain mask they replace, and the PRelu rewrite of the shipped models against the
models as shipped, on faces from the shipped photos."""

from __future__ import annotations

import random

import numpy as np
import onnx
import onnxruntime
import pytest

from face import light_response as light
from face.engine import prelu_as_max
from tests.face.corpus import engine, portraits


def _masked(bgr: np.ndarray, bbox: tuple[float, float, float, float]) -> light.LightSample:
    """The light sample as first written: a mask over the whole frame."""
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    fx1, fx2 = int(max(0, x1 + 0.25 * w)), int(min(width, x2 - 0.25 * w))
    fy1, fy2 = int(max(0, y1 + 0.25 * h)), int(min(height, y2 - 0.15 * h))
    face = bgr[fy1:fy2, fx1:fx2].reshape(-1, 3)
    mask = np.zeros((height, width), bool)
    band_x, band_y = max(4, width // 8), max(4, height // 8)
    mask[:band_y, :] = True
    mask[:, :band_x] = True
    mask[:, width - band_x :] = True
    hx1, hx2 = int(max(0, x1 - 0.5 * w)), int(min(width, x2 + 0.5 * w))
    mask[int(max(0, y1 - 0.5 * h)) :, hx1:hx2] = False
    background = bgr[mask] if mask.any() else bgr.reshape(-1, 3)
    if face.size == 0:
        face = bgr.reshape(-1, 3)
    f, b = face.mean(axis=0), background.mean(axis=0)
    return light.LightSample(
        (float(f[2]), float(f[1]), float(f[0])), (float(b[2]), float(b[1]), float(b[0]))
    )


def test_the_light_sample_is_the_masked_mean_for_any_box_and_frame() -> None:
    rng = random.Random(7)
    pixels = np.random.default_rng(7)
    for _ in range(400):
        height, width = rng.choice([(480, 640), (640, 480), (9, 7), (30, 20), (5, 5), (100, 3)])
        frame = pixels.integers(0, 256, (height, width, 3), dtype=np.uint8)
        x1, y1 = rng.uniform(-width, 2 * width), rng.uniform(-height, 2 * height)
        box = (x1, y1, x1 + rng.uniform(-50, width), y1 + rng.uniform(-50, height))
        assert light.sample(frame, box) == _masked(frame, box), (height, width, box)


def _session(model: bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("role", ["landmarks", "recognizer"])
def test_prelu_rewrite_gives_the_shipped_models_outputs_bit_for_bit(role: str) -> None:
    file = engine().pack.files[role].path
    path = str(file)
    shipped = _session(file.read_bytes())
    rewritten_model = prelu_as_max(onnx.load(path))
    assert rewritten_model is not None
    rewritten = _session(rewritten_model)
    (size, _), name = shipped.get_inputs()[0].shape[2:4], shipped.get_inputs()[0].name
    crops = [
        np.resize(portrait, (size, size, 3)).transpose(2, 0, 1).astype(np.float32) / 128 - 1
        for portrait in list(portraits().values())[:4]
    ]
    noise = np.random.default_rng(0).uniform(-3, 3, (2, 3, size, size)).astype(np.float32)
    for blob in [*crops, *noise]:
        batch = blob[None]
        expected = shipped.run(None, {name: batch})[0]
        assert np.array_equal(rewritten.run(None, {name: batch})[0], expected)


def test_a_model_without_prelu_is_left_as_shipped() -> None:
    assert prelu_as_max(onnx.load(str(engine().pack.files["detector"].path))) is None
