"""Signing throughput: signHash through each vault backend against the bare `cryptography`
signature in the same run, and authorize + signHash round trips over real HTTP.

    .venv/bin/python bench/signing_bench.py [--seconds 2] [--http-pairs 400]

Over HTTP, a round trip is one request and its answer on a kept-alive connection to
`evalsign serve` (uvicorn, its default loop and HTTP parser: uvloop and httptools when
installed), and a pair is the two a signature takes, each its own committed transaction:

- credentials/authorize: the face session (token and device), the credential (the
  session's expert's, usable, expert active), the face check's freshness; a single-use SAD
  bound to the session, the credential and the hash is stored, and `signature.authorized`
  is appended to the audit chain (credential, hashes, session, verification id).
- signatures/signHash: the face session again, the SAD with its credential (same session,
  same credential, unused, unexpired, these hashes), the SAD consumed atomically, the key
  unwrapped (AES-256-GCM) for one P-256 signature, and `signature.created` appended
  (credential, hash, SAD id, verification id).

Each pair signs a new hash. The server's CPU time per pair is printed too: it moves much
less than the rate when other work shares the machine.

Goals (issue 6): the local vault's unwrap-and-sign within 3x of the bare P-256 signature,
and at least 200 authorize + signHash round trips per second over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes

from signing.algorithms import KeyAlgorithm
from signing.keyring import Keyring
from signing.vault import LocalVault, Vault, generate_private_key, sign_with

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SOFTHSM_MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
)


def rate(operation: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(operations per second, microseconds per operation) over about `seconds`."""
    operation()  # warm up
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            operation()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    return count / elapsed, elapsed / count * 1e6


def softhsm_vault(directory: Path) -> Vault | None:
    module = next((m for m in SOFTHSM_MODULES if m.is_file()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        print("softhsm2 not installed: the PKCS#11 rows are skipped (apt-get install softhsm2)")
        return None
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--so-pin",
            "so-pin-1234",
            "--pin",
            "pin-1234",
        ],
        check=True,
        capture_output=True,
    )
    from signing.pkcs11_vault import Pkcs11Vault

    return Pkcs11Vault(module, "bench", "pin-1234")


