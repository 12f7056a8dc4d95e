"""The center's OCSP responder and TSA certificates as NSS (poppler's pdfsig, Okular,
Evince, LibreOffice) sees them: certutil's usage checks, and pdfsig asking our real OCSP
responder code (signing.revocation.respond_ocsp) over HTTP for each signer's status.

Measured with NSS 3.87 and poppler 22.12, for P-256 and RSA-3072 PKIs alike: the
responder is the issuing CA itself (RFC 6960 §2.6, CA-signed answers), which
`certutil -V -u O` accepts and whose answers pdfsig verifies. NSS has no time-stamping
usage to check (certutil -V knows C V I L A Y S R O J, vfychain 0-12: none is
time-stamping), and poppler does not verify RFC 3161 tokens (a document time-stamp shows
as "Signature Type: unknown", "not yet verified"): the TSA keeps the profile RFC 3161
§2.3 requires, timeStamping alone and critical."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing import certificates as profiles
from signing.pades import add_document_timestamp, sign_in_place
from signing.revocation import (
    CertificateStatus,
    Responder,
    RevocationReason,
    RevokedEntry,
    build_crl,
    respond_ocsp,
)
from signing.tsa import TimeStampAuthority
from tests.foreign_ca import RevocationServer
from tests.nss import HAVE_NSS_TOOLS, signer_usage_ok, trusting_database
from tests.signing.test_pades import Pki, PrivateKey, write_pdf

pytestmark = pytest.mark.skipif(not HAVE_NSS_TOOLS, reason="pdfsig and certutil (libnss3-tools)")

CENTER = "某市公共资源交易中心"


@dataclass
class CenterPublication:
    """What the service's /pki routes publish, for a PKI built in the test."""

    pki: Pki
    revoked: dict[int, RevokedEntry] = field(default_factory=dict)

    def crl(self, which: str) -> bytes:
        now = datetime.now(UTC).replace(microsecond=0)
        issuer, key = (
            (self.pki.root, self.pki.root_key)
            if which == "root"
            else (self.pki.issuing, self.pki.issuing_key)
        )
        entries = [] if which == "root" else list(self.revoked.values())
        return build_crl(issuer, key, entries, 1, now, now + timedelta(days=1))

    def ocsp_answer(self, request: bytes) -> bytes:
        known = {c.serial_number: c for c, _ in self.pki.signers}

        def lookup(responder: Responder, serial: int) -> CertificateStatus | None:
            certificate = known.get(serial)
            if certificate is None:
                return None
            return CertificateStatus(certificate, self.revoked.get(serial))

        responder = Responder(self.pki.issuing, self.pki.issuing_key)
        return respond_ocsp(request, [responder], lookup, datetime.now(UTC), timedelta(hours=1))


def center_pki(url: str, algorithm: str = "ec-p256") -> Pki:
    """A center PKI made by signing.certificates whose AIA and CRL URLs reach `url`, with
    keys of EVALSIGN_PKI_ALGORITHM's kinds."""

    def new_key() -> PrivateKey:
        if algorithm == "rsa-3072":
            return rsa.generate_private_key(public_exponent=65537, key_size=3072)
        return ec.generate_private_key(ec.SECP256R1())

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    root_key = new_key()
    root = profiles.make_root_ca(profiles.ca_name(CENTER, "Root CA"), root_key, now, 3650)
    issuing_key = new_key()
    issuing = profiles.make_issuing_ca(
        profiles.ca_name(CENTER, "Issuing CA"),
        issuing_key.public_key(),
        root,
        root_key,
        profiles.Endpoints(f"{url}/root.crl", f"{url}/root.cer"),
        now,
        3000,
    )
    endpoints = profiles.Endpoints(f"{url}/issuing.crl", f"{url}/issuing.cer", f"{url}/ocsp")
    signer_key = new_key()
    signer = profiles.make_end_entity(
        profiles.Profile.DOCUMENT_SIGNING,
        profiles.expert_subject("王喆", profiles.pseudonym("c", "1"), CENTER),
        signer_key.public_key(),
        issuing,
        issuing_key,
        endpoints,
        now,
        700,
    )
    tsa_key = new_key()
    tsa = profiles.make_end_entity(
        profiles.Profile.TIME_STAMPING,
        profiles.service_subject(CENTER, "TSA"),
        tsa_key.public_key(),
        issuing,
        issuing_key,
        endpoints,
        now,
        700,
    )
    week = now + timedelta(days=7)
    crls = [
        build_crl(root, root_key, [], 1, now, week),
        build_crl(issuing, issuing_key, [], 1, now, week),
    ]
    signers: list[tuple[x509.Certificate, PrivateKey]] = [(signer, signer_key)]
    authority = TimeStampAuthority(tsa, [issuing, root], tsa_key)
    return Pki(root, root_key, issuing, issuing_key, signers, authority, crls, now)


