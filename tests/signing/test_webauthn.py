"""Passkey registration and assertion checks: every way a response can be wrong is named."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import pytest
from fido2 import cbor
from fido2.cose import CoseKey
from fido2.webauthn import AttestationObject, AttestedCredentialData, AuthenticatorData

from signing.soft_authenticator import SoftwareAuthenticator
from signing.webauthn import (
    PasskeyRejected,
    RelyingParty,
    b64url,
    canonical_json,
    creation_options,
    from_b64url,
    request_options,
    signing_challenge,
    verify_assertion,
    verify_evidence,
    verify_registration,
)

ORIGIN = "https://evalsign.example.org"
RP = RelyingParty("evalsign.example.org", frozenset({ORIGIN}))


def _register(phone: SoftwareAuthenticator, rp: RelyingParty = RP) -> tuple[Any, bytes]:
    challenge = secrets.token_bytes(32)
    options = creation_options(
        rp,
        user_id=b"expert-1",
        user_name="110101198003072813",
        display_name="张伟",
        challenge=challenge,
        exclude=[],
        timeout_ms=120_000,
    )
    return phone.create(options), challenge


def _assert(phone: SoftwareAuthenticator, credential: bytes, challenge: bytes) -> dict[str, Any]:
    options = request_options(RP, challenge=challenge, allow=[credential], timeout_ms=60_000)
    return phone.get(options)


def _passkey() -> tuple[SoftwareAuthenticator, Any]:
    phone = SoftwareAuthenticator(ORIGIN)
    response, challenge = _register(phone)
    return phone, verify_registration(RP, response, challenge=challenge)


def test_registration_yields_the_credential_and_its_key() -> None:
    phone, passkey = _passkey()
    assert phone.credential_ids == [passkey.credential_id]
    assert passkey.algorithm == -7 and passkey.sign_count == 0
    assert passkey.attestation_format == "none"


def test_assertion_verifies_and_its_evidence_verifies_offline() -> None:
    phone, passkey = _passkey()
    challenge = secrets.token_bytes(32)
    evidence = verify_assertion(
        RP,
        _assert(phone, passkey.credential_id, challenge),
        challenge=challenge,
        public_key=passkey.public_key,
        stored_sign_count=passkey.sign_count,
    )
    assert evidence.user_verified and evidence.sign_count == 1
    stored = json.loads(json.dumps(evidence.as_json()))
    verify_evidence(stored, public_key=passkey.public_key, rp_id=RP.rp_id, challenge=challenge)
    with pytest.raises(PasskeyRejected) as other:
        verify_evidence(stored, public_key=passkey.public_key, rp_id=RP.rp_id, challenge=b"\0" * 32)
    assert other.value.code == "passkey-challenge"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda r: r["response"].update(clientDataJSON="not base64!"), "passkey-malformed"),
        (lambda r: r["response"].pop("attestationObject"), "passkey-malformed"),
        (lambda r: r["response"].update(attestationObject=b64url(b"\xa1")), "passkey-malformed"),
    ],
)
def test_malformed_registration_is_named(tamper: Any, code: str) -> None:
    response, challenge = _register(SoftwareAuthenticator(ORIGIN))
    tamper(response)
    with pytest.raises(PasskeyRejected) as refused:
        verify_registration(RP, response, challenge=challenge)
    assert refused.value.code == code


def test_registration_from_another_origin_or_rp_or_challenge_is_refused() -> None:
    response, challenge = _register(SoftwareAuthenticator("https://evil.example"))
    with pytest.raises(PasskeyRejected) as origin:
        verify_registration(RP, response, challenge=challenge)
    assert origin.value.code == "passkey-origin"
    other_rp = RelyingParty("evil.example", frozenset({ORIGIN}))
    response, challenge = _register(SoftwareAuthenticator(ORIGIN), other_rp)
    with pytest.raises(PasskeyRejected) as rp:
        verify_registration(RP, response, challenge=challenge)
    assert rp.value.code == "passkey-rp-id"
    response, _ = _register(SoftwareAuthenticator(ORIGIN))
    with pytest.raises(PasskeyRejected) as stale:
        verify_registration(RP, response, challenge=secrets.token_bytes(32))
    assert stale.value.code == "passkey-challenge"


def test_without_user_verification_nothing_registers_or_asserts() -> None:
    phone = SoftwareAuthenticator(ORIGIN, user_verifying=False)
    response, challenge = _register(phone)
    with pytest.raises(PasskeyRejected) as refused:
        verify_registration(RP, response, challenge=challenge)
    assert refused.value.code == "passkey-user-not-verified"
    phone, passkey = _passkey()
    phone.user_verifying = False
    challenge = secrets.token_bytes(32)
    with pytest.raises(PasskeyRejected) as assertion:
        verify_assertion(
            RP,
            _assert(phone, passkey.credential_id, challenge),
            challenge=challenge,
            public_key=passkey.public_key,
            stored_sign_count=0,
        )
    assert assertion.value.code == "passkey-user-not-verified"


def test_another_key_a_changed_signature_and_a_replay_are_refused() -> None:
    phone, passkey = _passkey()
    _, other = _passkey()
    challenge = secrets.token_bytes(32)
    response = _assert(phone, passkey.credential_id, challenge)
    with pytest.raises(PasskeyRejected) as wrong_key:
        verify_assertion(
            RP, response, challenge=challenge, public_key=other.public_key, stored_sign_count=0
        )
    assert wrong_key.value.code == "passkey-signature"
    flipped = bytearray(from_b64url(response["response"]["signature"]))
    flipped[-1] ^= 1
    changed = json.loads(json.dumps(response))
    changed["response"]["signature"] = b64url(bytes(flipped))
    with pytest.raises(PasskeyRejected) as bad:
        verify_assertion(
            RP, changed, challenge=challenge, public_key=passkey.public_key, stored_sign_count=0
        )
    assert bad.value.code == "passkey-signature"
    first = verify_assertion(
        RP, response, challenge=challenge, public_key=passkey.public_key, stored_sign_count=0
    )
    with pytest.raises(PasskeyRejected) as replay:
        verify_assertion(
            RP,
            response,
            challenge=challenge,
            public_key=passkey.public_key,
            stored_sign_count=first.sign_count,
        )
    assert replay.value.code == "passkey-replayed"


def test_canonical_json_follows_rfc_8785_key_order_and_escaping() -> None:
    # RFC 8785 section 3.2.3: keys sort by their UTF-16 code units.
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = canonical_json({key: "x" for key in keys}).decode()
    order = [json.loads(f'"{part.split(":")[0][1:-1]}"') for part in encoded[1:-1].split(",")]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert (
        canonical_json({"b": ["\u001f", "é"], "a": ""}) == '{"a":"","b":["\\u001f","é"]}'.encode()
    )
    with pytest.raises(TypeError):
        canonical_json({"n": 1})


def test_signing_challenge_commits_to_credential_hashes_and_nonce() -> None:
    base = signing_challenge("cred", ["aGFzaA=="], "n1")
    expected = hashlib.sha256(
        b'{"credentialID":"cred","hashes":["aGFzaA=="],"nonce":"n1"}'
    ).digest()
    assert base == expected
    assert signing_challenge("cred", ["b3RoZXI="], "n1") != base
    assert signing_challenge("cred", ["aGFzaA=="], "n2") != base
    assert signing_challenge("other", ["aGFzaA=="], "n1") != base


def _client(**fields: Any) -> str:
    base = {"type": "webauthn.get", "challenge": "AAAA", "origin": ORIGIN}
    return b64url(json.dumps({**base, **fields}).encode())


@pytest.mark.parametrize(
    "client_data",
    [
        _client(challenge=3_000_000_000),  # fido2 would allocate that many bytes
        _client(origin=["a", "b"]),
        _client(type=None),
        b64url(("[" * 5000 + "]" * 5000).encode()),
        b64url(b"not json"),
        b64url(b"x" * 5000),
    ],
)
def test_hostile_client_data_is_malformed_not_a_crash(client_data: str) -> None:
    phone, passkey = _passkey()
    challenge = secrets.token_bytes(32)
    response = _assert(phone, passkey.credential_id, challenge)
    response["response"]["clientDataJSON"] = client_data
    with pytest.raises(PasskeyRejected) as refused:
        verify_assertion(
            RP, response, challenge=challenge, public_key=passkey.public_key, stored_sign_count=0
        )
    assert refused.value.code == "passkey-malformed"


@pytest.mark.parametrize(
    "attestation",
    [
        b"\x19\x00",  # a truncated CBOR integer
        b"\x81" * 3000,  # arrays nested 3000 deep
        cbor.encode({"fmt": "none", "authData": 10**9, "attStmt": {}}),
        cbor.encode({"fmt": "none", "authData": b"\x00" * 20, "attStmt": {}}),
    ],
)
def test_hostile_attestation_objects_are_malformed(attestation: bytes) -> None:
    response, challenge = _register(SoftwareAuthenticator(ORIGIN))
    response["response"]["attestationObject"] = b64url(attestation)
    with pytest.raises(PasskeyRejected) as refused:
        verify_registration(RP, response, challenge=challenge)
    assert refused.value.code == "passkey-malformed"


def test_a_key_without_its_coordinates_is_refused_at_registration() -> None:
    response, challenge = _register(SoftwareAuthenticator(ORIGIN))
    attestation = AttestationObject(from_b64url(response["response"]["attestationObject"]))
    data = attestation.auth_data.credential_data
    assert data is not None
    broken = AttestedCredentialData.create(
        data.aaguid, data.credential_id, CoseKey({1: 2, 3: -7, -1: 1})
    )
    auth = AuthenticatorData.create(
        attestation.auth_data.rp_id_hash, attestation.auth_data.flags, 0, broken
    )
    forged = AttestationObject.create("none", auth, {})
    response["response"]["attestationObject"] = b64url(forged)
    with pytest.raises(PasskeyRejected) as refused:
        verify_registration(RP, response, challenge=challenge)
    assert refused.value.code == "passkey-malformed"


def test_authenticator_data_with_a_truncated_tail_is_malformed() -> None:
    phone, passkey = _passkey()
    challenge = secrets.token_bytes(32)
    response = _assert(phone, passkey.credential_id, challenge)
    raw = bytearray(from_b64url(response["response"]["authenticatorData"]))
    raw[32] |= 0x80  # claims extension data it does not have
    response["response"]["authenticatorData"] = b64url(bytes(raw) + b"\x19")
    with pytest.raises(PasskeyRejected) as refused:
        verify_assertion(
            RP, response, challenge=challenge, public_key=passkey.public_key, stored_sign_count=0
        )
    assert refused.value.code == "passkey-malformed"
