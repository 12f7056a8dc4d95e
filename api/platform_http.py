"""The HTTP side of events to the trading platform: webhook POSTs and archive PUTs, short
timeouts, no redirects followed (a redirect is an answer to fix, not to chase with a
signature made for another target)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import requests

from evaluation.platform.archive import ArchiveTarget, S3ArchiveTarget
from evaluation.platform.deliveries import Outcome, Outgoing
from models.clock import Clock
from models.settings import Settings
from signing.request_signatures import sign_request


def _call(method: str, url: str, headers: dict[str, str], body: bytes, timeout: float) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with requests.request(
            method,
            url,
            data=body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as answer:
            # Only the status matters; a little of the body helps the operator read a refusal.
            preview = (
                answer.raw.read(300, decode_content=True) if answer.status_code >= 300 else b""
            )
            error = None
            if answer.status_code >= 300:
                text = preview.decode("utf-8", "replace").strip()
                error = f"HTTP {answer.status_code}" + (f": {text}" if text else "")
            return Outcome(answer.status_code, error, took())
    except requests.ConnectTimeout:
        return Outcome(None, f"not reached within {timeout:g} s", took())
    except requests.Timeout:
        return Outcome(None, f"no answer within {timeout:g} s", took())
    except requests.RequestException as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:1000], took())


def deliver(outgoing: Outgoing, timeout: float) -> Outcome:
    return _call("POST", outgoing.url, outgoing.headers, outgoing.body, timeout)


class HttpArchiveTarget:
    """An endpoint that takes each archive file as a PUT to `<base URL>/<key>`, signed with
    evalsign-hmac-v1 under the archive's key id."""

    def __init__(
        self, base_url: str, *, key_id: str, secret: str, timeout: float, clock: Clock
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def describe(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def put(self, key: str, data: bytes, content_type: str) -> Outcome:
        url = self.describe(key)
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        signed = sign_request(
            secret=self.secret,
            key_id=self.key_id,
            method="PUT",
            target=target,
            body=data,
            now=self.clock.now(),
        )
        headers = {"Content-Type": content_type, **signed.as_dict()}
        return _call("PUT", url, headers, data, self.timeout)


def archive_target(settings: Settings, clock: Clock) -> ArchiveTarget | None:
    """The configured archive target (EVALSIGN_ARCHIVE_TARGET), or None."""
    location = settings.archive_target
    if location is None:
        return None
    if location.startswith("s3://"):
        return S3ArchiveTarget(location)
    assert settings.archive_key_id is not None and settings.archive_secret is not None
    return HttpArchiveTarget(
        location,
        key_id=settings.archive_key_id,
        secret=settings.archive_secret.get_secret_value(),
        timeout=settings.webhook_timeout_s,
        clock=clock,
    )
