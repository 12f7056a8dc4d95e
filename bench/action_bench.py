"""How often each challenge action is seen on faces this code was not tuned on.

    .venv/bin/python -m bench.action_bench [--cache /tmp/actions.pkl] [--faces N]

Every frontal face the installed packages ship, and those of ../shared/faces when present,
is rendered by the second generator (tests/face/second_generator.py) doing all five
actions once, in an order drawn per face, each after its prompt; the frames go through the
detector, the landmarks and face.actions.detect_events as in a real check. Per action it
prints how many were seen in their own time slot, how many slots showed an action of another
kind (false detections; a blink of its own accord is not one), and the share of frames whose
signals could be read; then the peak signal of each action, to show the margins.

``--cache`` keeps the rendered frames, so the same sequences can be judged by another
version of the code (PYTHONPATH pointing at it).
"""

from __future__ import annotations

import argparse
import pickle
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from face.actions import ACTIONS, detect_events
from face.frame_signals import FrameSignals, frame_signals
from face.intake import decode_image
from tests.face import second_generator as generator
from tests.face.corpus import engine, shared_portraits, shipped_frontal_portraits

Rendered = dict[str, tuple[list[str], generator.Sequence_]]


def render_all(limit: int | None) -> Rendered:
    portraits = {**shipped_frontal_portraits(), **shared_portraits()}
    rendered: Rendered = {}
    for index, (name, portrait) in enumerate(sorted(portraits.items())[:limit]):
        rng = np.random.default_rng(index)
        actions = [str(a) for a in rng.permutation(ACTIONS)]
        stage = generator.make_stage(engine(), portrait)
        rendered[name] = (actions, generator.sequence(stage, actions, seed=index))
        print(f"rendered {name}: {actions}", flush=True)
    return rendered


def signals_of(frames: list[bytes]) -> tuple[list[int], list[FrameSignals]]:
    indices, found = [], []
    for index, data in enumerate(frames):
        image = decode_image(data).bgr
        faces = [face for face in engine().detect(image) if face.score >= 0.6]
        if len(faces) != 1:
            continue  # the service does not read a frame with no face or two
        landmarks = engine().landmarks(image, faces[0])
        indices.append(index)
        found.append(frame_signals(image, faces[0], landmarks))
    return indices, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--faces", type=int)
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        rendered: Rendered = pickle.loads(args.cache.read_bytes())
    else:
        rendered = render_all(args.faces)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(rendered))
    seen: Counter[str] = Counter()
    false: Counter[str] = Counter()
    stray_blinks = 0  # blinks seen in another action's slot (the generator blinks only once)
    peaks: dict[str, list[float]] = defaultdict(list)
    readable = total = 0
    for name, (actions, video) in list(rendered.items()):
        indices, signals = signals_of(video.frames)
        if 0 not in indices:
            # A neighbour's face at the crop's edge: enrollment refuses such a photo
            # (multiple-faces), so no check would film it.
            print(f"  {name:26s} skipped: not one face in the first frame")
            del rendered[name]
            continue
        readable, total = readable + len(indices), total + len(video.frames)
        times = [video.timestamps_ms[i] for i in indices]
        events, _ = detect_events(times, signals)
        slot_ends = [*video.prompts_ms[1:], video.timestamps_ms[-1] + 1]
        found = []
        for action, start, end in zip(actions, video.prompts_ms, slot_ends, strict=True):
            inside = [e for e in events if start <= e.start_ms < end]
            hit = any(e.action == action for e in inside)
            seen[action] += hit
            others = {e.action for e in inside if e.action not in (action, "blink")}
            false[action] += bool(others)
            stray_blinks += action != "blink" and any(e.action == "blink" for e in inside)
            found.append(
                f"{action}:{'ok' if hit else 'MISSED'}{'+' + ','.join(others) if others else ''}"
            )
            peaks[action].append(max((e.peak for e in inside if e.action == action), default=0.0))
        print(f"  {name:26s} {' '.join(found)}", flush=True)
    faces = len(rendered)
    print(f"\n{faces} faces, {readable}/{total} frames readable")
    print(f"blinks seen in the {4 * faces} slots of other actions: {stray_blinks}")
    print("action      | seen in its slot | another action seen in its slot | peak (min / median)")
    for action in ACTIONS:
        values = peaks[action]
        print(
            f"{action:11s} | {seen[action]:3d}/{faces} | {false[action]:3d}/{faces} | "
            f"{min(values):.3f} / {float(np.median(values)):.3f}"
        )


if __name__ == "__main__":
    main()
