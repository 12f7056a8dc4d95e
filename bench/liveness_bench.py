"""Liveness benchmark: the server's CPU time to judge one check of the default challenge
(two or three of the reliable actions, filmed at the service's default frame rate, as
many frames as the capture hints ask for), next to the bare model cost.

    .venv/bin/python -m bench.liveness_bench [--repeats 5] [--earlier 20]

CPU time is process time (time.process_time), not wall time: the machine is shared.
Stages, as the service runs them: decode (face.intake.decode_image), the model stage
(face.capture.analyze_capture: detect on a few frames, track, landmarks on a subset,
embed the identity frames), the light challenge's samples on every frame
(face.capture.light_samples), judge (against the expert's template and ``--earlier``
earlier captures of the same expert: hashes and replay signatures). The service also
decodes each step's frames once as they arrive, to refuse a bad one at once; that second
decode is not counted here. For comparison, the
previous model stage (face.liveness.analyze_frame on every frame), and the bare models:
the detector at 640, the 106-point landmarks and the recognizer, per face.
Goal (issue 23): at most 0.5 CPU-seconds per check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from face.analysis import analyze_image
from face.capture import analyze_capture, light_samples
from face.engine import FaceEngine, Vector
from face.intake import DecodedImage, IntakeLimits, decode_image
from face.liveness import LivenessPolicy, Submission, analyze_frame, judge
from face.replay import ReplaySignature
from face.synthetic import Scene, Video, genuine, make_scene
from models.settings import Settings
from tests.face.corpus import encode, engine, portraits

PERSON = "yaoming-0"
CHALLENGES = [["turn_left", "open_mouth"], ["turn_right", "open_mouth", "turn_left"]]
GOAL_CPU_S = 0.5


def enrolled_template(face_engine: FaceEngine) -> Vector:
    analysis = analyze_image(
        face_engine,
        decode_image(encode(portraits()[PERSON], fmt="PNG")),
        LivenessPolicy().frame_thresholds,
        single_face=True,
    )
    assert analysis.embedding is not None
    return analysis.embedding


def cpu(run: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of one run."""
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def bare_costs(face_engine: FaceEngine, images: list[DecodedImage]) -> dict[str, float]:
    """CPU ms per face of each bare model call, over the capture's frames."""
    faces = [face_engine.detect(image.bgr)[0] for image in images]
    aligned = [
        face_engine.align(image.bgr, face) for image, face in zip(images, faces, strict=True)
    ]
    n = len(images)
    return {
        "detector (640)": 1000 * cpu(lambda: [face_engine.detect(i.bgr) for i in images], 1) / n,
        "landmarks": 1000
        * cpu(
            lambda: [face_engine.landmarks(i.bgr, f) for i, f in zip(images, faces, strict=True)], 1
        )
        / n,
        "recognizer": 1000 * cpu(lambda: [face_engine.embed(a) for a in aligned], 1) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--earlier", type=int, default=20)
    args = parser.parse_args()

    face_engine = engine()
    settings = Settings()
    limits = IntakeLimits(
        max_bytes=settings.liveness_frame_max_bytes,
        max_pixels=settings.liveness_frame_max_side**2,
    )
    scene = make_scene(face_engine, portraits()[PERSON])
    templates = {"expert": enrolled_template(face_engine)}
    print(
        f"model: {face_engine.model_id}; onnxruntime threads per session: "
        f"{face_engine.options.intra_op_threads}; cores: {os.cpu_count()}; "
        f"{settings.liveness_fps} frames/s; median of {args.repeats} runs, CPU (process) time\n"
    )
    for actions in CHALLENGES:
        report(
            face_engine,
            scene,
            templates,
            limits,
            fps=settings.liveness_fps,
            actions=actions,
            repeats=args.repeats,
            earlier=args.earlier,
        )


def report(
    face_engine: FaceEngine,
    scene: Scene,
    templates: dict[str, Vector],
    limits: IntakeLimits,
    *,
    fps: int,
    actions: list[str],
    repeats: int,
    earlier: int,
) -> None:
    """Measure one challenge and print its rows."""
    policy = LivenessPolicy()
    video: Video = genuine(scene, actions, seed=0, fps=fps)
    frames = video.frames
    submission = Submission(
        actions, video.timestamps_ms, video.prompts_ms, video.timestamps_ms[-1] + 2_000
    )
    images = [decode_image(data, limits) for data in frames]
    earlier_capture = genuine(scene, actions, seed=1, fps=fps)
    earlier_images = [decode_image(data, limits) for data in earlier_capture.frames]
    before = judge(
        analyze_capture(face_engine, earlier_images, policy, actions),
        Submission(actions, earlier_capture.timestamps_ms, earlier_capture.prompts_ms, 60_000),
        templates,
        policy,
    )
    assert before.replay_signature is not None
    signatures: list[ReplaySignature] = [before.replay_signature] * earlier
    hashes = [before.hashes] * earlier
    analyses = analyze_capture(face_engine, images, policy, actions)

    def judged() -> object:
        return judge(
            analyses,
            submission,
            templates,
            policy,
            earlier_hashes=hashes,
            earlier_signatures=signatures,
        )

    outcome = judge(
        analyses,
        submission,
        templates,
        policy,
        earlier_hashes=hashes,
        earlier_signatures=signatures,
    )
    assert outcome.passed, outcome.reasons
    decode_s = cpu(lambda: [decode_image(data, limits) for data in frames], repeats)
    capture_s = cpu(lambda: analyze_capture(face_engine, images, policy, actions), repeats)
    light_s = cpu(lambda: light_samples(images, analyses), repeats)
    judge_s = cpu(judged, repeats)
    every_frame_s = cpu(lambda: [analyze_frame(face_engine, image, policy) for image in images], 1)
    bare = bare_costs(face_engine, images)
    read = sum(not a.skipped for a in analyses)
    embedded = sum(a.photo.embedding is not None for a in analyses)
    total = decode_s + capture_s + light_s + judge_s
    bare_all = sum(bare.values()) * len(frames) / 1000
    print(f"challenge {actions}: {len(frames)} frames 640x480 JPEG")
    print(f"  frames read by the models: {read}, embedded: {embedded}")
    print(f"  {'stage':<44} {'CPU s':>7}")
    print(f"  {'decode':<44} {decode_s:7.3f}")
    print(f"  {'model stage (face.capture.analyze_capture)':<44} {capture_s:7.3f}")
    print(f"  {'light samples (face.capture.light_samples)':<44} {light_s:7.3f}")
    print(f"  {'judge (incl. replay vs ' + str(earlier) + ' earlier)':<44} {judge_s:7.3f}")
    print(
        f"  {'per check':<44} {total:7.3f}   goal <= {GOAL_CPU_S}: "
        f"{'met' if total <= GOAL_CPU_S else 'NOT met'}"
    )
    print(f"  {'before: analyze_frame on every frame':<44} {every_frame_s:7.3f}")
    print(f"  {'bare models on every frame':<44} {bare_all:7.3f}")
    print("  bare model cost per face: " + ", ".join(f"{k} {v:.1f} ms" for k, v in bare.items()))
    print()


if __name__ == "__main__":
    main()
