"""Passkeys (WebAuthn) for the relying party: registration and assertion responses parsed
and checked with fido2's structures (its CBOR and COSE, not ours), each failure named so
that a client knows what went wrong and a supervisor can search for it.

Only what the server must decide lives here: no database, no HTTP. The caller supplies the
challenge it issued, the stored public key and sign count, and keeps the evidence this
returns, which anyone can check again offline with `verify_evidence`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from fido2 import cbor
from fido2.cose import CoseKey
from fido2.webauthn import (
    AttestationObject,
    AuthenticatorData,
    CollectedClientData,
)

# Algorithms phones' platform authenticators use: ES256 (every one), RS256 (Windows Hello).
COSE_ALGORITHMS = (-7, -257)
_CREATE = "webauthn.create"
_GET = "webauthn.get"


class PasskeyRejected(Exception):
    """A registration or assertion that does not verify; `code` says which check failed."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the RP id (a host name, never an IP address) and the page
    origins allowed to use them (the same for every replica)."""

    rp_id: str
    origins: frozenset[str]
    name: str = "EvalSign"

    @property
    def id_hash(self) -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest()


@dataclass(frozen=True)
class NewPasskey:
    credential_id: bytes
    public_key: bytes  # the COSE key, CBOR-encoded as the authenticator sent it
    algorithm: int
    sign_count: int
    aaguid: str
    backup_eligible: bool
    attestation_format: str


@dataclass(frozen=True)
class AssertionEvidence:
    """What proves that a passkey approved a challenge: kept with the action it approved
    so a third party can verify it against the stored public key."""

    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    sign_count: int
    user_verified: bool

    def as_json(self) -> dict[str, str | int | bool]:
        return {
            "credential_id": b64url(self.credential_id),
            "authenticator_data": b64url(self.authenticator_data),
            "client_data_json": b64url(self.client_data_json),
            "signature": b64url(self.signature),
            "sign_count": self.sign_count,
            "user_verified": self.user_verified,
        }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 65536:
        raise PasskeyRejected("passkey-malformed", "expected a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PasskeyRejected("passkey-malformed", f"not base64url: {exc}") from exc


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) for the values signing challenges carry: objects, arrays and
    strings. Keys sort by UTF-16 code units; Python's escaping of strings is ECMAScript's."""

    def check(item: Any) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise TypeError("object keys must be strings")
                check(inner)
        elif isinstance(item, list):
            for inner in item:
                check(inner)
        elif not isinstance(item, str):
            raise TypeError(f"only objects, arrays and strings, not {type(item).__name__}")

    check(value)

    def encode(item: Any) -> str:
        if isinstance(item, dict):
            keys = sorted(item, key=lambda k: k.encode("utf-16-be"))
            return "{" + ",".join(f"{encode(k)}:{encode(item[k])}" for k in keys) + "}"
        if isinstance(item, list):
            return "[" + ",".join(encode(inner) for inner in item) + "]"
        return json.dumps(item, ensure_ascii=False)

    return encode(value).encode("utf-8")


def signing_challenge(credential_id: str, hashes: Sequence[str], nonce: str) -> bytes:
    """The WebAuthn challenge that approves signing exactly `hashes` with a credential:
    SHA-256 over the JCS encoding of {credentialID, hashes, nonce}."""
    payload = {"credentialID": credential_id, "hashes": list(hashes), "nonce": nonce}
    return hashlib.sha256(canonical_json(payload)).digest()


