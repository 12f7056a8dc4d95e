"""Idempotency-Key: a retried request acts once and gets the first answer back, byte for
byte, while a different request, another client or a server error never gets a stored one."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.middleware import Middleware

from api.app import create_app
from api.errors import install_error_handlers
from api.idempotency import IdempotencyMiddleware, client_scope, request_fingerprint
from api.middleware import RequestContextMiddleware
from api.services import Services, build_services
from models.clock import FrozenClock, SystemClock
from models.db import make_engine
from models.migrate import upgrade_to_head
from models.settings import Settings
from models.tables import IdempotentRequest
from signing.keyring import Keyring
from tests.api.committee import Committee
from tests.api.helpers import assert_problem, refused_reasons

PHONE_A = {"Authorization": "Bearer evs_phone-a-token", "X-Device-Id": "phone-aaaa"}
PHONE_B = {"Authorization": "Bearer evs_phone-b-token", "X-Device-Id": "phone-bbbb"}
BODY = {"score": 87, "note": "plaintext-marker-5f2c"}


def counter_app(acted: Counter[str], services: Services) -> FastAPI:
    """Routes that count how often they really ran, behind the middleware as in api/app.py:
    inside the request context (services handed in, not taken from app.state)."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware, services=services)
    app.add_middleware(RequestContextMiddleware, body_limit=lambda _: 8 * 1024 * 1024)

    @app.post("/api/v1/counter", status_code=201)
    async def count(request: Request, response: Response) -> dict[str, Any]:
        acted["counter"] += 1
        response.set_cookie("evalsign_eval", f"eve_session-{acted['counter']}", httponly=True)
        return {"count": acted["counter"], "received": await request.json()}

    @app.post("/api/v1/flaky")
    async def flaky() -> JSONResponse:
        acted["flaky"] += 1
        status = 503 if acted["flaky"] == 1 else 201
        return JSONResponse({"count": acted["flaky"]}, status_code=status)

    @app.post("/api/v1/crash")
    async def crash() -> dict[str, int]:
        acted["crash"] += 1
        if acted["crash"] == 1:
            raise RuntimeError("the first attempt fails")
        return {"count": acted["crash"]}

    @app.post("/api/v1/slow", status_code=201)
    async def slow() -> dict[str, int]:
        acted["slow"] += 1
        await anyio.sleep(0.5)  # long enough for the twins to arrive while it runs
        return {"count": acted["slow"]}

    @app.post("/api/v1/upload", status_code=201)
    async def upload(request: Request) -> dict[str, Any]:
        acted["upload"] += 1
        body = await request.body()
        return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    return app


@pytest.fixture
def acted() -> Counter[str]:
    return Counter()


@pytest.fixture
def phone(services: Services, acted: Counter[str]) -> Iterator[TestClient]:
    with TestClient(counter_app(acted, services), raise_server_exceptions=False) as client:
        yield client


def send(
    client: TestClient,
    key: str | None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/api/v1/counter",
) -> httpx2.Response:
    # A phone on a flaky network never saw the first answer, nor the cookies it set.
    client.cookies.clear()
    sent = dict(PHONE_A if headers is None else headers, **{"Content-Type": "application/json"})
    if key is not None:
        sent["Idempotency-Key"] = key
    return client.post(path, content=encoded(BODY if body is None else body), headers=sent)


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def rows(db: Session) -> list[IdempotentRequest]:
    db.expire_all()
    return list(db.execute(select(IdempotentRequest)).scalars())


