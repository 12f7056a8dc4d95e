"""The HTTPS certificate of `evalsign serve --tls` (phones open the camera only over HTTPS):
a fresh server key and a certificate from the center's issuing CA, kept as PEM files for
the web server. Pure functions over `cryptography` objects and a directory; the issuer's key
may be a vault adapter (signing.vault.private_key)."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing import certificates as profiles

# The CA/Browser Forum ceiling for TLS certificates. Browsers enforce it only for public
# CAs, but a short life limits what a copied key file is worth.
MAX_DAYS = 397
# A certificate this close to its end is replaced at the next start rather than reused.
RENEW_BEFORE = timedelta(days=30)
TLS_DIR = "tls"
KEY_FILE = "server.key"
CERT_FILE = "server.pem"

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


class ServerCertificateError(Exception):
    """A host name that cannot go into a certificate, or certificate files that do not work."""


@dataclass(frozen=True)
class ServerCertificate:
    """The files the web server loads, and what is in them."""

    key_path: Path
    cert_path: Path
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    # False when an existing pair was good enough and kept.
    issued: bool

    @property
    def names(self) -> tuple[str, ...]:
        return subject_alternative_names(self.certificate)


def normalize_host_name(value: str) -> str:
    """A host name as it goes into the certificate: an IP literal in its canonical form
    (brackets dropped), or a lower-case ASCII (IDNA) DNS name, optionally `*.` wildcard."""
    text = value.strip()
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    name = text.rstrip(".").lower()
    wildcard = name.startswith("*.")
    try:
        ascii_name = (name[2:] if wildcard else name).encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ServerCertificateError(f"{value!r} is not a host name") from exc
    ascii_name = ("*." if wildcard else "") + ascii_name
    if len(ascii_name) > 253 or not _HOST_NAME.fullmatch(ascii_name):
        raise ServerCertificateError(f"{value!r} is not a host name or IP address")
    return ascii_name


def parse_host_names(values: Iterable[str]) -> tuple[str, ...]:
    """Host names from repeated and comma-separated options, normalized, in order, once each."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip() and (name := normalize_host_name(part)) not in names:
                names.append(name)
    if not names:
        raise ServerCertificateError("no host name given")
    return tuple(names)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def subject_alternative_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The DNS names and IP addresses a server certificate is good for, normalized."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return (*dns, *ips)


def make_server_certificate(
    names: Sequence[str],
    public_key: profiles.PublicKey,
    issuer: x509.Certificate,
    issuer_key: profiles.PrivateKey,
    endpoints: profiles.Endpoints,
    now: datetime,
    days: int = MAX_DAYS,
) -> x509.Certificate:
    """A TLS server certificate for `names` (the first is the subject CN).

    Same validity cap, key identifiers and CRL / CA-issuer pointers as every certificate the
    issuing CA signs (signing.certificates). Pass endpoints without an OCSP URL unless the
    responder knows this certificate."""
    names = parse_host_names(names)
    builder = x509.CertificateBuilder(
        issuer_name=issuer.subject,
        subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
        public_key=public_key,
        serial_number=x509.random_serial_number(),
    )
    builder = profiles.with_validity(builder, now, min(days, MAX_DAYS), issuer.not_valid_after_utc)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
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
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    # With a subject CN present the SAN is not critical (RFC 5280 4.2.1.6).
    builder = builder.add_extension(
        x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False
    )
    builder = profiles.with_key_ids(builder, public_key, issuer_key.public_key())
    builder = profiles.with_distribution(builder, endpoints)
    return builder.sign(issuer_key, profiles.signature_hash(issuer_key))


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(certificates: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _write(path: Path, content: bytes, mode: int) -> None:
    # Written aside and renamed: a crash never leaves half a key where the server looks.
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def server_files(data_dir: Path) -> tuple[Path, Path]:
    """Where `serve --tls` keeps its key and certificate chain: (key, certificate)."""
    directory = data_dir / TLS_DIR
    return directory / KEY_FILE, directory / CERT_FILE


def reusable_server_certificate(
    data_dir: Path, names: Sequence[str], chain: Sequence[x509.Certificate], now: datetime
) -> ServerCertificate | None:
    """The stored pair, if it still does: its key matches, it was issued by `chain[0]` with
    this very chain above it, it names every one of `names`, and it has more than
    RENEW_BEFORE left. None otherwise (missing, unreadable, or not good enough)."""
    key_path, cert_path = server_files(data_dir)
    names = parse_host_names(names)
    try:
        stored = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    leaf, above = stored[0], tuple(stored[1:])
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        return None
    if above != tuple(chain) or not profiles.is_issued_by(leaf, chain[0]):
        return None
    if not set(names) <= set(subject_alternative_names(leaf)):
        return None
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc - RENEW_BEFORE:
        return None
    # Someone may have loosened it since; the key is only ever the server's to read.
    os.chmod(key_path, 0o600)
    return ServerCertificate(key_path, cert_path, leaf, above, issued=False)


def issue_server_certificate(
    data_dir: Path,
    names: Sequence[str],
    chain: Sequence[x509.Certificate],
    issuer_key: profiles.PrivateKey,
    endpoints: profiles.Endpoints,
    now: datetime,
    days: int = MAX_DAYS,
) -> ServerCertificate:
    """A fresh ECDSA P-256 server key and its certificate from the issuing CA `chain[0]`,
    written as `tls/server.key` (0600) and `tls/server.pem` (leaf, then `chain`: issuing CA
    up to the root) under `data_dir`, replacing what was there."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = make_server_certificate(
        names, key.public_key(), chain[0], issuer_key, endpoints, now, days
    )
    key_path, cert_path = server_files(data_dir)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_path.parent, 0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a crash in between leaves a key its old certificate does not match,
    # which the next start notices and replaces.
    _write(key_path, key_pem, 0o600)
    _write(cert_path, _pem([certificate, *chain]), 0o644)
    return ServerCertificate(key_path, cert_path, certificate, tuple(chain), issued=True)


def ensure_server_certificate(
    data_dir: Path,
    names: Sequence[str],
    chain: Sequence[x509.Certificate],
    issuer_key: profiles.PrivateKey,
    endpoints: profiles.Endpoints,
    now: datetime,
) -> ServerCertificate:
    """The stored pair when it still covers `names` and is valid for more than
    RENEW_BEFORE (see reusable_server_certificate), else a newly issued one."""
    return reusable_server_certificate(data_dir, names, chain, now) or issue_server_certificate(
        data_dir, names, chain, issuer_key, endpoints, now
    )


def load_given_pair(cert_path: Path, key_path: Path) -> x509.Certificate:
    """Check certificate and key files the operator supplies (e.g. from a public CA) the way
    the web server will load them; return the leaf certificate."""
    # Read first: ssl's own error for a missing file does not say which one.
    chain, _ = cert_path.read_bytes(), key_path.read_bytes()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
        return x509.load_pem_x509_certificates(chain)[0]
    except (ssl.SSLError, ValueError) as exc:
        raise ServerCertificateError(
            f"{cert_path} and {key_path} are not a PEM certificate chain and its key: {exc}"
        ) from exc
