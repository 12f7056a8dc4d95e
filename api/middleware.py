"""Request id, body-size limits and the access log, as one plain ASGI middleware."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PLAIN_PROBLEMS, problem_response
from api.logs import request_id_var
from api.web import i18n

access_log = logging.getLogger("evalsign.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, body_limit: Callable[[str], int]) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value for key, value in scope["headers"]}
        offered = headers.get("x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None  # set when the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if _unprintable(scope["path"]):
                await _bad_path(scope["path"])(scope, receive, send_with_id)
                return
            limit = self.body_limit(scope["path"])
            if limit > STREAM_ABOVE:
                # Large uploads (documents) pass through as they arrive, counted, never
                # held in memory; a declared or actual excess is refused all the same.
                body, too_large = b"", _declared_too_large(headers, limit)
                downstream = _counted(receive, limit)
            else:
                body, too_large = await _read_bounded(receive, headers, limit)
                downstream = _replay(body, receive)
            if too_large:
                await _too_large(scope, limit)(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, downstream, send_with_id)
            except BodyTooLarge:
                if status is None:
                    await _too_large(scope, limit)(scope, receive, send_with_id)
            except Exception:
                # Answered here, not by Starlette's outer handler, so that the 500 still
                # carries the request id the log line has.
                access_log.exception("unhandled error", extra={"path": scope["path"]})
                if status is None:
                    status_code, title = PLAIN_PROBLEMS["internal-error"]
                    response = problem_response(
                        status_code,
                        "internal-error",
                        title,
                        "the request failed on our side; quote the request id when reporting it",
                        instance=scope["path"],
                        language=i18n.problem_language(HTTPConnection(scope)),
                    )
                    await response(scope, receive, send_with_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status if status is not None else 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


STREAM_ABOVE = 64 * 1024 * 1024


def _unprintable(path: str) -> bool:
    # Path parameters are ids; a NUL or other control character in one would reach the
    # database (PostgreSQL refuses NUL in text) before any route could judge it.
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)


def _bad_path(path: str) -> JSONResponse:
    return problem_response(
        422,
        "validation-failed",
        "Some fields are missing or invalid",
        "1 field(s) invalid",
        instance=path.encode("unicode_escape").decode("ascii"),
        extensions={
            "errors": [
                {
                    "field": "path",
                    "type": "value_error",
                    "message": "the path must not contain control characters",
                }
            ]
        },
    )


def _too_large(scope: Scope, limit: int) -> JSONResponse:
    return problem_response(
        413,
        "request-too-large",
        "The request body is larger than this route accepts",
        f"this route accepts at most {limit} bytes",
        instance=scope["path"],
        extensions={"limit_bytes": limit},
        language=i18n.problem_language(HTTPConnection(scope)),
    )


class BodyTooLarge(Exception):
    """A streamed body grew past its route's limit."""


def _declared_too_large(headers: dict[str, bytes], limit: int) -> bool:
    declared = headers.get("content-length")
    if declared is None:
        return False
    try:
        return int(declared) > limit
    except ValueError:
        return True


def _counted(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise BodyTooLarge()
        return message

    return counted


async def _read_bounded(
    receive: Receive, headers: dict[str, bytes], limit: int
) -> tuple[bytes, bool]:
    """The whole body, or (b"", True) as soon as it is known to exceed the limit."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return b"", True
        except ValueError:
            return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
