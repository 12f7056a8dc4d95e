"""A stand-in citizen-identity check service: a real HTTP server on 127.0.0.1 speaking the
protocol of docs/identity-verification.md, so the tests drive the real adapter over a socket.

It knows a few citizens (ID number -> name): a request naming one of them is a match, any
other a no-match. It checks the bearer token, keeps what it was asked, and can be told to
fail (HTTP 500), hang past the client's timeout, or answer with a body of the test's choosing.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["answer", "error", "hang", "raw"]


@dataclass
class StandInProvider:
    url: str
    token: str
    citizens: dict[str, str] = field(default_factory=dict)  # ID number -> name
    mode: Mode = "answer"
    raw: bytes = b""  # the body answered in "raw" mode
    asked: list[dict[str, Any]] = field(default_factory=list)
    refused_tokens: int = 0
    decided: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        reference = f"standin-{self.decided:04d}"
        self.decided += 1
        if self.citizens.get(request.get("id_number", "")) == request.get("name"):
            return {"result": "match", "reference": reference, "score": 0.93}
        return {"result": "no-match", "reference": reference, "score": 0.12, "detail": "不一致"}


def _handler(provider: StandInProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet test output

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.headers.get("Authorization") != f"Bearer {provider.token}":
                provider.refused_tokens += 1
                self._send(401, b'{"error": "unauthorized"}')
                return
            request = json.loads(body)
            image = base64.b64decode(request["image"], validate=True)
            if not image.startswith(b"\xff\xd8"):
                self._send(400, b'{"error": "image is not a JPEG"}')
                return
            provider.asked.append(request)
            if provider.mode == "error":
                self._send(500, b'{"error": "internal"}')
            elif provider.mode == "hang":
                provider.release.wait(timeout=30)  # until the test ends
                # The client gave up long ago: its closed socket is the point, not an error
                # worth a traceback in the test output.
                with suppress(BrokenPipeError, ConnectionResetError):
                    self._send(200, json.dumps(provider.decide(request)).encode())
            elif provider.mode == "raw":
                self._send(200, provider.raw)
            else:
                self._send(200, json.dumps(provider.decide(request)).encode())

    return Handler


@contextmanager
def running_provider(token: str = "standin-token-8f3a") -> Iterator[StandInProvider]:
    """Serve on an ephemeral port for the block; hanging requests are released at its end."""
    provider = StandInProvider(url="", token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1/identity-checks"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield provider
    finally:
        provider.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