def test_a_retry_acts_once_and_gets_the_first_answer(
    phone: TestClient, acted: Counter[str]
) -> None:
    first = send(phone, "retry-0001")
    again = send(phone, "retry-0001")

    assert acted["counter"] == 1
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.json() == {"count": 1, "received": BODY}
    assert again.headers["set-cookie"] == first.headers["set-cookie"]
    assert "eve_session-1" in again.headers["set-cookie"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # Each answer still carries its own request id.
    assert again.headers["x-request-id"] != first.headers["x-request-id"]


def test_the_same_key_with_another_body_is_refused(phone: TestClient, acted: Counter[str]) -> None:
    assert send(phone, "reused-0001").status_code == 201
    refused = send(phone, "reused-0001", body={**BODY, "score": 12})
    assert_problem(refused, 422, "idempotency-key-reused")
    elsewhere = send(phone, "reused-0001", path="/api/v1/slow")
    assert_problem(elsewhere, 422, "idempotency-key-reused")
    assert acted["counter"] == 1 and acted["slow"] == 0


def test_without_a_key_every_request_acts(phone: TestClient, acted: Counter[str]) -> None:
    assert [send(phone, None).json()["count"] for _ in range(2)] == [1, 2]
    assert acted["counter"] == 2


def test_a_server_error_is_not_stored_and_the_retry_runs_again(
    phone: TestClient, acted: Counter[str], db: Session
) -> None:
    assert send(phone, "flaky-0001", path="/api/v1/flaky").status_code == 503
    assert rows(db) == []
    retried = send(phone, "flaky-0001", path="/api/v1/flaky")
    assert retried.status_code == 201 and retried.json() == {"count": 2}
    replayed = send(phone, "flaky-0001", path="/api/v1/flaky")
    assert replayed.json() == {"count": 2} and replayed.headers["idempotent-replayed"] == "true"
    assert acted["flaky"] == 2


def test_a_crash_is_not_stored_and_the_retry_runs_again(
    phone: TestClient, acted: Counter[str], db: Session
) -> None:
    assert_problem(send(phone, "crash-0001", path="/api/v1/crash"), 500, "internal-error")
    assert rows(db) == []
    assert send(phone, "crash-0001", path="/api/v1/crash").json() == {"count": 2}
    assert acted["crash"] == 2


def test_another_client_with_the_same_key_gets_its_own_answer(
    phone: TestClient, acted: Counter[str]
) -> None:
    assert send(phone, "shared-0001", headers=PHONE_A).json()["count"] == 1
    assert send(phone, "shared-0001", headers=PHONE_B).json()["count"] == 2
    # Phone pages authenticate by cookie: another cookie is another client too.
    page_one = {"Cookie": "evalsign_scan=evs_page-one; evalsign_device=web-page-1"}
    page_two = {"Cookie": "evalsign_scan=evs_page-two; evalsign_device=web-page-1"}
    assert send(phone, "shared-0001", headers=page_one).json()["count"] == 3
    assert send(phone, "shared-0001", headers=page_two).json()["count"] == 4
    assert send(phone, "shared-0001", headers=page_one).json()["count"] == 3
    assert acted["counter"] == 4
    assert send(phone, "shared-0001", headers=PHONE_B).json()["count"] == 2


def test_the_scope_is_the_credential_and_the_device() -> None:
    bearer = [(b"authorization", b"Bearer evs_x"), (b"x-device-id", b"phone-1")]
    assert client_scope(bearer) == client_scope([*bearer, (b"cookie", b"evalsign_scan=evs_y")])
    assert client_scope(bearer) != client_scope([bearer[0], (b"x-device-id", b"phone-2")])
    by_cookie = [(b"cookie", b"evalsign_scan=evs_y; evalsign_device=web-1; other=1")]
    assert client_scope(by_cookie) == client_scope(
        [(b"cookie", b"other=2; evalsign_device=web-1"), (b"cookie", b"evalsign_scan=evs_y")]
    )
    assert client_scope(by_cookie) != client_scope([(b"cookie", b"evalsign_scan=evs_z")])


def test_a_key_still_in_progress_is_answered_409(
    phone: TestClient, acted: Counter[str], db: Session, clock: FrozenClock
) -> None:
    sent = [(b"authorization", b"Bearer evs_phone-a-token"), (b"x-device-id", b"phone-aaaa")]
    running = IdempotentRequest(
        scope=client_scope(sent),
        key="running-0001",
        fingerprint=request_fingerprint("POST", "/api/v1/counter", b"", encoded(BODY)),
        created_at=clock.now(),
    )
    db.add(running)
    db.commit()
    busy = send(phone, "running-0001")
    assert_problem(busy, 409, "idempotency-in-progress")
    assert busy.headers["retry-after"] == "1"
    assert acted["counter"] == 0

    # A run its process never finished (a restart) frees its key after a while.
    clock.advance(timedelta(minutes=11))
    assert send(phone, "running-0001").status_code == 201
    assert acted["counter"] == 1


def test_the_stored_answer_is_encrypted(
    phone: TestClient, db: Session, services: Services, clock: FrozenClock
) -> None:
    send(phone, "sealed-0001")
    [row] = rows(db)
    assert row.key == "sealed-0001" and row.status_code == 201
    assert row.completed_at == clock.now()
    assert row.response_ciphertext is not None
    assert b"plaintext-marker" not in row.response_ciphertext
    assert b"eve_session" not in row.response_ciphertext
    stored = json.loads(
        services.cipher.decrypt_bytes(row.response_ciphertext, f"idempotent/{row.id}")
    )
    assert stored["status"] == 201
    assert not {name for name, _ in stored["headers"]} & {"date", "server", "content-length"}


def test_an_invalid_key_is_refused(phone: TestClient, acted: Counter[str]) -> None:
    for key in ("short", "x" * 101, "has space-0001", "semi;colon-0001", "slash/key-0001"):
        assert_problem(send(phone, key), 400, "idempotency-key-invalid")
    assert acted["counter"] == 0
    assert send(phone, "A-z0.9_:-" + "x" * 91).status_code == 201  # 100 characters


def test_a_large_body_waits_on_disk_and_reaches_the_app_whole(
    phone: TestClient, acted: Counter[str]
) -> None:
    upload = bytes(range(256)) * (6 * 1024)  # 1.5 MiB: past what is held in memory
    headers = PHONE_A | {"Idempotency-Key": "upload-0001"}
    first = phone.post("/api/v1/upload", content=upload, headers=headers)
    assert first.json() == {"size": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}
    again = phone.post("/api/v1/upload", content=upload, headers=headers)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    changed = upload[:-1] + b"!"
    refused = phone.post("/api/v1/upload", content=changed, headers=headers)
    assert_problem(refused, 422, "idempotency-key-reused")
    assert acted["upload"] == 1


def test_answers_older_than_a_day_are_forgotten(
    phone: TestClient, acted: Counter[str], db: Session, clock: FrozenClock
) -> None:
    send(phone, "daily-0001")
    send(phone, "other-0001", headers=PHONE_B)
    clock.advance(timedelta(hours=24, minutes=1))
    assert send(phone, "daily-0001").json()["count"] == 3
    # The other client's old row went in the same purge.
    assert [row.key for row in rows(db)] == ["daily-0001"]
    assert acted["counter"] == 3


def test_other_methods_and_paths_pass_through(services: Services, acted: Counter[str]) -> None:
    app = counter_app(acted, services)

    @app.get("/api/v1/counter")
    async def read() -> dict[str, int]:
        return {"count": acted["counter"]}

    @app.post("/m/form")
    async def form() -> dict[str, int]:
        acted["form"] += 1
        return {"count": acted["form"]}

    with TestClient(app) as client:
        for _ in range(2):
            assert (
                client.get("/api/v1/counter", headers={"Idempotency-Key": "bad"}).status_code == 200
            )
            assert (
                client.post("/m/form", headers={"Idempotency-Key": "form-00001"}).status_code == 200
            )
    assert acted["form"] == 2


# The real app: its routes answer through the middleware, registered as in api/app.py.


@pytest.fixture
def app(services: Services) -> FastAPI:
    app = create_app(services)
    present: list[object] = [entry.cls for entry in app.user_middleware]
    if IdempotencyMiddleware not in present:
        inside = present.index(RequestContextMiddleware) + 1
        app.user_middleware.insert(inside, Middleware(IdempotencyMiddleware))
    return app


def test_a_refused_scan_is_logged_once_however_often_it_is_retried(
    committee: Committee, db: Session
) -> None:
    room = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/qr?format=json", headers=committee.operator
    ).json()
    forged = room["token"][:-4] + ("AAAA" if not room["token"].endswith("AAAA") else "BBBB")
    body = {"token": forged, "device_id": "phone-5d1e22aa"}

    def refusals() -> int:  # anonymous: tallied, not chained
        return refused_reasons(db, "task.scan_refused").get("qr-token-invalid", 0)

    before = refusals()
    key = {"Idempotency-Key": "scan-7f3a9c21"}
    first = committee.client.post("/api/v1/scan", json=body, headers=key)
    again = committee.client.post("/api/v1/scan", json=body, headers=key)
    problem = assert_problem(first, 401, "qr-token-invalid")
    assert again.status_code == 401 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == problem  # the same request id inside: the first answer itself
    assert refusals() == before + 1
    committee.client.post("/api/v1/scan", json=body)
    assert refusals() == before + 2  # without a key, a retry is a new request


