"""PAdES signing in place, checked by our validator and by poppler's pdfsig, pdftoppm and
pdffonts: a real PKI (root, issuing CA, three document-signing certificates, one of them
RSA-3072, and a TSA) built with signing.certificates, CRLs from signing.revocation, and
plain multi-page PDFs written by hand, so nothing but the code under test touches them."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing import certificates as profiles
from signing.pades import (
    FONT_ENV,
    IdentitySigner,
    InProcessTimeStamper,
    PageMark,
    PdfRejected,
    RevocationMaterial,
    SignatureBaseChanged,
    SigningFailed,
    SigningIdentity,
    Stamp,
    StampError,
    ValidationReport,
    add_document_timestamp,
    check_pdf,
    finish_signature,
    prepare_signature,
    sign_in_place,
    sign_page_marks,
    stamp_font,
    validate,
)
from signing.revocation import RevocationReason, RevokedEntry, build_crl
from signing.tsa import TimeStampAuthority
from signing.vault import sign_with
from tests.nss import HAVE_NSS_TOOLS, pdfsig_blocks, signer_usage_ok, trusting_database

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
ROOT = Path(__file__).resolve().parents[2]

LINES = ["评标专家 王喆", "角色: 评标委员会主任", "2026-11-23 09:00 (UTC+8)", "证书序列号 5F3A9C0B"]
BOXES = [(330.0, 60.0, 560.0, 150.0), (40.0, 60.0, 270.0, 150.0), (330.0, 170.0, 560.0, 260.0)]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def write_pdf(path: Path, pages: int = 3, filler: int = 0) -> None:
    """A plain PDF with `pages` A4 pages of Helvetica text, written by hand; `filler`
    bytes of stream data make it as large as needed without holding it in memory."""
    with path.open("wb") as out:
        offsets: dict[int, int] = {}

        def obj(number: int, body: bytes) -> None:
            offsets[number] = out.tell()
            out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(pages))
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages))
        obj(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
        for i in range(pages):
            text = b"BT /F1 24 Tf 72 760 Td (Bid evaluation report, page %d) Tj ET" % (i + 1)
            obj(
                4 + 2 * i,
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i),
            )
            obj(5 + 2 * i, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
        count = 4 + 2 * pages
        if filler:
            # An unreferenced stream: the file is big, the page tree stays small.
            offsets[count] = out.tell()
            out.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (count, filler))
            block, left = bytes(range(256)) * 4096, filler
            while left:
                out.write(block[: min(left, len(block))])
                left -= min(left, len(block))
            out.write(b"\nendstream\nendobj\n")
            count += 1
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for number in range(1, count):
            out.write(b"%010d 00000 n \n" % offsets[number])
        out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, xref))


def seal_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, 232, 232), outline=(200, 20, 20, 220), width=12)
    draw.regular_polygon((120, 120, 50), 5, fill=(200, 20, 20, 220))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Pki:
    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey
    signers: list[tuple[x509.Certificate, PrivateKey]]
    authority: TimeStampAuthority
    crls: list[bytes]
    now: datetime
    calls: list[bytes] = field(default_factory=list)

    def identity(self, index: int) -> SigningIdentity:
        certificate, key = self.signers[index]

        def sign_digest(digest: bytes, name: str) -> bytes:
            assert name == "sha256"
            self.calls.append(digest)
            return sign_with(key, digest, hashes.SHA256())

        return SigningIdentity(certificate, [self.issuing, self.root], sign_digest)

    def timestamper(self) -> InProcessTimeStamper:
        return InProcessTimeStamper(self.authority, lambda: datetime.now(UTC))

    @property
    def revocation(self) -> RevocationMaterial:
        return RevocationMaterial(self.crls)


def build_pki() -> Pki:
    # Around the real clock: pyHanko validates at the current time.
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    center = "某市公共资源交易中心"

    def endpoints(name: str) -> profiles.Endpoints:
        return profiles.pki_endpoints("https://evalsign.example", name)

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = profiles.make_root_ca(profiles.ca_name(center, "Root CA"), root_key, now, 3650)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = profiles.make_issuing_ca(
        profiles.ca_name(center, "Issuing CA"),
        issuing_key.public_key(),
        root,
        root_key,
        endpoints("root"),
        now,
        3000,
    )
    signers: list[tuple[x509.Certificate, PrivateKey]] = []
    keys: list[PrivateKey] = [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=3072),
    ]
    for number, (name, key) in enumerate(zip(["王喆", "李娜", "欧阳明"], keys, strict=True)):
        subject = profiles.expert_subject(name, profiles.pseudonym("c", str(number)), center)
        certificate = profiles.make_end_entity(
            profiles.Profile.DOCUMENT_SIGNING,
            subject,
            key.public_key(),
            issuing,
            issuing_key,
            endpoints("issuing"),
            now,
            700,
        )
        signers.append((certificate, key))
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = profiles.make_end_entity(
        profiles.Profile.TIME_STAMPING,
        profiles.service_subject(center, "TSA"),
        tsa_key.public_key(),
        issuing,
        issuing_key,
        endpoints("issuing"),
        now,
        700,
    )
    week = now + timedelta(days=7)
    crls = [
        build_crl(root, root_key, [], 1, now, week),
        build_crl(issuing, issuing_key, [], 1, now, week),
    ]
    authority = TimeStampAuthority(tsa, [issuing, root], tsa_key)
    return Pki(root, root_key, issuing, issuing_key, signers, authority, crls, now)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return build_pki()


@dataclass
class SignedFiles:
    """The same document after each step: one, two, three signatures, then a document
    time-stamp; `reports` are our validator's verdicts at each step."""

    steps: list[Path]
    reports: list[ValidationReport]


