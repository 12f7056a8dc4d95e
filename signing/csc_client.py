"""A client of a licensed CA's remote signing service (Cloud Signature Consortium API v2).

EvalSign stays the signature activation module: the face check and the passkey authorize
a signature here, and the provider is asked, as an OAuth2 client (client credentials), to
authorize and sign exactly the approved hashes. Nothing the provider answers is taken on
trust: its certificate must chain to the root the center configured for it and not be
revoked (CRLs fetched from its distribution points), and every signature must verify
against the credential's public key over the hash that was sent.

`CscVault` puts a provider behind the vault interface (`signing.vault.Vault`), so a
credential whose key the provider holds (backend `csc`) signs like any other.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InsufficientRevinfoError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)

from signing.algorithms import HASH_OID_BY_NAME, KeyAlgorithm, algorithm_of
from signing.online_revocation import crl_urls
from signing.vault import KeyRef

# What a token is renewed ahead of its expiry, so it does not lapse between two calls.
TOKEN_MARGIN_S = 30.0
MAX_ANSWER_BYTES = 1 << 20  # a CSC answer is a few certificates or signatures


class CscError(Exception):
    """The provider could not be used; `reason` names why, in the audit log's words."""

    reason = "provider-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CscUnavailable(CscError):
    """Down, too slow, or answering 5xx or garbage: worth retrying later."""

    reason = "provider-unavailable"


