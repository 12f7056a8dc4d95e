"""Face engine benchmark: per-frame cost of EvalSign's analysis (decode + detect + align +
quality + embed + 106 landmarks) against the bare model calls on the same frames, for
640x480 and 1280x720 JPEGs, single and concurrent.

    .venv/bin/python bench/face_bench.py [--frames 60] [--seconds 8]

The machine is shared and noisy, so the goals are ratios measured in one run:
EvalSign's per-frame cost within 1.2x of the bare calls, and throughput with two workers
(both cores) at least 1.7x that of one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from insightface.app.common import Face

from face.analysis import analyze_bytes
from face.engine import FaceEngine
from face.intake import IntakeLimits
from face.quality import QualityThresholds
from tests.face.corpus import encode, engine, portraits


def frame(width: int, height: int, face_px: int) -> bytes:
    """A phone-like JPEG frame: a person's portrait centred on a plain background."""
    portrait = portraits()["t1-5"]
    scale = face_px / 160
    person = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 110, dtype=np.uint8)
    ph, pw = min(person.shape[0], height), min(person.shape[1], width)
    top, left = (height - ph) // 2, (width - pw) // 2
    canvas[top : top + ph, left : left + pw] = person[:ph, :pw]
    return encode(canvas, quality=90)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def timed(run: Callable[[], object], count: int) -> list[float]:
    run()  # warm-up
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def throughput(run: Callable[[], object], workers: int, seconds: float) -> float:
    done = [0] * workers
    stop = time.perf_counter() + seconds

    def work(index: int) -> None:
        while time.perf_counter() < stop:
            run()
            done[index] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def concurrent_latency(run: Callable[[], object], count: int) -> list[float]:
    """Latencies of ``count`` calls spread over two workers running at the same time."""
    samples: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = timed(run, count // 2)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def bench_frame(face_engine: FaceEngine, data: bytes, label: str, args: argparse.Namespace) -> None:
    limits, thresholds = IntakeLimits(), QualityThresholds()
    # The bare path: insightface's own calls on the same model objects (detector, landmark
    # model, recognizer with its own norm_crop alignment), after a plain cv2 decode.
    detector = face_engine._detector
    landmarker = face_engine._landmarker
    recognizer = face_engine._recognizer

    def evalsign() -> object:
        analysis = analyze_bytes(
            face_engine, data, limits, thresholds, single_face=False, with_landmarks=True
        )
        assert analysis.embedding is not None
        return analysis

    def bare() -> object:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        boxes, points = detector.detect(image, input_size=(640, 640))
        face = Face(bbox=boxes[0, :4], kps=points[0], det_score=boxes[0, 4])
        landmarker.get(image, face)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return recognizer.get(image, face)

    p50, p95 = percentiles(timed(evalsign, args.frames))
    b50, b95 = percentiles(timed(bare, args.frames))
    print(f"\n{label} JPEG ({len(data) // 1024} KiB), one request at a time:")
    print(f"  evalsign analyze   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
    print(
        f"  bare model calls   p50 {b50:6.1f} ms   p95 {b95:6.1f} ms   "
        "(cv2 decode + detect + landmarks + embed)"
    )
    print(f"  ratio evalsign/bare (p50): {p50 / b50:.2f}x   (goal <= 1.2x)")
    one = throughput(evalsign, 1, args.seconds)
    two = throughput(evalsign, 2, args.seconds)
    print(
        f"  throughput: 1 worker {one:5.1f} frames/s, 2 workers {two:5.1f} frames/s, "
        f"scaling {two / one:.2f}x   (goal >= 1.7x)"
    )
    c50, c95 = percentiles(concurrent_latency(evalsign, args.frames))
    print(f"  under 2 concurrent requests: p50 {c50:6.1f} ms   p95 {c95:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    face_engine = engine()
    print(
        f"model: {face_engine.model_id}; onnxruntime threads per session: "
        f"{face_engine.options.intra_op_threads}; cores: {os.cpu_count()}"
    )
    for width, height, face_px in ((640, 480, 160), (1280, 720, 220)):
        bench_frame(face_engine, frame(width, height, face_px), f"{width}x{height}", args)


if __name__ == "__main__":
    main()
