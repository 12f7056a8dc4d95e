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
import onnx
import onnxruntime
from insightface.model_zoo import model_zoo
from insightface.utils import face_align
from insightface.utils.face_align import arcface_dst
from numpy.typing import NDArray
from onnx import helper, numpy_helper
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
            path = pack.files[role].path
            model = model_zoo.get_model(
                str(path), providers=["CPUExecutionProvider"], sess_options=session_options
            )
            faster = prelu_as_max(onnx.load(str(path)))
            if faster is not None:
                model.session = onnxruntime.InferenceSession(
                    faster, sess_options=session_options, providers=["CPUExecutionProvider"]
                )
            return model

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
        """106 x 2 landmark points in image pixels.

        insightface's Landmark.get, step for step, with the points mapped back to the
        image in one matrix product instead of a Python loop over the 106 points."""
        model = self._landmarker
        size = int(model.input_size[0])
        x1, y1, x2, y2 = face.bbox
        centre = (x2 + x1) / 2, (y2 + y1) / 2
        scale = size / (max(x2 - x1, y2 - y1) * 1.5)
        crop, matrix = face_align.transform(bgr, centre, size, scale, 0)
        mean = model.input_mean
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / model.input_std, (size, size), (mean, mean, mean), swapRB=True
        )
        found = model.session.run(model.output_names, {model.input_name: blob})[0][0]
        points = np.asarray(found, dtype=np.float32).reshape((-1, 2))[-model.lmk_num :]
        points = (points + 1) * (size // 2)
        back = cv2.invertAffineTransform(matrix)
        mapped = points.astype(np.float64) @ back[:, :2].T + back[:, 2]
        return np.asarray(mapped, dtype=np.float32)


def prelu_as_max(model: onnx.ModelProto) -> bytes | None:
    """The model with every PRelu whose slopes are all at most 1 written as
    ``Max(x, slope * x)``, serialized; None when it has no such PRelu.

    For slope <= 1 both give x where x >= 0 and slope * x where x < 0, with the same one
    rounding (the product), so the outputs are bit for bit the same; but onnxruntime's CPU
    PRelu is slow: the rewrite takes a quarter off the recognizer's time (MobileFaceNet,
    34 PRelu) and a tenth off the landmarks' (2d106det). The model files stay as shipped
    (their checksums are verified); only the loaded graph changes.
    """
    graph = model.graph
    slopes = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes, changed = [], False
    for node in graph.node:
        slope = slopes.get(node.input[1]) if node.op_type == "PRelu" else None
        if slope is None or not bool((slope <= 1).all()):
            nodes.append(node)
            continue
        x, (y,) = node.input[0], node.output
        scaled = f"{y}__slope_x"
        nodes.append(helper.make_node("Mul", [x, node.input[1]], [scaled]))
        nodes.append(helper.make_node("Max", [x, scaled], [y], name=node.name))
        changed = True
    if not changed:
        return None
    del graph.node[:]
    graph.node.extend(nodes)
    return bytes(model.SerializeToString())
