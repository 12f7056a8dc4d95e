"""A stand-in for a licensed CA's remote signing service (CSC API v2): a real HTTP server on
127.0.0.1, so the tests drive EvalSign's CSC client over a socket.

It is written from the CSC v2 specification's request and response shapes, not from
signing/csc_client.py: an OAuth2 client-credentials token endpoint (`/oauth2/token`,
client_secret_basic or _post), `/csc/v2/info`, `credentials/list`, `credentials/info`,
`credentials/authorize` (a single-use SAD bound to the credential and the hashes) and
`signatures/signHash`. Its own CA (a root and an issuing CA, software keys made with
`cryptography`) certifies signing keys held on a SoftHSM2 token, and publishes its CRLs at
`/crl/root` and `/crl/issuing`, the addresses in its certificates.

Switches make it misbehave the ways a real provider can: answer 5xx (`status`), answer
too late (`delay_s`), refuse with a CSC error (`refuse`), sign other hashes than it was
sent (`sign_other_hashes`), present a certificate from another CA (`untrusted_certificate`),
revoke a credential (`revoke`), or be down altogether (`stop`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from signing.algorithms import KeyAlgorithm
from signing.pkcs11_vault import Pkcs11Vault
from signing.vault import KeyRef
from tests.signing.softhsm import SoftHsmToken

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # RFC 9336
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SHA256 = "2.16.840.1.101.3.4.2.1"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stand-in Licensed CA Co."),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(
    subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, crl_url: str | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if crl_url:
        builder = builder.add_extension(_crl_point(crl_url), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _crl_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def _signer_certificate(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    crl_url: str,
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=200))
        .not_valid_after(now + timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(_crl_point(crl_url), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _der(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@dataclass
class _Credential:
    id: str
    user_id: str
    key: KeyRef
    certificate: x509.Certificate
    rogue: x509.Certificate  # the same key certified by a CA nobody trusts


@dataclass
class _Sad:
    credential_id: str
    hashes: set[str]
    hash_oid: str
    expires: float


@dataclass
class CscProviderStandIn:
    token: SoftHsmToken
    now: Callable[[], datetime]  # the CRLs' time, the service's (frozen) clock
    client_id: str = "evalsign-center"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_ttl_s: int = 3600
    # Switches: what goes wrong.
    status: int | None = None  # answer every CSC call (not the token, not CRLs) with this
    delay_s: float = 0.0  # answer CSC calls this late
    refuse: tuple[str, str] | None = None  # (error, error_description) for authorize/signHash
    sign_other_hashes: bool = False
    untrusted_certificate: bool = False
    # What it saw.
    calls: list[str] = field(default_factory=list)
    tokens_issued: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._vault = Pkcs11Vault(self.token.module, self.token.label, self.token.pin)
        self._server: ThreadingHTTPServer | None = None
        self._credentials: dict[str, _Credential] = {}
        self._access_tokens: dict[str, float] = {}
        self._sads: dict[str, _Sad] = {}
        self._revoked: dict[int, datetime] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    # --- its PKI --------------------------------------------------------------------------

    def _make_pki(self) -> None:
        self.root, self._root_key = _ca("Stand-in CSC Root CA", None, None)
        self.issuing, self._issuing_key = _ca(
            "Stand-in CSC Issuing CA", (self.root.subject, self._root_key), f"{self.url}/crl/root"
        )
        self.rogue_root, self._rogue_key = _ca("Rogue Root CA", None, None)

    def add_credential(self, user_id: str, name: str) -> str:
        """A signing key on the token and its certificate; returns the credentialID."""
        credential_id = f"cred-{secrets.token_hex(8)}"
        key = self._vault.generate_key(f"csc-standin-{credential_id}", KeyAlgorithm.EC_P256)
        public = key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        certificate = _signer_certificate(
            name, public, self.issuing, self._issuing_key, f"{self.url}/crl/issuing"
        )
        rogue = _signer_certificate(
            name, public, self.rogue_root, self._rogue_key, f"{self.url}/crl/rogue"
        )
        self._credentials[credential_id] = _Credential(
            credential_id, user_id, key, certificate, rogue
        )
        return credential_id

    def reissue(self, credential_id: str) -> x509.Certificate:
        """A new certificate for the same key (as a CA renews one)."""
        credential = self._credentials[credential_id]
        public = credential.key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        credential.certificate = _signer_certificate(
            "renewed " + credential.certificate.subject.rfc4514_string()[:40],
            public,
            self.issuing,
            self._issuing_key,
            f"{self.url}/crl/issuing",
        )
        return credential.certificate

    def certificate_of(self, credential_id: str) -> x509.Certificate:
        return self._credentials[credential_id].certificate

    def revoke(self, credential_id: str) -> None:
        serial = self._credentials[credential_id].certificate.serial_number
        self._revoked[serial] = self.now() - timedelta(minutes=5)

    def crl(self, which: str) -> bytes:
        issuer, key = {
            "root": (self.root, self._root_key),
            "issuing": (self.issuing, self._issuing_key),
            "rogue": (self.rogue_root, self._rogue_key),
        }[which]
        now = self.now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=1))
            .add_extension(x509.CRLNumber(int(time.time())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                critical=False,
            )
        )
        if which == "issuing":
            for serial, at in self._revoked.items():
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(at)
                    .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
                    .build()
                )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # --- the HTTP server -----------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                which = self.path.removeprefix("/crl/")
                if self.path.startswith("/crl/") and which in ("root", "issuing", "rogue"):
                    self._send(200, standin.crl(which), "application/pkix-crl")
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    status, answer = standin.answer(self.path, dict(self.headers.items()), body)
                except Exception as exc:  # a stand-in bug shows as a 500 with its text
                    status, answer = 500, {"error": "server_error", "error_description": str(exc)}
                self._json(status, answer)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # The client may have given up waiting (the slow switch).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        ThreadingHTTPServer.daemon_threads = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        first = self.port == 0
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        if first:
            self._make_pki()

    def stop(self) -> None:
        """Down: connections to the port are refused until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- the protocol --------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        headers = {k.lower(): v for k, v in headers.items()}
        if path == "/oauth2/token":
            return self._token(headers, body)
        self.calls.append(path)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.status is not None:
            return self.status, {"error": "server_error", "error_description": "try later"}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": "invalid_request", "error_description": "not JSON"}
        if path == "/csc/v2/info":
            return 200, self._info()
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            if self._access_tokens.get(bearer, 0) < time.monotonic():
                return 401, {"error": "invalid_token", "error_description": "unknown or expired"}
        method = {
            "/csc/v2/credentials/list": self._list,
            "/csc/v2/credentials/info": self._credential_info,
            "/csc/v2/credentials/authorize": self._authorize,
            "/csc/v2/signatures/signHash": self._sign_hash,
        }.get(path)
        if method is None:
            return 404, {"error": "invalid_request", "error_description": f"no method {path}"}
        return method(request)

    def _token(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        form = dict(pair.split("=", 1) for pair in body.decode().split("&") if "=" in pair)
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[token] = time.monotonic() + self.token_ttl_s
            self.tokens_issued += 1
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_s}

    def expire_tokens(self) -> None:
        with self._lock:
            self._access_tokens.clear()

    def _info(self) -> dict[str, Any]:
        return {
            "specs": "2.0.0.2",
            "name": "Stand-in Licensed CA remote signing",
            "logo": f"{self.url}/logo.png",
            "region": "CN",
            "lang": "zh-CN",
            "description": "CSC API v2 stand-in for EvalSign's tests",
            "authType": ["oauth2client"],
            "oauth2": self.url,
            "methods": [
                "credentials/list",
                "credentials/info",
                "credentials/authorize",
                "signatures/signHash",
            ],
        }

    def _list(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        user = request.get("userID")
        ids = [c.id for c in self._credentials.values() if user in (None, c.user_id)]
        return 200, {"credentialIDs": ids}

    def _credential(self, request: dict[str, Any]) -> _Credential | None:
        return self._credentials.get(str(request.get("credentialID")))

    def _credential_info(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        credential = self._credential(request)
        if credential is None:
            return 400, {"error": "invalid_request", "error_description": "Invalid credentialID"}
        if self.untrusted_certificate:
            chain = [credential.rogue, self.rogue_root]
        else:
            chain = [credential.certificate, self.issuing, self.root]
        signer = chain[0]
        revoked = signer.serial_number in self._revoked
        return 200, {
            "description": f"signing key of {credential.user_id}",
            "key": {
                "status": "enabled",
                "algo": [ECDSA_SHA256],
                "len": 256,
                "curve": "1.2.840.10045.3.1.7",
            },
            "cert": {
                "status": "revoked" if revoked else "valid",
                "certificates": [_der(c) for c in chain]
                if request.get("certificates") == "chain"
                else [_der(signer)],
                "issuerDN": signer.issuer.rfc4514_string(),
                "serialNumber": format(signer.serial_number, "x"),
                "subjectDN": signer.subject.rfc4514_string(),
                "validFrom": signer.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
                "validTo": signer.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
            },
            "authMode": "explicit",
            "multisign": 1,
            "lang": "zh-CN",
        }

    def _refusal(self) -> tuple[int, dict[str, Any]] | None:
        if self.refuse is None:
            return None
        error, description = self.refuse
        return 400, {"error": error, "error_description": description}

    def _authorize(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (refused := self._refusal()) is not None:
            return refused
        credential = self._credential(request)
        if credential is None:
            return 400, {"error": "invalid_request", "error_description": "Invalid credentialID"}
        hashes_ = request.get("hashes") or []
        if (
            request.get("numSignatures") != len(hashes_)
            or request.get("hashAlgorithmOID") != SHA256
        ):
            return 400, {
                "error": "invalid_request",
                "error_description": "Invalid parameter hashes",
            }
        sad = secrets.token_urlsafe(24)
        with self._lock:
            self._sads[sad] = _Sad(credential.id, set(hashes_), SHA256, time.monotonic() + 300)
        return 200, {"SAD": sad, "expiresIn": 300}

    def _sign_hash(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (refused := self._refusal()) is not None:
            return refused
        with self._lock:
            sad = self._sads.pop(str(request.get("SAD")), None)
        credential = self._credential(request)
        hashes_ = request.get("hashes") or []
        if sad is None or sad.expires < time.monotonic() or credential is None:
            return 400, {"error": "invalid_request", "error_description": "Invalid SAD"}
        if sad.credential_id != credential.id or not set(hashes_) <= sad.hashes:
            return 400, {"error": "invalid_request", "error_description": "SAD does not match"}
        if request.get("signAlgo") != ECDSA_SHA256:
            return 400, {"error": "invalid_request", "error_description": "Invalid signAlgo"}
        signatures = []
        for value in hashes_:
            digest = base64.b64decode(value)
            if self.sign_other_hashes:
                digest = hashlib.sha256(digest).digest()
            signatures.append(self._vault.sign_digest(credential.key, digest, hashes.SHA256()))
        return 200, {"signatures": [base64.b64encode(s).decode() for s in signatures]}

    def verify(self, credential_id: str, digest: bytes, signature: bytes) -> None:
        public = self._credentials[credential_id].certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


@contextmanager
def running_provider(
    token: SoftHsmToken, now: Callable[[], datetime]
) -> Iterator[CscProviderStandIn]:
    provider = CscProviderStandIn(token, now)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