@pytest.fixture(params=["ec-p256", "rsa-3072"])
def published(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[RevocationServer, CenterPublication]]:
    server = RevocationServer()
    publication = CenterPublication(center_pki(server.url, request.param))
    server.ca = publication
    yield server, publication
    server.stop()


def _certutil(database: str, nickname: str, usage: str) -> str:
    run = subprocess.run(
        ["certutil", "-V", "-d", database, "-n", nickname, "-u", usage],
        capture_output=True,
        text=True,
    )
    return (run.stdout + run.stderr).strip()


def _pdfsig_online(database: str, pdf: Path) -> list[str]:
    """pdfsig with its OCSP check on (the default): NSS asks each signer's AIA responder."""
    run = subprocess.run(
        ["pdfsig", "-nssdir", database, str(pdf)], capture_output=True, text=True, timeout=60
    )
    return run.stdout.split("Signature #")[1:]


def test_nss_takes_the_issuing_ca_as_ocsp_responder_and_verifies_its_answers(
    published: tuple[RevocationServer, CenterPublication], tmp_path: Path
) -> None:
    server, publication = published
    pki = publication.pki
    database = trusting_database(tmp_path / "nss", [pki.root], [pki.issuing])
    # ca-0 is the issuing CA: what NSS checks a CA-signed OCSP answer's signer for.
    assert _certutil(database, "ca-0", "O") == "certutil: certificate is valid"

    path = tmp_path / "report.pdf"
    write_pdf(path, pages=1)
    sign_in_place(path, "Expert1", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root])
    [block] = _pdfsig_online(database, path)
    assert "Signature is Valid." in block, block
    assert "Certificate is Trusted." in block, block
    assert server.hits["/ocsp"] >= 1, "NSS asked the responder"

    signer, _ = pki.signers[0]
    publication.revoked[signer.serial_number] = RevokedEntry(
        signer.serial_number, datetime.now(UTC), RevocationReason.KEY_COMPROMISE
    )
    [block] = _pdfsig_online(database, path)
    assert "Certificate has been Revoked." in block, block
    # A reader that cannot reach the responder does not call the certificate trusted:
    # EVALSIGN_PUBLIC_URL must be reachable from where documents are read.
    server.stop()
    [block] = _pdfsig_online(database, path)
    assert "Certificate is Trusted." not in block, block


def test_nss_knows_the_tsa_certificate_and_has_no_usage_to_refuse_it_for(
    published: tuple[RevocationServer, CenterPublication], tmp_path: Path
) -> None:
    _, publication = published
    pki = publication.pki
    tsa = pki.authority.certificate
    database = trusting_database(tmp_path / "nss", [pki.root], [pki.issuing])
    # The one document-signing usage NSS has is refused, rightly: RFC 3161 allows a TSA
    # no other purpose, and signing.tsa refuses a certificate with one.
    refused = signer_usage_ok(database, tsa, tmp_path)
    assert "Certificate type not approved for application" in refused, refused
    described = subprocess.run(
        ["certutil", "-L", "-d", database, "-n", f"check-{tsa.serial_number:x}"],
        capture_output=True,
        text=True,
    ).stdout
    assert "Time Stamping Certifcate" in described  # NSS's spelling

    path = tmp_path / "report.pdf"
    write_pdf(path, pages=1)
    sign_in_place(path, "Expert1", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root])
    add_document_timestamp(path, pki.timestamper(), pki.revocation, [pki.root])
    blocks = _pdfsig_online(database, path)
    assert len(blocks) == 2
    assert "Certificate is Trusted." in blocks[0], blocks[0]
    # poppler reads the document time-stamp and its TSA, and does not verify RFC 3161.
    assert f"Signer Certificate Common Name: {CENTER} TSA" in blocks[1], blocks[1]
    assert "Total document signed" in blocks[1]
