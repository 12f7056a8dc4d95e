"""The liveness confusion table on faces this code was not tuned on: every check the
service runs on a streamed capture, the light challenge included, together.

    .venv/bin/python -m bench.liveness_attacks_bench [--faces N] [--jobs 2]

Every frontal face the installed packages ship (and those of ../shared/faces when present)
is rendered by the second generator (tests/face/second_generator.py, written apart from
face/synthetic.py); a face whose rendered frame also shows a neighbour from its group photo
is skipped (two people in front of the phone are refused by design). Per face a challenge is
drawn as the service draws it, and the frames of each case below go through
face.capture.analyze_capture and face.liveness.judge, as in a real check, against the face's
own enrolled template. The service has already seen two captures of the face (an earlier
sign-in and the genuine capture itself), so replays are judged against them, as the database
would hold them.

The light challenge: the genuine capture is filmed live under the screen colours of its
own challenge (the service's draw_steps) and judged against them. Every attack is judged
against a new challenge's colours: a replay carries the colours its capture was filmed
under, a still or pre-rendered video none, and "pre-rendered, guessed colours" is lit by
a third, guessed sequence. A face rendered live that follows the colours and prompts as
they are revealed is not in the table: it passes these checks by design, and the phone's
passkey is what refuses it (issue 20).

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
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool

from evaluation.identity.capture_stream import Collected, light_check
from evaluation.identity.face_checks import draw_actions
from face import light_response as light
from face.actions import ACTIONS
from face.capture import analyze_capture, light_samples
from face.engine import Vector
from face.intake import decode_image
from face.liveness import FrameAnalysis, Judgement, LivenessPolicy, Submission, analyze_frame, judge
from face.replay import ReplaySignature
from tests.face import attacks
from tests.face import second_generator as generator
from tests.face.corpus import encode, engine, shared_portraits, shipped_frontal_portraits
from tests.face.perturb import EDITS

POLICY = LivenessPolicy()
Screen = Callable[[float], tuple[int, int, int]]


@dataclass(frozen=True)
class Outcome:
    """One capture's verdict: the judgement's checks and the light challenge's."""

    judgement: Judgement
    lit: bool

    @property
    def passed(self) -> bool:
        return self.judgement.passed and self.lit

    @property
    def reasons(self) -> list[str]:
        return [*self.judgement.reasons, *([] if self.lit else ["light-not-followed"])]


def colours(seed: int, actions: list[str]) -> list[light.LightStep]:
    """A challenge's screen colours, drawn as the service draws them."""
    total_ms = round(1000 * (0.6 + 1.5 * len(actions) + 0.3))
    return light.draw_steps(random.Random(seed), total_ms)


def screen_of(steps: list[light.LightStep]) -> Screen:
    return lambda t: light.colour_at(steps, 1000 * t)[1]


def run(
    attempt: attacks.Attempt,
    actions: list[str],
    template: Vector,
    earlier: list[tuple[list[bytes], ReplaySignature]],
    steps: list[light.LightStep],
    frames: list[FrameAnalysis] | None = None,
) -> Outcome:
    """The frames as the service reads them (face/capture.py), judged, and the light on
    them checked against the challenge's colours as the service checks it."""
    images = [decode_image(data) for data in attempt.frames]
    if frames is None:
        frames = analyze_capture(engine(), images, POLICY, actions)
    submission = Submission(actions, attempt.timestamps_ms, attempt.prompts_ms, 60_000)
    judgement = judge(
        frames,
        submission,
        {"expert": template},
        POLICY,
        earlier_hashes=[hashes for hashes, _ in earlier],
        earlier_signatures=[signature for _, signature in earlier],
    )
    shown = [light.colour_at(steps, t) for t in attempt.timestamps_ms]
    collected = Collected(
        attempt.frames,
        attempt.timestamps_ms,
        [index for index, _ in shown],
        [colour for _, colour in shown],
        attempt.prompts_ms,
    )
    return Outcome(judgement, light_check(collected, light_samples(images, frames)).passed)


def seen(judgement: Judgement) -> tuple[list[bytes], ReplaySignature]:
    assert judgement.replay_signature is not None
    return judgement.hashes, judgement.replay_signature


def trajectory_share(judgement: Judgement) -> float:
    check = next(c for c in judgement.checks if c.name == "replay")
    return float(check.values["trajectory_share_seen_before"])


Row = tuple[str, str, bool, list[str], bool, bool, float]  # case, face, passed, reasons,
# the checks but light passed, light passed, share of frames seen before


