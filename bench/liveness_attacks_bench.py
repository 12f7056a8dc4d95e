"""The liveness confusion table on faces this code was not tuned on.

    .venv/bin/python -m bench.liveness_attacks_bench [--faces N]

Every frontal face the installed packages ship (and those of ../shared/faces when present)
is rendered by the second generator (tests/face/second_generator.py, written apart from
face/synthetic.py); per face a challenge is drawn as the service draws it, and the frames
of each case below go through face.capture.analyze_capture and face.liveness.judge, as in
a real check, against the face's own enrolled template. The service has already seen two
captures of the face (an earlier sign-in and the genuine capture itself), so replays are
judged against them, as the database would hold them.

Cases: genuine (a new capture, judged against the earlier sign-in), still photo, planar
(the photo tilted like the head turns), screen replay (the genuine capture filmed off a
monitor), perturbed replay (brightness, contrast, shift, scale, crop, JPEG, all at once),
pre-rendered video (a capture of the right actions made before the challenge and never
sent: these checks alone cannot tell it from a live one; the light challenge and server-
timed prompts are what refuse it), spliced (two people), wrong order (the challenged
actions rotated), loop (every action).
BPCER is the share of genuine captures refused, APCER the share of attacks passed
(ISO/IEC 30107-3).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict

from evaluation.identity.face_checks import draw_actions
from face.actions import ACTIONS
from face.capture import analyze_capture
from face.engine import Vector
from face.intake import decode_image
from face.liveness import FrameAnalysis, Judgement, LivenessPolicy, Submission, analyze_frame, judge
from face.replay import ReplaySignature
from tests.face import attacks
from tests.face import second_generator as generator
from tests.face.corpus import encode, engine, shared_portraits, shipped_frontal_portraits
from tests.face.perturb import EDITS

POLICY = LivenessPolicy()


def analyze(frames: list[bytes], actions: list[str]) -> list[FrameAnalysis]:
    """The frames as the service reads them (face/capture.py)."""
    return analyze_capture(engine(), [decode_image(data) for data in frames], POLICY, actions)


def run(
    attempt: attacks.Attempt,
    actions: list[str],
    template: Vector,
    earlier: list[tuple[list[bytes], ReplaySignature]],
    frames: list[FrameAnalysis] | None = None,
) -> Judgement:
    submission = Submission(actions, attempt.timestamps_ms, attempt.prompts_ms, 60_000)
    return judge(
        frames if frames is not None else analyze(attempt.frames, actions),
        submission,
        {"expert": template},
        POLICY,
        earlier_hashes=[hashes for hashes, _ in earlier],
        earlier_signatures=[signature for _, signature in earlier],
    )


def seen(judgement: Judgement) -> tuple[list[bytes], ReplaySignature]:
    assert judgement.replay_signature is not None
    return judgement.hashes, judgement.replay_signature


def trajectory_share(judgement: Judgement) -> float:
    check = next(c for c in judgement.checks if c.name == "replay")
    return float(check.values["trajectory_share_seen_before"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=None, help="at most this many faces")
    args = parser.parse_args()
    portraits = {**shipped_frontal_portraits(), **shared_portraits()}
    names = sorted(portraits)[: args.faces]
    results: list[tuple[str, str, Judgement]] = []
    started = time.process_time()
    for index, name in enumerate(names):
        face_started = time.process_time()
        enrolled = analyze_frame(engine(), decode_image(encode(portraits[name])), POLICY)
        if enrolled.photo.embedding is None:
            print(f"{name}: no face in the portrait, skipped")
            continue
        template = enrolled.photo.embedding
        actions = draw_actions(random.Random(index))
        stage = generator.make_stage(engine(), portraits[name])
        other_name = names[(index + 1) % len(names)]
        other = generator.make_stage(engine(), portraits[other_name])

        earlier_actions = draw_actions(random.Random(1000 + index))
        earlier_capture = generator.sequence(stage, earlier_actions, seed=900 + index)
        before = run(attacks.of(earlier_capture), earlier_actions, template, [])
        recorded = generator.sequence(stage, actions, seed=index)
        recorded_frames = analyze(recorded.frames, actions)
        genuine = run(attacks.of(recorded), actions, template, [seen(before)], recorded_frames)
        results.append(("genuine", name, genuine))
        memory = [seen(before), seen(genuine)]

        cases: list[tuple[str, attacks.Attempt]] = [
            ("still", attacks.still(stage, recorded, seed=index)),
            ("planar", attacks.planar(stage, recorded, seed=index)),
            ("screen replay", attacks.screen(recorded, seed=index)),
            *((f"perturbed replay: {edit}", attacks.edited(recorded, edit)) for edit in EDITS),
            (
                "pre-rendered video",
                attacks.of(generator.sequence(stage, actions, seed=500 + index)),
            ),
            (
                "spliced",
                attacks.spliced(recorded, generator.sequence(other, actions, seed=index)),
            ),
            (
                "wrong order",
                attacks.of(generator.sequence(stage, actions[1:] + actions[:1], seed=300 + index)),
            ),
            ("loop", attacks.looped(stage, actions, ACTIONS, seed=700 + index)),
        ]
        for case, attempt in cases:
            results.append((case, name, run(attempt, actions, template, memory)))
        print(
            f"{name}: {actions}; genuine {'passed' if genuine.passed else genuine.reasons}; "
            f"{time.process_time() - face_started:.0f} CPU-s",
            flush=True,
        )
    print_table(results, len(names), time.process_time() - started)


def print_table(results: list[tuple[str, str, Judgement]], faces: int, cpu: float) -> None:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    shares: dict[str, list[float]] = defaultdict(list)
    for case, _name, judgement in results:
        group = "perturbed replay" if case.startswith("perturbed replay") else case
        for key in {case, group}:
            table[key]["pass" if judgement.passed else "fail"] += 1
            for reason in judgement.reasons:
                table[key][reason] += 1
        shares[group].append(trajectory_share(judgement))
    print(f"\n{faces} faces, second generator; {cpu:.0f} CPU-s in all\n")
    print(f"{'case':<34} {'n':>3} {'passed':>6} {'refused':>7} {'rate':>12}  reasons")
    for case in sorted(table, key=_order):
        counts = table[case]
        total = counts["pass"] + counts["fail"]
        if case == "genuine":
            rate = f"BPCER {counts['fail'] / total:.1%}"
        else:
            rate = f"APCER {counts['pass'] / total:.1%}"
        reasons = ", ".join(
            f"{r} {n}" for r, n in counts.most_common() if r not in {"pass", "fail"}
        )
        print(
            f"{case:<34} {total:>3} {counts['pass']:>6} {counts['fail']:>7} {rate:>12}  {reasons}"
        )
    print(
        "\nshare of frames repeating an earlier capture's motion (replay at >= "
        f"{POLICY.replay.max_share}): min / max"
    )
    for group in ("genuine", "pre-rendered video", "screen replay", "perturbed replay"):
        if shares[group]:
            print(f"  {group:<20} {min(shares[group]):.2f} / {max(shares[group]):.2f}")


def _order(case: str) -> tuple[int, str]:
    first = ["genuine", "still", "planar", "screen replay", "perturbed replay"]
    if case in first:
        return first.index(case), case
    if case.startswith("perturbed replay"):
        return 4, case
    return 5 + ["pre-rendered video", "spliced", "wrong order", "loop"].index(case), case


if __name__ == "__main__":
    main()
