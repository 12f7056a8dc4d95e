"""Validating signatures from another CA with revocation fetched online: a foreign CA
(tests/foreign_ca.py) publishes CRLs and answers OCSP over real HTTP from a server on a
free port; its signer signs with pyHanko's own signer and test TSA, not our code."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.online_revocation import (
    OnlineRevocation,
    RevocationCache,
    RevocationFetcher,
    RevocationPolicy,
)
from signing.pades import RevocationMaterial, validate
from tests.foreign_ca import ForeignCa, RevocationServer, build_foreign_ca
from tests.signing.test_pades import build_pki, write_pdf

ROOT = Path(__file__).resolve().parents[2]


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _key(key: object) -> keys.PrivateKeyInfo:
    der = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return keys.PrivateKeyInfo.load(der)


def sign_foreign(
    ca: ForeignCa, path: Path, *, embed: bool, document_timestamp: bool = False
) -> None:
    """What the foreign signer's own software does: a PAdES signature with a signature
    time-stamp from its CA's TSA; with `embed`, pyHanko fetches the OCSP answers and CRLs
    itself and puts them in the DSS (B-LT), and `document_timestamp` adds B-LTA."""
    write_pdf(path, pages=1)
    chain = SimpleCertificateStore.from_certs([_asn1(ca.issuing), _asn1(ca.root)])
    signer = signers.SimpleSigner(
        signing_cert=_asn1(ca.signer), signing_key=_key(ca.signer_key), cert_registry=chain
    )
    stamper = DummyTimeStamper(
        _asn1(ca.tsa), _key(ca.tsa_key), certs_to_embed=[_asn1(ca.issuing), _asn1(ca.root)]
    )
    metadata = signers.PdfSignatureMetadata(
        field_name="ForeignExpert",
        subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=embed,
        validation_context=(
            ValidationContext(trust_roots=[_asn1(ca.root)], allow_fetching=True) if embed else None
        ),
        use_pades_lta=document_timestamp,
    )
    with path.open("rb+") as stream:
        writer = IncrementalPdfFileWriter(stream)
        signers.PdfSigner(metadata, signer, timestamper=stamper).sign_pdf(writer, in_place=True)


@pytest.fixture
def server() -> Iterator[RevocationServer]:
    running = RevocationServer()
    yield running
    running.stop()


@pytest.fixture
def ca(server: RevocationServer) -> ForeignCa:
    server.ca = build_foreign_ca(server.url)
    return server.ca


def online(
    policy: RevocationPolicy = RevocationPolicy.REQUIRE, read_timeout_s: float = 5.0
) -> OnlineRevocation:
    return OnlineRevocation(
        policy, RevocationFetcher(connect_timeout_s=1.0, read_timeout_s=read_timeout_s)
    )


def test_a_good_foreign_signature_is_valid_through_ocsp_and_cached(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    # Offline, nothing tells the signer's status: not valid, as before.
    offline = validate(path, [ca.root])
    assert offline.verdict == "indeterminate", offline.summary
    assert server.hits == {}

    check = online()
    report = validate(path, [ca.root], online=check)
    assert report.verdict == "valid", report.summary
    [signature] = report.signatures
    assert signature.revocation_checked and signature.revocation_source == "online"
    assert signature.pades_level == "B-T"  # nothing embedded; the answers were fetched
    # All at once: OCSP for the signer and for the TSA that dated it, the root's CRL for
    # the issuing CA (which names no responder); the root CRL only once.
    assert server.hits == {"/ocsp": 2, "/root.crl": 1}
    again = validate(path, [ca.root], online=check)
    assert again.verdict == "valid"
    assert server.hits == {"/ocsp": 2, "/root.crl": 1}, "answers come from the cache"


def test_a_revoked_foreign_certificate_is_invalid_with_the_reason(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    ca.revoke(ca.signer, datetime.now(UTC) - timedelta(days=1))
    path = tmp_path / "revoked.pdf"
    sign_foreign(ca, path, embed=False)
    report = validate(path, [ca.root], online=online())
    assert report.verdict == "invalid", report.summary
    [signature] = report.signatures
    assert signature.revoked and signature.revocation_source == "online"
    assert any("revoked on" in p and "key_compromise" in p for p in signature.problems), (
        signature.problems
    )


def test_crls_answer_when_the_ocsp_responder_fails(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    server.broken.add("/ocsp")
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    report = validate(path, [ca.root], online=online())
    assert report.verdict == "valid", report.summary
    assert server.hits["/issuing.crl"] == 1 and server.hits["/ocsp"] == 2
    ca.revoke(ca.signer, datetime.now(UTC) - timedelta(days=1))
    fresh = validate(path, [ca.root], online=online())
    assert fresh.verdict == "invalid", fresh.summary


def test_a_forged_ocsp_answer_is_neither_believed_nor_kept(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    # Someone else's responder: a certificate the issuing CA never signed, and its key.
    other = build_foreign_ca(server.url)
    ca.responder, ca.responder_key = other.responder, other.responder_key
    check = online()
    for _ in range(2):
        report = validate(path, [ca.root], online=check)
        assert report.verdict == "valid", report.summary  # the CRL answered instead
    # Two OCSP requests (signer, TSA) each time, never cached; one CRL download, kept.
    assert server.hits == {"/ocsp": 4, "/issuing.crl": 1, "/root.crl": 1}


@pytest.mark.parametrize(
    ("policy", "verdict"),
    [
        (RevocationPolicy.REQUIRE, "indeterminate"),
        (RevocationPolicy.SOFT_FAIL, "valid"),
        (RevocationPolicy.OFF, "valid"),
    ],
)
def test_a_responder_that_is_down_is_named_and_the_policy_decides(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path, policy: RevocationPolicy, verdict: str
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    server.stop()
    started = time.monotonic()
    report = validate(path, [ca.root], online=online(policy))
    assert time.monotonic() - started < 5
    assert report.verdict == verdict, report.summary
    [signature] = report.signatures
    assert not signature.revocation_checked and signature.revocation_source == "none"
    if policy is RevocationPolicy.OFF:
        assert "revocation status could not be checked: no CRL or OCSP data" in signature.problems
    else:
        [problem] = [p for p in signature.problems if p.startswith("revocation status")]
        # Each source is named; the first to fail says why, the rest on that host are not
        # asked again in this round.
        assert "cannot connect (connection refused)" in problem
        assert f"OCSP {server.url}/ocsp: " in problem
        assert f"CRL {server.url}/issuing.crl: " in problem
    if verdict == "valid":
        assert "revocation not checked: ForeignExpert" in report.summary


def test_a_slow_responder_times_out(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    server.delay_s = 5.0
    started = time.monotonic()
    report = validate(path, [ca.root], online=online(read_timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert report.verdict == "indeterminate", report.summary
    # All certificates at once, and a host that did not answer is not asked again: one
    # timeout for the whole chain (asking OCSP, then the CRL, would take two).
    assert elapsed < 2.0, elapsed
    [problem] = [p for p in report.signatures[0].problems if p.startswith("revocation status")]
    assert "no answer within 1 s" in problem
    assert "not asked: the host did not answer another request just now" in problem


def test_embedded_data_keeps_it_valid_after_the_responder_is_gone(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "ltv.pdf"
    sign_foreign(ca, path, embed=True, document_timestamp=True)
    assert server.hits["/ocsp"] >= 1  # the signer's software fetched what it embedded
    server.stop()
    server.hits.clear()
    report = validate(path, [ca.root], online=online())
    assert report.verdict == "valid", report.summary
    [signature] = report.signatures
    assert signature.revocation_source == "document" and signature.pades_level == "B-LTA"
    # Long after the embedded answers went stale: the time-stamps carry it, still offline.
    later = validate(path, [ca.root], online=online(), now=datetime.now(UTC) + timedelta(days=30))
    assert later.verdict == "valid", later.summary
    assert server.hits == {}


def test_a_revocation_after_the_time_stamp_leaves_the_signature_valid(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    time.sleep(1.1)  # revocation times have whole seconds; the time-stamp is earlier
    ca.revoke(ca.signer, reason=x509.ReasonFlags.affiliation_changed)
    report = validate(path, [ca.root], online=online())
    assert report.verdict == "valid", report.summary
    [signature] = report.signatures
    assert not signature.revoked and signature.revocation_checked
    assert any(
        "after its time-stamp" in p and "the signer, reason affiliation_changed" in p
        for p in signature.problems
    ), signature.problems

    # Without a time-stamp nothing proves the signature came before the revocation.
    unstamped = tmp_path / "unstamped.pdf"
    write_pdf(unstamped, pages=1)
    signer = signers.SimpleSigner(
        signing_cert=_asn1(ca.signer),
        signing_key=_key(ca.signer_key),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(ca.issuing), _asn1(ca.root)]),
    )
    with unstamped.open("rb+") as stream:
        signers.PdfSigner(
            signers.PdfSignatureMetadata(field_name="X", subfilter=SigSeedSubFilter.PADES),
            signer,
        ).sign_pdf(IncrementalPdfFileWriter(stream), in_place=True)
    assert validate(unstamped, [ca.root], online=online()).verdict == "invalid"


def test_the_center_s_own_chains_are_never_fetched(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    own_only = OnlineRevocation(RevocationPolicy.REQUIRE, RevocationFetcher(), [build_pki().root])
    report = validate(path, [ca.root], online=own_only)
    assert report.verdict == "indeterminate"
    assert server.hits == {}


def test_the_cache_keeps_answers_until_next_update_and_stays_bounded() -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    cache = RevocationCache(max_entries=2, max_age=timedelta(hours=6), clock=lambda: now[0])
    cache.put(("crl", "a"), b"A", now[0] + timedelta(hours=1))
    cache.put(("crl", "b"), b"B", now[0] + timedelta(days=7))  # kept six hours at most
    cache.put(("crl", "stale"), b"S", now[0] - timedelta(seconds=1))
    cache.put(("ocsp", "none"), b"N", None)
    assert len(cache) == 2 and cache.get(("crl", "a")) == b"A"
    cache.put(("crl", "c"), b"C", now[0] + timedelta(hours=1))
    assert cache.get(("crl", "b")) is None, "least recently used goes first"
    now[0] += timedelta(hours=1)
    assert cache.get(("crl", "a")) is None and cache.get(("crl", "c")) is None


def test_the_cli_names_the_unreachable_responder_without_a_traceback(
    ca: ForeignCa, server: RevocationServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.pdf"
    sign_foreign(ca, path, embed=False)
    root = tmp_path / "foreign-root.pem"
    root.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
    command = [sys.executable, "-m", "api.cli", "pdf", "validate", str(path), "--root", str(root)]
    good = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0, good.stdout + good.stderr
    server.stop()
    down = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert down.returncode == 1
    assert "INDETERMINATE" in down.stdout and "connection refused" in down.stdout
    # The signature's own line does not say "ok" while its status is unknown.
    signature_line = next(line for line in down.stdout.splitlines() if " signature " in line)
    assert signature_line.lstrip().startswith("?"), down.stdout
    assert "revocation status not checked" in signature_line
    assert "Traceback" not in down.stdout + down.stderr
    soft = subprocess.run(
        [*command, "--revocation", "soft-fail"], capture_output=True, text=True, cwd=ROOT
    )
    assert soft.returncode == 0, soft.stdout
    assert "revocation not checked" in soft.stdout


def test_older_embedded_data_does_not_excuse_a_revocation_dated_before_the_time_stamp(
    tmp_path: Path,
) -> None:
    from signing.revocation import RevocationReason, RevokedEntry, build_crl
    from tests.signing.test_pades import sign_step

    pki = build_pki()
    path = tmp_path / "report.pdf"
    write_pdf(path, pages=1)
    sign_step(pki, path, 0, None)  # B-LT: the CRL embedded then says good
    certificate, _ = pki.signers[0]
    later = datetime.now(UTC) + timedelta(days=30)
    # Published later, dated before the signing: the key was compromised already.
    entry = RevokedEntry(certificate.serial_number, pki.now, RevocationReason.KEY_COMPROMISE)
    week = later + timedelta(days=7)
    newer = [
        build_crl(pki.root, pki.root_key, [], 2, later, week),
        build_crl(pki.issuing, pki.issuing_key, [entry], 2, later, week),
    ]
    report = validate(path, [pki.root], RevocationMaterial(newer), now=later)
    assert report.verdict == "invalid", report.summary
    assert report.signatures[0].revoked