def vault_rows(seconds: float) -> dict[str, float]:
    digest = hashlib.sha256(b"evalsign").digest()
    sha256 = hashes.SHA256()
    results: dict[str, float] = {}
    local = LocalVault(Keyring(os.urandom(32)))
    with tempfile.TemporaryDirectory() as scratch:
        hsm = softhsm_vault(Path(scratch))
        print(f"{'signHash, one thread':<34}{'ops/s':>10}{'us/op':>10}{'x bare':>9}")
        for algorithm in KeyAlgorithm:
            bare_key = generate_private_key(algorithm)
            bare, bare_us = rate(lambda k=bare_key: sign_with(k, digest, sha256), seconds)
            rows = [("bare cryptography", bare, bare_us)]
            ref = local.generate_key("bench-local", algorithm)
            ops, us = rate(lambda r=ref: local.sign_digest(r, digest, sha256), seconds)
            rows.append(("local vault (unwrap + sign)", ops, us))
            if hsm is not None:
                hsm_ref = hsm.generate_key(f"bench-{algorithm.value}", algorithm)
                ops, us = rate(lambda r=hsm_ref: hsm.sign_digest(r, digest, sha256), seconds)
                rows.append(("SoftHSM2 (PKCS#11)", ops, us))
            for name, ops, us in rows:
                label = f"{algorithm.value} {name}"
                print(f"{label:<34}{ops:>10.0f}{us:>10.1f}{us / bare_us:>9.2f}")
                results[label] = us / bare_us
    return results


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its children (uvicorn's workers) so far,
    from /proc; None where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    try:
        stats = {pid: Path(f"/proc/{pid}/stat").read_text()}
    except OSError:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                stats[int(entry.name)] = (entry / "stat").read_text()
            except OSError:
                continue
    for process, stat in stats.items():
        # Fields after the ")" that closes the command name: ppid is the 2nd, utime the 12th.
        fields = stat[stat.rindex(")") + 2 :].split()
        if process == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_round_trips(
    pairs: int, clients: int, database_url: str | None = None, workers: int = 1
) -> float:
    """authorize + signHash pairs per second against `evalsign serve` (SQLite, its own
    process), from `clients` concurrent phones, each with its own expert and session."""
    import httpx2 as httpx

    from api.instance import initialize
    from api.services import build_services
    from models.clock import SystemClock
    from models.settings import Settings
    from tests.factories import expert_payload, face_session

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(data_dir=Path(scratch), database_url=database_url)
        clock = SystemClock()
        created = initialize(settings, clock)
        services = build_services(settings, clock=clock)
        port = free_port()
        # The service as deployed: default settings, its access log on (to /dev/null here).
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "api.cli", "serve", "--data-dir", scratch),
                *("--port", str(port), "--workers", str(workers)),
            ],
            env={**os.environ, **({"EVALSIGN_DATABASE_URL": database_url} if database_url else {})},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            operator = {"Authorization": f"Bearer {created.tokens['operator']}"}
            phones = []
            for _ in range(clients):
                expert = httpx.post(
                    f"{base}/api/v1/experts", json=expert_payload(), headers=operator
                ).json()
                credential = httpx.post(
                    f"{base}/api/v1/experts/{expert['id']}/credential", headers=operator
                ).json()
                with services.session_factory() as db:
                    token, _ = face_session(db, clock, created.center_id, expert["id"])
                phones.append((credential["id"], token))

            def run(credential_id: str, token: str, start: int, count: int) -> None:
                # http.client, not httpx: a light client leaves the CPU to the server.
                headers = {
                    "Authorization": f"Bearer {token}",
                    "X-Device-Id": "phone-test-1",
                    "Content-Type": "application/json",
                }
                connection = http.client.HTTPConnection("127.0.0.1", port)

                def post(path: str, body: dict[str, object]) -> dict[str, str]:
                    connection.request("POST", path, body=json.dumps(body), headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status} {data[:200]!r}")
                    answer: dict[str, str] = json.loads(data)
                    return answer

                for index in range(start, start + count):
                    digest = hashlib.sha256(f"{token}/{index}".encode()).digest()
                    body: dict[str, object] = {
                        "credentialID": credential_id,
                        "numSignatures": 1,
                        "hashes": [base64.b64encode(digest).decode()],
                        "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
                    }
                    sad = post("/csc/v2/credentials/authorize", body)["SAD"]
                    post(
                        "/csc/v2/signatures/signHash",
                        {**body, "SAD": sad, "signAlgo": ECDSA_SHA256},
                    )
                connection.close()

            for credential_id, token in phones:
                run(credential_id, token, -100, 10)  # warm up
            share = pairs // clients
            threads = [
                threading.Thread(target=run, args=(credential_id, token, n * share, share))
                for n, (credential_id, token) in enumerate(phones)
            ]
            cpu_before = cpu_seconds(server.pid)
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            cpu_after = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
            services.engine.dispose()
    done = share * clients
    per_second = done / elapsed
    cpu = (
        f", server CPU {(cpu_after - cpu_before) / done * 1000:.2f} ms a pair"
        if cpu_before is not None and cpu_after is not None
        else ""
    )
    print(
        f"HTTP, {clients} client(s), {'PostgreSQL' if database_url else 'SQLite'}, "
        f"{workers} worker(s): {per_second:.0f} authorize + signHash pairs/s = "
        f"{2 * per_second:.0f} round trips/s ({elapsed / done * 1000:.2f} ms a pair{cpu}, "
        f"{done} pairs)"
    )
    return per_second


def server_stack() -> str:
    """What uvicorn's automatic choice of loop and HTTP parser takes in this interpreter."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn on {loop} + {parser}"


def fresh_postgres(admin_url: str) -> str | None:
    """A new empty database on the PostgreSQL server, or None when none answers."""
    import sqlalchemy

    name = f"evalsign_bench_{os.getpid()}"
    try:
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
    except sqlalchemy.exc.OperationalError:
        print(f"no PostgreSQL at {admin_url}: the multi-worker row is skipped")
        return None
    return str(sqlalchemy.engine.make_url(admin_url).set(database=name).render_as_string(False))


def drop_postgres(admin_url: str, url: str) -> None:
    import sqlalchemy

    name = sqlalchemy.engine.make_url(url).database
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--http-pairs", type=int, default=400)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="server for the 2-worker row (a fresh database is made on it)",
    )
    args = parser.parse_args()
    print(
        f"EvalSign signing bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"{server_stack()}"
    )
    ratios = vault_rows(args.seconds)
    runs = [http_round_trips(args.http_pairs, clients) for clients in (1, 4)]
    postgres = fresh_postgres(args.postgres)
    if postgres is not None:
        try:
            runs += [http_round_trips(args.http_pairs, 4, postgres, workers=2)]
        finally:
            drop_postgres(args.postgres, postgres)
    pairs = max(runs)
    trips = 2 * pairs
    local = ratios["ec-p256 local vault (unwrap + sign)"]
    print(
        f"goal: local P-256 within 3x of bare: {local:.2f}x -> {'met' if local <= 3 else 'MISSED'}"
    )
    print(
        f"goal: >= 200 HTTP round trips/s: {trips:.0f} requests/s ({pairs:.0f} pairs/s) -> "
        f"{'met' if trips >= 200 else 'MISSED'} counting requests, "
        f"{'met' if pairs >= 200 else 'MISSED'} counting pairs"
    )


if __name__ == "__main__":
    main()
