"""Supervision at scale, on PostgreSQL: the filtered verification-log queries over one
million face checks (p50/p95 per filter; goal p95 < 200 ms) and `audit verify` speed in
entries per second (goal at least 100,000).

The rows are made in the database itself (generate_series), as a year of a busy center
would leave them: 2,000 experts, 5,000 phones, one check in seven failed. The queries run
through the service's own code (evaluation/supervision/searches.py, evaluation/kernel/audit.py).

    EVALSIGN_BENCH_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/
    evalsign_bench, dropped and created afresh), EVALSIGN_BENCH_ROWS (default 1000000),
    EVALSIGN_BENCH_AUDIT (default 200000 audit entries).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from hashlib import md5
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from evaluation.kernel import audit
from evaluation.supervision.searches import VerificationFilter
from models.clock import FrozenClock
from models.db import make_engine
from models.migrate import upgrade_to_head

URL = os.environ.get(
    "EVALSIGN_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/evalsign_bench"
)
ROWS = int(os.environ.get("EVALSIGN_BENCH_ROWS", "1000000"))
AUDIT = int(os.environ.get("EVALSIGN_BENCH_AUDIT", "200000"))
RUNS = 30
CENTER = "00000000-0000-0000-0000-00000000c0de"
END = datetime(2026, 12, 1, tzinfo=UTC)


def fresh_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


FILL = [
    "INSERT INTO centers (id, name, created_at) VALUES (:center, 'bench', now())",
    "INSERT INTO audit_heads (center_id, last_seq, last_hash) VALUES (:center, 0, :genesis)",
    """INSERT INTO experts (id, center_id, name, id_number_ciphertext, id_number_index,
        phone_ciphertext, employer_name, employer_credit_code, region_code, status, version,
        created_at, updated_at)
       SELECT md5('expert' || i)::uuid::text, :center, 'expert ' || i, '\\x00', md5('id' || i),
        '\\x00', 'employer', '91110000000000001H', '110101', 'active', 1, now(), now()
       FROM generate_series(1, 2000) AS i""",
    """INSERT INTO face_challenges (id, center_id, mode, expert_ids, actions, nonce_hash,
        capture, issued_by, issued_at, expires_at, used_at)
       SELECT md5('challenge' || i)::uuid::text, :center, '1:1',
        json_build_array(md5('expert' || (i % 2000 + 1))::uuid::text), '["blink","nod"]',
        md5('nonce' || i), '{}', 'bench', :end - make_interval(secs => i * 30),
        :end - make_interval(secs => i * 30) + interval '1 minute',
        :end - make_interval(secs => i * 30)
       FROM generate_series(1, :rows) AS i""",
    """INSERT INTO face_verifications (id, center_id, challenge_id, mode, candidate_ids,
        expert_id, passed, reasons, checks, similarity, model_id, device_id, device, client_ip,
        user_agent, frame_count, frame_hashes, frames, frames_retained, created_at)
       SELECT md5('verification' || i)::uuid::text, :center, md5('challenge' || i)::uuid::text,
        '1:1', json_build_array(md5('expert' || (i % 2000 + 1))::uuid::text),
        md5('expert' || (i % 2000 + 1))::uuid::text, i % 7 <> 0,
        CASE WHEN i % 49 = 0 THEN '["face-mismatch"]'::json
             WHEN i % 7 = 0 THEN '["action-not-seen"]'::json ELSE '[]'::json END,
        '[]', 0.5 + (i % 40) / 100.0, 'buffalo_l', 'phone-' || (i % 5000),
        json_build_object('id', 'phone-' || (i % 5000)),
        '10.' || (i % 250) || '.' || (i % 199) || '.' || (i % 251), 'bench', 30, '[]', '[]',
        false, :end - make_interval(secs => i * 30)
       FROM generate_series(1, :rows) AS i""",
    "ANALYZE",
]


def timed(run: Callable[[], Any]) -> tuple[float, float, int]:
    took, found = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        found = len(run())
        took.append((time.perf_counter() - started) * 1000)
    ordered = sorted(took)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], found


def main() -> None:
    # EVALSIGN_BENCH_REUSE=1: measure again on the rows of the last run (after a schema
    # change, say); they are made afresh otherwise.
    reuse = os.environ.get("EVALSIGN_BENCH_REUSE") == "1"
    if not reuse:
        fresh_database(URL)
    engine = make_engine(URL)
    upgrade_to_head(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in [] if reuse else FILL:
            connection.execute(
                text(statement),
                {
                    "center": CENTER,
                    "genesis": audit.GENESIS_HASH,
                    "rows": ROWS,
                    "end": END.replace(tzinfo=None),
                },
            )
    if not reuse:
        print(f"{ROWS:,} face checks made in {time.perf_counter() - started:.0f} s")
    sessions = sessionmaker(bind=engine)
    one_day = (END - timedelta(days=120), END - timedelta(days=119))
    searches: dict[str, VerificationFilter] = {
        "newest 50 (no filter)": VerificationFilter(),
        "one expert": VerificationFilter(expert_id=str(uuid.UUID(md5(b"expert42").hexdigest()))),
        "one device": VerificationFilter(device_id="phone-4242"),
        "failed": VerificationFilter(passed=False),
        "reason face-mismatch": VerificationFilter(reason="face-mismatch"),
        "one address": VerificationFilter(address="10.42.42.42"),
        "address range /16": VerificationFilter(address="10.42.0.0/16"),
        "one day": VerificationFilter(since=one_day[0], until=one_day[1]),
        "failed, one device, one month": VerificationFilter(
            passed=False, device_id="phone-4242", since=END - timedelta(days=30), until=END
        ),
    }
    print(f"filtered log queries over {ROWS:,} checks, 50 per page, {RUNS} runs each:")
    print("query | p50 ms | p95 ms | rows")
    worst = 0.0
    with sessions() as db:
        for name, where in searches.items():
            p50, p95, found = timed(
                lambda where=where: searches.search_verifications(db, CENTER, where, None, 50)
            )
            worst = max(worst, p95)
            print(f"{name} | {p50:.1f} | {p95:.1f} | {found}")
        # The next page of a long result, from a cursor deep in the log.
        rows = searches.search_verifications(db, CENTER, VerificationFilter(), None, 5000)
        cursor = searches.decode_cursor(searches.encode_cursor(rows[-1]))
        p50, p95, found = timed(
            lambda: searches.search_verifications(db, CENTER, VerificationFilter(), cursor, 50)
        )
        worst = max(worst, p95)
        print(f"page after 5,000 rows (cursor) | {p50:.1f} | {p95:.1f} | {found}")
    print(f"worst p95: {worst:.1f} ms (goal < 200 ms)")

    clock = FrozenClock(END)
    caller = audit.Caller(CENTER, "bench")
    started = time.perf_counter()
    with sessions() as db:
        for start in range(0, 0 if reuse else AUDIT, 5000):
            events = [
                audit.AuditEvent("bench.event", "bench", str(n), {"n": n, "note": "检查"})
                for n in range(start, min(AUDIT, start + 5000))
            ]
            audit.record_many(db, caller, clock, events)
            db.commit()
    print(f"{AUDIT:,} audit entries appended in {time.perf_counter() - started:.1f} s")
    with sessions() as db:
        started = time.perf_counter()
        report = audit.verify_chain(db, CENTER)
        took = time.perf_counter() - started
    assert report.ok, report
    print(
        f"audit verify: {report.entries_checked:,} entries in {took:.2f} s = "
        f"{report.entries_checked / took:,.0f} entries/s (goal >= 100,000)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
