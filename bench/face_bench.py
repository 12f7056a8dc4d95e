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

from face.analysis import analyze_bytes  # noqa: E402
from face.intake import IntakeLimits  # noqa: E402
from face.quality import QualityThresholds  # noqa: E402
from tests.face.corpus import encode, engine, portraits  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    face_engine = engine()
    # The bare path: insightface's own calls on the same model objects (detector,
    # landmark model, recognizer with its own norm_crop alignment).
    detector = face_engine._detector
    landmarker = face_engine._landmarker
    recognizer = face_engine._recognizer
    from insightface.app.common import Face

    limits, thresholds = IntakeLimits(), QualityThresholds()
    print(f"model: {face_engine.model_id}; onnxruntime threads per session: "
          f"{face_engine.options.intra_op_threads}")
    for width, height, face_px in ((640, 480, 160), (1280, 720, 220)):
        data = frame(width, height, face_px)

        def evalsign(data: bytes = data) -> object:
            analysis = analyze_bytes(face_engine, data, limits, thresholds,
                                     single_face=False, with_landmarks=True)
            assert analysis.embedding is not None
            return analysis

        def bare(data: bytes = data) -> object:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            boxes, points = detector.detect(image, input_size=(640, 640))
            face = Face(bbox=boxes[0, :4], kps=points[0], det_score=boxes[0, 4])
            landmarker.get(image, face)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return recognizer.get(image, face)

        ours = timed(evalsign, args.frames)
        theirs = timed(bare, args.frames)
        p50, p95 = percentiles(ours)
        b50, b95 = percentiles(theirs)
        print(f"\n{width}x{height} JPEG ({len(data) // 1024} KiB), one request at a time:")
        print(f"  evalsign analyze   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
        print(f"  bare model calls   p50 {b50:6.1f} ms   p95 {b95:6.1f} ms   (cv2 decode + "
              "detect + landmarks + embed)")
        print(f"  ratio evalsign/bare (p50): {p50 / b50:.2f}x   (goal <= 1.2x)")

        one = throughput(evalsign, 1, args.seconds)
        two = throughput(evalsign, 2, args.seconds)
        print(f"  throughput: 1 worker {one:5.1f} frames/s, 2 workers {two:5.1f} frames/s, "
              f"scaling {two / one:.2f}x   (goal >= 1.7x)")
        concurrent: list[float] = []
        lock = threading.Lock()

        def latency_worker() -> None:
            samples = timed(evalsign, args.frames // 2)
            with lock:
                concurrent.extend(samples)

        workers = [threading.Thread(target=latency_worker) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        c50, c95 = percentiles(concurrent)
        print(f"  under 2 concurrent requests: p50 {c50:6.1f} ms   p95 {c95:6.1f} ms")


if __name__ == "__main__":
    main()
