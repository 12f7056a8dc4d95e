"""A whole evaluation on two replicas that share only the database, the object store and
Redis: every call of the demo's journey (draw, QR sign-in, face checks, passkeys, scoring,
the report every member signs, the sealed contract, the evidence package) goes to the other
replica than the call before, and each replica has a data directory of its own.

Replicas share PostgreSQL in a deployment (SQLite is the one-machine default), so this runs
on PostgreSQL; on SQLite the single-instance demo test walks the same journey."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import redis

from api.demo import CENTER, Client, Server, on_local_port, run_journey
from api.instance import initialize
from api.services import load_stamp_font
from models.clock import SystemClock
from models.settings import Settings
from tests.conftest import on_postgres
from tests.s3_server import S3Server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not on_postgres(), reason="PostgreSQL only"),
]

REDIS_URL = "redis://127.0.0.1:6379/0"


class Alternating(Client):
    """The load balancer: each call to the next replica in turn. `base` stays the public
    address (what a passkey's origin names), whichever replica answers."""

    def __init__(self, public: str, replicas: list[str]) -> None:
        super().__init__(public)
        self.replicas = replicas
        self.served: list[str] = []

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        target = self.replicas[len(self.served) % len(self.replicas)]
        self.served.append(target)
        public, self.base = self.base, target
        try:
            return super().call(method, path, expect, **kwargs)
        finally:
            self.base = public


def test_a_whole_evaluation_alternating_between_two_replicas(
    tmp_path: Path, isolated_database_url: str, s3_server: S3Server
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as error:
        pytest.fail(f"the suite needs the Redis at {REDIS_URL}: {error}")
    prefix = f"evalsign-test-{secrets.token_hex(4)}"
    shared = {
        "database_url": isolated_database_url,
        "master_key": base64.b64encode(os.urandom(32)).decode(),
        "document_store": s3_server.new_location(),
        "redis_url": REDIS_URL,
        "rate_limit_key_prefix": prefix,
        "jobs_in_serve": False,
    }
    first = on_local_port(Settings(data_dir=tmp_path / "replica-1", **shared))
    # The same public URL (what phones and certificates name), another data directory.
    second = Settings(data_dir=tmp_path / "replica-2", public_url=first.public_url, **shared)
    init = initialize(first, SystemClock(), CENTER)
    load_stamp_font()
    said: list[str] = []
    out = tmp_path / "out"
    out.mkdir()
    try:
        with Server(first) as one, Server(second, port=_other_port(first)) as two:
            api = Alternating(first.public_url.rstrip("/"), [one, two])
            summary = run_journey(api, init.tokens, said.append, out)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)

    assert summary["project"]["status"] == "completed"
    assert summary["report"]["verdict"] == "valid" and summary["report"]["signatures"] == 5
    assert summary["contract"]["status"] == "completed"
    assert all(check == "ok" for check in summary["evidence"]["checks"].values())
    assert {one, two} == set(api.served) and len(api.served) > 200
    # Document bytes live in the object store: a replica's disk holds at most its bounded
    # spill cache of pieces it read, never a document of record.
    for replica in (first, second):
        kept = [p for p in replica.data_dir.rglob("*.pdf") if "cache" not in p.parts]
        assert kept == [], kept


def _other_port(settings: Settings) -> int:
    return int(on_local_port(settings).public_url.rsplit(":", 1)[1])
