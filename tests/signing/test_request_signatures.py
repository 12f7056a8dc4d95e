"""evalsign-hmac-v1: a request signed by one side verifies on the other, and any change to
what was signed, a stale clock or a wrong secret is refused."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from signing.request_signatures import (
    RequestSignatureInvalid,
    new_secret,
    read_headers,
    sign_request,
    string_to_sign,
    verify_request,
)

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
BODY = b'{"name": "\xe5\x8a\x9e\xe5\x85\xac\xe6\xa5\xbc"}'


def _signed(secret: str, **overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "secret": secret,
        "key_id": "pk_1",
        "method": "POST",
        "target": "/api/v1/intake/projects",
        "body": BODY,
        "now": NOW,
    }
    args.update(overrides)
    return sign_request(**args).as_dict()  # type: ignore[arg-type]


def test_a_signed_request_verifies() -> None:
    secret = new_secret()
    headers = read_headers(_signed(secret))
    verify_request(
        headers,
        secret=secret,
        method="post",
        target="/api/v1/intake/projects",
        body=BODY,
        now=NOW + timedelta(seconds=299),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "PUT"),
        ("target", "/api/v1/intake/projects?x=1"),
        ("body", BODY + b" "),
        ("secret", "another-secret"),
    ],
)
def test_any_change_to_what_was_signed_is_refused(field: str, value: object) -> None:
    secret = new_secret()
    headers = read_headers(_signed(secret))
    checked: dict[str, object] = {
        "secret": secret,
        "method": "POST",
        "target": "/api/v1/intake/projects",
        "body": BODY,
        "now": NOW,
    }
    checked[field] = value
    with pytest.raises(RequestSignatureInvalid, match="does not match"):
        verify_request(headers, **checked)  # type: ignore[arg-type]


@pytest.mark.parametrize("skew", [timedelta(seconds=301), timedelta(seconds=-301)])
def test_a_request_signed_too_long_ago_or_ahead_is_refused(skew: timedelta) -> None:
    secret = new_secret()
    headers = read_headers(_signed(secret))
    with pytest.raises(RequestSignatureInvalid, match="from our clock"):
        verify_request(
            headers,
            secret=secret,
            method="POST",
            target="/api/v1/intake/projects",
            body=BODY,
            now=NOW + skew,
        )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-EvalSign-Key-Id": "pk_1", "X-EvalSign-Timestamp": "1700000000"},
        {
            "X-EvalSign-Key-Id": "pk_1",
            "X-EvalSign-Timestamp": "soon",
            "X-EvalSign-Signature": "v1=" + "a" * 64,
        },
        {
            "X-EvalSign-Key-Id": "pk_1",
            "X-EvalSign-Timestamp": "1700000000",
            "X-EvalSign-Signature": "a" * 64,
        },
        {
            "X-EvalSign-Key-Id": "pk_1",
            "X-EvalSign-Timestamp": "1700000000",
            "X-EvalSign-Signature": "v1=" + "A" * 64,
        },
    ],
)
def test_missing_or_malformed_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(RequestSignatureInvalid):
        read_headers(headers)


def test_header_names_are_case_insensitive() -> None:
    secret = new_secret()
    lowered = {name.lower(): value for name, value in _signed(secret).items()}
    assert read_headers(lowered).key_id == "pk_1"


def test_the_signature_matches_an_independent_hmac() -> None:
    """A platform's own HMAC (here the openssl CLI) over the documented string agrees."""
    secret = new_secret()
    headers = _signed(secret)
    message = "\n".join(
        [
            "evalsign-hmac-v1",
            "pk_1",
            str(int(NOW.timestamp())),
            "POST",
            "/api/v1/intake/projects",
            hashlib.sha256(BODY).hexdigest(),
        ]
    ).encode()
    assert message == string_to_sign(
        "pk_1", int(NOW.timestamp()), "POST", "/api/v1/intake/projects", BODY
    )
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret],
        input=message,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert headers["X-EvalSign-Signature"] == "v1=" + out.strip().split()[-1]
