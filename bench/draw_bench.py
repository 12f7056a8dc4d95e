"""Committee draw benchmark: time `draw_committee` over pools of 1,000, 10,000 and 100,000
candidates (1-3 specialties each from 20 codes, ~5% excluded, a spec of 3 specialties x
(3 seats, 2 backups)), and `verify_proof` on the largest proof. Pure CPU, no database.

    .venv/bin/python bench/draw_bench.py [--runs 7] [--budget-ms 300]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.committee.draw_proof import (
    Candidate,
    Exclusion,
    SeatSpec,
    draw_committee,
    new_server_secret,
    verify_proof,
)

SPECIALTIES = [f"{group}{n:02d}" for group in "ABCD" for n in range(1, 6)]  # 20 codes
SPEC = [SeatSpec(code, 3, 2) for code in ("A01", "B03", "C05")]
REASONS = ["employer-is-bidder", "served-same-tenderer", "declined-recently"]


def make_pool(size: int, rng: random.Random) -> tuple[list[Candidate], list[Exclusion]]:
    candidates = [
        Candidate(f"EXP{n:08d}", frozenset(rng.sample(SPECIALTIES, rng.randint(1, 3))))
        for n in range(size)
    ]
    exclusions = [
        Exclusion(c.expert_id, rng.choice(REASONS)) for c in candidates if rng.random() < 0.05
    ]
    return candidates, exclusions


def median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and best of `runs` timings, in ms (the best shows the noise of a shared host)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=300.0)
    args = parser.parse_args()

    rng = random.Random(20240601)
    secret = new_server_secret()
    rows = []
    proof: dict[str, object] = {}
    for size in (1_000, 10_000, 100_000):
        candidates, exclusions = make_pool(size, rng)

        def run(c: list[Candidate] = candidates, e: list[Exclusion] = exclusions) -> object:
            return draw_committee("bench", secret, "entropy", SPEC, c, e)

        ms, best = median_ms(run, args.runs)
        proof = draw_committee("bench", secret, "entropy", SPEC, candidates, exclusions).proof
        ranked = sum(len(entry["ranking"]) for entry in proof["specialties"])  # type: ignore[attr-defined]
        rows.append((size, len(exclusions), ranked, ms))
        print(
            f"draw_committee  {size:>7,} candidates  {len(exclusions):>5,} excluded  "
            f"{ranked:>6,} ranked  median {ms:7.1f} ms (best {best:6.1f})"
        )
    verify_ms, verify_best = median_ms(lambda: verify_proof(proof), args.runs)
    print(
        f"verify_proof    {rows[-1][0]:>7,} candidates (largest proof)"
        f"      median {verify_ms:7.1f} ms (best {verify_best:6.1f})"
    )
    size_mb = len(json.dumps(proof)) / 1e6
    print(f"proof size at {rows[-1][0]:,} candidates: {size_mb:.2f} MB of JSON")
    largest = rows[-1][3]
    verdict = "under" if largest < args.budget_ms else "OVER"
    print(f"100,000 candidates: {largest:.1f} ms, {verdict} the {args.budget_ms:.0f} ms budget")
    return 0 if largest < args.budget_ms else 1


if __name__ == "__main__":
    sys.exit(main())
