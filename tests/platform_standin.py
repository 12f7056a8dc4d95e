"""A stand-in for the trading platform's webhook receiver and archive endpoint: a real HTTP
server on 127.0.0.1, so the tests drive the real delivery code over a socket.

It checks every request's evalsign-hmac-v1 signature from the raw request, recomputed
here from the README's description (not with signing/request_signatures.py, so a bug the
sender and its own checker share would still show), against the secret of the key id it
was given, and refuses a wrong, stale or missing one with 401. It keeps what it received;
it can be told to answer 500 (or any status), and be stopped and started again on the
same port (a receiver that is down, then back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class PlatformStandIn:
    now: Callable[[], datetime]
    secrets: dict[str, str] = field(default_factory=dict)  # key id -> secret
    status: int = 200  # what a well-signed request is answered with
    received: list[Received] = field(default_factory=list)  # well signed, answered 2xx
    refused: list[Received] = field(default_factory=list)  # answered with an error
    bad_signatures: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # PUT path -> body
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        return [r.event() for r in self.received if r.method == "POST"]

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Received(self.command, self.path, dict(self.headers.items()), body)
                problem = standin.check_signature(request)
                if problem is not None:
                    standin.bad_signatures.append(problem)
                    standin.refused.append(request)
                    self._answer(401, {"error": problem})
                    return
                if standin.status >= 300:
                    standin.refused.append(request)
                    self._answer(standin.status, {"error": "the platform is having trouble"})
                    return
                standin.received.append(request)
                if self.command == "PUT":
                    standin.files[self.path] = body
                self._answer(standin.status, {"ok": True})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = _handle
            do_PUT = _handle

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Down: connections to the port are refused until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def check_signature(self, request: Received) -> str | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        key_id = headers.get("x-evalsign-key-id")
        timestamp = headers.get("x-evalsign-timestamp", "")
        signature = headers.get("x-evalsign-signature", "")
        if key_id not in self.secrets:
            return f"unknown key id {key_id!r}"
        if not timestamp.isdigit() or abs(self.now().timestamp() - int(timestamp)) > 300:
            return "stale or missing timestamp"
        lines = [
            "evalsign-hmac-v1",
            key_id,
            timestamp,
            request.method.upper(),
            request.path,
            hashlib.sha256(request.body).hexdigest(),
        ]
        secret = self.secrets[key_id].encode()
        expected = hmac.new(secret, "\n".join(lines).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(f"v1={expected}", signature):
            return "signature does not match"
        return None


@contextmanager
def running_platform(now: Callable[[], datetime]) -> Iterator[PlatformStandIn]:
    standin = PlatformStandIn(now)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