def creation_options(
    rp: RelyingParty,
    *,
    user_id: bytes,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: Sequence[bytes],
    timeout_ms: int,
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions as JSON (binary fields base64url) for a phone:
    a platform passkey, user verification required, discoverable if it can be."""
    return {
        "rp": {"id": rp.rp_id, "name": rp.name},
        "user": {"id": b64url(user_id), "name": user_name, "displayName": display_name},
        "challenge": b64url(challenge),
        "pubKeyCredParams": [{"type": "public-key", "alg": alg} for alg in COSE_ALGORITHMS],
        "timeout": timeout_ms,
        "excludeCredentials": [{"type": "public-key", "id": b64url(c)} for c in exclude],
        "authenticatorSelection": {
            "authenticatorAttachment": "platform",
            "residentKey": "preferred",
            "requireResidentKey": False,
            "userVerification": "required",
        },
        "attestation": "none",
    }


def request_options(
    rp: RelyingParty, *, challenge: bytes, allow: Sequence[bytes], timeout_ms: int
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions as JSON for one of the `allow` credentials."""
    return {
        "rpId": rp.rp_id,
        "challenge": b64url(challenge),
        "timeout": timeout_ms,
        "allowCredentials": [{"type": "public-key", "id": b64url(c)} for c in allow],
        "userVerification": "required",
    }


def _field(response: Mapping[str, Any], *path: str) -> bytes:
    node: Any = response
    for name in path:
        if not isinstance(node, Mapping) or name not in node:
            raise PasskeyRejected("passkey-malformed", f"missing {'.'.join(path)}")
        node = node[name]
    return from_b64url(node)


def _parsed_client_data(raw: bytes) -> CollectedClientData:
    """clientDataJSON, checked before fido2 reads it: a JSON object whose type, challenge and
    origin are strings of sane length (a number as the challenge would make fido2 allocate
    that many bytes; deep nesting would exhaust the stack)."""
    if len(raw) > 4096:
        raise PasskeyRejected("passkey-malformed", "clientDataJSON is too long")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PasskeyRejected("passkey-malformed", f"clientDataJSON: {exc}") from exc
    fields = ("type", "challenge", "origin")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        raise PasskeyRejected("passkey-malformed", "clientDataJSON lacks type/challenge/origin")
    if len(data["challenge"]) > 200 or len(data["origin"]) > 500:
        raise PasskeyRejected("passkey-malformed", "clientDataJSON fields are too long")
    try:
        return CollectedClientData(raw)
    except Exception as exc:  # fido2 raises what it meets; any of it is a malformed answer
        raise PasskeyRejected("passkey-malformed", f"clientDataJSON: {exc}") from exc


def _authenticator_data(raw: bytes) -> AuthenticatorData:
    try:
        return AuthenticatorData(raw)
    except Exception as exc:  # struct.error, a non-map COSE key, nested CBOR...
        raise PasskeyRejected("passkey-malformed", f"authenticatorData: {exc}") from exc


def _client_data(raw: bytes, rp: RelyingParty, kind: str, challenge: bytes) -> None:
    client = _parsed_client_data(raw)
    if client.type != kind:
        raise PasskeyRejected("passkey-malformed", f"clientDataJSON is {client.type!r}")
    if client.origin not in rp.origins:
        raise PasskeyRejected("passkey-origin", f"made on {client.origin!r}, not this service")
    if client.challenge != challenge:
        raise PasskeyRejected("passkey-challenge", "the passkey answered another challenge")


def _flags(auth: AuthenticatorData, rp: RelyingParty) -> None:
    if auth.rp_id_hash != rp.id_hash:
        raise PasskeyRejected("passkey-rp-id", "the passkey is for another site (RP id)")
    if not auth.is_user_present():
        raise PasskeyRejected("passkey-user-not-verified", "no user presence")
    if not auth.is_user_verified():
        raise PasskeyRejected(
            "passkey-user-not-verified", "the phone did not verify its user (PIN, biometric)"
        )


def verify_registration(
    rp: RelyingParty, response: Mapping[str, Any], *, challenge: bytes
) -> NewPasskey:
    """Check a navigator.credentials.create() answer (RegistrationResponseJSON) to
    `challenge`. Attestation is not required of phones (format "none" is accepted)."""
    raw_client = _field(response, "response", "clientDataJSON")
    raw_attestation = _field(response, "response", "attestationObject")
    _client_data(raw_client, rp, _CREATE, challenge)
    try:
        decoded = cbor.decode(raw_attestation)
        if not (
            isinstance(decoded, dict)
            and isinstance(decoded.get("authData"), bytes)
            and isinstance(decoded.get("fmt"), str)
            and isinstance(decoded.get("attStmt"), dict)
        ):
            raise ValueError("not a map of fmt, authData and attStmt")
        attestation = AttestationObject(raw_attestation)
    except Exception as exc:  # truncated or nested CBOR, wrong types: malformed
        raise PasskeyRejected("passkey-malformed", f"attestationObject: {exc}") from exc
    auth = attestation.auth_data
    _flags(auth, rp)
    data = auth.credential_data
    if data is None:
        raise PasskeyRejected("passkey-malformed", "no credential in the attestation")
    algorithm = data.public_key.ALGORITHM
    if algorithm not in COSE_ALGORITHMS:
        raise PasskeyRejected("passkey-malformed", f"COSE algorithm {algorithm} not allowed")
    _usable_key(data.public_key)
    raw_id = response.get("rawId")
    if raw_id is not None and from_b64url(raw_id) != data.credential_id:
        raise PasskeyRejected("passkey-malformed", "rawId is not the attested credential")
    return NewPasskey(
        credential_id=bytes(data.credential_id),
        public_key=cbor.encode(dict(data.public_key)),
        algorithm=int(algorithm),
        sign_count=int(auth.counter),
        aaguid=str(data.aaguid),
        backup_eligible=auth.is_backup_eligible(),
        attestation_format=str(attestation.fmt),
    )


def client_challenge(response: Mapping[str, Any]) -> bytes:
    """The challenge a response says it answers (to find the server's record of it)."""
    return _parsed_client_data(_field(response, "response", "clientDataJSON")).challenge


def credential_id_of(response: Mapping[str, Any]) -> bytes:
    """Which credential an assertion (AuthenticationResponseJSON) claims to come from."""
    return _field(response, "rawId")


def verify_assertion(
    rp: RelyingParty,
    response: Mapping[str, Any],
    *,
    challenge: bytes,
    public_key: bytes,
    stored_sign_count: int,
) -> AssertionEvidence:
    """Check a navigator.credentials.get() answer to `challenge` against the stored COSE
    public key. A sign count that does not move past the stored one (when either is not
    zero) means a cloned authenticator or a replay."""
    credential_id = credential_id_of(response)
    raw_client = _field(response, "response", "clientDataJSON")
    raw_auth = _field(response, "response", "authenticatorData")
    signature = _field(response, "response", "signature")
    _client_data(raw_client, rp, _GET, challenge)
    auth = _authenticator_data(raw_auth)
    _flags(auth, rp)
    _check_signature(public_key, raw_auth, raw_client, signature)
    if (auth.counter or stored_sign_count) and auth.counter <= stored_sign_count:
        raise PasskeyRejected(
            "passkey-replayed",
            f"sign count {auth.counter} does not exceed {stored_sign_count}: a copy or a replay",
        )
    return AssertionEvidence(
        credential_id=credential_id,
        authenticator_data=raw_auth,
        client_data_json=raw_client,
        signature=signature,
        sign_count=int(auth.counter),
        user_verified=auth.is_user_verified(),
    )


def _usable_key(key: CoseKey) -> None:
    """A key that can verify at all: a well-formed one refuses a wrong signature with
    InvalidSignature; anything else (missing coordinates, wrong types) is no key."""
    try:
        key.verify(b"probe", _PROBE_SIGNATURE)
    except InvalidSignature:
        return
    except Exception as exc:
        raise PasskeyRejected("passkey-malformed", f"the public key is unusable: {exc}") from exc


# A DER ECDSA signature (r = s = 1) that no real key accepts: enough to make a key parse.
_PROBE_SIGNATURE = bytes.fromhex("3006020101020101")


def _check_signature(
    public_key: bytes, authenticator_data: bytes, client_data_json: bytes, signature: bytes
) -> None:
    try:
        key = CoseKey.parse(cast(Mapping[int, Any], cbor.decode(public_key)))
    except Exception as exc:
        raise PasskeyRejected("passkey-malformed", f"stored key unreadable: {exc}") from exc
    signed = authenticator_data + hashlib.sha256(client_data_json).digest()
    try:
        key.verify(signed, signature)
    except Exception as exc:  # InvalidSignature, or a signature that is not one
        raise PasskeyRejected(
            "passkey-signature", "the passkey's signature does not verify"
        ) from exc


def verify_evidence(
    evidence: Mapping[str, Any], *, public_key: bytes, rp_id: str, challenge: bytes
) -> None:
    """Offline check of stored evidence (as `AssertionEvidence.as_json` wrote it): the
    signature under the public key, the RP id, user verification and the challenge."""
    raw_auth = from_b64url(evidence["authenticator_data"])
    raw_client = from_b64url(evidence["client_data_json"])
    _check_signature(public_key, raw_auth, raw_client, from_b64url(evidence["signature"]))
    auth = _authenticator_data(raw_auth)
    if auth.rp_id_hash != hashlib.sha256(rp_id.encode()).digest():
        raise PasskeyRejected("passkey-rp-id", "the evidence is for another RP id")
    if not auth.is_user_verified():
        raise PasskeyRejected("passkey-user-not-verified", "no user verification")
    client = _parsed_client_data(raw_client)
    if client.type != _GET or not auth.is_user_present():
        raise PasskeyRejected("passkey-malformed", "not a user-present assertion")
    if client.challenge != challenge:
        raise PasskeyRejected("passkey-challenge", "the evidence answers another challenge")
