"""Who a remote enrollment is, asked of a licensed citizen-identity check service: name, ID
number and the live face in, a match decision out (the protocol: docs/identity-verification.md).

Anything but a clear, well-formed answer is "unavailable": the enrollment then waits for an
operator, so a provider that is down, slow, misconfigured or answering nonsense can delay a
representative but never confirm one.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import requests

from models.settings import Settings

log = logging.getLogger("evalsign.identity")

# A decision is a few hundred bytes; more is not an answer worth reading.
MAX_ANSWER_BYTES = 64 * 1024
MAX_REFERENCE_CHARS = 200


class Outcome(StrEnum):
    MATCH = "match"
    NO_MATCH = "no-match"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class IdentityDecision:
    outcome: Outcome
    reference: str | None = None  # the provider's id of this check, for tracing it there
    score: float | None = None
    # Why it is unavailable (ours, e.g. "timeout"), or the provider's own detail.
    reason: str | None = None

    @classmethod
    def unavailable(cls, reason: str, reference: str | None = None) -> IdentityDecision:
        return cls(Outcome.UNAVAILABLE, reference=reference, reason=reason)


class IdentityVerifier(Protocol):
    """A citizen-identity check: is this the person registered under this name and ID
    number (居民身份证号), judging by this live face? Never raises: trouble is unavailable."""

    def verify(self, *, name: str, id_number: str, face_jpeg: bytes) -> IdentityDecision: ...


class HttpIdentityVerifier:
    """The JSON-over-HTTPS protocol of docs/identity-verification.md, with a bearer token."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self.url = url
        self._token = token
        self.timeout_s = timeout_s

    def verify(self, *, name: str, id_number: str, face_jpeg: bytes) -> IdentityDecision:
        body = {
            "name": name,
            "id_number": id_number,
            "image": base64.b64encode(face_jpeg).decode(),
            "image_type": "jpeg",
        }
        try:
            with requests.post(
                self.url,
                json=body,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=self.timeout_s,
                allow_redirects=False,  # a redirect would resend the ID number elsewhere
                stream=True,
            ) as response:
                if response.status_code in (401, 403):
                    # Ours to fix, not the provider's: say so where the admin looks.
                    log.error(
                        "the identity provider refused our token (HTTP %s); check "
                        "EVALSIGN_IDENTITY_VERIFIER_TOKEN",
                        response.status_code,
                    )
                    return IdentityDecision.unavailable("provider-refused-token")
                if response.status_code != 200:
                    log.warning("the identity provider answered HTTP %s", response.status_code)
                    return IdentityDecision.unavailable(f"http-{response.status_code}")
                raw = _read_capped(response)
        except requests.Timeout:
            log.warning("the identity provider did not answer within %s s", self.timeout_s)
            return IdentityDecision.unavailable("timeout")
        except requests.RequestException as error:
            log.warning("the identity provider cannot be reached: %s", type(error).__name__)
            return IdentityDecision.unavailable("unreachable")
        if raw is None:
            log.warning("the identity provider's answer is over %s bytes", MAX_ANSWER_BYTES)
            return IdentityDecision.unavailable("bad-answer")
        return parse_answer(raw)


def _read_capped(response: requests.Response) -> bytes | None:
    data = b""
    for chunk in response.iter_content(chunk_size=8192):
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            return None
    return data


def parse_answer(raw: bytes) -> IdentityDecision:
    """The provider's JSON answer; anything malformed is unavailable, never a match."""
    try:
        answer: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.warning("the identity provider's answer is not JSON")
        return IdentityDecision.unavailable("bad-answer")
    if not isinstance(answer, dict):
        return _bad("not an object")
    reference = answer.get("reference")
    if reference is not None and (
        not isinstance(reference, str) or not 0 < len(reference) <= MAX_REFERENCE_CHARS
    ):
        return _bad("reference is not a short string")
    detail = answer.get("detail")
    if detail is not None and not isinstance(detail, str):
        return _bad("detail is not a string")
    detail = None if detail is None else detail[:200]
    result = answer.get("result")
    if not isinstance(result, str) or result not in {o.value for o in Outcome}:
        return _bad("result is not match, no-match or unavailable")
    outcome = Outcome(result)
    if outcome is Outcome.UNAVAILABLE:
        return IdentityDecision.unavailable(detail or "provider-unavailable", reference)
    if reference is None:
        # A decision the provider cannot be asked about later is not one we act on.
        return _bad("a decision without a reference")
    score = answer.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        return _bad("score is not a number")
    return IdentityDecision(
        outcome, reference=reference, score=None if score is None else float(score), reason=detail
    )


def _bad(why: str) -> IdentityDecision:
    log.warning("the identity provider's answer is malformed: %s", why)
    return IdentityDecision.unavailable("bad-answer")


def verifier_from_settings(settings: Settings) -> IdentityVerifier | None:
    """The center's configured provider, or None: then every remote enrollment waits for an
    operator, as without one."""
    if settings.identity_verifier_url is None or settings.identity_verifier_token is None:
        return None
    return HttpIdentityVerifier(
        settings.identity_verifier_url,
        settings.identity_verifier_token.get_secret_value(),
        settings.identity_verifier_timeout_s,
    )
