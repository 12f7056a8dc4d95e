"""Load benchmark: N simulated phones signing in by face through nginx, against one and then
two `evalsign serve` replicas on this machine.

    .venv/bin/python bench/load_bench.py [--phones 10] [--ramp-s 10] [--replicas 1,2]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

The deployment is the one compose.yaml describes, without Docker: replicas with their own
data directories sharing one PostgreSQL database (created here and dropped afterwards), an
S3 object store (moto in server mode, as in the tests), Redis for the rate limits (a
unique key prefix), the same master key, `EVALSIGN_JOBS_IN_SERVE=false` and one
`evalsign worker`; nginx in front (the config is written into a temporary directory in
the shape of deploy/nginx.conf; without nginx installed the bench says so and sends the
phones to the single replica directly).

Each phone is the demo's phone (api/demo.py) in a thread: scan of its personal QR,
consent, the streamed face check with the light challenge rendered live from the person's
photo, passkey, sign-in, accept and declare. The demo's pool has seven drawable faces, so
the bench stages several projects (a committee of five each) and binds several phones
(passkeys) per person before the clock starts; the per-device, per-person and per-address
caps are raised for the run because every phone shares one address and a few faces.

Printed per round: throughput (sign-ins/s over the round), p50/p95 of a whole sign-in, of
the request that closes the face check (the last streamed step, whose answer is the
judgement) and of the other step uploads; CPU seconds per check (the replicas' process CPU
from /proc over the round, divided by the face checks made; the worker's apart) and
database statements per check. pg_stat_statements needs shared_preload_libraries, which a
shared server rarely has: then transactions (xact_commit + xact_rollback) and rows touched
(tup_*) per check from pg_stat_database stand in, and the output says so.

The phones render their frames on the same cores as the replicas, and on a 2-core machine
two replicas cannot be faster than one: the figures to carry to a capacity plan
(docs/capacity.md) are CPU seconds and statements per check, and whether two replicas
serve the same load without errors, not their throughput.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api import demo  # noqa: E402
from api.demo import Client, Phone, Staged  # noqa: E402

SEATS = 5  # the demo project's committee: three A01 and two B02 members

# Every phone of the run comes from one address and a few faces: the production caps
# (models/settings.py) would rightly refuse them, and are not what this bench measures.
RAISED_LIMITS = {
    "EVALSIGN_RATE_LIMIT_PHONE_PER_ADDRESS": "100000/5 minutes",
    "EVALSIGN_RATE_LIMIT_PHONE_PER_DEVICE": "10000/5 minutes",
    "EVALSIGN_RATE_LIMIT_CHALLENGE_PER_ADDRESS": "100000/10 minutes",
    "EVALSIGN_RATE_LIMIT_CHALLENGE_PER_DEVICE": "1000/10 minutes",
    "EVALSIGN_RATE_LIMIT_CHALLENGE_PER_EXPERT": "1000/10 minutes",
    "EVALSIGN_RATE_LIMIT_REFUSALS_PER_ADDRESS": "10000/10 minutes",
    "EVALSIGN_LIVENESS_MAX_FAILURES": "50",
    "EVALSIGN_LIVENESS_DEVICE_MAX_FAILURES": "50",
    "EVALSIGN_PASSKEY_MAX_DEVICES": "10",
}


# -- pure parts (tests/bench/test_load_bench.py) ------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Count, p50, p95 and max of some latencies (seconds); an empty list gives count 0."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "max": round(max(values), 3),
    }


def nginx_config(upstream_ports: Sequence[int], listen_port: int, prefix: Path) -> str:
    """An nginx config in the shape of deploy/nginx.conf, on local ports, in the foreground,
    with its pid, logs and temporary files under `prefix`."""
    if not upstream_ports:
        raise ValueError("at least one upstream")
    servers = "".join(f"        server 127.0.0.1:{port};\n" for port in upstream_ports)
    # nginx run by root hands requests to unprivileged workers that could not write into a
    # private temporary directory; the bench's nginx is throwaway.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\n"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {prefix}/body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
        "    upstream evalsign {\n"
        f"{servers}"
        "        keepalive 32;\n"
        # Under uvicorn's 5 s: else nginx reuses a connection uvicorn has just closed and
        # answers a POST (never retried) with 502.
        "        keepalive_timeout 4s;\n"
        "    }\n"
        "    server {\n"
        f"        listen 127.0.0.1:{listen_port};\n"
        "        client_max_body_size 2g;\n"
        "        proxy_request_buffering off;\n"
        "        location / {\n"
        "            proxy_pass http://evalsign;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_set_header Host $host;\n"
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "            proxy_set_header X-Forwarded-Proto $scheme;\n"
        "            proxy_read_timeout 120s;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int:
    """Resident memory of a live process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")


