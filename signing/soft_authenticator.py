"""A passkey authenticator in software: what `evalsign demo`'s simulated phones and the API
tests use where a real phone would hold the key in its secure hardware. It answers
WebAuthn options exactly as a browser passes a platform authenticator's answer on (the
JSON of RegistrationResponse and AuthenticationResponse), built with fido2's structures.
It is not a security device: its key lives in this process's memory."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

from signing.webauthn import b64url, from_b64url

# An AAGUID of our own, so records show which passkeys were simulated.
SOFTWARE_AAGUID = bytes.fromhex("e7a15190" + "0000" + "4000" + "8000" + "000000000001")
_FLAGS = AuthenticatorData.FLAG


@dataclass
class SoftwareAuthenticator:
    """One phone's passkeys, per RP id; `origin` is the page the phone's browser shows."""

    origin: str
    user_verifying: bool = True
    _keys: dict[bytes, tuple[str, ec.EllipticCurvePrivateKey]] = field(default_factory=dict)
    _counters: dict[bytes, int] = field(default_factory=dict)

    @property
    def credential_ids(self) -> list[bytes]:
        return list(self._keys)

    def _flags(self) -> AuthenticatorData.FLAG:
        return _FLAGS.UP | _FLAGS.UV if self.user_verifying else _FLAGS.UP

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """Answer PublicKeyCredentialCreationOptions (JSON) with a new ES256 passkey."""
        rp_id = options["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        credential_id = secrets.token_bytes(32)
        self._keys[credential_id] = (rp_id, key)
        self._counters[credential_id] = 0
        cose = ES256.from_cryptography_key(key.public_key())  # type: ignore[no-untyped-call]
        attested = AttestedCredentialData.create(SOFTWARE_AAGUID, credential_id, cose)
        auth = AuthenticatorData.create(
            hashlib.sha256(rp_id.encode()).digest(),
            self._flags() | _FLAGS.AT,
            0,
            attested,
        )
        client = CollectedClientData.create(
            "webauthn.create", from_b64url(options["challenge"]), self.origin
        )
        attestation = AttestationObject.create("none", auth, {})
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(self, options: dict[str, Any], *, challenge: bytes | None = None) -> dict[str, Any]:
        """Answer PublicKeyCredentialRequestOptions (JSON) with the first allowed passkey
        held here; `challenge` overrides the options' (a CSC client computing its own)."""
        rp_id = options.get("rpId")
        allowed = [from_b64url(c["id"]) for c in options.get("allowCredentials", [])]
        held = [c for c in allowed if c in self._keys] if allowed else list(self._keys)
        if not held:
            raise LookupError("this authenticator holds none of the allowed passkeys")
        credential_id = held[0]
        key_rp, key = self._keys[credential_id]
        rp_id = rp_id or key_rp
        self._counters[credential_id] += 1
        auth = AuthenticatorData.create(
            hashlib.sha256(rp_id.encode()).digest(),
            self._flags(),
            self._counters[credential_id],
        )
        wanted = challenge if challenge is not None else from_b64url(options["challenge"])
        client = CollectedClientData.create("webauthn.get", wanted, self.origin)
        signature = key.sign(auth + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client),
                "authenticatorData": b64url(auth),
                "signature": b64url(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        }
