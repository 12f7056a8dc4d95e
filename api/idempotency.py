"""Idempotency-Key: a phone's retry of a state-changing request gets the stored answer
instead of acting twice. A plain ASGI middleware, inside RequestContextMiddleware."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING

import anyio
from anyio import to_thread
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection, cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import transaction
from api.errors import problem_response
from api.services import Services
from api.web import i18n
from api.web.session import DEVICE_COOKIE
from evaluation.kernel.errors import DomainError
from models.base import new_id
from models.tables import IdempotentRequest

if TYPE_CHECKING:
    from _hashlib import HASH

METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/v1/"
KEY = re.compile(r"[A-Za-z0-9_.:-]{8,100}")
KEEP_FOR = timedelta(hours=24)
# An unfinished row this old belongs to a process that died mid-request (a restart): its
# key is free again rather than answering 409 for a day.
ABANDONED_AFTER = timedelta(minutes=10)
PURGE_BATCH = 100
# Not part of the answer: the server sets date and server anew, and the length is recounted.
UNSTORED_HEADERS = frozenset({b"date", b"server", b"content-length"})
REPLAYED = (b"idempotent-replayed", b"true")
BODY_IN_MEMORY = 1024 * 1024  # a larger body (a document upload) waits in a temporary file
REPLAY_CHUNK = 64 * 1024


class IdempotencyKeyInvalid(DomainError):
    status = 400
    code = "idempotency-key-invalid"
    title = "Idempotency-Key must be 8 to 100 letters, digits or _ - . :"


class IdempotencyInProgress(DomainError):
    status = 409
    code = "idempotency-in-progress"
    title = "A request with this Idempotency-Key is still being handled"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency-key-reused"
    title = "This Idempotency-Key was already used for a different request"


@dataclass
class StoredResponse:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "status": self.status,
                "headers": [
                    [name.decode("latin-1"), value.decode("latin-1")]
                    for name, value in self.headers
                ],
                "body": base64.b64encode(self.body).decode("ascii"),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StoredResponse:
        loaded = json.loads(data)
        headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in loaded["headers"]
        ]
        return cls(int(loaded["status"]), headers, base64.b64decode(loaded["body"]))


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        services: Services | None = None,
        *,
        abandoned_after: timedelta = ABANDONED_AFTER,
    ) -> None:
        self.app = app
        self.services = services  # else the app's, from scope["app"].state
        self.abandoned_after = abandoned_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in METHODS
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        key = _header(scope["headers"], b"idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        if not KEY.fullmatch(key.decode("latin-1")):
            invalid = IdempotencyKeyInvalid("send 8 to 100 characters of A-Z a-z 0-9 _ - . :")
            await _refusal(invalid, scope)(scope, receive, send)
            return
        services: Services = (
            self.services if self.services is not None else scope["app"].state.services
        )
        body = _SpooledBody()
        try:
            digest = _fingerprint_start(scope["method"], scope["path"], scope["query_string"])
            if not await body.read(receive, digest):
                return  # the client left before sending the whole body: nothing to do
            outcome = await to_thread.run_sync(
                _claim,
                services,
                client_scope(scope["headers"]),
                key.decode("latin-1"),
                digest.hexdigest(),
                self.abandoned_after,
            )
            if isinstance(outcome, DomainError):
                await _refusal(outcome, scope)(scope, receive, send)
            elif isinstance(outcome, StoredResponse):
                await _replay(outcome, send)
            else:
                await self._run(outcome, services, scope, body.replay(receive), send)
        finally:
            body.close()

    async def _run(
        self, row_id: str, services: Services, scope: Scope, receive: Receive, send: Send
    ) -> None:
        captured = StoredResponse(status=0)
        chunks: list[bytes] = []
        settled = False

        async def capture(message: Message) -> None:
            nonlocal settled
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = [
                    (name.lower(), value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in UNSTORED_HEADERS
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and not settled:
                    captured.body = b"".join(chunks)
                    # Stored before the last bytes leave: a client holding the answer will
                    # find it stored when it retries.
                    with anyio.CancelScope(shield=True):
                        await to_thread.run_sync(_settle, services, row_id, captured)
                    settled = True
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not settled:
                # The app raised or never finished its answer: a retry runs it again.
                with anyio.CancelScope(shield=True):
                    await to_thread.run_sync(_release, services, row_id)


def client_scope(headers: list[tuple[bytes, bytes]]) -> str:
    """Whose key it is: the credential (Authorization, a platform's key id, else the
    evalsign_ cookies) and the device, hashed, so that one client never receives another's
    stored answer."""
    digest = hashlib.sha256()
    cookies = cookie_parser(
        "; ".join(value.decode("latin-1") for name, value in headers if name == b"cookie")
    )
    authorization = _header(headers, b"authorization")
    platform_key = _header(headers, b"x-evalsign-key-id")
    if authorization is not None:
        _feed(digest, b"authorization", authorization)
    elif platform_key is not None:
        # A trading platform's signed request: its signature changes with each retry's
        # timestamp, its key does not.
        _feed(digest, b"platform-key", platform_key)
    else:
        for name in sorted(name for name in cookies if name.startswith("evalsign_")):
            _feed(digest, b"cookie", name.encode(), cookies[name].encode())
    device = _header(headers, b"x-device-id") or cookies.get(DEVICE_COOKIE, "").encode()
    _feed(digest, b"device", device)
    return digest.hexdigest()


def request_fingerprint(method: str, path: str, query_string: bytes, body: bytes) -> str:
    """What makes two requests the same one: method, path, query string and body."""
    digest = _fingerprint_start(method, path, query_string)
    digest.update(body)
    return digest.hexdigest()


def _fingerprint_start(method: str, path: str, query_string: bytes) -> HASH:
    digest = hashlib.sha256()
    _feed(digest, method.encode(), path.encode("utf-8", "surrogatepass"), query_string)
    return digest  # the body follows as it arrives


def _feed(digest: HASH, *parts: bytes) -> None:
    # Length-prefixed, so that no two different part lists hash alike.
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    values = [value for name, value in headers if name.lower() == wanted]
    return b", ".join(values) if values else None


def _claim(
    services: Services, client: str, key: str, fingerprint: str, abandoned_after: timedelta
) -> str | StoredResponse | DomainError:
    """The new row's id when this request is the first with its key (committed before the
    app runs, so a concurrent twin sees it), else the stored answer or a refusal."""
    now = services.clock.now()
    with transaction(services) as db:
        _purge(db, client, key, now, abandoned_after)
        row = IdempotentRequest(
            id=new_id(), scope=client, key=key, fingerprint=fingerprint, created_at=now
        )
        try:
            # The unique (scope, key) decides a race, on SQLite and PostgreSQL alike.
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            pass
        else:
            return row.id
        seen = db.execute(
            select(IdempotentRequest).where(
                IdempotentRequest.scope == client, IdempotentRequest.key == key
            )
        ).scalar_one_or_none()
        if seen is not None and seen.fingerprint != fingerprint:
            return IdempotencyKeyReused(
                "this key was sent with another method, path or body; use a new key "
                "for a new request"
            )
        if seen is None or seen.status_code is None or seen.response_ciphertext is None:
            # Still running (or just given up by a 5xx, then retrying will run it).
            return IdempotencyInProgress("retry in a moment to receive its answer")
        plain = services.cipher.decrypt_bytes(seen.response_ciphertext, _context(seen.id))
        return StoredResponse.from_json(plain)


def _purge(db: Session, client: str, key: str, now: datetime, abandoned_after: timedelta) -> None:
    """Forget this key's expired or abandoned row, and a batch of everyone's expired rows."""
    cutoff = now - KEEP_FOR
    db.execute(
        delete(IdempotentRequest)
        .where(
            IdempotentRequest.scope == client,
            IdempotentRequest.key == key,
            or_(
                IdempotentRequest.created_at < cutoff,
                and_(
                    IdempotentRequest.status_code.is_(None),
                    IdempotentRequest.created_at < now - abandoned_after,
                ),
            ),
        )
        .execution_options(synchronize_session=False)
    )
    # SKIP LOCKED (PostgreSQL; SQLite has no row locks): two purges never wait on each other.
    expired = (
        select(IdempotentRequest.id)
        .where(IdempotentRequest.created_at < cutoff)
        .order_by(IdempotentRequest.created_at)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    db.execute(
        delete(IdempotentRequest)
        .where(IdempotentRequest.id.in_(expired))
        .execution_options(synchronize_session=False)
    )


def _settle(services: Services, row_id: str, response: StoredResponse) -> None:
    """Keep an answer the client may rely on (any status below 500, refusals included: a
    retry must not log them twice); forget a server error so that the retry runs again."""
    if response.status >= 500:
        _release(services, row_id)
        return
    sealed = services.cipher.encrypt_bytes(response.to_json(), _context(row_id))
    with transaction(services) as db:
        db.execute(
            update(IdempotentRequest)
            .where(IdempotentRequest.id == row_id)
            .values(
                status_code=response.status,
                response_ciphertext=sealed,
                completed_at=services.clock.now(),
            )
            .execution_options(synchronize_session=False)
        )


def _release(services: Services, row_id: str) -> None:
    with transaction(services) as db:
        db.execute(
            delete(IdempotentRequest)
            .where(IdempotentRequest.id == row_id)
            .execution_options(synchronize_session=False)
        )


def _context(row_id: str) -> str:
    return f"idempotent/{row_id}"


def _refusal(error: DomainError, scope: Scope) -> JSONResponse:
    headers = {"Retry-After": "1"} if isinstance(error, IdempotencyInProgress) else None
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.detail,
        instance=scope["path"],
        headers=headers,
        extensions=error.extensions,
        language=i18n.problem_language(HTTPConnection(scope)),
    )


async def _replay(stored: StoredResponse, send: Send) -> None:
    headers = [
        *stored.headers,
        (b"content-length", str(len(stored.body)).encode()),
        REPLAYED,
    ]
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


class _SpooledBody:
    """The request body, read whole before the app sees it (the fingerprint needs all of
    it), in memory up to BODY_IN_MEMORY and in a temporary file beyond."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._file: IO[bytes] | None = None

    async def read(self, receive: Receive, digest: HASH) -> bool:
        """Read it all, feeding the digest; False when the client disconnects first."""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            chunk = message.get("body", b"")
            digest.update(chunk)
            await self._keep(chunk)
            if not message.get("more_body", False):
                return True

    async def _keep(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._file is None and self._size <= BODY_IN_MEMORY:
            self._chunks.append(chunk)
            return
        if self._file is None:
            self._file = await to_thread.run_sync(tempfile.TemporaryFile)
            self._chunks, held = [], self._chunks
            await to_thread.run_sync(self._file.writelines, held)
        await to_thread.run_sync(self._file.write, chunk)

    def replay(self, receive: Receive) -> Receive:
        """A receive that hands the app the body again, then the client's later messages."""
        remaining = self._size
        started = False

        async def replayed() -> Message:
            nonlocal remaining, started
            if self._file is None:
                if started:
                    return await receive()
                started = True
                return {"type": "http.request", "body": b"".join(self._chunks), "more_body": False}
            if not started:
                started = True
                await to_thread.run_sync(self._file.seek, 0)
            elif remaining == 0:
                return await receive()
            chunk = await to_thread.run_sync(self._file.read, REPLAY_CHUNK)
            remaining = remaining - len(chunk) if chunk else 0
            return {"type": "http.request", "body": chunk, "more_body": remaining > 0}

        return replayed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