# -- the deployment -----------------------------------------------------------------------


def _free_port() -> int:
    return demo._free_port()


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


@dataclass
class Deployment:
    environment: dict[str, str]
    work: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    replicas: list[tuple[int, subprocess.Popen[bytes]]] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None
    nginx: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, env=self.environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def init(self) -> dict[str, str]:
        done = subprocess.run(
            _python("init", "--data-dir", str(self.work / "init")),
            env=self.environment,
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        out = done.stdout.decode()
        tokens: dict[str, str] = json.loads(out[out.index("{") :])["tokens"]
        return tokens

    def start_replica(self, index: int) -> int:
        port = _free_port()
        process = self._spawn(
            f"replica{index}",
            _python("serve", "--port", str(port), "--data-dir", str(self.work / f"r{index}")),
        )
        self.replicas.append((port, process))
        return port

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", _python("worker", "--data-dir", str(self.work / "w")))

    def wait_ready(self, base: str, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{base} exited; see the logs in {self.work}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/readyz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base} not ready after {timeout:.0f} s")
            time.sleep(0.5)

    def start_nginx(self, ports: Sequence[int], listen_port: int) -> None:
        self.stop_nginx()
        prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=self.work))
        prefix.chmod(0o755)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_config(ports, listen_port, prefix))
        self.nginx = self._spawn(prefix.name, ["nginx", "-c", str(conf), "-p", str(prefix)])

    def stop_nginx(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(timeout=10)
        self.nginx = None

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"evalsign_loadbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the database's count of work ---------------------------------------------------------


class StatementCounter:
    """Statements (pg_stat_statements) or, without it, transactions and rows touched
    (pg_stat_database) on the bench's database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        with self.engine.connect() as conn:
            try:
                conn.execute(text("SELECT 1 FROM pg_stat_statements LIMIT 1"))
                self.source = "pg_stat_statements"
            except Exception:
                conn.rollback()
                self.source = "pg_stat_database"

    def read(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            size = {
                "database_bytes": int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
            }
            if self.source == "pg_stat_statements":
                calls = conn.execute(
                    text(
                        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                        "JOIN pg_database d ON d.oid = s.dbid "
                        "WHERE d.datname = current_database()"
                    )
                ).scalar_one()
                return {"statements": int(calls), **size}
            row = conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, "
                    "tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                    "WHERE datname = current_database()"
                )
            ).one()
            return {
                "transactions": int(row[0]),
                "rows_returned": int(row[1]),
                "rows_fetched": int(row[2]),
                "rows_written": int(row[3]),
                **size,
            }


def largest_tables(url: str, limit: int = 8) -> list[tuple[str, int, int, int]]:
    """The largest tables (name, bytes with indexes and TOAST, live rows, rows read by
    sequential scans): where the database's growth goes, live rows apart from the dead ones
    autovacuum will reuse, and which tables are read whole (a cost that grows with them)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT relname, pg_total_relation_size(relid), n_live_tup, seq_tup_read "
                    "FROM pg_stat_user_tables ORDER BY 2 DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
    finally:
        engine.dispose()
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


# -- the phones ---------------------------------------------------------------------------


class TimedClient(Client):
    """The demo's client, noting how long each call took, by what it was."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.timings: list[tuple[str, float]] = []
        self.frames = 0
        self.upload_bytes = 0

    def call(
        self,
        method: str,
        path: str,
        expect: int,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        started = time.perf_counter()
        try:
            return super().call(method, path, expect, headers, **kwargs)
        finally:
            data = kwargs.get("data")
            label = path
            if isinstance(data, dict) and "step" in data:
                files = kwargs.get("files", ())
                self.frames += len(files)
                self.upload_bytes += sum(len(part[1][1]) for part in files)
                label = "face-check-judgement" if expect == 201 else "face-check-step"
            self.timings.append((label, time.perf_counter() - started))


def _quiet(_: str) -> None:
    pass


def draw_project(staged: Staged, label: str) -> list[dict[str, Any]]:
    """Another project like the demo's on the same pool, drawn; returns its members."""
    api, operator = staged.api, staged.operator
    now = datetime.now(UTC)
    # A tenderer of its own: the draw excludes members who served the same tenderer lately.
    tenderer = (
        f"负载测试单位{label}",
        demo._credit_code(f"12110000B{secrets.randbelow(10**8):08d}"),
    )
    project = api.call(
        "POST",
        "/api/v1/projects",
        201,
        headers=operator,
        json={
            "code": f"LOAD-{label}-{secrets.token_hex(3)}",
            "name": f"负载测试项目 {label}",
            "regime": "tendering",
            "tenderer": {"name": tenderer[0], "credit_code": tenderer[1]},
            "bidders": [{"name": n, "credit_code": c} for n, c in demo.BIDDERS],
            "sections": [{"code": "1", "name": "施工一标段"}],
            "evaluation_start": (now + timedelta(seconds=5)).isoformat(),
            "evaluation_end": (now + timedelta(hours=8)).isoformat(),
            "mode": "remote",
            "committee": [
                {"specialty": "A01", "seats": 3, "backups": 1},
                {"specialty": "B02", "seats": 2, "backups": 1},
            ],
            "criteria": demo.CRITERIA,
            "aggregation": "mean",
        },
    )
    committed = api.call("POST", f"/api/v1/projects/{project['id']}/draws", 201, headers=operator)
    api.call(
        "POST",
        f"/api/v1/projects/{project['id']}/draws/{committed['id']}/run",
        200,
        headers=operator,
        json={"public_entropy": secrets.token_hex(4)},
    )
    listing = api.call(
        "GET", f"/api/v1/projects/{project['id']}/committee", 200, headers=staged.admin
    )
    members = [dict(m, project_id=project["id"]) for m in listing if m["role"] == "member"]
    return members


@dataclass
class Slot:
    """One sign-in of the run: a committee seat and the phone that takes it."""

    member: dict[str, Any]
    phone: Phone
    token: str = ""


class Phones:
    """The phones bound so far, per person; a new one is bound (passkey, after a face
    check at the desk) when a person needs one more than they have."""

    def __init__(self, staged: Staged) -> None:
        self.staged = staged
        self.by_person: dict[str, list[Phone]] = {}
        self.seeds = 0

    def phone(self, expert_id: str, nth: int) -> Phone:
        bound = self.by_person.setdefault(expert_id, [])
        while len(bound) <= nth:
            person = self.staged.phones[expert_id]
            self.seeds += 1
            # Distinct seeds: the renderer's seed is checks * 7919, and frames that repeat
            # an earlier check's are refused as a replay.
            fresh = Phone(
                person.name,
                expert_id,
                person.portrait,
                id_number=person.id_number,
                mobile=person.mobile,
                checks=self.seeds * 1000,
            )
            demo.bind_phone(self.staged, fresh, _quiet)
            bound.append(fresh)
        return bound[nth]


@dataclass
class Outcome:
    seconds: float = 0.0
    checks: int = 0
    timings: list[tuple[str, float]] = field(default_factory=list)
    frames: int = 0
    upload_bytes: int = 0
    error: str | None = None


def sign_in(staged: Staged, base: str, slot: Slot, outcome: Outcome) -> None:
    api = TimedClient(base)
    mine = replace(staged, api=api, phones={slot.phone.expert_id: slot.phone})
    before = slot.phone.checks
    started = time.perf_counter()
    try:
        demo.sign_in_by_phone(mine, slot.member, slot.token, _quiet)
    except Exception as exc:  # the run goes on; the failure is counted and shown
        outcome.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    outcome.seconds = time.perf_counter() - started
    outcome.checks = slot.phone.checks - before
    outcome.timings = api.timings
    outcome.frames = api.frames
    outcome.upload_bytes = api.upload_bytes


# -- one round ----------------------------------------------------------------------------


def run_round(
    deployment: Deployment,
    staged: Staged,
    phones: Phones,
    base: str,
    count: int,
    ramp_s: float,
    counter: StatementCounter,
) -> dict[str, Any]:
    projects = -(-count // SEATS)
    members: list[dict[str, Any]] = []
    for p in range(projects):
        members.extend(draw_project(staged, f"{len(deployment.replicas)}r{p}"))
    members = members[:count]
    seen: dict[str, int] = {}
    slots = []
    for member in members:
        nth = seen.get(member["expert_id"], 0)
        seen[member["expert_id"]] = nth + 1
        slots.append(Slot(member, phones.phone(member["expert_id"], nth)))
    for slot in slots:
        issued = staged.api.call(
            "POST",
            f"/api/v1/projects/{slot.member['project_id']}/assignments/"
            f"{slot.member['assignment_id']}/qr",
            201,
            headers=staged.operator,
        )
        slot.token = str(issued["token"])
    time.sleep(6)  # the projects' evaluation starts 5 s after they were made

    time.sleep(11)  # PostgreSQL flushes an idle backend's counts within 10 s
    pids = [p.pid for _, p in deployment.replicas]
    cpu_before = sum(process_cpu_seconds(pid) for pid in pids)
    worker_before = process_cpu_seconds(deployment.worker.pid) if deployment.worker else 0.0
    db_before = counter.read()
    outcomes = [Outcome() for _ in slots]
    threads = [
        threading.Thread(target=sign_in, args=(staged, base, slot, outcome), daemon=True)
        for slot, outcome in zip(slots, outcomes, strict=True)
    ]
    started = time.perf_counter()
    for i, thread in enumerate(threads):
        # Arrivals spread over the ramp, as members open the link over a few seconds.
        time.sleep(max(0.0, started + ramp_s * i / len(threads) - time.perf_counter()))
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = sum(process_cpu_seconds(pid) for pid in pids) - cpu_before
    worker_cpu = (
        process_cpu_seconds(deployment.worker.pid) - worker_before if deployment.worker else 0.0
    )
    time.sleep(11)
    db_after = counter.read()

    done = [o for o in outcomes if o.error is None]
    checks = sum(o.checks for o in outcomes)
    timings = [t for o in outcomes for t in o.timings]
    judged = sum(1 for label, _ in timings if label == "face-check-judgement")
    db = {k: db_after[k] - db_before[k] for k in db_after}
    return {
        "replicas": len(deployment.replicas),
        "phones": len(slots),
        "signed_in": len(done),
        "failed": [o.error for o in outcomes if o.error is not None],
        "face_checks": checks,
        "frame_kib_per_check": round(sum(o.upload_bytes for o in outcomes) / 1024 / checks)
        if checks
        else None,
        "replica_rss_mib": [round(process_rss_bytes(pid) / 2**20) for pid in pids],
        "frames_per_check": round(sum(o.frames for o in outcomes) / checks, 1) if checks else None,
        "wall_s": round(wall, 1),
        "sign_ins_per_s": round(len(done) / wall, 3),
        "sign_in_s": summarize([o.seconds for o in done]),
        "face_check_judgement_s": summarize(
            [s for label, s in timings if label == "face-check-judgement"]
        ),
        "face_check_step_s": summarize([s for label, s in timings if label == "face-check-step"]),
        "replica_cpu_s": round(cpu, 1),
        "replica_cpu_s_per_check": round(cpu / checks, 2) if checks else None,
        # A check cut short (expired, refused) costs less than one judged to its end.
        "judged_checks": judged,
        "replica_cpu_s_per_judged_check": round(cpu / judged, 2) if judged else None,
        "worker_cpu_s": round(worker_cpu, 1),
        "database_source": counter.source,
        "database_per_check": {k: round(v / checks, 1) for k, v in db.items()} if checks else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=10, help="sign-ins per round")
    parser.add_argument("--ramp-s", type=float, default=10.0, help="arrivals spread over this")
    parser.add_argument("--replicas", default="1,2", help="rounds, by replica count")
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rounds = [int(r) for r in args.replicas.split(",")]
    say = print

    from tests.s3_server import running_s3_server

    have_nginx = shutil.which("nginx") is not None
    if not have_nginx:
        say(
            "nginx is not installed (apt-get install -y nginx): the phones go to one replica "
            "directly and only the one-replica round runs."
        )
        rounds = [1]
    cores = os.cpu_count() or 1
    say(f"{cores} cores; load average {os.getloadavg()[0]:.1f} at the start")
    if cores <= 2 and max(rounds) > 1:
        say(
            f"On {cores} cores two replicas cannot be faster than one (the phones render on "
            "the same cores): compare CPU seconds and statements per check, not throughput."
        )

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="evalsign-loadbench-") as tmp,
        scratch_database(args.database_url) as database_url,
        running_s3_server() as s3,
    ):
        work = Path(tmp)
        work.chmod(0o755)
        listen = _free_port()
        # Phones reach the service by a name (WebAuthn refuses addresses): nginx's port, or
        # without nginx the one replica's.
        front = f"http://localhost:{listen}"
        environment = {
            **os.environ,
            **s3.environment,
            **RAISED_LIMITS,
            "PYTHONPATH": str(ROOT),
            "EVALSIGN_DATABASE_URL": database_url,
            "EVALSIGN_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "EVALSIGN_DOCUMENT_STORE": s3.new_location(),
            "EVALSIGN_REDIS_URL": args.redis_url,
            "EVALSIGN_RATE_LIMIT_KEY_PREFIX": f"loadbench-{uuid.uuid4().hex[:12]}",
            "EVALSIGN_JOBS_IN_SERVE": "false",
            "EVALSIGN_CENTER_NAME": demo.CENTER,
            "EVALSIGN_LOG_LEVEL": "WARNING",
        }
        deployment = Deployment(environment, work)
        try:
            tokens = deployment.init()
            first = _free_port() if have_nginx else listen
            deployment.environment["EVALSIGN_PUBLIC_URL"] = front
            # start_replica picks a free port; without nginx the one replica is the front.
            port = deployment.start_replica(1) if have_nginx else _start_on(deployment, first)
            deployment.start_worker()
            deployment.wait_ready(f"http://127.0.0.1:{port}", deployment.replicas[0][1], 180)
            if have_nginx:
                deployment.start_nginx([port], listen)
            _wait_front(front)
            counter = StatementCounter(database_url)
            say("staging: enrolling the demo's pool and drawing the projects ...")
            staged = demo.stage_project(TimedClient(front), tokens, _quiet, None)
            phones = Phones(staged)
            for count in rounds:
                while len(deployment.replicas) < count:
                    port = deployment.start_replica(len(deployment.replicas) + 1)
                    deployment.wait_ready(
                        f"http://127.0.0.1:{port}", deployment.replicas[-1][1], 180
                    )
                if have_nginx:
                    deployment.start_nginx([p for p, _ in deployment.replicas], listen)
                    _wait_front(front)
                say(f"round: {args.phones} phones through nginx to {count} replica(s) ...")
                result = run_round(
                    deployment, staged, phones, front, args.phones, args.ramp_s, counter
                )
                results.append(result)
                _print_round(result, say)
            say("largest tables at the end (with indexes; live rows; rows read by seq scans):")
            for name, size, live, scanned in largest_tables(database_url):
                say(f"    {name}: {size / 1024:.0f} KiB, {live} rows, {scanned} seq-read")
        finally:
            deployment.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0 if all(not r["failed"] for r in results) else 1


