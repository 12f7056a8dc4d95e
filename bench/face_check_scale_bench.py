"""Face check cost against the size of the registry: the same real 1:1 face checks (a
genuine synthetic capture through the HTTP API, real models, PostgreSQL) with 100 and with
100,000 people enrolled (two centers in one database, checked alternately so that the
machine's load weighs on both alike). The comparison with everyone enrolled (the face-matches-other
anomaly) runs in the background sweep, so the check should cost the same: goal, median
latency at 100k within 1.2x of the median at 100. Also printed: this process's CPU
seconds per check, the database part of the check (record_verification), and the
background sweep's time for one round over all the checks made.

    .venv/bin/python bench/face_check_scale_bench.py [--small 100] [--large 100000]
        [--checks 5] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The registry beyond the one enrolled person is synthetic: random unit vectors as templates
(inserted directly, encrypted as enrollment encrypts them), on experts inserted directly.
A fresh database is created on the server and dropped afterwards. The replay look-back is
set to a minute and the clock moved past it between checks: synthetic captures of one scene
hash alike, and the replay check's cost does not depend on the registry.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.app import create_app
from api.instance import initialize
from api.jobs import sweep_cross_matches
from api.services import Services, build_services
from evaluation.identity import face_checks as face_checks_module
from evaluation.identity.faces import EMBEDDING_DTYPE, template_context
from face import synthetic as videos
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import Expert, FaceTemplate
from tests.face.corpus import encode, engine, portraits
from tests.factories import expert_payload

PERSON = "players-6"
CHUNK = 5_000


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enroll_person(client: TestClient, operator: dict[str, str]) -> str:
    expert = client.post("/api/v1/experts", json=expert_payload(), headers=operator).json()
    photo = (f"{PERSON}.jpg", encode(portraits()[PERSON]), "image/jpeg")
    enrolled = client.put(
        f"/api/v1/experts/{expert['id']}/face",
        files={"photos": photo},
        data={"consent": "true"},
        headers=operator,
    )
    assert enrolled.status_code == 201, enrolled.text
    return str(expert["id"])


def add_synthetic(services: Services, center_id: str, model_id: str, count: int) -> None:
    """`count` more experts, each with a random unit-vector template."""
    rng = np.random.default_rng(count)
    cipher = services.cipher
    now = services.clock.now()
    dummy = cipher.encrypt_bytes(b"000000", "bench")
    with services.engine.begin() as connection:
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            vectors = rng.normal(size=(size, 512)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [str(uuid.uuid4()) for _ in range(size)]
            connection.execute(
                insert(Expert),
                [
                    {
                        "id": expert_id,
                        "center_id": center_id,
                        "name": f"专家{start + n}",
                        "id_number_ciphertext": dummy,
                        "id_number_index": secrets.token_hex(32),
                        "phone_ciphertext": dummy,
                        "employer_name": "某设计院",
                        "employer_credit_code": "91110000000000000X",
                        "region_code": "110101",
                        "status": "active",
                        "kind": "expert",
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, expert_id in enumerate(ids)
                ],
            )
            rows = []
            for expert_id, vector in zip(ids, vectors, strict=True):
                packed = vector.astype(EMBEDDING_DTYPE).reshape(1, -1).tobytes()
                rows.append(
                    {
                        "expert_id": expert_id,
                        "center_id": center_id,
                        "model_id": model_id,
                        "template_ciphertext": cipher.encrypt_bytes(
                            packed, template_context(expert_id, "template")
                        ),
                        "embeddings_ciphertext": cipher.encrypt_bytes(
                            packed, template_context(expert_id, "embeddings")
                        ),
                        "photo_count": 1,
                        "quality": [],
                        "consent_recorded_at": now,
                        "enrolled_at": now,
                        "reference": "in-person",
                        "confirmed_at": now,
                        "confirmed_by": "bench",
                    }
                )
            connection.execute(insert(FaceTemplate), rows)
    with services.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()


class RecordTimer:
    """Times `record_verification`, the database part of a check: the part that compared
    the face with everyone enrolled before the sweep. A wrapper, the function unchanged."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._wrapped = face_checks_module.record_verification

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._wrapped(*args, **kwargs)
        finally:
            self.samples.append(time.perf_counter() - started)


