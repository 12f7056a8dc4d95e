"""The identity provider adapter against a stand-in provider over real HTTP: a clear answer is
a decision, anything else is unavailable and never a match."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from evaluation.identity.identity_verification import (
    HttpIdentityVerifier,
    IdentityDecision,
    Outcome,
    verifier_from_settings,
)
from models.settings import Settings
from tests.face.corpus import encode, portraits
from tests.identity_provider import StandInProvider, running_provider

NAME, ID_NUMBER = "陈授权", "11010119800101001X"


@pytest.fixture
def provider() -> Iterator[StandInProvider]:
    with running_provider() as provider:
        provider.citizens[ID_NUMBER] = NAME
        yield provider


@pytest.fixture(scope="module")
def face() -> bytes:
    return encode(portraits()["players-6"])


def _ask(provider: StandInProvider, face: bytes, **overrides: str) -> IdentityDecision:
    verifier = HttpIdentityVerifier(
        provider.url, overrides.get("token", provider.token), timeout_s=2.0
    )
    return verifier.verify(
        name=overrides.get("name", NAME),
        id_number=overrides.get("id_number", ID_NUMBER),
        face_jpeg=face,
    )


def test_a_registered_citizen_with_their_name_is_a_match_with_the_providers_reference(
    provider: StandInProvider, face: bytes
) -> None:
    decision = _ask(provider, face)
    assert decision == IdentityDecision(Outcome.MATCH, reference="standin-0000", score=0.93)
    sent = provider.asked[0]
    assert (sent["name"], sent["id_number"], sent["image_type"]) == (NAME, ID_NUMBER, "jpeg")


def test_another_name_or_an_unknown_id_number_is_no_match(
    provider: StandInProvider, face: bytes
) -> None:
    assert _ask(provider, face, name="王冒名").outcome is Outcome.NO_MATCH
    unknown = _ask(provider, face, id_number="110101199001011234")
    assert unknown.outcome is Outcome.NO_MATCH and unknown.reason == "不一致"


def test_a_refused_token_is_unavailable_and_logged_for_the_admin(
    provider: StandInProvider, face: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="evalsign.identity"):
        decision = _ask(provider, face, token="stale-token")
    assert decision == IdentityDecision.unavailable("provider-refused-token")
    assert provider.refused_tokens == 1 and not provider.asked
    assert "EVALSIGN_IDENTITY_VERIFIER_TOKEN" in caplog.text


def test_a_server_error_is_unavailable(provider: StandInProvider, face: bytes) -> None:
    provider.mode = "error"
    assert _ask(provider, face) == IdentityDecision.unavailable("http-500")


def test_a_provider_that_hangs_is_unavailable_after_the_timeout(
    provider: StandInProvider, face: bytes
) -> None:
    provider.mode = "hang"
    verifier = HttpIdentityVerifier(provider.url, provider.token, timeout_s=0.5)
    started = time.monotonic()
    decision = verifier.verify(name=NAME, id_number=ID_NUMBER, face_jpeg=face)
    assert decision == IdentityDecision.unavailable("timeout")
    assert time.monotonic() - started < 5


def test_nobody_listening_is_unavailable(face: bytes) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    verifier = HttpIdentityVerifier(f"http://127.0.0.1:{port}/", "t", timeout_s=1.0)
    decision = verifier.verify(name=NAME, id_number=ID_NUMBER, face_jpeg=face)
    assert decision == IdentityDecision.unavailable("unreachable")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"result": "match"',  # truncated
        b'"match"',
        b"[]",
        b"{}",
        b'{"result": "MATCH", "reference": "r1"}',
        b'{"result": true, "reference": "r1"}',
        b'{"result": ["match"], "reference": "r1"}',
        b'{"result": "match"}',  # no reference to trace it by
        b'{"result": "match", "reference": ""}',
        b'{"result": "match", "reference": 7}',
        b'{"result": "match", "reference": "r1", "score": "high"}',
        b'{"result": "match", "reference": "r1", "score": true}',
        b'{"result": "match", "reference": "r1", "score": NaN}',
        b'{"result": "match", "reference": "r1", "detail": {"x": 1}}',
        b'{"result": "match", "reference": "' + b"r" * 201 + b'"}',
        b"\xff\xfe garbage",
        b'{"result": "match", "reference": "r1", "pad": "' + b"x" * 70_000 + b'"}',
    ],
)
def test_a_malformed_answer_is_unavailable_never_a_match(
    provider: StandInProvider, face: bytes, body: bytes
) -> None:
    provider.mode = "raw"
    provider.raw = body
    decision = _ask(provider, face)
    assert decision == IdentityDecision.unavailable("bad-answer")


def test_the_provider_may_say_it_cannot_decide(provider: StandInProvider, face: bytes) -> None:
    provider.mode = "raw"
    provider.raw = '{"result": "unavailable", "reference": "r9", "detail": "库忙"}'.encode()
    assert _ask(provider, face) == IdentityDecision.unavailable("库忙", "r9")


def test_settings_name_a_provider_only_with_a_token_and_tls() -> None:
    assert verifier_from_settings(Settings()) is None
    with pytest.raises(ValidationError, match="needs EVALSIGN_IDENTITY_VERIFIER_TOKEN"):
        Settings(identity_verifier_url="https://idv.example.cn/check")
    with pytest.raises(ValidationError, match="must be https"):
        Settings(
            identity_verifier_url="http://idv.example.cn/check",
            identity_verifier_token=SecretStr("t"),
        )
    local = Settings(
        identity_verifier_url="http://127.0.0.1:9/check",
        identity_verifier_token=SecretStr("tok-8e1f"),
    )
    assert isinstance(verifier_from_settings(local), HttpIdentityVerifier)
    assert "tok-8e1f" not in repr(local)  # kept out of logs and tracebacks