# Concurrency needs real commits and a real server: an isolated database, uvicorn.


@pytest.fixture
def live_counter(
    tmp_path: Path, isolated_database_url: str, keyring: Keyring, acted: Counter[str]
) -> Iterator[str]:
    engine = make_engine(isolated_database_url)
    upgrade_to_head(engine)
    settings = Settings(data_dir=tmp_path / "var", database_url=isolated_database_url)
    services = build_services(settings, engine=engine, clock=SystemClock(), keyring=keyring)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(counter_app(acted, services), port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.mark.slow
def test_concurrent_twins_act_once(live_counter: str, acted: Counter[str]) -> None:
    headers = PHONE_A | {"Idempotency-Key": "twins-00001"}
    with httpx2.Client(base_url=live_counter, timeout=30) as client:

        def post(_: int) -> httpx2.Response:
            return client.post("/api/v1/slow", json=BODY, headers=headers)

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(post, range(8)))
        later = client.post("/api/v1/slow", json=BODY, headers=headers)

    assert acted["slow"] == 1
    ran = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(ran) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["code"] == "idempotency-in-progress"
            assert answer.headers["retry-after"] == "1"
        else:
            assert answer.status_code == 201 and answer.json() == {"count": 1}
    assert Counter(a.status_code for a in answers)[409] >= 1
    assert later.headers["idempotent-replayed"] == "true" and later.json() == {"count": 1}
