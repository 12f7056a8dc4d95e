"""An optional passive anti-spoofing model, used alongside the challenge when a center
provides one (EVALSIGN_LIVENESS_MODEL). Nothing else depends on it.

The interface is insightface's and MiniFASNet's: float32 [N, 3, 80, 80] BGR crops, 0-255,
of the face box enlarged 2.7 times; out comes either one live probability per crop
([N] or [N, 1]) or class scores ([N, K], softmaxed here, class 1 meaning live).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime
from numpy.typing import NDArray

from face.engine import DetectedFace

CROP_SCALE = 2.7
CROP_SIZE = 80


class AntiSpoofModelError(Exception):
    """The configured model file is missing or does not have the expected interface."""


class PassiveAntiSpoof:
    def __init__(self, path: Path, threads: int = 1) -> None:
        if not path.is_file():
            raise AntiSpoofModelError(f"no anti-spoof model at {path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise AntiSpoofModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
        inputs = self._session.get_inputs()
        shape = inputs[0].shape if inputs else []
        if len(inputs) != 1 or len(shape) != 4 or list(shape[1:]) != [3, CROP_SIZE, CROP_SIZE]:
            raise AntiSpoofModelError(f"{path} must take float32 [N, 3, 80, 80], not {shape}")
        self._input = inputs[0].name
        self.name = path.name

    @staticmethod
    def crop(bgr: NDArray[np.uint8], face: DetectedFace) -> NDArray[np.float32]:
        x1, y1, x2, y2 = face.bbox
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = max(x2 - x1, y2 - y1) * CROP_SCALE / 2
        source = np.array(
            [[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half]], np.float32
        )
        target = np.array([[0, 0], [CROP_SIZE, 0], [0, CROP_SIZE]], np.float32)
        matrix = cv2.getAffineTransform(source, target)
        crop = cv2.warpAffine(bgr, matrix, (CROP_SIZE, CROP_SIZE), borderMode=cv2.BORDER_CONSTANT)
        return np.transpose(crop.astype(np.float32), (2, 0, 1))

    def live_probabilities(self, crops: list[NDArray[np.float32]]) -> list[float]:
        if not crops:
            return []
        (output,) = self._session.run(None, {self._input: np.stack(crops)})[:1]
        scores = np.asarray(output, dtype=np.float64).reshape(len(crops), -1)
        if scores.shape[1] == 1:
            return [float(np.clip(v, 0, 1)) for v in scores[:, 0]]
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return [float(v) for v in (exp / exp.sum(axis=1, keepdims=True))[:, 1]]