def face_rows(job: tuple[int, str, str, int]) -> tuple[list[Row], str]:
    """Every case for one face (run in a worker process)."""
    index, name, other_name, _ = job
    portraits = {**shipped_frontal_portraits(), **shared_portraits()}
    started = time.process_time()
    enrolled = analyze_frame(engine(), decode_image(encode(portraits[name])), POLICY)
    if enrolled.photo.embedding is None:
        return [], f"{name}: no face in the portrait, skipped"
    template = enrolled.photo.embedding
    actions = draw_actions(random.Random(index))
    stage = generator.make_stage(engine(), portraits[name])
    other = generator.make_stage(engine(), portraits[other_name])
    own, new, guessed = (
        colours(index, actions),
        colours(5000 + index, actions),
        colours(9000, actions),
    )

    earlier_actions = draw_actions(random.Random(1000 + index))
    earlier_steps = colours(1000 + index, earlier_actions)
    earlier_capture = generator.sequence(
        stage, earlier_actions, seed=900 + index, screen=screen_of(earlier_steps)
    )
    before = run(attacks.of(earlier_capture), earlier_actions, template, [], earlier_steps)
    recorded = generator.sequence(stage, actions, seed=index, screen=screen_of(own))
    recorded_frames = analyze_capture(
        engine(), [decode_image(d) for d in recorded.frames], POLICY, actions
    )
    # A portrait cut from a group photo can bring a neighbour's face into the rendered
    # frames: two people in front of the phone, refused by design, not a one-person
    # capture to count.
    if any(frame.photo.faces_found > 1 for frame in recorded_frames):
        return [], f"{name}: a second face in the rendered frames, skipped"
    genuine = run(
        attacks.of(recorded), actions, template, [seen(before.judgement)], own, recorded_frames
    )
    outcomes: list[tuple[str, Outcome]] = [("genuine", genuine)]
    memory = [seen(before.judgement), seen(genuine.judgement)]
    cases: list[tuple[str, attacks.Attempt]] = [
        ("still", attacks.still(stage, recorded, seed=index)),
        ("planar", attacks.planar(stage, recorded, seed=index)),
        ("screen replay", attacks.screen(recorded, seed=index)),
        *((f"perturbed replay: {edit}", attacks.edited(recorded, edit)) for edit in EDITS),
        ("pre-rendered video", attacks.of(generator.sequence(stage, actions, seed=500 + index))),
        (
            "pre-rendered, guessed colours",
            attacks.of(
                generator.sequence(stage, actions, seed=600 + index, screen=screen_of(guessed))
            ),
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
        outcomes.append((case, run(attempt, actions, template, memory, new)))
    rows = [
        (
            case,
            name,
            outcome.passed,
            outcome.reasons,
            outcome.judgement.passed,
            outcome.lit,
            trajectory_share(outcome.judgement),
        )
        for case, outcome in outcomes
    ]
    said = "passed" if genuine.passed else genuine.reasons
    return rows, f"{name}: {actions}; genuine {said}; {time.process_time() - started:.0f} CPU-s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=None, help="at most this many faces")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    portraits = {**shipped_frontal_portraits(), **shared_portraits()}
    names = sorted(portraits)[: args.faces]
    jobs = [(i, name, names[(i + 1) % len(names)], len(names)) for i, name in enumerate(names)]
    started = time.time()
    results: list[Row] = []
    with Pool(args.jobs) as pool:
        for rows, said in pool.imap(face_rows, jobs):
            print(said, flush=True)
            results.extend(rows)
    print_table(results, len(names), time.time() - started, args.jobs)


def print_table(results: list[Row], faces: int, wall: float, jobs: int) -> None:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    shares: dict[str, list[float]] = defaultdict(list)
    for case, _name, passed, reasons, others, lit, share in results:
        group = "perturbed replay" if case.startswith("perturbed replay") else case
        for key in {case, group}:
            table[key]["pass" if passed else "fail"] += 1
            table[key]["others refuse"] += not others
            table[key]["light refuses"] += not lit
            for reason in reasons:
                table[key][reason] += 1
        shares[group].append(share)
    print(f"\n{faces} faces, second generator; {wall:.0f} s on {jobs} processes\n")
    head = f"{'case':<34} {'n':>3} {'passed':>6} {'refused':>7} {'rate':>12}"
    print(f"{head} {'by the rest':>11} {'by light':>8}  reasons")
    for case in sorted(table, key=_order):
        counts = table[case]
        total = counts["pass"] + counts["fail"]
        if case == "genuine":
            rate = f"BPCER {counts['fail'] / total:.1%}"
        else:
            rate = f"APCER {counts['pass'] / total:.1%}"
        skip = {"pass", "fail", "others refuse", "light refuses"}
        why = ", ".join(f"{r} {n}" for r, n in counts.most_common() if r not in skip)
        print(
            f"{case:<34} {total:>3} {counts['pass']:>6} {counts['fail']:>7} {rate:>12} "
            f"{counts['others refuse']:>11} {counts['light refuses']:>8}  {why}"
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
    later = [
        "pre-rendered video",
        "pre-rendered, guessed colours",
        "spliced",
        "wrong order",
        "loop",
    ]
    return 5 + later.index(case), case


if __name__ == "__main__":
    main()