def face_check(
    client: TestClient, operator: dict[str, str], expert_id: str, clock: FrozenClock, seed: int
) -> tuple[float, float]:
    """One genuine check of the enrolled person: the submission's latency and this
    process's CPU seconds for it."""
    scene = videos.make_scene(engine(), portraits()[PERSON])
    issued = client.post(
        "/api/v1/face/challenges", json={"expert_ids": [expert_id]}, headers=operator
    ).json()
    # A different capture each time, made before the clock starts.
    video = videos.genuine(scene, list(issued["actions"]), seed=seed)
    clock.advance(timedelta(seconds=8))
    files = [("frames", (f"{i}.jpg", f, "image/jpeg")) for i, f in enumerate(video.frames)]
    data = {
        "nonce": issued["nonce"],
        "timestamps_ms": json.dumps(video.timestamps_ms),
        "prompts_ms": json.dumps(video.prompts_ms),
        "device": json.dumps({"id": f"bench-phone-{seed}", "model": "Pixel 7"}),
    }
    started, cpu = time.perf_counter(), time.process_time()
    answer = client.post(issued["submit_url"], data=data, files=files)
    measured = (time.perf_counter() - started, time.process_time() - cpu)
    assert answer.status_code == 201 and answer.json()["passed"], answer.json()["reasons"]
    # Past the replay look-back: the synthetic captures of one scene hash alike.
    clock.advance(timedelta(minutes=2))
    return measured


def timed_sweep(services: Services) -> float:
    started = time.perf_counter()
    sweep_cross_matches(services)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=5)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()

    name = f"evalsign_bench_{secrets.token_hex(6)}"
    admin = create_engine(make_url(args.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            clock = FrozenClock(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
            settings = Settings(
                data_dir=Path(data_dir),
                database_url=url,
                jobs_in_serve=False,  # the bench runs the sweep itself, timed apart
                liveness_replay_window_s=60,
            )
            inits = {
                label: initialize(settings, clock, f"{label} center")
                for label in ("small", "large")
            }
            services = build_services(settings, clock=clock)
            model_id = services.face_engine().model_id
            timer = RecordTimer()
            face_checks_module.record_verification = timer
            centers: dict[str, dict[str, Any]] = {}
            with TestClient(create_app(services)) as client:
                for label, size in (("small", args.small), ("large", args.large)):
                    init = inits[label]
                    operator = _headers(init.tokens["operator"])
                    person = enroll_person(client, operator)
                    started = time.perf_counter()
                    add_synthetic(services, init.center_id, model_id, size - 1)
                    inserted_s = time.perf_counter() - started
                    centers[label] = {"operator": operator, "person": person, "walls": []}
                    centers[label] |= {"cpus": [], "records": [], "enrolled": size}
                    centers[label]["insert_s"] = round(inserted_s, 1)
                    face_check(client, operator, person, clock, seed=len(centers))  # warm-up
                timed_sweep(services)
                # Alternating, so the machine's load (shared, noisy) weighs on both alike.
                for n in range(args.checks):
                    order = ("small", "large") if n % 2 == 0 else ("large", "small")
                    for label in order:
                        center = centers[label]
                        timer.samples.clear()
                        wall, cpu = face_check(
                            client, center["operator"], center["person"], clock, 100 + n
                        )
                        center["walls"].append(wall)
                        center["cpus"].append(cpu)
                        center["records"] += timer.samples
                # One background round over every check just made, in both centers.
                sweep_s = timed_sweep(services)
            for label, center in centers.items():
                results[label] = {
                    "enrolled": center["enrolled"],
                    "insert_s": center["insert_s"],
                    "check_median_s": round(statistics.median(center["walls"]), 3),
                    "check_min_s": round(min(center["walls"]), 3),
                    "check_max_s": round(max(center["walls"]), 3),
                    "check_cpu_median_s": round(statistics.median(center["cpus"]), 3),
                    "record_median_ms": round(statistics.median(center["records"]) * 1000, 1),
                }
                print(json.dumps({label: results[label]}), flush=True)
            print(json.dumps({"sweep_round_s": round(sweep_s, 3), "checks": 2 * args.checks}))
            services.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    def ratio(key: str) -> float:
        return round(float(results["large"][key]) / float(results["small"][key]), 3)

    summary = {
        "latency_ratio_large_to_small": ratio("check_median_s"),
        "cpu_ratio_large_to_small": ratio("check_cpu_median_s"),
        "record_ratio_large_to_small": ratio("record_median_ms"),
        "goal": 1.2,
        "met": ratio("check_median_s") <= 1.2,
    }
    print(json.dumps(summary))
    return 0 if summary["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
