"""Registry benchmark: import N experts through the CSV endpoint, then time list and
filter queries through the HTTP API (in-process ASGI client, real database).

    .venv/bin/python bench/registry_bench.py [--experts 10000] [--repeat 200]
                                             [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.app import create_app
from api.instance import initialize
from api.services import build_services
from evaluation.registry.expert_import import COLUMNS
from models.clock import SystemClock
from models.settings import Settings
from tests.factories import credit_code, id_number

REGIONS = [
    "110101",
    "110105",
    "110108",
    "310101",
    "310115",
    "440103",
    "440305",
    "510104",
    "330106",
    "320102",
    "420102",
    "610113",
]
SPECIALTIES = [
    f"{group}{major:02d}{minor:02d}"
    for group in "ABCD"
    for major in range(1, 6)
    for minor in range(1, 4)
]


def build_csv(count: int, rng: random.Random) -> tuple[bytes, list[str], list[str]]:
    employers = [(f"第{n}建筑设计研究院有限公司", credit_code()) for n in range(200)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    seen: set[str] = set()
    while len(seen) < count:
        number = id_number(region=rng.choice(REGIONS))
        if number in seen:
            continue
        seen.add(number)
        employer = rng.choice(employers)
        writer.writerow(
            [
                f"专家{len(seen):05d}",
                number,
                f"13{rng.randrange(10**9):09d}",
                ";".join(rng.sample(SPECIALTIES, rng.randint(1, 3))),
                employer[0],
                employer[1],
                rng.choice(REGIONS),
            ]
        )
    return out.getvalue().encode(), [code for _, code in employers], [name for name, _ in employers]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    rng = random.Random(20261123)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=args.database_url,
            max_import_rows=max(50_000, args.experts),
        )
        init = initialize(settings, SystemClock(), "Bench Center")
        app = create_app(build_services(settings))
        headers = {"Authorization": f"Bearer {init.tokens['operator']}"}
        data, credit_codes, employer_names = build_csv(args.experts, rng)
        print(f"database: {settings.resolved_database_url.split('@')[-1]}")
        print(f"csv: {args.experts} experts, {len(data) / 1e6:.1f} MB")

        with TestClient(app) as client:
            started = time.perf_counter()
            response = client.post(
                "/api/v1/experts/import",
                content=data,
                headers={**headers, "content-type": "text/csv"},
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:500]
            print(f"import: {elapsed:.2f} s ({args.experts / elapsed:.0f} experts/s)")

            first = client.get("/api/v1/experts", params={"limit": 50}, headers=headers).json()
            cursor = first["next_cursor"]
            deep_page = 1
            while deep_page < 100:  # a cursor deep into the list: page 100 of 50 if there is one
                following = client.get(
                    "/api/v1/experts", params={"limit": 50, "cursor": cursor}, headers=headers
                ).json()["next_cursor"]
                if following is None:
                    break
                cursor, deep_page = following, deep_page + 1

            queries: dict[str, Callable[[], dict[str, Any]]] = {
                "list first page (50)": lambda: {"limit": 50},
                f"list page {deep_page + 1} by cursor": lambda: {"limit": 50, "cursor": cursor},
                "filter specialty prefix": lambda: {"specialty": rng.choice(SPECIALTIES)[:3]},
                "filter specialty exact": lambda: {"specialty": rng.choice(SPECIALTIES)},
                "filter region prefix": lambda: {"region": rng.choice(REGIONS)[:4]},
                "filter employer code": lambda: {"employer_credit_code": rng.choice(credit_codes)},
                "filter employer name": lambda: {"employer": rng.choice(employer_names)[:4]},
                "filter combined": lambda: {
                    "specialty": rng.choice(SPECIALTIES)[:3],
                    "region": rng.choice(REGIONS)[:2],
                },
                "filter name": lambda: {"name": f"专家0{rng.randrange(1000):03d}"},
            }
            print(f"{'query':28} {'p50 ms':>8} {'p95 ms':>8} {'total':>7}")
            for label, params in queries.items():
                samples, total = [], 0
                for _ in range(args.repeat):
                    chosen = params()
                    started = time.perf_counter()
                    page = client.get("/api/v1/experts", params=chosen, headers=headers)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert page.status_code == 200, page.text
                    total = page.json()["total"]
                p50, p95 = percentiles(samples)
                print(f"{label:28} {p50:8.1f} {p95:8.1f} {total:7d}")

            started = time.perf_counter()
            report = client.get(
                "/api/v1/audit/verify", headers={"Authorization": f"Bearer {init.tokens['admin']}"}
            )
            print(
                f"audit verify: {report.json()['entries_checked']} entries in "
                f"{(time.perf_counter() - started) * 1000:.0f} ms, ok={report.json()['ok']}"
            )


if __name__ == "__main__":
    main()
