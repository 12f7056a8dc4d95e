"""The face engine: detection (SCRFD, 5 keypoints), 106-point landmarks and embeddings
(ArcFace-style, 512-d, unit length), run on onnxruntime's CPU provider.

Models are loaded by path through insightface's model zoo; nothing is ever downloaded.
One engine is meant to be shared by all threads of a process: onnxruntime sessions are
safe to run concurrently, and the engine keeps no per-call state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import onnxruntime
from insightface.app.common import Face
from insightface.model_zoo import model_zoo
from insightface.utils.face_align import arcface_dst
from numpy.typing import NDArray
from skimage.transform import SimilarityTransform

from face.model_pack import ModelPack, verify_model_pack

Vector = NDArray[np.float32]


@dataclass(frozen=True)
class EngineOptions:
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    detection_size: int = 640
    # Faces below this score are not reported at all; the quality gate has its own,
    # higher, threshold so that a weak detection is explained rather than ignored.
    detection_floor: float = 0.3


@dataclass(frozen=True)
class DetectedFace:
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    keypoints: NDArray[np.float32]  # 5 x 2: left eye, right eye, nose, mouth left, right
    score: float

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def as_dict(self) -> dict[str, Any]:
        return {"bbox": [round(v, 1) for v in self.bbox], "score": round(self.score, 4)}


class FaceEngine:
    """Loads a verified model pack once; detects, aligns, embeds and finds landmarks."""

    def __init__(self, pack: ModelPack, options: EngineOptions = EngineOptions()) -> None:
        verify_model_pack(pack)
        self.pack = pack
        self.options = options
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = options.inter_op_threads
        session_options.log_severity_level = 3

        def load(role: str) -> Any:
            return model_zoo.get_model(
                str(pack.files[role].path),
                providers=["CPUExecutionProvider"],
                sess_options=session_options,
            )

        self._detector = load("detector")
        self._landmarker = load("landmarks")
        self._recognizer = load("recognizer")
        size = (options.detection_size, options.detection_size)
        self._detection_size = size
        self._detector.prepare(-1, input_size=size, det_thresh=options.detection_floor)
        self._landmarker.prepare(-1)
        self._recognizer.prepare(-1)

    @property
    def model_id(self) -> str:
        return self.pack.model_id

    def detect(
        self, bgr: NDArray[np.uint8], input_size: tuple[int, int] | None = None
    ) -> list[DetectedFace]:
        """All faces, largest first; ``input_size`` overrides the detector's input side
        (smaller is cheaper, for frames a face fills)."""
        size = input_size or self._detection_size
        boxes, keypoints = self._detector.detect(bgr, input_size=size)
        faces = [
            DetectedFace(
                bbox=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                keypoints=np.asarray(points, dtype=np.float32),
                score=float(box[4]),
            )
            for box, points in zip(boxes, keypoints, strict=True)
        ]
        return sorted(faces, key=lambda face: face.width * face.height, reverse=True)

    def align(self, bgr: NDArray[np.uint8], face: DetectedFace) -> NDArray[np.uint8]:
        """The 112x112 crop the recognizer was trained on: the least-squares similarity
        transform of the 5 keypoints onto ArcFace's template, as insightface's norm_crop
        does (its own call uses a scikit-image API that is being removed)."""
        transform = SimilarityTransform.from_estimate(face.keypoints, arcface_dst)
        matrix = np.asarray(transform.params[0:2, :], dtype=np.float64)
        crop = cv2.warpAffine(bgr, matrix, (112, 112), borderValue=0.0)
        return np.asarray(crop, dtype=np.uint8)

    def embed(self, aligned: NDArray[np.uint8]) -> Vector:
        """A unit-length embedding of an aligned crop."""
        feature = np.asarray(self._recognizer.get_feat([aligned])[0], dtype=np.float32)
        norm = float(np.linalg.norm(feature))
        return feature / norm if norm > 0 else feature

    def landmarks(self, bgr: NDArray[np.uint8], face: DetectedFace) -> NDArray[np.float32]:
        """106 x 2 landmark points in image pixels."""
        wrapped = Face(bbox=np.asarray(face.bbox), kps=face.keypoints, det_score=face.score)
        return np.asarray(self._landmarker.get(bgr, wrapped), dtype=np.float32)
