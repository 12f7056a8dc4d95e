"""Enrollment's pose gate on portraits nobody here rendered, and what the pose costs.

    .venv/bin/python -m bench.pose_bench

For every frontal face of the photos installed packages ship, and of ../shared/faces when
present, prints the quality issues enrollment raises (default thresholds) and the pose
read; then CPU milliseconds per face of the landmark model, the pose fit on its output,
and the detector and recognizer next to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from face.analysis import analyze_image
from face.head_pose import estimate_head_pose
from face.intake import decode_image
from face.quality import QualityThresholds
from face.samples import BGR, encode
from tests.face.corpus import engine, shared_portraits, shipped_frontal_portraits

POSE_CODES = {"pose-yaw", "pose-pitch"}


def refusals(name: str, portraits: dict[str, BGR]) -> None:
    refused = []
    for face_name, portrait in portraits.items():
        analysis = analyze_image(
            engine(), decode_image(encode(portrait)), QualityThresholds(), single_face=True
        )
        codes = [issue.code for issue in analysis.issues]
        signals = analysis.signals
        pose = (
            f"yaw {signals.yaw_degrees:6.1f} pitch {signals.pitch_degrees:6.1f}" if signals else ""
        )
        print(f"  {face_name:28s} {pose} {codes or ''}")
        if POSE_CODES.intersection(codes):
            refused.append(face_name)
    print(f"{name}: {len(refused)} of {len(portraits)} refused for pose {refused}\n")


def cpu_ms(call: Callable[[], object], repeat: int = 30) -> float:
    call()
    start = time.process_time()
    for _ in range(repeat):
        call()
    return 1000 * (time.process_time() - start) / repeat


def main() -> None:
    refusals("shipped frontal portraits", shipped_frontal_portraits())
    shared = shared_portraits()
    if shared:
        refusals("../shared/faces portraits", shared)
    portrait = next(iter(shipped_frontal_portraits().values()))
    face = engine().detect(portrait)[0]
    landmarks = engine().landmarks(portrait, face)
    aligned = engine().align(portrait, face)
    print("CPU ms per face (1 thread):")
    print(f"  detector (640x640)        {cpu_ms(lambda: engine().detect(portrait)):7.2f}")
    print(f"  landmarks (2d106det)      {cpu_ms(lambda: engine().landmarks(portrait, face)):7.2f}")
    print(f"  pose fit on the landmarks {cpu_ms(lambda: estimate_head_pose(landmarks), 2000):7.3f}")
    print(f"  recognizer                {cpu_ms(lambda: engine().embed(aligned)):7.2f}")


if __name__ == "__main__":
    main()
