"""Another CA, as a commercial one runs it: a root, an issuing CA, a signer, a TSA and a
delegated OCSP responder (EKU OCSPSigning, ocsp-nocheck), written with plain
`cryptography` and none of signing/, and a real HTTP server on a free port that publishes
its CRLs and answers OCSP. Tests can revoke, slow the server down or take it away."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "外省数字证书认证中心 Test CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


@dataclass
class Revoked:
    at: datetime
    reason: x509.ReasonFlags


@dataclass
class ForeignCa:
    base_url: str
    root: x509.Certificate
    root_key: Key
    issuing: x509.Certificate
    issuing_key: Key
    signer: x509.Certificate
    signer_key: Key
    tsa: x509.Certificate
    tsa_key: Key
    responder: x509.Certificate
    responder_key: Key
    revoked: dict[int, Revoked] = field(default_factory=dict)
    crl_validity: timedelta = timedelta(hours=6)
    ocsp_validity: timedelta = timedelta(hours=1)

    def revoke(
        self,
        certificate: x509.Certificate,
        at: datetime | None = None,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> None:
        self.revoked[certificate.serial_number] = Revoked(
            (at or datetime.now(UTC)).replace(microsecond=0), reason
        )

    def crl(self, which: str) -> bytes:
        issuer, key = (
            (self.root, self.root_key)
            if which == "root"
            else (
                self.issuing,
                self.issuing_key,
            )
        )
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + self.crl_validity)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        if which != "root":
            for serial, entry in self.revoked.items():
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(entry.at)
                    .add_extension(x509.CRLReason(entry.reason), critical=False)
                    .build()
                )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_answer(self, request_der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        known = {c.serial_number: c for c in (self.signer, self.tsa, self.responder)}
        certificate = known.get(request.serial_number)
        if certificate is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        entry = self.revoked.get(request.serial_number)
        now = datetime.now(UTC).replace(microsecond=0)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=certificate,
                issuer=self.issuing,
                algorithm=request.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.GOOD
                if entry is None
                else ocsp.OCSPCertStatus.REVOKED,
                this_update=now - timedelta(minutes=1),
                next_update=now + self.ocsp_validity,
                revocation_time=None if entry is None else entry.at,
                revocation_reason=None if entry is None else entry.reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder)
            .certificates([self.responder])
        )
        return builder.sign(self.responder_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )


def build_foreign_ca(base_url: str) -> ForeignCa:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Foreign Root CA"))
        .issuer_name(_name("Foreign Root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )

    def issue(
        subject: str,
        key: Key,
        issuer: x509.Certificate,
        issuer_key: Key,
        extensions: list[tuple[x509.ExtensionType, bool]],
        crl: str,
        with_ocsp: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(f"{base_url}/{crl}.crl")],
                            None,
                            None,
                            None,
                        )
                    ]
                ),
                False,
            )
        )
        if with_ocsp:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"{base_url}/ocsp"),
                        )
                    ]
                ),
                False,
            )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(issuer_key, hashes.SHA256())

    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = issue(
        "Foreign Issuing CA",
        issuing_key,
        root,
        root_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(key_cert_sign=True, crl_sign=True, digital_signature=True), True),
        ],
        "root",
        with_ocsp=False,
    )
    end_entity = (x509.BasicConstraints(ca=False, path_length=None), True)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = issue(
        "外省专家 赵敏",
        signer_key,
        issuing,
        issuing_key,
        [
            end_entity,
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
                False,
            ),
        ],
        "issuing",
        with_ocsp=True,
    )
    # RSA: pyHanko's test TSA, which stands in for the CA's own, signs with RSA only.
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = issue(
        "Foreign TSA",
        tsa_key,
        issuing,
        issuing_key,
        [
            end_entity,
            (_key_usage(digital_signature=True, content_commitment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        ],
        "issuing",
        with_ocsp=True,
    )
    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = issue(
        "Foreign OCSP Responder",
        responder_key,
        issuing,
        issuing_key,
        [
            end_entity,
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
            (x509.OCSPNoCheck(), False),
        ],
        "issuing",
        with_ocsp=False,
    )
    return ForeignCa(
        base_url,
        root,
        root_key,
        issuing,
        issuing_key,
        signer,
        signer_key,
        tsa,
        tsa_key,
        responder,
        responder_key,
    )


class RevocationServer:
    """Serves `/root.crl`, `/issuing.crl` and `POST /ocsp` for whatever `answer` says.

    `delay_s` holds every answer back (a slow responder); `broken` answers those paths
    with HTTP 503; `stop()` closes the socket, so connections are refused."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.broken: set[str] = set()
        self.hits: Counter[str] = Counter()
        self.ca: Any = None  # ForeignCa, or anything with crl(which) and ocsp_answer(der)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, body: bytes, content_type: str) -> None:
                server.hits[self.path] += 1
                if server.delay_s:
                    time.sleep(server.delay_s)
                if self.path in server.broken:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                which = self.path.strip("/").removesuffix(".crl")
                if which not in ("root", "issuing"):
                    self.send_error(404)
                    return
                self._send(server.ca.crl(which), "application/pkix-crl")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = self.rfile.read(length)
                if self.path != "/ocsp":
                    self.send_error(404)
                    return
                self._send(server.ca.ocsp_answer(request), "application/ocsp-response")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