def _start_on(deployment: Deployment, port: int) -> int:
    process = deployment._spawn(
        "replica1", _python("serve", "--port", str(port), "--data-dir", str(deployment.work / "r1"))
    )
    deployment.replicas.append((port, process))
    return port


def _wait_front(front: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(front + "/readyz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{front} does not answer")
        time.sleep(0.2)


def _print_round(result: dict[str, Any], say: Any) -> None:
    say(
        f"  {result['replicas']} replica(s): {result['signed_in']}/{result['phones']} signed in "
        f"in {result['wall_s']} s = {result['sign_ins_per_s']} sign-ins/s; "
        f"{result['face_checks']} face checks of {result['frames_per_check']} frames "
        f"({result['frame_kib_per_check']} KiB); replicas' RSS {result['replica_rss_mib']} MiB"
    )
    for key in ("sign_in_s", "face_check_judgement_s", "face_check_step_s"):
        s = result[key]
        if s.get("n"):
            say(f"    {key}: p50 {s['p50']} s, p95 {s['p95']} s, max {s['max']} s (n={s['n']})")
    say(
        f"    CPU: {result['replica_cpu_s']} s in the replicas = "
        f"{result['replica_cpu_s_per_check']} s per check started, "
        f"{result['replica_cpu_s_per_judged_check']} s per check judged "
        f"({result['judged_checks']}; worker {result['worker_cpu_s']} s)"
    )
    say(f"    database per check ({result['database_source']}): {result['database_per_check']}")
    for error in result["failed"]:
        say(f"    failed: {error}")


if __name__ == "__main__":
    sys.exit(main())
