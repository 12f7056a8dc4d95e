"""The HTTPS server certificate of `serve --tls`, without a database: it chains to the
center root under cryptography's web-PKI verifier, names the right hosts, and the stored
pair is kept while it still does and replaced when it does not."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from signing import certificates as profiles
from signing import tls

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ENDPOINTS = profiles.Endpoints(
    "https://evalsign.example/pki/issuing-id/crl", "https://evalsign.example/pki/issuing-id/cert"
)


class Pki:
    def __init__(self, center: str = "某中心") -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = profiles.make_root_ca(
            profiles.ca_name(center, "Root CA"), self.root_key, NOW, 3650
        )
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = profiles.make_issuing_ca(
            profiles.ca_name(center, "Issuing CA"),
            self.issuing_key.public_key(),
            self.root,
            self.root_key,
            profiles.pki_endpoints("https://evalsign.example", "root-id"),
            NOW,
            3650,
        )
        self.chain = [self.issuing, self.root]

    def ensure(self, data_dir: Path, *names: str, now: datetime = NOW) -> tls.ServerCertificate:
        return tls.ensure_server_certificate(
            data_dir, names, self.chain, self.issuing_key, ENDPOINTS, now
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def verify(
    pki: Pki, server: tls.ServerCertificate, subject: DNSName | IPAddress, at: datetime
) -> None:
    stored = x509.load_pem_x509_certificates(server.cert_path.read_bytes())
    verifier = PolicyBuilder().store(Store([pki.root])).time(at).build_server_verifier(subject)
    path = verifier.verify(stored[0], stored[1:])
    assert path[-1] == pki.root


def test_a_new_certificate_chains_to_the_center_root_for_each_name(
    pki: Pki, tmp_path: Path
) -> None:
    server = pki.ensure(tmp_path, "EvalSign.LAN", "192.168.1.20, localhost")
    assert server.issued
    at = NOW + timedelta(hours=1)
    verify(pki, server, DNSName("evalsign.lan"), at)
    verify(pki, server, DNSName("localhost"), at)
    verify(pki, server, IPAddress(ipaddress.ip_address("192.168.1.20")), at)
    with pytest.raises(VerificationError):
        verify(pki, server, DNSName("other.lan"), at)

    stored = x509.load_pem_x509_certificates(server.cert_path.read_bytes())
    assert stored == [server.certificate, pki.issuing, pki.root]


def test_the_certificate_is_a_tls_server_certificate(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ensure(tmp_path, "evalsign.lan", "10.0.0.5").certificate
    extensions = leaf.extensions
    names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["evalsign.lan"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "evalsign.lan"
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.content_commitment or usage.value.key_cert_sign)
    assert extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert extensions.get_extension_for_class(x509.CRLDistributionPoints)
    access = extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in access] == [ENDPOINTS.issuer_cert_url]
    assert leaf.not_valid_after_utc - NOW == timedelta(days=tls.MAX_DAYS)
    public_key = leaf.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)


def test_the_key_file_is_private_and_matches_the_certificate(pki: Pki, tmp_path: Path) -> None:
    server = pki.ensure(tmp_path, "evalsign.lan")
    assert server.key_path == tmp_path / "tls" / "server.key"
    assert stat.S_IMODE(server.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.key_path.parent.stat().st_mode) == 0o700
    key = serialization.load_pem_private_key(server.key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == server.certificate.public_key()
    assert tls.load_given_pair(server.cert_path, server.key_path) == server.certificate

    server.key_path.chmod(0o644)
    assert not pki.ensure(tmp_path, "evalsign.lan").issued
    assert stat.S_IMODE(server.key_path.stat().st_mode) == 0o600


def test_a_pair_that_still_covers_the_names_is_kept(pki: Pki, tmp_path: Path) -> None:
    first = pki.ensure(tmp_path, "evalsign.lan", "10.0.0.5")
    again = pki.ensure(tmp_path, "10.0.0.5", now=NOW + timedelta(days=300))
    assert not again.issued
    assert again.certificate == first.certificate
    assert again.key_path.read_bytes() == first.key_path.read_bytes()


def test_a_new_name_a_near_end_or_another_ca_issues_a_new_pair(pki: Pki, tmp_path: Path) -> None:
    first = pki.ensure(tmp_path, "evalsign.lan")
    first_key = first.key_path.read_bytes()

    widened = pki.ensure(tmp_path, "evalsign.lan", "10.0.0.5")
    assert widened.issued and widened.names == ("evalsign.lan", "10.0.0.5")
    assert widened.key_path.read_bytes() != first_key

    near_end = widened.certificate.not_valid_after_utc - tls.RENEW_BEFORE
    renewed = pki.ensure(tmp_path, "evalsign.lan", now=near_end)
    assert renewed.issued and renewed.certificate.not_valid_before_utc > NOW

    other = Pki("另一个中心")
    moved = other.ensure(tmp_path, "evalsign.lan")
    assert moved.issued and profiles.is_issued_by(moved.certificate, other.issuing)


def test_a_damaged_pair_is_replaced(pki: Pki, tmp_path: Path) -> None:
    first = pki.ensure(tmp_path, "evalsign.lan")
    first.key_path.write_bytes(b"not a key")
    assert pki.ensure(tmp_path, "evalsign.lan").issued

    # A key from elsewhere next to the certificate: it would not serve, so it is replaced.
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    first.key_path.write_bytes(stranger)
    assert pki.ensure(tmp_path, "evalsign.lan").issued


def test_validity_stops_with_the_issuing_ca(pki: Pki) -> None:
    late = pki.issuing.not_valid_after_utc - timedelta(days=100)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = tls.make_server_certificate(
        ["evalsign.lan"], key.public_key(), pki.issuing, pki.issuing_key, ENDPOINTS, late
    )
    assert leaf.not_valid_after_utc == pki.issuing.not_valid_after_utc


def test_host_names_are_normalized_and_bad_ones_refused() -> None:
    assert tls.parse_host_names(["EvalSign.LAN.", "localhost,127.0.0.1", "[::1]", "localhost"]) == (
        "evalsign.lan",
        "localhost",
        "127.0.0.1",
        "::1",
    )
    assert tls.parse_host_names(["交易中心.example"]) == ("xn--fiq1kn76bw3f.example",)
    assert tls.parse_host_names(["*.center.example"]) == ("*.center.example",)
    for bad in ("evalsign lan", "-evalsign.lan", "a..b", "https://evalsign.lan", "x" * 64):
        with pytest.raises(tls.ServerCertificateError):
            tls.parse_host_names([bad])
    with pytest.raises(tls.ServerCertificateError):
        tls.parse_host_names([" , "])


def test_given_files_that_do_not_match_are_refused(pki: Pki, tmp_path: Path) -> None:
    first = pki.ensure(tmp_path / "a", "evalsign.lan")
    second = pki.ensure(tmp_path / "b", "evalsign.lan")
    with pytest.raises(tls.ServerCertificateError):
        tls.load_given_pair(first.cert_path, second.key_path)