def sign_step(pki: Pki, path: Path, index: int, stamp: Stamp | None) -> None:
    sign_in_place(
        path,
        f"Expert{index + 1}",
        pki.identity(index),
        pki.timestamper(),
        pki.revocation,
        [pki.root],
        stamp,
        reason="评标报告签署",
        location="某市公共资源交易中心",
    )


@pytest.fixture(scope="module")
def signed(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> SignedFiles:
    directory = tmp_path_factory.mktemp("pades")
    work = directory / "report.pdf"
    write_pdf(work)
    steps: list[Path] = []
    reports: list[ValidationReport] = []
    seal = seal_png()
    for index in range(3):
        stamp = Stamp(index % 3, BOXES[index], LINES, seal if index == 0 else None)
        sign_step(pki, work, index, stamp)
        steps.append(directory / f"after-{index + 1}.pdf")
        shutil.copy(work, steps[-1])
        reports.append(validate(work, [pki.root]))
    add_document_timestamp(work, pki.timestamper(), pki.revocation, [pki.root])
    steps.append(directory / "after-timestamp.pdf")
    shutil.copy(work, steps[-1])
    reports.append(validate(work, [pki.root]))
    return SignedFiles(steps, reports)


def test_every_signature_stays_valid_through_later_ones(pki: Pki, signed: SignedFiles) -> None:
    for step, report in enumerate(signed.reports[:3]):
        assert report.verdict == "valid", report.summary
        signatures = report.signatures
        assert [s.field_name for s in signatures] == [f"Expert{i + 1}" for i in range(step + 1)]
        for number, signature in enumerate(signatures):
            assert signature.intact and signature.valid and signature.trusted, signature
            assert signature.revocation_checked and not signature.revoked
            assert signature.pades_level == "B-LT"
            assert signature.problems == []
            assert signature.docmdp_ok is True
            latest = number == step
            assert signature.coverage == ("entire file" if latest else "entire revision")
            # Later revisions only add signature fields, stamps and DSS data.
            assert signature.modification_level in (
                ("NONE",) if latest else ("FORM_FILLING", "LTA_UPDATES")
            )
            expected = pki.signers[number][0]
            assert signature.signer_serial == format(expected.serial_number, "x")
            assert "CN=" + ["王喆", "李娜", "欧阳明"][number] in signature.signer_subject
            assert signature.timestamp_time is not None


def test_the_document_timestamp_makes_them_lta(signed: SignedFiles) -> None:
    report = signed.reports[-1]
    assert report.verdict == "valid", report.summary
    assert [s.pades_level for s in report.signatures] == ["B-LTA"] * 3
    assert all(s.coverage == "entire revision" for s in report.signatures)
    (timestamp,) = report.document_timestamps
    assert timestamp.intact and timestamp.valid and timestamp.trusted
    assert timestamp.revocation_checked and timestamp.problems == []
    assert timestamp.pades_level == "B-LTA"
    assert timestamp.coverage == "entire file"
    assert "TSA" in timestamp.signer_subject


def test_each_signature_is_one_incremental_update(signed: SignedFiles) -> None:
    for step, path in enumerate(signed.steps, start=1):
        # The hand-written original has one %%EOF; each step appends exactly one more.
        assert path.read_bytes().count(b"%%EOF") == 1 + step


def test_sign_result_describes_the_signed_bytes(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "one.pdf"
    write_pdf(path, pages=1)
    before = path.stat().st_size
    result = sign_in_place(
        path, "Only", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root]
    )
    data = path.read_bytes()
    start, length, offset, tail = result.byte_range
    assert (start, offset + tail) == (0, len(data)) == (0, result.file_size)
    assert hashlib.sha256(data[:length] + data[offset:]).digest() == result.digest
    assert result.revision_offset == before
    assert data[length : length + 1] == b"<" and data[offset - 1 : offset] == b">"
    assert result.timestamp_time is not None
    assert abs(result.timestamp_time - result.signing_time) < timedelta(seconds=5)
    info = check_pdf(path)
    assert info.signed_fields == ["Only"] and info.page_count == 1


def pdfsig(path: Path) -> list[str]:
    """pdfsig's report, one block of text per signature."""
    # -nocert: pdfsig checks certificates against an NSS database, which has no way to
    # trust our test root without certutil; the signature checks are what we compare.
    run = subprocess.run(
        ["pdfsig", "-nocert", str(path)], capture_output=True, text=True, check=False
    )
    return run.stdout.split("Signature #")[1:]


@pytest.mark.skipif(not have("pdfsig"), reason="pdfsig (poppler-utils) is not installed")
def test_pdfsig_accepts_every_signature(signed: SignedFiles) -> None:
    three = pdfsig(signed.steps[2])
    assert len(three) == 3
    for block in three:
        assert "Signature Validation: Signature is Valid." in block, block
        assert "Signature Type: ETSI.CAdES.detached" in block
    assert "Total document signed" in three[-1]
    assert all("Not total document signed" in block for block in three[:-1])

    final = pdfsig(signed.steps[3])
    assert len(final) == 4
    assert all("Signature is Valid." in block for block in final[:3])
    # poppler 22 cannot check RFC 3161 document time-stamps ("Unable to validate this
    # type of signature"), but it sees that the time-stamp covers the whole file.
    assert "Total document signed" in final[3]


def flip_inside_signed_range(source: Path, target: Path) -> None:
    data = bytearray(source.read_bytes())
    # A content stream of the original revision: covered by every signature.
    position = data.index(b"Bid evaluation report, page 2") + len("Bid evaluation")
    data[position + 1] ^= 0x01
    target.write_bytes(bytes(data))


def test_a_flipped_byte_breaks_every_signature(
    pki: Pki, signed: SignedFiles, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered.pdf"
    flip_inside_signed_range(signed.steps[-1], tampered)
    report = validate(tampered, [pki.root])
    assert report.verdict == "invalid"
    for signature in report.signatures + report.document_timestamps:
        assert not signature.intact
        assert any("modified" in problem for problem in signature.problems)
    if have("pdfsig"):
        blocks = pdfsig(tampered)
        assert len(blocks) == 4
        for block in blocks[:3]:
            assert "Signature is Valid." not in block
            assert "Digest Mismatch" in block, block


def test_after_the_crls_expire_the_time_stamps_carry_validity(
    pki: Pki, signed: SignedFiles
) -> None:
    # The embedded CRLs' nextUpdate is a week away; a month later they prove nothing
    # about now, but the time-stamps prove the signatures existed while they were fresh.
    later = datetime.now(UTC) + timedelta(days=30)
    report = validate(signed.steps[-1], [pki.root], now=later)
    assert report.verdict == "valid", report.summary
    for signature in report.signatures + report.document_timestamps:
        assert signature.trusted and signature.revocation_checked
        assert signature.pades_level == "B-LTA"
        assert "valid at its time-stamp" in signature.problems[0]
    # A revocation published later does not reach back before the time-stamps either.
    certificate, _ = pki.signers[0]
    entry = RevokedEntry(certificate.serial_number, later, RevocationReason.KEY_COMPROMISE)
    newer = build_crl(pki.issuing, pki.issuing_key, [entry], 3, later, later + timedelta(days=7))
    report = validate(
        signed.steps[-1], [pki.root], RevocationMaterial([newer]), now=later + timedelta(hours=1)
    )
    assert report.verdict == "valid", report.summary


def test_untrusted_root_is_indeterminate(signed: SignedFiles) -> None:
    other = build_pki()
    report = validate(signed.steps[2], [other.root])
    assert report.verdict == "indeterminate"
    assert all(s.intact and s.valid and not s.trusted for s in report.signatures)


def test_dry_runs_never_call_sign_digest(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "count.pdf"
    write_pdf(path, pages=1)
    before = len(pki.calls)
    sign_in_place(path, "Counted", pki.identity(2), pki.timestamper(), pki.revocation, [pki.root])
    # pyHanko signs twice (a dry run to size the signature, then for real): one SAD.
    assert len(pki.calls) == before + 1

    ec_signer, rsa_signer = IdentitySigner(pki.identity(0)), IdentitySigner(pki.identity(2))
    ec_dummy = asyncio.run(ec_signer.async_sign_raw(b"attrs", "sha256", dry_run=True))
    rsa_dummy = asyncio.run(rsa_signer.async_sign_raw(b"attrs", "sha256", dry_run=True))
    assert (len(ec_dummy), len(rsa_dummy)) == (72, 384)
    assert len(pki.calls) == before + 1


def test_a_failing_signer_leaves_the_file_as_it_was(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "refused.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()

    def refuse(digest: bytes, name: str) -> bytes:
        raise RuntimeError("the expert declined the signHash request")

    refusing = SigningIdentity(pki.signers[0][0], [pki.issuing, pki.root], refuse)
    with pytest.raises(RuntimeError, match="declined"):
        sign_in_place(path, "X", refusing, pki.timestamper(), pki.revocation, [pki.root])
    assert path.read_bytes() == original

    other_key = ec.generate_private_key(ec.SECP256R1())
    wrong = SigningIdentity(
        pki.signers[0][0],
        [pki.issuing, pki.root],
        lambda digest, name: sign_with(other_key, digest, hashes.SHA256()),
    )
    with pytest.raises(SigningFailed, match="does not verify"):
        sign_in_place(path, "X", wrong, pki.timestamper(), pki.revocation, [pki.root])
    assert path.read_bytes() == original


def test_a_revoked_or_unchecked_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "revoked.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    certificate, _ = pki.signers[1]
    entry = RevokedEntry(certificate.serial_number, pki.now, RevocationReason.KEY_COMPROMISE)
    week = pki.now + timedelta(days=7)
    revoked = RevocationMaterial(
        [pki.crls[0], build_crl(pki.issuing, pki.issuing_key, [entry], 2, pki.now, week)]
    )
    with pytest.raises(SigningFailed, match="could not be validated"):
        sign_in_place(path, "X", pki.identity(1), pki.timestamper(), revoked, [pki.root])
    # Without the issuing CA's CRL the document could not be B-LT: refused too.
    with pytest.raises(SigningFailed):
        sign_in_place(
            path,
            "X",
            pki.identity(1),
            pki.timestamper(),
            RevocationMaterial(pki.crls[:1]),
            [pki.root],
        )
    assert path.read_bytes() == original


def test_an_existing_empty_field_is_filled(pki: Pki, tmp_path: Path) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    path = tmp_path / "field.pdf"
    write_pdf(path, pages=2)
    with path.open("r+b") as stream:
        writer = IncrementalPdfFileWriter(stream)
        append_signature_field(
            writer, SigFieldSpec("Prepared", on_page=1, box=(100, 100, 320, 190))
        )
        writer.write_in_place()
    assert check_pdf(path).signature_fields == ["Prepared"]
    stamp = Stamp(1, (0, 0, 1, 1), LINES)  # the field's own rectangle wins
    sign_in_place(
        path, "Prepared", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root], stamp
    )
    info = check_pdf(path)
    assert info.signature_fields == info.signed_fields == ["Prepared"]
    assert validate(path, [pki.root]).verdict == "valid"


def strip_marks(pages: int) -> list[PageMark]:
    """A seal cut into one strip per page, each at its page's right edge (骑缝章)."""
    from signing.seal_image import cross_page_strips

    width = 96.0 / pages
    return [
        PageMark(i, (595 - width, 420.0, 595.0, 516.0), strip, f"Strip-{i + 1}", "骑缝章")
        for i, strip in enumerate(cross_page_strips(seal_png(), pages))
    ]


def red_share(png: Path, box: tuple[float, float, float, float], dpi: int) -> float:
    """The share of seal-red pixels of a rendered page in a box (PDF points)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    scale = dpi / 72
    left, bottom, right, top = (round(v * scale) for v in box)
    crop = image.crop((left, image.height - top, right, image.height - bottom)).tobytes()
    pixels = [crop[i : i + 3] for i in range(0, len(crop), 3)]
    return sum(1 for r, g, b in pixels if r > 150 and g < 110 and b < 110) / len(pixels)


def test_page_marks_are_signatures_of_their_own(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "strips.pdf"
    write_pdf(path, pages=3)
    sign_step(pki, path, 0, Stamp(2, BOXES[0], LINES, seal_png()))
    before = len(pki.calls)
    marks = strip_marks(3)
    results = sign_page_marks(
        path, marks, pki.identity(0), pki.timestamper(), pki.revocation, [pki.root]
    )
    # One signature (one signHash, one revision) per strip, each over the one before.
    assert [r.field_name for r in results] == ["Strip-1", "Strip-2", "Strip-3"]
    assert len(pki.calls) == before + 3
    assert [r.revision_offset for r in results[1:]] == [r.file_size for r in results[:-1]]
    info = check_pdf(path)
    # No empty field a reader would offer for signing.
    assert info.signature_fields == info.signed_fields == ["Expert1", *(m.name for m in marks)]
    report = validate(path, [pki.root])
    assert report.verdict == "valid", report.summary
    assert {s.modification_level for s in report.signatures[:-1]} == {"FORM_FILLING"}
    assert all(s.docmdp_ok is not False and s.pades_level == "B-LT" for s in report.signatures)
    if have("pdfsig"):
        blocks = pdfsig(path)
        assert len(blocks) == 4
        assert all("Signature is Valid." in block for block in blocks), blocks
    if have("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "72", "-png", str(path), tmp_path / "page"], check=True)
        for mark in marks:
            page = tmp_path / f"page-{mark.page + 1}.png"
            assert red_share(page, mark.box, 72) > 0.02, mark.name  # its slice of the seal
            assert red_share(page, (400.0, 420.0, 500.0, 516.0), 72) == 0.0


def test_a_failing_page_mark_leaves_the_file_as_it_was(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "strips.pdf"
    write_pdf(path, pages=2)
    sign_step(pki, path, 0, None)
    original = path.read_bytes()
    signer = pki.identity(0)
    calls: list[bytes] = []

    def second_refused(digest: bytes, name: str) -> bytes:
        calls.append(digest)
        if len(calls) == 2:
            raise RuntimeError("the SAD for the second strip was refused")
        return signer.sign_digest(digest, name)

    refusing = SigningIdentity(signer.certificate, signer.chain, second_refused)
    with pytest.raises(RuntimeError, match="second strip"):
        sign_page_marks(
            path, strip_marks(2), refusing, pki.timestamper(), pki.revocation, [pki.root]
        )
    assert path.read_bytes() == original  # the first strip's signature went too


def test_check_pdf_describes_a_document(signed: SignedFiles) -> None:
    info = check_pdf(signed.steps[-1])
    assert info.page_count == 3
    assert info.page_sizes == [(595.0, 842.0)] * 3
    assert info.signed_fields[:3] == ["Expert1", "Expert2", "Expert3"]
    assert len(info.signed_fields) == 4  # and the document time-stamp
    assert not info.encrypted


def encrypted_pdf(source: Path, target: Path) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    with source.open("rb") as stream:
        writer = copy_into_new_writer(PdfFileReader(stream))
        writer.encrypt("owner-secret", "user-secret")
        with target.open("wb") as out:
            writer.write(out)


@pytest.mark.parametrize("kind", ["not a pdf", "encrypted", "truncated", "broken xref", "empty"])
def test_check_pdf_rejects_bad_input(pki: Pki, kind: str, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    write_pdf(good, pages=2)
    data = good.read_bytes()
    if kind == "not a pdf":
        bad.write_bytes(b"PK\x03\x04 this is a zip file, not a report" * 10)
    elif kind == "encrypted":
        encrypted_pdf(good, bad)
    elif kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "broken xref":
        start = data.rindex(b"startxref\n") + len(b"startxref\n")
        bad.write_bytes(data[:start] + b"17" + data[data.index(b"\n", start) :])
    else:
        bad.write_bytes(b"")
    with pytest.raises(PdfRejected) as raised:
        check_pdf(bad)
    assert str(raised.value)
    if kind == "encrypted":
        assert "encrypted" in str(raised.value)
    # Neither signing nor validation gets further, and signing leaves the file alone.
    original = bad.read_bytes()
    with pytest.raises(PdfRejected):
        validate(bad, [pki.root])
    with pytest.raises(PdfRejected):
        sign_in_place(bad, "X", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root])
    assert bad.read_bytes() == original


@pytest.mark.skipif(not have("pdftoppm"), reason="pdftoppm (poppler-utils) is not installed")
def test_the_stamp_renders_chinese_text(signed: SignedFiles, tmp_path: Path) -> None:
    from PIL import Image

    prefix = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-r", "100", "-f", "1", "-l", "1", "-png", str(signed.steps[-1]), prefix],
        check=True,
    )
    image = Image.open(f"{prefix}-1.png").convert("L")
    scale = 100 / 72
    x1, y1, x2, y2 = BOXES[0]
    height = image.height

    def dark_fraction(box: tuple[float, float, float, float]) -> float:
        left, bottom, right, top = (v * scale for v in box)
        crop = image.crop(
            (int(left) + 3, int(height - top) + 3, int(right) - 3, int(height - bottom) - 3)
        )
        pixels = crop.tobytes()
        return sum(1 for p in pixels if p < 128) / len(pixels)

    # The text half of the stamp has ink; an empty stretch of the same page has none.
    assert dark_fraction((x1, y1, (x1 + x2) / 2, y2)) > 0.03
    assert dark_fraction((x1, 400.0, x2, 490.0)) == 0.0


@pytest.mark.skipif(
    not (have("pdffonts") and have("pdftotext")), reason="poppler-utils is not installed"
)
def test_the_stamp_text_is_a_font_with_unicode(signed: SignedFiles) -> None:
    fonts = subprocess.run(
        ["pdffonts", str(signed.steps[-1])], capture_output=True, text=True, check=True
    ).stdout
    type3 = [line for line in fonts.splitlines() if "Type 3" in line]
    # One per visible stamp: glyph procedures embedded ("emb yes"), ToUnicode ("uni yes").
    assert len(type3) == 3
    for line in type3:
        emb, _sub, uni = line.split()[-5:-2]
        assert (emb, uni) == ("yes", "yes"), line
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(signed.steps[-1]), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in LINES:
        assert line in text


def test_no_font_fails_visible_stamps_only(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "no-such-font.ttc"))
    path = tmp_path / "nofont.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    with pytest.raises(StampError, match="no-such-font"):
        sign_in_place(
            path,
            "X",
            pki.identity(0),
            pki.timestamper(),
            pki.revocation,
            [pki.root],
            Stamp(0, BOXES[0], LINES),
        )
    assert path.read_bytes() == original
    sign_in_place(path, "X", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root])
    assert validate(path, [pki.root]).verdict == "valid"


def test_stamp_problems_are_stamp_errors(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "stamp.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    cases: list[tuple[Stamp, str]] = [
        (Stamp(3, BOXES[0], LINES), "page 3"),
        (Stamp(0, (100, 100, 130, 104), LINES), "too small"),
        (Stamp(0, BOXES[0], ["\U000f0000 private use"]), "no glyph"),
        (Stamp(0, BOXES[0], LINES, b"not a png"), "not a readable image"),
    ]
    for stamp, message in cases:
        with pytest.raises(StampError, match=message):
            sign_in_place(
                path, "X", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root], stamp
            )
        assert path.read_bytes() == original


def test_font_is_found_and_cached() -> None:
    try:
        font = stamp_font()
    except StampError:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    assert stamp_font() is font
    assert font.missing("评标专家王喆欧阳") == []


CHILD = """
import resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.signing.test_pades import build_pki
from signing.pades import sign_in_place
pki = build_pki()
path = Path({path!r})
result = sign_in_place(path, "Big", pki.identity(0), pki.timestamper(), pki.revocation, [pki.root])
# VmHWM, not ru_maxrss: Linux carries the pre-exec high-water mark (here pytest's own
# few hundred MB, shared through vfork) into the child's ru_maxrss.
try:
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak_kb // 1024, result.file_size)
"""


@pytest.mark.slow
def test_a_100_mb_file_signs_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    write_pdf(path, pages=2, filler=100 * 1024 * 1024)
    size = path.stat().st_size
    script = textwrap.dedent(CHILD).format(root=str(ROOT), path=str(path))
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    peak_mb, signed_size = (int(v) for v in run.stdout.split())
    assert signed_size > size
    assert peak_mb < 150, f"peak RSS {peak_mb} MB signing a {size >> 20} MB file"


# --- prepare, approve, finish ----------------------------------------------------------


def test_a_prepared_signature_leaves_the_file_and_finishes_anywhere(
    pki: Pki, tmp_path: Path
) -> None:
    path = tmp_path / "two-phase.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    certificate = pki.signers[0][0]
    prepared = prepare_signature(
        path,
        "Approved",
        certificate,
        [pki.issuing, pki.root],
        pki.timestamper(),
        pki.revocation,
        [pki.root],
        Stamp(page=0, box=BOXES[0], lines=LINES),
    )
    # Nothing is written until the signer has approved.
    assert path.read_bytes() == original
    assert prepared.base_size == len(original)
    assert prepared.base_sha256 == hashlib.sha256(original).digest()
    assert prepared.approval_digest == hashlib.sha256(prepared.signed_attributes).digest()

    # The prepared values survive a round trip through plain storage (another replica).
    again = type(prepared)(**{k: getattr(prepared, k) for k in prepared.__dataclass_fields__})
    before = len(pki.calls)
    result = finish_signature(path, again, pki.identity(0), pki.timestamper())
    # sign_digest saw exactly the digest the signer approved, once.
    assert pki.calls[before:] == [prepared.approval_digest]
    assert result.revision_offset == len(original) and result.digest == prepared.document_digest

    report = validate(path, [pki.root], now=pki.now)
    assert report.verdict == "valid", report.summary
    # What a third party can check: the embedded signed attributes are what was approved.
    data = path.read_bytes()
    _, length, offset, _ = result.byte_range
    contents = bytes.fromhex(data[length + 1 : offset - 1].decode())  # zero-padded
    signed = cms.ContentInfo.load(contents, strict=False)
    attrs = signed["content"]["signer_infos"][0]["signed_attrs"].untag().dump()
    assert hashlib.sha256(attrs).digest() == prepared.approval_digest


def test_a_prepared_signature_is_refused_once_the_document_moved_on(
    pki: Pki, tmp_path: Path
) -> None:
    path = tmp_path / "moved.pdf"
    write_pdf(path, pages=1)
    prepared = prepare_signature(
        path,
        "Late",
        pki.signers[0][0],
        [pki.issuing, pki.root],
        pki.timestamper(),
        pki.revocation,
        [pki.root],
    )
    sign_in_place(path, "Early", pki.identity(1), pki.timestamper(), pki.revocation, [pki.root])
    moved_on = path.read_bytes()
    before = len(pki.calls)
    with pytest.raises(SignatureBaseChanged):
        finish_signature(path, prepared, pki.identity(0), pki.timestamper())
    assert path.read_bytes() == moved_on and len(pki.calls) == before

    # A changed byte of the same length is a different document too.
    path.write_bytes(moved_on[:-3] + b"%\n\n")
    with pytest.raises(SignatureBaseChanged):
        finish_signature(path, prepared, pki.identity(0), pki.timestamper())


def test_a_prepared_signature_finishes_only_with_its_certificate(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "who.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    prepared = prepare_signature(
        path,
        "Mine",
        pki.signers[0][0],
        [pki.issuing, pki.root],
        pki.timestamper(),
        pki.revocation,
        [pki.root],
    )
    with pytest.raises(SigningFailed, match="not the one"):
        finish_signature(path, prepared, pki.identity(1), pki.timestamper())
    assert path.read_bytes() == original


def test_a_tampered_prepared_revision_is_never_signed(pki: Pki, tmp_path: Path) -> None:
    import dataclasses

    path = tmp_path / "kept.pdf"
    write_pdf(path, pages=1)
    original = path.read_bytes()
    prepared = prepare_signature(
        path,
        "Kept",
        pki.signers[0][0],
        [pki.issuing, pki.root],
        pki.timestamper(),
        pki.revocation,
        [pki.root],
    )
    # A byte of the kept revision changed (where it waited, between prepare and finish):
    # the approved digest no longer covers it, so no signature value is spent on it.
    changed = bytearray(prepared.revision)
    changed[10] ^= 0x01
    tampered = dataclasses.replace(prepared, revision=bytes(changed))
    before = len(pki.calls)
    with pytest.raises(SigningFailed, match="document digest"):
        finish_signature(path, tampered, pki.identity(0), pki.timestamper())
    assert len(pki.calls) == before and path.read_bytes() == original
    # The untouched one still finishes.
    finish_signature(path, prepared, pki.identity(0), pki.timestamper())
    assert validate(path, [pki.root], now=pki.now).verdict == "valid"


@pytest.mark.skipif(not HAVE_NSS_TOOLS, reason="pdfsig and certutil (libnss3-tools)")
def test_nss_readers_trust_the_signers_once_the_root_is_trusted(
    pki: Pki, signed: SignedFiles, tmp_path: Path
) -> None:
    """What poppler, Okular, Evince and LibreOffice do: NSS checks the signer certificate
    for the e-mail signer usage. With the center root trusted, every signature is both
    valid and trusted; `certutil -V -u S` (the same check) passes for each signer."""
    database = trusting_database(tmp_path / "nss", [pki.root], [pki.issuing])
    for certificate, _ in pki.signers:
        checked = signer_usage_ok(database, certificate, tmp_path)
        assert "certificate is valid" in checked, checked
    blocks = pdfsig_blocks(database, signed.steps[2])
    assert len(blocks) == 3
    for block in blocks:
        assert "Signature is Valid." in block, block
        assert "Certificate is Trusted." in block, block


def test_each_signature_carries_each_certificate_once(signed: SignedFiles) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    with signed.steps[2].open("rb") as stream:
        for embedded in PdfFileReader(stream).embedded_signatures:
            certificates = [c.dump() for c in embedded.signed_data["certificates"]]
            assert len(certificates) == len(set(certificates)) >= 3, embedded.field_name