class CscRefused(CscError):
    """The provider answered a 4xx CSC error: it will not do this as asked."""

    reason = "provider-refused"

    def __init__(self, detail: str, *, status: int, error: str, description: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.description = status, error, description


class CscSignatureInvalid(CscError):
    """A signature that does not verify over the hash that was sent (another hash signed,
    another key, or garbage)."""

    reason = "provider-signature-invalid"


class CscCertificateRejected(CscError):
    """The provider's certificate is not one the center accepts: `reason` says why."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason  # provider-certificate-untrusted | -revoked | -invalid


@dataclass(frozen=True)
class CscEndpoint:
    """Where a provider is and how EvalSign signs in to it."""

    base_url: str  # up to and without /csc/v2
    token_url: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 3.0
    read_s: float = 10.0


@dataclass(frozen=True)
class RemoteCredential:
    """A provider's credential as `credentials/info` describes it."""

    credential_id: str
    certificate: x509.Certificate
    chain: list[x509.Certificate]  # issuers, as the provider lists them after the signer
    key_algorithm: KeyAlgorithm
    key_status: str
    description: str | None


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CscClient:
    """One provider, over HTTP with explicit connect and read timeouts; the OAuth2 access
    token is shared by every client of the same provider and account until it expires."""

    def __init__(
        self,
        endpoint: CscEndpoint,
        timeouts: Timeouts | None = None,
        *,
        http: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeouts = timeouts or Timeouts()
        self._http = http or requests.Session()
        secret_hash = hashlib.sha256(endpoint.client_secret.encode()).hexdigest()
        self._token_key = (endpoint.token_url, endpoint.client_id, secret_hash)

    # --- transport ------------------------------------------------------------------------

    def _send(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._http.post(
                url,
                timeout=(self.timeouts.connect_s, self.timeouts.read_s),
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout as exc:
            raise CscUnavailable(
                f"the signing provider did not answer within {self.timeouts.read_s:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise CscUnavailable(f"the signing provider cannot be reached: {exc}") from exc

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 500:
            raise CscUnavailable(
                f"the signing provider answered {what} with HTTP {response.status_code}"
            )
        try:
            body = response.json() if len(response.content) <= MAX_ANSWER_BYTES else None
        except ValueError:
            body = None
        if 400 <= response.status_code < 500:
            error = str((body or {}).get("error", "")) if isinstance(body, dict) else ""
            description = (
                str((body or {}).get("error_description", "")) if isinstance(body, dict) else ""
            )
            raise CscRefused(
                f"the signing provider refused {what}: {error or response.status_code}"
                + (f" ({description})" if description else ""),
                status=response.status_code,
                error=error,
                description=description,
            )
        if response.status_code != 200 or not isinstance(body, dict):
            raise CscUnavailable(f"the signing provider's answer to {what} is not CSC JSON")
        return body

    def _token(self, *, renew: bool = False) -> str:
        now = time.monotonic()
        with _tokens_lock:
            cached = _tokens.get(self._token_key)
            if cached is not None and not renew and cached[1] > now:
                return cached[0]
        response = self._send(
            self.endpoint.token_url,
            data={"grant_type": "client_credentials"},
            auth=(self.endpoint.client_id, self.endpoint.client_secret),
        )
        body = self._json(response, "the token request")
        token, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(token, str) or not isinstance(expires_in, int | float):
            raise CscUnavailable("the signing provider's token answer has no access_token")
        with _tokens_lock:
            _tokens[self._token_key] = (token, now + max(0.0, expires_in - TOKEN_MARGIN_S))
        return token

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a CSC v2 method (`credentials/info`…) with the service's bearer token;
        an expired or revoked token is renewed once."""
        url = f"{self.endpoint.base_url.rstrip('/')}/csc/v2/{method}"
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self._token(renew=attempt == 1)}"}
            response = self._send(url, json=body, headers=headers)
            if response.status_code == 401 and attempt == 0:
                continue
            return self._json(response, method)
        raise AssertionError("unreachable")

    # --- the CSC methods ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        url = f"{self.endpoint.base_url.rstrip('/')}/csc/v2/info"
        return self._json(self._send(url, json={}), "info")

    def list_credentials(self, user_id: str | None = None) -> list[str]:
        body = self.call("credentials/list", {"userID": user_id} if user_id else {})
        ids = body.get("credentialIDs")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CscUnavailable("credentials/list answered without credentialIDs")
        return ids

    def credential_info(self, credential_id: str) -> RemoteCredential:
        body = self.call(
            "credentials/info",
            {"credentialID": credential_id, "certificates": "chain", "certInfo": True},
        )
        try:
            cert, key = body["cert"], body["key"]
            certificates = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
                for c in cert["certificates"]
            ]
            signer, chain = certificates[0], certificates[1:]
            algorithm = algorithm_of(signer.public_key())
            status = str(key.get("status", "enabled"))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CscUnavailable(
                f"credentials/info answered without a usable certificate: {exc}"
            ) from exc
        return RemoteCredential(
            credential_id, signer, chain, algorithm, status, body.get("description")
        )

    def authorize(self, credential_id: str, digests: Sequence[bytes], hash_oid: str) -> str:
        """The provider's SAD for exactly these hashes (EvalSign did the user's part)."""
        body = self.call(
            "credentials/authorize",
            {
                "credentialID": credential_id,
                "numSignatures": len(digests),
                "hashes": [_b64(d) for d in digests],
                "hashAlgorithmOID": hash_oid,
            },
        )
        sad = body.get("SAD")
        if not isinstance(sad, str) or not sad:
            raise CscUnavailable("credentials/authorize answered without a SAD")
        return sad

    def sign_hashes(
        self,
        credential_id: str,
        sad: str,
        digests: Sequence[bytes],
        hash_oid: str,
        sign_algo: str,
    ) -> list[bytes]:
        body = self.call(
            "signatures/signHash",
            {
                "credentialID": credential_id,
                "SAD": sad,
                "hashes": [_b64(d) for d in digests],
                "hashAlgorithmOID": hash_oid,
                "signAlgo": sign_algo,
            },
        )
        values = body.get("signatures")
        if not isinstance(values, list) or len(values) != len(digests):
            raise CscSignatureInvalid(
                f"signatures/signHash answered {len(values) if isinstance(values, list) else 0}"
                f" signatures for {len(digests)} hashes"
            )
        try:
            return [base64.b64decode(v, validate=True) for v in values]
        except (TypeError, ValueError) as exc:
            raise CscSignatureInvalid(
                "signatures/signHash answered a signature that is not base64"
            ) from exc


def verify_signature(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    digest: bytes,
    signature: bytes,
    algorithm: hashes.HashAlgorithm,
) -> None:
    """Raise CscSignatureInvalid unless `signature` is the key's over `digest`."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
        else:
            public_key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    except (InvalidSignature, ValueError) as exc:
        raise CscSignatureInvalid(
            "the provider's signature does not verify over the hash that was sent"
        ) from exc


class CscVault:
    """The vault interface over one provider: `KeyRef.token_key_id` is the provider's
    credentialID. Each call authorizes exactly one hash at the provider, signs it there and
    checks the signature before anyone uses it."""

    backend = "csc"

    def __init__(self, client: CscClient) -> None:
        self.client = client

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyRef:
        raise CscRefused(
            "a remote provider's keys are made by the provider, not by EvalSign",
            status=400,
            error="invalid_request",
            description="",
        )

    def sign_digest(self, key: KeyRef, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if key.backend != self.backend or not key.token_key_id:
            raise CscRefused(
                f"key {key.id} is not held by a remote provider",
                status=400,
                error="invalid_request",
                description="",
            )
        hash_oid = HASH_OID_BY_NAME[algorithm.name]
        sad = self.client.authorize(key.token_key_id, [digest], hash_oid)
        [signature] = self.client.sign_hashes(
            key.token_key_id, sad, [digest], hash_oid, _sign_algo(key.algorithm, algorithm)
        )
        verify_signature(key.public_key(), digest, signature, algorithm)
        return signature


def _sign_algo(key: KeyAlgorithm, algorithm: hashes.HashAlgorithm) -> str:
    names = {
        (KeyAlgorithm.EC_P256, "sha256"): "1.2.840.10045.4.3.2",
        (KeyAlgorithm.EC_P256, "sha384"): "1.2.840.10045.4.3.3",
        (KeyAlgorithm.EC_P256, "sha512"): "1.2.840.10045.4.3.4",
    }
    # RSA: rsaEncryption with hashAlgorithmOID, the form every CSC provider accepts.
    return names.get((key, algorithm.name), "1.2.840.113549.1.1.1")


# --- the provider's certificate --------------------------------------------------------------


def fetch_crls(
    certificates: Sequence[x509.Certificate],
    timeouts: Timeouts,
    *,
    http: requests.Session | None = None,
) -> list[bytes]:
    """The CRLs the certificates' distribution points publish (DER), fetched now; a CRL
    that cannot be fetched makes the provider unavailable (no B-LT file without it)."""
    http = http or requests.Session()
    found: list[bytes] = []
    for url in dict.fromkeys(u for c in certificates for u in crl_urls(c)):
        try:
            response = http.get(url, timeout=(timeouts.connect_s, timeouts.read_s))
        except requests.RequestException as exc:
            raise CscUnavailable(f"the provider's CRL {url} cannot be fetched: {exc}") from exc
        if response.status_code != 200 or len(response.content) > MAX_ANSWER_BYTES:
            raise CscUnavailable(f"the provider's CRL {url} answered HTTP {response.status_code}")
        try:
            asn1_crl.CertificateList.load(response.content).native  # noqa: B018  (parses it)
        except ValueError as exc:
            raise CscUnavailable(f"the provider's CRL {url} is not a CRL") from exc
        found.append(response.content)
    return found


def check_certificate(
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    crls: Sequence[bytes],
    moment: datetime,
) -> list[x509.Certificate]:
    """The signer's path up to and including `root`, if the certificate chains to it, is
    valid at `moment`, fit for signatures and not revoked by the given CRLs; otherwise
    CscCertificateRejected with the reason."""

    def asn1(c: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

    context = ValidationContext(
        trust_roots=[asn1(root)],
        other_certs=[asn1(c) for c in chain],
        crls=[asn1_crl.CertificateList.load(c) for c in crls],
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=moment,
    )
    validator = CertificateValidator(
        asn1(certificate), [asn1(c) for c in chain], validation_context=context
    )
    try:
        path = asyncio.run(validator.async_validate_usage({"digital_signature"}))  # type: ignore[no-untyped-call]
    except PathBuildingError as exc:
        raise CscCertificateRejected(
            f"the provider's certificate {certificate.subject.rfc4514_string()} does not chain "
            "to the root configured for the provider",
            reason="provider-certificate-untrusted",
        ) from exc
    except RevokedError as exc:
        raise CscCertificateRejected(
            f"the provider's certificate is revoked: {exc}", reason="provider-certificate-revoked"
        ) from exc
    except InsufficientRevinfoError as exc:
        raise CscUnavailable(f"no current revocation data for the provider's chain: {exc}") from exc
    except PathValidationError as exc:
        raise CscCertificateRejected(
            f"the provider's certificate is not valid for signing: {exc}",
            reason="provider-certificate-invalid",
        ) from exc
    issuers = [x509.load_der_x509_certificate(c.dump()) for c in list(path)[:-1]]
    return list(reversed(issuers))
