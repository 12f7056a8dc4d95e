"""Rebuilds face/head_shape.py, the 3D mean face the head-pose fit uses.

    .venv/bin/python -m bench.fit_head_model

The 106-point landmark model gives 2D points only. Their frontal layout is the median,
after a similarity alignment, of every near-frontal face in the photos the model wheels
ship (never the measurement photos in ../shared/faces). Their depth comes from
insightface's 3D mean shape of the 68-point markup (meanshape_68.pkl), interpolated to
each 106 point from the nearest 68 points of the same feature (contour, brows, nose,
eyes, lips) after the two layouts are aligned on eye centres, nose base and mouth corners.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from insightface.data import get_object
from numpy.typing import NDArray
from skimage.transform import SimilarityTransform

from face.engine import FaceEngine
from face.samples import IMAGES_DIR, MODEL_DIR, load
from models.settings import Settings

OUT = Path(__file__).resolve().parent.parent / "face" / "head_shape.py"
SOURCES = [MODEL_DIR / "yaoming.jpg", MODEL_DIR / "gdp.jpg", MODEL_DIR / "players.jpg"]
SOURCES += [IMAGES_DIR / "t1.jpg", IMAGES_DIR / "Tom_Hanks_54745.png"]
# 106-point feature groups and the 68-point groups their depth is read from.
GROUPS = [
    (range(0, 33), range(0, 17)),
    ([*range(43, 52), *range(97, 106)], range(17, 27)),
    (range(72, 87), range(27, 36)),
    ([*range(33, 43), *range(87, 97)], range(36, 48)),
    (range(52, 72), range(48, 68)),
]


def _anchors_106(points: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([points[38], points[88], points[80], points[52], points[61], points[0]])


def _anchors_68(points: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array(
        [
            points[36:42].mean(0),
            points[42:48].mean(0),
            points[33],
            points[48],
            points[54],
            points[8],
        ]
    )


def frontal_layout(engine: FaceEngine) -> NDArray[np.float64]:
    """Median 106-point layout of the near-frontal shipped faces, eye centres at (+-0.5, 0)."""
    eyes_at = np.array([[-0.5, 0.0], [0.5, 0.0]])
    aligned = []
    for path in SOURCES:
        image = load(path)
        for face in engine.detect(image):
            if face.width < 36 or face.score < 0.7:
                continue
            points = engine.landmarks(image, face).astype(np.float64)
            # Near-frontal: the nose base halfway between the eye centres (within 8% of
            # their distance), so that turned heads do not skew the layout.
            eyes = points[88, 0] - points[38, 0]
            if abs(points[80, 0] - (points[38, 0] + points[88, 0]) / 2) > 0.08 * abs(eyes):
                continue
            transform = SimilarityTransform.from_estimate(points[[38, 88]], eyes_at)
            aligned.append(transform(points))
    print(f"{len(aligned)} near-frontal faces")
    return np.asarray(np.median(np.stack(aligned), axis=0), dtype=np.float64)


def _mirror(layout: NDArray[np.float64]) -> list[int]:
    """For each point, the point nearest its mirror image across the face's midline."""
    flipped = layout * [-1.0, 1.0]
    return [int(np.argmin(np.linalg.norm(layout - point, axis=1))) for point in flipped]


def mean_face(engine: FaceEngine) -> NDArray[np.float64]:
    mean68 = np.asarray(get_object("meanshape_68.pkl"), dtype=np.float64)
    layout = frontal_layout(engine)
    # Symmetric: the median of a few dozen faces leans a little to one side.
    mirror = _mirror(layout)
    layout = (layout + layout[mirror] * [-1.0, 1.0]) / 2
    # Where each 106 point falls on the 68 shape (the two markups' vertical proportions
    # differ, hence an affine map, not a similarity); depth in the 68 shape's eye distance.
    source, target = _anchors_106(layout), _anchors_68(mean68)
    design = np.column_stack([source, np.ones(len(source))])
    affine, *_ = np.linalg.lstsq(design, target[:, :2], rcond=None)
    on68 = np.column_stack([layout, np.ones(len(layout))]) @ affine
    depth = np.zeros(106)
    for ours, theirs in GROUPS:
        group = mean68[list(theirs)]
        for index in ours:
            distance = np.linalg.norm(group[:, :2] - on68[index], axis=1)
            nearest = np.argsort(distance)[:3]
            weight = 1 / (distance[nearest] + 1e-3)
            depth[index] = float((group[nearest, 2] * weight).sum() / weight.sum())
    depth = (depth + depth[mirror]) / 2
    eyes68 = target[1] - target[0]
    depth = (depth - (depth[38] + depth[88]) / 2) / float(np.linalg.norm(eyes68[:2]))
    return np.column_stack([layout, depth])


def main() -> None:
    from api.services import face_engine_for

    shape = mean_face(face_engine_for(Settings()))
    rows = "\n".join(f"        [{x:.4f}, {y:.4f}, {z:.4f}]," for x, y, z in shape)
    OUT.write_text(
        '"""The 3D mean face of the 106-point landmark layout (x to the image\'s right, y down,\n'
        "z towards the camera; eye centres at (+-0.5, 0, 0)), written by bench/fit_head_model.py:\n"
        'see there how it was made."""\n\n'
        "import numpy as np\n\n"
        "MEAN_FACE = np.array(\n    [\n"
        f"{rows}\n    ],\n    dtype=np.float64,\n)\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
