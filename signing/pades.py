"""PAdES signatures on PDF files: sign in place, time-stamp, validate.

A pure library: no database, no HTTP, no clock of its own. The service hands it a file path
(or a seekable stream that takes appended bytes, such as the document store's view of a
revision, where the appended update stays in memory until the service keeps it),
the signer's certificates and a `sign_digest` callback (which runs the CSC authorize +
signHash flow for exactly one digest), our RFC 3161 authority wrapped as a pyHanko
`TimeStamper`, and the revocation material (CRLs, OCSP responses) it has issued.

What a signature looks like:

- ONE incremental update per signature, appended to the file itself (opened r+b, pyHanko
  `in_place=True`) or to the stream handed in. The document is streamed for hashing in
  1 MiB chunks and never read into memory, so a 1 GB file signs in bounded memory. If
  anything fails after the update was appended (the signHash callback refused, the TSA is
  down), the file is truncated back to its previous length.
- PAdES baseline: subfilter ETSI.CAdES.detached, signing-certificate-v2, no CMS
  signing-time (the /M entry carries the claimed time), a signature time-stamp (B-T), and
  the chains of the signer and the TSA with the given CRLs/OCSPs in the document's DSS.
  The DSS goes into the same revision as the signature (no VRI, as pyHanko requires for
  that placement), so every signature is B-LT on its own and the newest one covers the
  whole file. `add_document_timestamp` appends a document time-stamp (B-LTA) the same way.
- The visible stamp draws its text with a Type 3 font whose glyph procedures are the
  outlines of a system CJK font (Noto Sans CJK SC by default), with a ToUnicode map so
  the text can still be selected and searched. The parsed font and every glyph outline
  are cached in-process: a stamp costs a few milliseconds, where subsetting a 20 MB CJK
  font per signature would cost hundreds (see bench/documents_bench.py).

Validation (`validate`) is pyHanko's: trust comes only from `trust_roots`, and revocation
data from the document's DSS and the material handed in, and, only when those leave a
status open and the caller allows it, from OCSP/CRLs fetched for chains it names
(`signing.online_revocation`).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import io
import logging
import os
import secrets
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from asn1crypto import algos, cms, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign.fields import (
    SigFieldSpec,
    SigSeedSubFilter,
    enumerate_sig_fields,
)
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSignatureMetadata,
    PdfSigner,
    PdfTimeStamper,
    SigDSSPlacementPreference,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
)
from pyhanko.stamp.base import BaseStamp, BaseStampStyle
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.certificates import dn
from signing.online_revocation import OnlineRevocation, RevocationPolicy, pairs_of
from signing.pdf_budget import PdfBudget, PdfOverBudget, scan_pdf
from signing.tsa import TimeStampAuthority, TimeStampRejected, token_of

__all__ = [
    "FONT_ENV",
    "FONT_INDEX_ENV",
    "IdentitySigner",
    "InProcessTimeStamper",
    "PageMark",
    "PdfInfo",
    "PdfRejected",
    "PreparedSignature",
    "RevocationMaterial",
    "SignResult",
    "SignatureBaseChanged",
    "SignatureReport",
    "SigningFailed",
    "SigningIdentity",
    "Stamp",
    "StampError",
    "ValidationReport",
    "add_document_timestamp",
    "approved_digests",
    "async_add_document_timestamp",
    "async_sign_in_place",
    "async_validate",
    "check_pdf",
    "cjk_font_location",
    "finish_signature",
    "preload_stamp_font",
    "prepare_signature",
    "sign_in_place",
    "sign_page_marks",
    "validate",
]

log = logging.getLogger(__name__)


class _NoFetchingIsIntended(logging.Filter):
    """pyHanko warns on every signature that embeds validation data without fetching it;
    here that is the design (the service hands over its own CRLs), not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_NoFetchingIsIntended())

# Hashing reads the file in chunks of this size (pyHanko's default is 4 KiB: 250 000 reads
# for a 1 GB file). The chunk is the only part of the document held in memory.
CHUNK_SIZE = 1 << 20
DIGEST_ALGORITHM = "sha256"

FONT_ENV = "EVALSIGN_STAMP_FONT"
FONT_INDEX_ENV = "EVALSIGN_STAMP_FONT_INDEX"
# Where distributions put a CJK font; the first that exists is used. A .ttc holds several
# faces: without an explicit index, the Simplified Chinese face is picked by its name.
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


class PdfRejected(Exception):
    """The input is not a PDF we accept: not a PDF at all, encrypted, structurally
    broken (bad cross-reference table, truncated) or over a reading budget (`limit`
    names which, see pdf_budget)."""

    def __init__(self, detail: str, *, limit: str | None = None) -> None:
        super().__init__(detail)
        self.limit = limit


def _within_budget(source: Path | IO[bytes]) -> None:
    # Before any parser builds objects from bytes someone else made.
    try:
        scan_pdf(source)
    except PdfOverBudget as exc:
        raise PdfRejected(str(exc), limit=exc.limit) from exc


class StampError(Exception):
    """The visible stamp cannot be drawn: no CJK font, a character the font lacks, or a
    box too small for the text."""


class SigningFailed(Exception):
    """The signature could not be made; the file is left as it was."""


# --- inputs and results -------------------------------------------------------------------


@dataclass(frozen=True)
class SigningIdentity:
    """The signer: certificate, chain up to and including the root, and a callback that
    signs one digest (DER ECDSA for EC keys, PKCS#1 v1.5 for RSA keys)."""

    certificate: x509.Certificate
    chain: Sequence[x509.Certificate]
    sign_digest: Callable[[bytes, str], bytes]


@dataclass(frozen=True)
class RevocationMaterial:
    crls: Sequence[bytes]
    ocsps: Sequence[bytes] = ()


@dataclass(frozen=True)
class Stamp:
    """The visible appearance of a signature: `lines` of text in `box` (x1, y1, x2, y2 in
    PDF points) on page `page` (0-based), over an optional seal image."""

    page: int
    box: tuple[float, float, float, float]
    lines: Sequence[str]
    seal_png: bytes | None = None


@dataclass(frozen=True)
class PageMark:
    """An image on a page that is a signature of its own, so no reader finds an empty field
    offered for signing: a strip of a cross-page seal (骑缝章), signed with the seal's
    credential (`sign_page_marks`). The image fills the box; the widget is printable."""

    page: int
    box: tuple[float, float, float, float]
    png: bytes
    name: str  # the field's name, unique in the document
    label: str  # what a viewer shows for it


@dataclass(frozen=True)
class SignResult:
    field_name: str
    file_size: int
    # The four /ByteRange numbers: [0, a) and [b, b + c) are what the digest covers.
    byte_range: tuple[int, int, int, int]
    digest: bytes
    digest_algorithm: str
    # The time the signer claims (/M), and the TSA's time of the signature time-stamp.
    signing_time: datetime
    timestamp_time: datetime | None
    # Where the appended revision starts: the file's length before signing.
    revision_offset: int


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    page_sizes: list[tuple[float, float]]
    signature_fields: list[str]
    signed_fields: list[str]
    encrypted: bool = False


@dataclass
class SignatureReport:
    """One signature or document time-stamp. For a time-stamp, the signer is the TSA and
    `signing_time` is its time."""

    field_name: str
    signer_subject: str
    signer_serial: str
    signing_time: datetime | None
    timestamp_time: datetime | None
    intact: bool
    valid: bool
    trusted: bool
    revocation_checked: bool
    revoked: bool
    coverage: str
    modification_level: str | None
    docmdp_ok: bool | None
    pades_level: str
    problems: list[str] = field(default_factory=list)
    # Where the revocation data that decided it came from: "document" (the DSS or the
    # material handed in), "online" (fetched for this validation) or "none".
    revocation_source: str = "document"

    @property
    def ok(self) -> bool:
        return (
            self.intact
            and self.valid
            and self.trusted
            and not self.revoked
            and self.docmdp_ok is not False
        )


@dataclass
class ValidationReport:
    signatures: list[SignatureReport]
    document_timestamps: list[SignatureReport]
    verdict: str
    summary: str


# --- time-stamps ---------------------------------------------------------------------------


def _random_serial() -> int:
    # 127 random bits and a set top bit: unique without coordination, under RFC 3161's 160.
    return secrets.randbits(127) | 1 << 127


class InProcessTimeStamper(TimeStamper):
    """pyHanko's TimeStamper over our own TimeStampAuthority, called in-process.

    `serial_numbers` gives each token's serial (the service passes its database sequence);
    by default a random 128-bit number. pyHanko asks for one extra token per instance, over
    an empty digest, to learn the TSA's certificates and the token size."""

    def __init__(
        self,
        authority: TimeStampAuthority,
        now: Callable[[], datetime],
        serial_numbers: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.authority = authority
        self.now = now
        self._serials = serial_numbers or _random_serial

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        response = self.authority.respond(bytes(req.dump()), self.now(), self._serials())
        try:
            token_of(response)
        except TimeStampRejected as exc:
            raise TimestampRequestError(
                f"the TSA refused the request ({exc.failure_info}): {exc.message}"
            ) from exc
        return tsp.TimeStampResp.load(response)


# --- the signer ----------------------------------------------------------------------------


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _crypto(certificate: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(certificate.dump()))


def _hash_algorithm(name: str) -> hashes.HashAlgorithm:
    algorithms: dict[str, hashes.HashAlgorithm] = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }
    try:
        return algorithms[name]
    except KeyError:
        raise SigningFailed(f"unsupported digest algorithm {name}") from None


class IdentitySigner(Signer):
    """A pyHanko Signer whose raw signature comes from `SigningIdentity.sign_digest`.

    A dry run (pyHanko's size estimate) returns zeros of the largest size the key can
    produce and never calls the callback: in the service each call spends a one-time
    signature activation (SAD)."""

    def __init__(self, identity: SigningIdentity) -> None:
        public = identity.certificate.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            mechanism = f"{DIGEST_ALGORITHM}_ecdsa"  # ecdsa-with-SHA256
            # DER SEQUENCE of two INTEGERs, each at most one byte longer than the order.
            content = 2 * ((public.curve.key_size + 7) // 8 + 3)
            self._placeholder_size = content + (2 if content < 128 else 3)
        elif isinstance(public, rsa.RSAPublicKey):
            mechanism = f"{DIGEST_ALGORITHM}_rsa"  # sha256WithRSAEncryption, PKCS#1 v1.5
            self._placeholder_size = (public.key_size + 7) // 8
        else:
            raise SigningFailed("only EC and RSA signing keys are supported")
        self._identity = identity
        self._public = public
        certificate = _asn1(identity.certificate)
        super().__init__(
            signing_cert=certificate,
            # The chain only: pyHanko adds the signing certificate itself, and a registry
            # holding it too put it in the CMS twice.
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [_asn1(c) for c in identity.chain if c != identity.certificate]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}),
        )
        self.signature_cms: cms.ContentInfo | None = None

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return bytes(self._placeholder_size)
        algorithm = _hash_algorithm(digest_algorithm)
        hasher = hashes.Hash(algorithm)
        hasher.update(data)
        digest = hasher.finalize()
        signature = self._identity.sign_digest(digest, digest_algorithm)
        # A signature that does not verify would make a document every validator rejects;
        # checking costs well under a millisecond and names the culprit (wrong key, bad HSM).
        try:
            if isinstance(self._public, ec.EllipticCurvePublicKey):
                self._public.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
            else:
                assert isinstance(self._public, rsa.RSAPublicKey)
                self._public.verify(
                    signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm)
                )
        except InvalidSignature:
            raise SigningFailed(
                "sign_digest returned a signature that the certificate's key does not verify"
            ) from None
        return signature

    async def async_sign(  # type: ignore[override]
        self, data_digest: bytes, digest_algorithm: str, dry_run: bool = False, **kwargs: Any
    ) -> cms.ContentInfo:
        # Kept so the result can report the signature time-stamp's time.
        result = await super().async_sign(data_digest, digest_algorithm, dry_run, **kwargs)
        if not dry_run:
            self.signature_cms = result
        return result


def _signature_timestamp_time(signature_cms: cms.ContentInfo | None) -> datetime | None:
    if signature_cms is None:
        return None
    signer_info = signature_cms["content"]["signer_infos"][0]
    for attribute in signer_info["unsigned_attrs"] or ():
        if attribute["type"].native == "signature_time_stamp_token":
            token = attribute["values"][0]
            gen_time = token["content"]["encap_content_info"]["content"].parsed["gen_time"]
            moment = gen_time.native
            assert isinstance(moment, datetime)
            return moment
    return None


# --- files ---------------------------------------------------------------------------------


def _check_header(stream: IO[bytes]) -> None:
    stream.seek(0)
    # ISO 32000 allows junk before the header; readers accept it within the first 1 KiB.
    if b"%PDF-" not in stream.read(1024):
        raise PdfRejected("not a PDF file (no %PDF- header)")
    stream.seek(0)


def _open_reader(stream: IO[bytes]) -> PdfFileReader:
    _check_header(stream)
    try:
        reader = PdfFileReader(stream, strict=True)
        encrypted = reader.encrypted
        reader.root  # noqa: B018 - resolving the catalog exercises the xref
    except PdfError as exc:
        raise PdfRejected(f"the PDF structure is broken: {exc}") from exc
    except (ValueError, KeyError, TypeError, IndexError, EOFError, RecursionError) as exc:
        # pyHanko's parser lets some malformed input surface as these.
        raise PdfRejected(f"the PDF structure is broken: {exc!r}") from exc
    if encrypted:
        raise PdfRejected("the PDF is encrypted; only unencrypted documents are accepted")
    return reader


def _page_sizes(reader: PdfFileReader) -> list[tuple[float, float]]:
    sizes: list[tuple[float, float]] = []
    seen: set[tuple[int, int]] = set()
    most = PdfBudget().max_pages
    over = PdfRejected(f"the PDF has over {most} pages", limit="max_pages")
    claimed = reader.root["/Pages"].get("/Count")
    if isinstance(claimed, int) and claimed > most:
        raise over

    def walk(node: generic.DictionaryObject, media_box: Any, depth: int) -> None:
        if depth > 64:
            raise PdfRejected("the page tree is too deep")
        box = node.get("/MediaBox", media_box)
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            for kid in node.raw_get("/Kids"):
                key = (kid.idnum, kid.generation)
                if key in seen:
                    raise PdfRejected("the page tree has a cycle")
                seen.add(key)
                if len(seen) > 2 * most:  # empty /Pages nodes cost a walk as much as pages
                    raise over
                walk(kid.get_object(), box, depth + 1)
            return
        if box is None:
            raise PdfRejected(f"page {len(sizes) + 1} has no /MediaBox")
        x1, y1, x2, y2 = (float(v) for v in box)
        sizes.append((abs(x2 - x1), abs(y2 - y1)))
        if len(sizes) > most:
            raise over

    walk(reader.root["/Pages"], None, 0)
    return sizes


def _fields_within_budget(reader: PdfFileReader) -> None:
    """Count the form's fields (every node of the AcroForm tree) before pyHanko
    enumerates them, and refuse a form over the budget or with a cycle."""
    most = PdfBudget().max_fields
    form = reader.root.get("/AcroForm")
    if form is None:
        return
    form = form.get_object()
    if not isinstance(form, generic.DictionaryObject) or "/Fields" not in form:
        return
    seen: set[tuple[int, int]] = set()
    pending = [form.raw_get("/Fields")]
    while pending:
        kids = pending.pop()
        if isinstance(kids, generic.IndirectObject):
            kids = kids.get_object()  # type: ignore[no-untyped-call]
        if not isinstance(kids, generic.ArrayObject):
            continue
        for kid in kids:
            if isinstance(kid, generic.IndirectObject):
                key = (kid.idnum, kid.generation)
                if key in seen:
                    raise PdfRejected("the form's field tree has a cycle")
                seen.add(key)
                if len(seen) > most:
                    raise PdfRejected(f"the PDF has over {most} form fields", limit="max_fields")
                kid = kid.get_object()  # type: ignore[no-untyped-call]
            if isinstance(kid, generic.DictionaryObject) and "/Kids" in kid:
                pending.append(kid.raw_get("/Kids"))


def check_pdf(source: Path | BinaryIO) -> PdfInfo:
    """Open the file with pyHanko's strict reader (which reads the cross-reference data,
    not the whole file) and describe it; PdfRejected if it is not a PDF we can sign."""
    with _reading(source) as stream:
        _check_header(stream)
        if isinstance(source, Path):
            # A file from outside (an upload, a letter) is scanned before any parser builds
            # objects from it; a stored revision passed this scan when it arrived.
            _within_budget(stream)
        reader = _open_reader(stream)
        with _structure_read():
            _fields_within_budget(reader)
            sizes = _page_sizes(reader)
            all_fields = [name for name, _, _ in enumerate_sig_fields(reader)]
            signed = [name for name, _, _ in enumerate_sig_fields(reader, filled_status=True)]
    return PdfInfo(len(sizes), sizes, all_fields, signed)


@contextmanager
def _structure_read() -> Iterator[None]:
    """Reading a file's pages and fields: pyHanko lets malformed structure surface as
    these errors, each a PdfRejected here."""
    try:
        yield
    except PdfRejected:
        raise
    except (
        PdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ) as exc:
        raise PdfRejected(f"the PDF structure is broken: {exc!r}") from exc


def _reading(source: Path | BinaryIO) -> AbstractContextManager[IO[bytes]]:
    if isinstance(source, Path):
        return source.open("rb")
    source.seek(0)
    return nullcontext(source)


def _writing(document: Path | BinaryIO) -> AbstractContextManager[BinaryIO]:
    """A path opened under its lock, or a stream as it is (its owner serializes writers)."""
    return _Locked(document) if isinstance(document, Path) else nullcontext(document)


class _Locked:
    """The file opened r+b under an exclusive advisory lock: two signatures appended to
    the same file at once would corrupt it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        self.stream = cast(BinaryIO, self.path.open("r+b"))
        fcntl.flock(self.stream.fileno(), fcntl.LOCK_EX)
        return self.stream

    def __exit__(self, *exc: object) -> None:
        try:
            fcntl.flock(self.stream.fileno(), fcntl.LOCK_UN)
        finally:
            self.stream.close()


def _finish(stream: BinaryIO) -> int:
    stream.flush()
    # Not a file: whoever keeps the appended bytes makes them durable.
    with suppress(OSError, AttributeError):
        os.fsync(stream.fileno())
    return stream.seek(0, os.SEEK_END)


def _roll_back(stream: BinaryIO, size: int) -> None:
    # The appended revision is useless without its signature; drop it.
    stream.flush()
    stream.truncate(size)
    stream.flush()


# --- validation contexts -------------------------------------------------------------------


def _load_crls(crls: Iterable[bytes]) -> list[asn1_crl.CertificateList]:
    return [asn1_crl.CertificateList.load(c) for c in crls]


def _load_ocsps(ocsps: Iterable[bytes]) -> list[asn1_ocsp.OCSPResponse]:
    return [asn1_ocsp.OCSPResponse.load(o) for o in ocsps]


def _signing_context(
    trust_roots: Sequence[x509.Certificate],
    other_certs: Iterable[x509.Certificate],
    revocation: RevocationMaterial,
    moment: datetime,
) -> ValidationContext:
    # hard-fail: a certificate whose CRL we were not given means the material is
    # incomplete, and the document would not be B-LT; better to refuse than to pretend.
    return ValidationContext(
        trust_roots=[_asn1(c) for c in trust_roots],
        other_certs=[_asn1(c) for c in other_certs],
        crls=_load_crls(revocation.crls),
        ocsps=_load_ocsps(revocation.ocsps),
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=moment,
    )


def _now_of(timestamper: TimeStamper) -> Callable[[], datetime]:
    if isinstance(timestamper, InProcessTimeStamper):
        return timestamper.now
    return lambda: datetime.now(UTC)


def _tsa_chain(timestamper: TimeStamper) -> list[x509.Certificate]:
    if isinstance(timestamper, InProcessTimeStamper):
        authority = timestamper.authority
        return [authority.certificate, *authority.chain]
    return []


# --- signing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedSignature:
    """A signature's revision written up to its signature value, and what finishing needs.

    Between `prepare_signature` and `finish_signature` the signer approves
    `approval_digest`, the SHA-256 of the CMS signed attributes: those name the document's
    byte-range digest and the signer's certificate, so approving them approves exactly
    this signature on exactly this revision. Plain values only, so the service can keep
    them in its database and any replica can finish."""

    field_name: str
    base_size: int  # the file's length the revision is appended to
    base_sha256: bytes
    revision: bytes  # the incremental update, its /Contents still a placeholder
    reserved_start: int  # the placeholder's place in the whole file
    reserved_end: int
    document_digest: bytes
    signed_attributes: bytes  # DER (SET OF) of the CMS signed attributes
    signing_time: datetime

    @property
    def approval_digest(self) -> bytes:
        return hashlib.sha256(self.signed_attributes).digest()


def sign_in_place(
    document: Path | BinaryIO,
    field_name: str,
    identity: SigningIdentity,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    stamp: Stamp | None = None,
    reason: str | None = None,
    location: str | None = None,
    *,
    now: Callable[[], datetime] | None = None,
) -> SignResult:
    """Sign the PDF `document` in place (see the module docstring): prepare and finish in
    one go, under one lock. `now` gives the claimed signing time; by default the
    InProcessTimeStamper's clock. Raises PdfRejected, StampError or SigningFailed; on any
    error the file keeps its previous length."""
    return asyncio.run(
        async_sign_in_place(
            document,
            field_name,
            identity,
            timestamper,
            revocation,
            trust_roots,
            stamp,
            reason,
            location,
            now=now,
        )
    )


async def async_sign_in_place(
    document: Path | BinaryIO,
    field_name: str,
    identity: SigningIdentity,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    stamp: Stamp | None = None,
    reason: str | None = None,
    location: str | None = None,
    *,
    now: Callable[[], datetime] | None = None,
) -> SignResult:
    """`sign_in_place` for callers already inside an event loop."""
    with _writing(document) as stream:
        prepared = await _prepare(
            stream,
            field_name,
            identity.certificate,
            identity.chain,
            timestamper,
            revocation,
            trust_roots,
            stamp,
            reason,
            location,
            now=now,
        )
        signature_cms = await _signature_cms(prepared, identity, timestamper)
        return _embed(stream, prepared, signature_cms)


def prepare_signature(
    document: Path | BinaryIO,
    field_name: str,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    stamp: Stamp | None = None,
    reason: str | None = None,
    location: str | None = None,
    *,
    now: Callable[[], datetime] | None = None,
) -> PreparedSignature:
    """The first half of signing: the signature's revision built and digested, the signed
    attributes fixed. The file itself is left as it was. Raises PdfRejected, StampError or
    SigningFailed."""
    with _writing(document) as stream:
        return asyncio.run(
            _prepare(
                stream,
                field_name,
                certificate,
                chain,
                timestamper,
                revocation,
                trust_roots,
                stamp,
                reason,
                location,
                now=now,
            )
        )


def finish_signature(
    document: Path | BinaryIO,
    prepared: PreparedSignature,
    identity: SigningIdentity,
    timestamper: TimeStamper,
) -> SignResult:
    """The second half: `identity.sign_digest` signs the prepared signed attributes (it is
    called with exactly `prepared.approval_digest`), the signature time-stamp is added, and
    the revision is appended with the signature in it. Refused (SignatureBaseChanged) if
    the file is no longer the one the signature was prepared on; on any error the file
    keeps its previous length."""
    if identity.certificate.fingerprint(hashes.SHA256()) != _certificate_of(prepared):
        raise SigningFailed("the identity is not the one the signature was prepared for")
    with _writing(document) as stream:
        _check_base(stream, prepared)
        signature_cms = asyncio.run(_signature_cms(prepared, identity, timestamper))
        return _embed(stream, prepared, signature_cms)


def sign_page_marks(
    document: Path | BinaryIO,
    marks: Sequence[PageMark],
    identity: SigningIdentity,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    *,
    now: Callable[[], datetime] | None = None,
) -> list[SignResult]:
    """Each mark signed as a signature field of its own, whose appearance is the mark's
    image and whose reason its label: one incremental update per mark, in order, each B-LT
    like any signature here. `identity.sign_digest` is called once per mark, with that
    signature's approval digest (the SHA-256 of its signed attributes); each covers the
    signature before it, so the digests exist only one at a time. All or nothing: on any
    error the file keeps its previous length. Raises PdfRejected, StampError or
    SigningFailed (or whatever `sign_digest` raises)."""

    async def sign_all(stream: BinaryIO) -> list[SignResult]:
        results = []
        for mark in marks:
            prepared = await _prepare(
                stream,
                mark.name,
                identity.certificate,
                identity.chain,
                timestamper,
                revocation,
                trust_roots,
                None,
                mark.label,
                None,
                now=now,
                mark=mark,
            )
            signature_cms = await _signature_cms(prepared, identity, timestamper)
            results.append(_embed(stream, prepared, signature_cms))
        return results

    with _writing(document) as stream:
        size = stream.seek(0, os.SEEK_END)
        try:
            return asyncio.run(sign_all(stream))
        except BaseException:
            _roll_back(stream, size)
            raise


class SignatureBaseChanged(SigningFailed):
    """The document moved on (another revision was appended) after the signature was
    prepared: prepare again on the document as it now stands."""


def _sha256_of(stream: BinaryIO, size: int, *also: Any) -> bytes:
    """SHA-256 of the stream's first `size` bytes; `also` are hashers fed the same bytes."""
    digest = hashlib.sha256()
    stream.seek(0)
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            break
        digest.update(chunk)
        for hasher in also:
            hasher.update(chunk)
        remaining -= len(chunk)
    return digest.digest()


def _check_base(stream: BinaryIO, prepared: PreparedSignature) -> None:
    """The file is still the one the signature was prepared on, and the kept revision
    and signed attributes still digest to what the signer approved: a signature value is
    spent only on a signature that will verify."""
    size = stream.seek(0, os.SEEK_END)
    covered = hashlib.sha256()
    if size != prepared.base_size or _sha256_of(stream, size, covered) != prepared.base_sha256:
        raise SignatureBaseChanged(
            "the document changed after this signature was prepared; prepare it again"
        )
    start = prepared.reserved_start - prepared.base_size
    end = prepared.reserved_end - prepared.base_size
    covered.update(prepared.revision[:start])
    covered.update(prepared.revision[end:])
    if (
        covered.digest() != prepared.document_digest
        or _message_digest(prepared) != prepared.document_digest
    ):
        raise SigningFailed("the prepared signature does not match its document digest")


def _signed_attribute(prepared: PreparedSignature, name: str) -> Any:
    for attribute in cms.CMSAttributes.load(prepared.signed_attributes):
        if attribute["type"].native == name:
            return attribute["values"][0]
    raise SigningFailed(f"the prepared signature has no {name} attribute")


def _message_digest(prepared: PreparedSignature) -> bytes:
    value = _signed_attribute(prepared, "message_digest").native
    assert isinstance(value, bytes)
    return value


def _certificate_of(prepared: PreparedSignature) -> bytes:
    """The signer certificate's SHA-256 as the signed attributes name it
    (signing-certificate-v2)."""
    [certificate_id] = _signed_attribute(prepared, "signing_certificate_v2")["certs"]
    cert_hash = certificate_id["cert_hash"].native
    assert isinstance(cert_hash, bytes)
    return cert_hash


def _never_called(digest: bytes, hash_name: str) -> bytes:
    raise AssertionError("preparing a signature never signs")


async def _prepare(
    stream: BinaryIO,
    field_name: str,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    stamp: Stamp | None,
    reason: str | None,
    location: str | None,
    *,
    now: Callable[[], datetime] | None,
    mark: PageMark | None = None,
) -> PreparedSignature:
    # /M has whole seconds; the result reports what the document says.
    signing_time = (now or _now_of(timestamper))().replace(microsecond=0)
    style: BaseStampStyle | None = None
    if mark is not None:
        style = _MarkStampStyle(mark=mark, border_width=0)
    elif stamp is not None:
        style = _CjkStampStyle(stamp=stamp, font=stamp_font())
    # Only the size estimate runs here, a dry run that never calls sign_digest.
    signer = IdentitySigner(SigningIdentity(certificate, chain, _never_called))
    context = _signing_context(
        trust_roots, [*chain, *_tsa_chain(timestamper)], revocation, signing_time
    )
    metadata = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=DIGEST_ALGORITHM,
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        embed_validation_info=True,
        validation_context=context,
        # The DSS in the signature's own revision (which rules out VRI entries): one
        # update per signature, the latest signature covers the entire file, and nothing
        # is left to do after the signature value is in.
        dss_settings=DSSContentSettings(
            include_vri=False, placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE
        ),
    )
    writer = _incremental_writer(stream)
    new_field = None
    if not any(True for _ in enumerate_sig_fields(writer.prev, with_name=field_name)):
        if mark is not None:
            new_field = SigFieldSpec(
                field_name,
                on_page=mark.page,
                box=_box(mark, writer),
                readable_field_name=mark.label,
            )
        elif stamp is not None:
            new_field = SigFieldSpec(field_name, on_page=stamp.page, box=_box(stamp, writer))
        else:
            new_field = SigFieldSpec(field_name)
    pdf_signer = PdfSigner(
        metadata, signer, timestamper=timestamper, stamp_style=style, new_field_spec=new_field
    )
    base_size = stream.seek(0, os.SEEK_END)
    base_sha256 = _sha256_of(stream, base_size)
    try:
        session = pdf_signer.init_signing_session(writer, existing_fields_only=False)
        session.system_time = signing_time  # /M: our clock, not the machine's
        validation_info = await session.perform_presign_validation(writer)
        reserved = await session.estimate_signature_container_size(validation_info)
        tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=reserved)
        # Written in place so the document is hashed as it streams (bounded memory), then
        # read back and cut off: until it is finished the revision lives only in the result.
        digested, _ = tbs.digest_tbs_document(in_place=True, chunk_size=CHUNK_SIZE)
        stream.seek(base_size)
        revision = stream.read()
        attributes = await signer.signed_attrs(
            digested.document_digest,
            DIGEST_ALGORITHM,
            attr_settings=PdfCMSSignedAttributes(signing_time=signing_time),
            use_pades=True,
            timestamper=timestamper,
        )
    except (SigningError, TimestampRequestError) as exc:
        raise SigningFailed(str(exc)) from exc
    finally:
        _roll_back(stream, base_size)
    return PreparedSignature(
        field_name=field_name,
        base_size=base_size,
        base_sha256=base_sha256,
        revision=revision,
        reserved_start=digested.reserved_region_start,
        reserved_end=digested.reserved_region_end,
        document_digest=digested.document_digest,
        signed_attributes=attributes.dump(),
        signing_time=signing_time,
    )


async def _signature_cms(
    prepared: PreparedSignature, identity: SigningIdentity, timestamper: TimeStamper
) -> cms.ContentInfo:
    signer = IdentitySigner(identity)
    try:
        return await signer.async_sign_prescribed_attributes(
            DIGEST_ALGORITHM,
            cms.CMSAttributes.load(prepared.signed_attributes),
            timestamper=timestamper,
        )
    except (SigningError, TimestampRequestError) as exc:
        raise SigningFailed(str(exc)) from exc


def _embed(
    stream: BinaryIO, prepared: PreparedSignature, signature_cms: cms.ContentInfo
) -> SignResult:
    """Append the prepared revision with the signature value in its placeholder."""
    placeholder = PreparedByteRangeDigest(
        document_digest=prepared.document_digest,
        reserved_region_start=prepared.reserved_start,
        reserved_region_end=prepared.reserved_end,
    )
    try:
        stream.seek(prepared.base_size)
        stream.truncate()
        stream.write(prepared.revision)
        placeholder.fill_with_cms(stream, signature_cms)
        size = _finish(stream)
    except BaseException as exc:
        _roll_back(stream, prepared.base_size)
        if isinstance(exc, PdfError | SigningError):
            raise SigningFailed(str(exc)) from exc
        raise
    start, end = prepared.reserved_start, prepared.reserved_end
    return SignResult(
        field_name=prepared.field_name,
        file_size=size,
        byte_range=(0, start, end, size - end),
        digest=prepared.document_digest,
        digest_algorithm=DIGEST_ALGORITHM,
        signing_time=prepared.signing_time,
        timestamp_time=_signature_timestamp_time(signature_cms),
        revision_offset=prepared.base_size,
    )


def _incremental_writer(stream: BinaryIO) -> IncrementalPdfFileWriter:
    reader = _open_reader(stream)
    try:
        return IncrementalPdfFileWriter.from_reader(reader)
    except PdfError as exc:
        raise PdfRejected(f"the PDF cannot be updated: {exc}") from exc


def _box(stamp: Stamp | PageMark, writer: IncrementalPdfFileWriter) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = stamp.box
    if not (abs(x2 - x1) > 0 and abs(y2 - y1) > 0):
        raise StampError("the stamp box has no area")
    pages = int(writer.prev.root["/Pages"]["/Count"])
    if not 0 <= stamp.page < pages:
        raise StampError(f"page {stamp.page} does not exist (the document has {pages})")
    # pyHanko's annotation takes any numbers; its type says int.
    return cast(tuple[int, int, int, int], (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))


def add_document_timestamp(
    document: Path | BinaryIO,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    field_name: str | None = None,
) -> None:
    """Append a document time-stamp in place, with the TSA's chain and revocation data in
    the DSS of the same revision (B-LTA for the signatures before it)."""
    asyncio.run(
        async_add_document_timestamp(document, timestamper, revocation, trust_roots, field_name)
    )


async def async_add_document_timestamp(
    document: Path | BinaryIO,
    timestamper: TimeStamper,
    revocation: RevocationMaterial,
    trust_roots: Sequence[x509.Certificate],
    field_name: str | None = None,
) -> None:
    moment = _now_of(timestamper)()
    context = _signing_context(trust_roots, _tsa_chain(timestamper), revocation, moment)
    with _writing(document) as stream:
        writer = _incremental_writer(stream)
        original_size = stream.seek(0, os.SEEK_END)
        try:
            await PdfTimeStamper(timestamper, field_name=field_name).async_timestamp_pdf(
                writer,
                DIGEST_ALGORITHM,
                validation_context=context,
                in_place=True,
                chunk_size=CHUNK_SIZE,
                dss_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
            )
            _finish(stream)
        except BaseException as exc:
            _roll_back(stream, original_size)
            if isinstance(exc, SigningError | TimestampRequestError):
                raise SigningFailed(str(exc)) from exc
            raise


# --- validation ----------------------------------------------------------------------------

_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire revision",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "contiguous block from start",
    SignatureCoverageLevel.UNCLEAR: "unclear",
}


@dataclass
class _Material:
    """Certificates and revocation data, as asn1crypto objects."""

    certs: list[asn1_x509.Certificate]
    crls: list[asn1_crl.CertificateList]
    ocsps: list[asn1_ocsp.OCSPResponse]

    def context(
        self,
        trust_roots: list[asn1_x509.Certificate],
        moment: datetime | None,
        mode: str,
        extra: _Material | None = None,
        retroactive: bool = False,
    ) -> ValidationContext:
        extra = extra or _Material([], [], [])
        return ValidationContext(
            trust_roots=trust_roots,
            other_certs=self.certs + extra.certs,
            crls=self.crls + extra.crls,
            ocsps=self.ocsps + extra.ocsps,
            allow_fetching=False,
            revocation_mode=mode,
            moment=moment,
            retroactive_revinfo=retroactive,
        )


def _dss_material(reader: PdfFileReader) -> _Material:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _Material([], [], [])
    context = dss.as_validation_context({"trust_roots": []})
    return _Material(
        list(dss.load_certs()),
        list(context.revinfo_manager.crls),
        list(context.revinfo_manager.ocsps),
    )


async def _revocation_complete(
    certificate: asn1_x509.Certificate,
    intermediates: Iterable[asn1_x509.Certificate],
    context: ValidationContext,
) -> bool:
    """Whether revocation data in `context` (which must be in "require" mode) covers every
    certificate of the path up to the trust anchor."""
    validator = CertificateValidator(
        certificate, intermediate_certs=list(intermediates), validation_context=context
    )
    try:
        await validator.async_validate_usage(set())  # type: ignore[no-untyped-call]
    except Exception:  # path building, validation, revocation: all mean "not covered"
        return False
    return True


def _time_stamped_at(
    sig: EmbeddedPdfSignature, status: PdfSignatureStatus | DocumentTimestampStatus
) -> datetime | None:
    """The time a cryptographically sound time-stamp (the document time-stamp itself, or
    the signature's time-stamp token) puts on the signature, else None."""
    if isinstance(status, DocumentTimestampStatus):
        return status.timestamp if status.intact and status.valid else None
    tst = status.timestamp_validity
    if tst is None or not (tst.intact and tst.valid):
        return None
    return tst.timestamp


def _tst_signed_data(embedded: EmbeddedPdfSignature) -> cms.SignedData | None:
    for attribute in embedded.signer_info["unsigned_attrs"] or ():
        if attribute["type"].native == "signature_time_stamp_token":
            signed_data = attribute["values"][0]["content"]
            assert isinstance(signed_data, cms.SignedData)
            return signed_data
    return None


def _tsa_cert(signed_data: cms.SignedData) -> tuple[asn1_x509.Certificate | None, list[Any]]:
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen for c in signed_data["certificates"] or () if c.name == "certificate"]
    for cert in certs:
        if (
            isinstance(sid, cms.IssuerAndSerialNumber)
            and cert.issuer == sid["issuer"]
            and cert.serial_number == sid["serial_number"].native
        ):
            return cert, certs
    return None, certs


def validate(
    source: Path | str | BinaryIO,
    trust_roots: Sequence[x509.Certificate],
    revocation: RevocationMaterial | None = None,
    now: datetime | None = None,
    *,
    online: OnlineRevocation | None = None,
) -> ValidationReport:
    """Validate every signature and document time-stamp of a PDF.

    Trust comes only from `trust_roots`; revocation data from the document's DSS and
    `revocation`, in pyHanko's soft-fail mode (missing data does not by itself make a
    signature invalid, but `revocation_checked` says whether it was there). `now` is the
    validation time (default: the current time). PdfRejected for input that is not an
    unencrypted, well-formed PDF.

    Offline unless `online` says otherwise: then a certificate whose status that data
    leaves open, on a path to one of `online.roots`, has its OCSP/CRL fetched, and
    `online.policy` says whether a status nobody could tell keeps the verdict from
    "valid" (see `signing.online_revocation.RevocationPolicy`)."""
    return asyncio.run(async_validate(source, trust_roots, revocation, now, online=online))


async def async_validate(
    source: Path | str | BinaryIO,
    trust_roots: Sequence[x509.Certificate],
    revocation: RevocationMaterial | None = None,
    now: datetime | None = None,
    *,
    online: OnlineRevocation | None = None,
) -> ValidationReport:
    if isinstance(source, str | Path):
        with Path(source).open("rb") as stream:
            return await _validate_stream(stream, trust_roots, revocation, now, online)
    return await _validate_stream(source, trust_roots, revocation, now, online)


def approved_digests(stream: IO[bytes]) -> dict[str, bytes]:
    """Each signature field's SHA-256 of its CMS signed attributes (as a SET OF, the bytes
    its signature value covers): what a signer approved before the signature was made.
    Document time-stamps have no signer to approve them and are left out."""
    reader = _open_reader(stream)
    try:
        embedded = list(reader.embedded_signatures)
        found: dict[str, bytes] = {}
        for signature in embedded:
            attributes = signature.signer_info["signed_attrs"]
            if signature.sig_object.get("/Type") == "/DocTimeStamp" or not attributes:
                continue
            found[signature.field_name] = hashlib.sha256(attributes.untag().dump()).digest()
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise PdfRejected(f"the signatures cannot be read: {exc!r}") from exc
    return found


async def _validate_stream(
    stream: IO[bytes],
    trust_roots: Sequence[x509.Certificate],
    revocation: RevocationMaterial | None,
    now: datetime | None,
    online: OnlineRevocation | None = None,
) -> ValidationReport:
    _check_header(stream)
    _within_budget(stream)
    reader = _open_reader(stream)
    # A file no reader can show (its page tree broken) is refused as upload refuses it,
    # not reported as a document without signatures.
    with _structure_read():
        _page_sizes(reader)
        _fields_within_budget(reader)
    roots = [_asn1(c) for c in trust_roots]
    try:
        embedded = list(reader.embedded_signatures)
        dss = _dss_material(reader)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise PdfRejected(f"the signatures cannot be read: {exc!r}") from exc
    given = _Material(
        [],
        _load_crls(revocation.crls) if revocation else [],
        _load_ocsps(revocation.ocsps) if revocation else [],
    )
    signatures: list[SignatureReport] = []
    timestamps: list[SignatureReport] = []
    timestamp_revisions: list[int] = []
    for sig in embedded:
        is_timestamp = sig.sig_object_type == "/DocTimeStamp"
        try:
            report = await _check_one(sig, is_timestamp, roots, dss, given, now, online)
        except Exception as exc:
            log.info("signature %s could not be validated", sig.field_name, exc_info=True)
            report = _unreadable(sig, exc)
        if is_timestamp:
            timestamps.append(report)
            if report.ok:
                timestamp_revisions.append(sig.signed_revision)
        else:
            signatures.append(report)
    # B-LTA: a valid document time-stamp over a later revision than the signature.
    for sig, report in zip(
        [s for s in embedded if s.sig_object_type != "/DocTimeStamp"], signatures, strict=True
    ):
        if report.pades_level == "B-LT" and any(
            revision > sig.signed_revision for revision in timestamp_revisions
        ):
            report.pades_level = "B-LTA"
    required = online is None or online.policy is RevocationPolicy.REQUIRE
    verdict, summary = _verdict(signatures, timestamps, revocation_required=required)
    return ValidationReport(signatures, timestamps, verdict, summary)


def _unreadable(sig: EmbeddedPdfSignature, exc: Exception) -> SignatureReport:
    return SignatureReport(
        field_name=str(sig.field_name),
        signer_subject="",
        signer_serial="",
        signing_time=None,
        timestamp_time=None,
        intact=False,
        valid=False,
        trusted=False,
        revocation_checked=False,
        revoked=False,
        coverage="unclear",
        modification_level=None,
        docmdp_ok=None,
        pades_level="none",
        problems=[f"the signature cannot be validated: {exc}"],
        revocation_source="none",
    )


async def _check_one(
    sig: EmbeddedPdfSignature,
    is_timestamp: bool,
    roots: list[asn1_x509.Certificate],
    dss: _Material,
    given: _Material,
    now: datetime | None,
    online: OnlineRevocation | None = None,
) -> SignatureReport:
    async def check_at(
        moment: datetime | None, retroactive: bool = False, material: _Material | None = None
    ) -> PdfSignatureStatus | DocumentTimestampStatus:
        context = dss.context(roots, moment, "soft-fail", material or given, retroactive)
        if is_timestamp:
            return await async_validate_pdf_timestamp(sig, validation_context=context)
        return await async_validate_pdf_signature(sig, signer_validation_context=context)

    problems: list[str] = []
    moment = now
    status = await check_at(moment)
    proven = _time_stamped_at(sig, status)
    revoked_at = status.revocation_details.revocation_date if status.revocation_details else None
    revoked_later = False
    if (
        proven is not None
        and status.intact
        and status.valid
        and not status.trusted
        # A revocation before the time-stamp is not undone by it.
        and (revoked_at is None or revoked_at > proven)
    ):
        # The usual reason, long after signing: the embedded CRLs have passed nextUpdate.
        # The time-stamp proves the signature existed at its time, so check the chains
        # as they stood then, with the embedded data. (A full ETSI EN 319 102-1 long-term
        # validation would also walk the chain of document time-stamps.)
        earlier = await check_at(proven)
        if revoked_at is not None and not earlier.trusted and not is_timestamp:
            # Nothing embedded tells the status then, but the later revocation does: the
            # CRL or OCSP answer that dates it (verified just now) also says the
            # certificate was good before. pyHanko cannot read an OCSP "revoked since"
            # as "good until", so the answers handed in are left out of this check, and
            # the CRLs count for the earlier time (retroactive).
            without_ocsp = _Material(given.certs, given.crls, [])
            earlier = await check_at(proven, retroactive=True, material=without_ocsp)
        tst = getattr(earlier, "timestamp_validity", None)
        # A document time-stamp's own time is not proof of itself: as before, only the
        # data embedded then can carry it past a later revocation of its TSA.
        proof_ok = revoked_at is None or is_timestamp or (tst is not None and tst.trusted)
        if earlier.trusted and proof_ok:
            reason = _revocation_reason(status)
            status, moment = earlier, proven
            if revoked_at is not None and not is_timestamp:
                revoked_later = True
                problems.append(
                    f"the certificate was revoked on {revoked_at.isoformat()} "
                    f"({reason}), after its time-stamp "
                    f"({proven.isoformat()}), which proves the signature was made before: valid"
                )
            else:
                problems.append(
                    f"not verifiable with current revocation data; valid at its time-stamp "
                    f"({proven.isoformat()}) with the revocation data embedded then"
                )
    signer = status.signing_cert
    embedded_certs = list(sig.other_embedded_certs)
    checked = revoked_later  # the dated revocation is the status information
    if status.validation_path is not None and not checked:
        checked = await _revocation_complete(
            signer,
            embedded_certs,
            dss.context(roots, moment, "require", given),
        )
    if (
        online is not None
        and not checked
        and status.validation_path is not None
        and online.may_fetch_for(_crypto(status.validation_path.first))
    ):
        return await _check_online(sig, is_timestamp, roots, dss, given, now, online, status)
    modification = None
    if status.modification_level is not None:
        modification = status.modification_level.name
    coverage = _COVERAGE.get(status.coverage, "unclear") if status.coverage else "unclear"

    signing_time: datetime | None
    timestamp_time: datetime | None = None
    if isinstance(status, DocumentTimestampStatus):
        signing_time = timestamp_time = status.timestamp
        in_dss = await _revocation_complete(
            signer, embedded_certs, dss.context(roots, moment, "require")
        )
        level = "B-LTA" if status.trusted else "none"
        if status.trusted and not in_dss:
            problems.append("the DSS lacks revocation data for the time-stamping authority")
    else:
        signing_time = status.signer_reported_dt
        tst = status.timestamp_validity
        if tst is not None:
            timestamp_time = tst.timestamp
            if not (tst.intact and tst.valid):
                problems.append("the signature time-stamp is broken")
            elif not tst.trusted:
                problems.append("the signature time-stamp's TSA is not trusted")
        level = await _pades_level(sig, status, roots, dss, moment)
    if not status.intact:
        problems.append("the signed bytes were modified (digest mismatch)")
    if not status.valid:
        problems.append("the cryptographic signature does not verify")
    if status.revoked:
        details = status.revocation_details
        when = (
            f": revoked on {details.revocation_date.isoformat()} ({_revocation_reason(status)})"
            if details is not None
            else ""
        )
        problems.append(f"the signer's certificate (or its CA) is revoked{when}")
    elif status.intact and status.valid and not status.trusted:
        problems.append("no path to a trusted root (or the certificate is not valid now)")
    elif status.trusted and not checked:
        problems.append("revocation status could not be checked: no CRL or OCSP data")
    if status.docmdp_ok is False:
        problems.append("the document was changed after signing in a way not permitted")
    return SignatureReport(
        field_name=str(sig.field_name),
        signer_subject=dn(_crypto(signer).subject),
        signer_serial=format(signer.serial_number, "x"),
        signing_time=signing_time,
        timestamp_time=timestamp_time,
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        revocation_checked=checked,
        revoked=status.revoked,
        coverage=coverage,
        modification_level=modification,
        docmdp_ok=status.docmdp_ok,
        pades_level=level,
        problems=problems,
        revocation_source="document" if checked or status.revoked else "none",
    )


def _revocation_reason(status: PdfSignatureStatus | DocumentTimestampStatus) -> str:
    details = status.revocation_details
    reason = details.revocation_reason.native if details is not None else None
    who = "a CA of its chain" if details is not None and details.ca_revoked else "the signer"
    return f"{who}, reason {reason or 'unspecified'}"


async def _check_online(
    sig: EmbeddedPdfSignature,
    is_timestamp: bool,
    roots: list[asn1_x509.Certificate],
    dss: _Material,
    given: _Material,
    now: datetime | None,
    online: OnlineRevocation,
    status: PdfSignatureStatus | DocumentTimestampStatus,
) -> SignatureReport:
    """The same check again with the OCSP answers and CRLs fetched for the path's
    certificates; where nothing answered, the report says which source failed and why."""
    assert status.validation_path is not None and online.fetcher is not None
    paths = [status.validation_path]
    tst = getattr(status, "timestamp_validity", None)
    if tst is not None and tst.validation_path is not None:
        # The signature time-stamp's TSA too: its trust is what dates the signature.
        paths.append(tst.validation_path)
    pairs = []
    for path in paths:
        chain = [_crypto(c) for c in path.iter_certs(include_root=True)]
        if online.may_fetch_for(chain[0]):
            pairs += [p for p in pairs_of(chain) if p not in pairs]
    fetched = await asyncio.to_thread(online.fetcher.fetch_for_path, pairs)
    more = _Material(
        given.certs,
        given.crls + _load_crls(fetched.crls),
        given.ocsps + _load_ocsps(fetched.ocsps),
    )
    report = await _check_one(sig, is_timestamp, roots, dss, more, now)
    if report.revocation_checked or report.revoked:
        report.revocation_source = "online"
        return report
    report.problems = [
        p for p in report.problems if not p.startswith("revocation status could not be checked")
    ]
    report.problems.append(
        "revocation status unavailable (try again later): "
        + ("; ".join(fetched.failures) or "the answers fetched do not cover the chain")
    )
    return report


async def _pades_level(
    sig: EmbeddedPdfSignature,
    status: PdfSignatureStatus,
    roots: list[asn1_x509.Certificate],
    dss: _Material,
    now: datetime | None,
) -> str:
    """Best guess at the PAdES baseline level; B-LTA is decided by the caller."""
    subfilter = sig.sig_object.get("/SubFilter")
    attributes = {a["type"].native for a in sig.signer_info["signed_attrs"]}
    if subfilter != "/ETSI.CAdES.detached" or "signing_certificate_v2" not in attributes:
        return "none"
    tst = status.timestamp_validity
    if tst is None or not tst.trusted:
        return "B-B"
    # B-LT: the DSS alone (not the material handed to validate) has the revocation data
    # for the signer's chain and for the signature time-stamp's TSA.
    dss_only = dss.context(roots, now, "require")
    if not await _revocation_complete(status.signing_cert, sig.other_embedded_certs, dss_only):
        return "B-T"
    tst_data = _tst_signed_data(sig)
    if tst_data is not None:
        tsa, certs = _tsa_cert(tst_data)
        if tsa is None or not await _revocation_complete(tsa, certs, dss_only):
            return "B-T"
    return "B-LT"


def _verdict(
    signatures: list[SignatureReport],
    timestamps: list[SignatureReport],
    *,
    revocation_required: bool = True,
) -> tuple[str, str]:
    everything = signatures + timestamps
    if not signatures:
        return "indeterminate", "the document has no signatures"
    broken = [r for r in everything if not (r.intact and r.valid) or r.revoked]
    broken += [r for r in everything if r.docmdp_ok is False and r not in broken]
    if broken:
        names = ", ".join(r.field_name for r in broken)
        return "invalid", f"{len(broken)} of {len(everything)} invalid: {names}"
    doubtful = [
        r for r in everything if not r.trusted or (revocation_required and not r.revocation_checked)
    ]
    counts = f"{len(signatures)} signature(s), {len(timestamps)} document time-stamp(s)"
    if doubtful:
        names = ", ".join(r.field_name for r in doubtful)
        return "indeterminate", f"{counts}; cannot confirm: {names}"
    levels = ", ".join(f"{r.field_name} {r.pades_level}" for r in everything)
    unchecked = [r.field_name for r in everything if not r.revocation_checked]
    if unchecked:
        # soft-fail or off: valid, but nobody should read it as "checked".
        return "valid", (
            f"{counts}, all valid ({levels}); revocation not checked: {', '.join(unchecked)}"
        )
    return "valid", f"{counts}, all valid ({levels})"


# --- the stamp: a Type 3 font of cached CJK glyph outlines ---------------------------------


# pyHanko's PDF object constructors carry no annotations; these give them types.
def _int(value: int) -> generic.NumberObject:
    return generic.NumberObject(value)  # type: ignore[no-untyped-call]


def _float(value: float) -> generic.FloatObject:
    return generic.FloatObject(value)  # type: ignore[no-untyped-call]


def _dict(entries: dict[str, Any] | None = None) -> generic.DictionaryObject:
    return generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {pdf_name(key): value for key, value in (entries or {}).items()}
    )


class _PathPen:
    """A fontTools pen (hence the camelCase methods) that writes PDF path operators, in
    font units with y up."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._current: tuple[float, float] = (0.0, 0.0)

    def moveTo(self, point: tuple[float, float]) -> None:
        self.parts.append(f"{_n(point[0])} {_n(point[1])} m")
        self._current = point

    def lineTo(self, point: tuple[float, float]) -> None:
        self.parts.append(f"{_n(point[0])} {_n(point[1])} l")
        self._current = point

    def curveTo(self, *points: tuple[float, float]) -> None:
        # CFF outlines give exactly two control points; anything else is split by
        # fontTools' decomposition helpers before reaching a path.
        from fontTools.pens.basePen import decomposeSuperBezierSegment

        segments = [points] if len(points) == 3 else decomposeSuperBezierSegment(list(points))
        for c1, c2, end in segments:
            self.parts.append(
                f"{_n(c1[0])} {_n(c1[1])} {_n(c2[0])} {_n(c2[1])} {_n(end[0])} {_n(end[1])} c"
            )
            self._current = end

    def qCurveTo(self, *points: tuple[float, float] | None) -> None:
        # TrueType quadratics: raise each to a cubic (exact).
        from fontTools.pens.basePen import decomposeQuadraticSegment

        if points[-1] is None:  # a closed contour of off-curve points only
            raise StampError("TrueType contours without on-curve points are not supported")
        on_points = cast(list[tuple[float, float]], list(points))
        for control, end in decomposeQuadraticSegment(on_points):
            x0, y0 = self._current
            c1 = (x0 + 2 / 3 * (control[0] - x0), y0 + 2 / 3 * (control[1] - y0))
            c2 = (end[0] + 2 / 3 * (control[0] - end[0]), end[1] + 2 / 3 * (control[1] - end[1]))
            self.curveTo(c1, c2, end)

    def closePath(self) -> None:
        self.parts.append("h")

    def endPath(self) -> None:
        pass

    def addComponent(self, glyph_name: str, transformation: Any) -> None:
        raise StampError("composite glyphs reach the pen only through a decomposing pen")


def _n(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class _Glyph:
    advance: int
    path: bytes


class _OutlineFont:
    """A CJK font parsed once per process; glyph outlines are cached as PDF paths."""

    def __init__(self, path: str, index: int) -> None:
        from fontTools.ttLib import TTFont

        self.path, self.index = path, index
        self._font = TTFont(path, fontNumber=index, lazy=True)
        head = self._font["head"]
        self.units_per_em = int(head.unitsPerEm)
        self.bbox = (int(head.xMin), int(head.yMin), int(head.xMax), int(head.yMax))
        os2 = self._font.get("OS/2")
        ascender = os2.sTypoAscender if os2 is not None else self._font["hhea"].ascent
        self.ascender = int(ascender)
        self.name = str(self._font["name"].getDebugName(4) or Path(path).stem)
        self._cmap: dict[int, str] = self._font.getBestCmap()
        self._glyph_set = self._font.getGlyphSet()
        self._metrics = self._font["hmtx"]
        self._cache: dict[str, _Glyph] = {}
        # fontTools loads tables lazily and is not thread-safe; the service signs from
        # several threads.
        self._lock = threading.Lock()

    def missing(self, text: str) -> list[str]:
        return sorted({c for c in text if ord(c) not in self._cmap})

    def glyph(self, char: str) -> _Glyph:
        with self._lock:
            name = self._cmap[ord(char)]
            cached = self._cache.get(name)
            if cached is None:
                from fontTools.pens.recordingPen import DecomposingRecordingPen

                # Decompose composites (TrueType accents) into plain contours.
                recording = DecomposingRecordingPen(self._glyph_set)
                self._glyph_set[name].draw(recording)
                pen = _PathPen()
                recording.replay(pen)
                cached = _Glyph(int(self._metrics[name][0]), " ".join(pen.parts).encode())
                self._cache[name] = cached
            return cached


_FONTS: dict[tuple[str, int], _OutlineFont] = {}
_FONTS_LOCK = threading.Lock()


def _pick_face(path: str) -> int:
    """The Simplified Chinese face of a collection (its name says SC), else the first."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    from fontTools.ttLib import TTCollection

    collection = TTCollection(path, lazy=True)
    try:
        for index, font in enumerate(collection.fonts):
            family = str(font["name"].getDebugName(1) or "")
            if family.endswith((" SC", " CN")) or "GB" in family:
                return index
        return 0
    finally:
        collection.close()


def cjk_font_location() -> tuple[str, int]:
    """The CJK font to draw with: (path, face index). EVALSIGN_STAMP_FONT (and
    EVALSIGN_STAMP_FONT_INDEX) if set, else the first distribution font found; in a .ttc the
    Simplified Chinese face. StampError if there is none. Also used by the report renderer."""
    configured = os.environ.get(FONT_ENV)
    if configured:
        if not Path(configured).is_file():
            raise StampError(f"{FONT_ENV}={configured} is not a file")
        index = os.environ.get(FONT_INDEX_ENV)
        return configured, int(index) if index else _pick_face(configured)
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate, _pick_face(candidate)
    raise StampError(
        "no CJK font for the visible stamp: install fonts-noto-cjk (Debian) or set "
        f"{FONT_ENV} to a .ttc/.otf/.ttf file with Chinese glyphs; invisible signatures "
        "need no font"
    )


def stamp_font() -> _OutlineFont:
    """The stamp font, loaded on first use (about 0.3 s for Noto Sans CJK) and kept."""
    try:
        import fontTools  # noqa: F401
    except ImportError as exc:
        raise StampError("visible stamps need fontTools (pip install fonttools)") from exc
    location = cjk_font_location()
    with _FONTS_LOCK:
        font = _FONTS.get(location)
        if font is None:
            font = _FONTS[location] = _OutlineFont(*location)
        return font


def preload_stamp_font() -> str:
    """Load the stamp font now (at service start) rather than in the first signature;
    returns the font's name. StampError if there is none."""
    return stamp_font().name


def _to_unicode_cmap(codes: dict[str, int]) -> bytes:
    entries = []
    for char, code in codes.items():
        utf16 = char.encode("utf-16-be").hex().upper()
        entries.append(f"<{code:02X}> <{utf16}>")
    blocks = []
    for i in range(0, len(entries), 100):  # at most 100 entries per block (PDF spec)
        chunk = entries[i : i + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /EvalSign-Stamp-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _stream(writer: BasePdfFileWriter, data: bytes, entries: dict[str, Any] | None = None) -> Any:
    stream = generic.StreamObject(_dict(entries), stream_data=data)
    stream.compress()  # type: ignore[no-untyped-call]
    return writer.add_object(stream)


def _type3_font(writer: BasePdfFileWriter, font: _OutlineFont, codes: dict[str, int]) -> Any:
    """A Type 3 font whose glyph procedures are the outlines of the used characters, one
    byte per character code (a stamp uses far fewer than 255 distinct characters)."""
    x_min, y_min, x_max, y_max = font.bbox
    procs = _dict()
    differences: list[generic.PdfObject] = [_int(1)]
    widths: list[generic.PdfObject] = []
    for char, code in codes.items():
        glyph = font.glyph(char)
        name = pdf_name(f"/c{code:02x}")
        # d1: a shape glyph that takes the text colour; fill with the non-zero rule, as
        # font outlines are drawn.
        proc = b"%d 0 %d %d %d %d d1 %s f" % (glyph.advance, x_min, y_min, x_max, y_max, glyph.path)
        procs[name] = _stream(writer, proc)
        differences.append(name)
        widths.append(_int(glyph.advance))
    scale, zero = _float(1 / font.units_per_em), _int(0)
    encoding = _dict(
        {"/Type": pdf_name("/Encoding"), "/Differences": generic.ArrayObject(differences)}
    )
    return writer.add_object(
        _dict(
            {
                "/Type": pdf_name("/Font"),
                "/Subtype": pdf_name("/Type3"),
                "/Name": pdf_name("/EvalSignStamp"),
                "/FontBBox": generic.ArrayObject([_int(v) for v in font.bbox]),
                "/FontMatrix": generic.ArrayObject([scale, zero, zero, scale, zero, zero]),
                "/CharProcs": procs,
                "/Encoding": encoding,
                "/FirstChar": _int(1),
                "/LastChar": _int(len(codes)),
                "/Widths": generic.ArrayObject(widths),
                "/Resources": _dict(),
                "/ToUnicode": _stream(writer, _to_unicode_cmap(codes)),
            }
        )
    )


_SEALS: dict[bytes, tuple[int, int, bytes, bytes]] = {}
_SEALS_LOCK = threading.Lock()
SEAL_MAX_PIXELS = 400  # a seal is a few centimetres wide; more pixels only add bytes


def _seal_pixels(png: bytes) -> tuple[int, int, bytes, bytes]:
    """(width, height, Flate RGB, Flate alpha) of a seal image, cached by content."""
    key = hashlib.sha256(png).digest()
    with _SEALS_LOCK:
        cached = _SEALS.get(key)
    if cached is not None:
        return cached
    from PIL import Image, UnidentifiedImageError

    try:
        source = Image.open(io.BytesIO(png))
        source.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise StampError("the seal is not a readable image") from exc
    image = source.convert("RGBA")
    image.thumbnail((SEAL_MAX_PIXELS, SEAL_MAX_PIXELS))
    rgb = zlib.compress(image.convert("RGB").tobytes(), 6)
    alpha = zlib.compress(image.getchannel("A").tobytes(), 6)
    result = (image.width, image.height, rgb, alpha)
    with _SEALS_LOCK:
        if len(_SEALS) > 32:
            _SEALS.clear()
        _SEALS[key] = result
    return result


def _seal_image(writer: BasePdfFileWriter, png: bytes) -> tuple[Any, float]:
    width, height, rgb, alpha = _seal_pixels(png)

    def image(data: bytes, colour_space: str, extra: dict[str, Any]) -> Any:
        entries = _dict(
            {
                "/Type": pdf_name("/XObject"),
                "/Subtype": pdf_name("/Image"),
                "/Width": _int(width),
                "/Height": _int(height),
                "/ColorSpace": pdf_name(colour_space),
                "/BitsPerComponent": _int(8),
                "/Filter": pdf_name("/FlateDecode"),
                **extra,
            }
        )
        return writer.add_object(generic.StreamObject(entries, encoded_data=data))

    mask = image(alpha, "/DeviceGray", {})
    return image(rgb, "/DeviceRGB", {"/SMask": mask}), width / height


LINE_SPACING = 1.3  # baseline to baseline, in ems
MAX_FONT_SIZE = 12.0
MIN_FONT_SIZE = 4.0
READABLE_FONT_SIZE = 7.0
TEXT_COLOUR = b"0.1 0.1 0.12 rg"
BORDER_COLOUR = (0.72, 0.11, 0.11)  # seal red


@dataclass(frozen=True)
class _CjkStampStyle(BaseStampStyle):
    stamp: Stamp | None = None
    font: _OutlineFont | None = None
    border_width: int = 1
    border_color: tuple[float, float, float] | None = BORDER_COLOUR

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, Any]
    ) -> _CjkStamp:
        return _CjkStamp(writer, self, box)


class _CjkStamp(BaseStamp):
    def __init__(
        self, writer: BasePdfFileWriter, style: _CjkStampStyle, box: layout.BoxConstraints
    ) -> None:
        super().__init__(writer=writer, style=style, box=box)
        assert style.stamp is not None and style.font is not None
        self.stamp, self.font = style.stamp, style.font

    def _render_inner_content(self) -> list[bytes]:
        font, lines = self.font, list(self.stamp.lines)
        width, height = float(self.box.width), float(self.box.height)
        text = "".join(lines)
        missing = font.missing(text)
        if missing:
            raise StampError(f"the stamp font {font.name} has no glyph for {''.join(missing)!r}")
        codes: dict[str, int] = {}
        for char in text:
            codes.setdefault(char, len(codes) + 1)
        if len(codes) > 255:
            raise StampError("the stamp text uses more than 255 distinct characters")

        commands: list[bytes] = []
        pad = max(2.0, min(width, height) * 0.06)
        usable_w, usable_h = width - 2 * pad, height - 2 * pad
        seal_w = 0.0
        if self.stamp.seal_png:
            image_ref, aspect = _seal_image(self._ensure_writer, self.stamp.seal_png)
            self.set_resource(ResourceType.XOBJECT, pdf_name("/Seal"), image_ref)
            seal_h = min(usable_h, (width * 0.5) / aspect)
            seal_w = seal_h * aspect
            x, y = width - pad - seal_w, (height - seal_h) / 2
            commands.append(b"q %s 0 0 %s %s %s cm /Seal Do Q" % _nums(seal_w, seal_h, x, y))
        if not lines:
            return commands

        em = font.units_per_em
        widest = max(sum(font.glyph(c).advance for c in line) for line in lines) or em
        by_height = min(MAX_FONT_SIZE, usable_h / (LINE_SPACING * (len(lines) - 1) + 1))
        size = min(by_height, usable_w * em / widest)
        if seal_w:
            # Beside the seal if the text stays readable there; otherwise over it, as a
            # seal stamped across the signature is the familiar look anyway.
            beside = min(by_height, (usable_w - seal_w - pad) * em / widest)
            if beside >= READABLE_FONT_SIZE:
                size = beside
        if size < MIN_FONT_SIZE:
            raise StampError(
                f"the stamp box ({width:.0f} x {height:.0f} pt) is too small for its text"
            )
        block = size * (LINE_SPACING * (len(lines) - 1) + 1)
        top = height - pad - (usable_h - block) / 2
        baseline = top - size * font.ascender / em
        font_ref = _type3_font(self._ensure_writer, font, codes)
        self.set_resource(ResourceType.FONT, pdf_name("/S1"), font_ref)
        commands.append(b"BT /S1 %s Tf %s" % (_nums(size)[0], TEXT_COLOUR))
        commands.append(b"%s %s Td" % _nums(pad, baseline))
        for index, line in enumerate(lines):
            if index:
                commands.append(b"0 %s Td" % _nums(-size * LINE_SPACING))
            commands.append(b"<%s> Tj" % "".join(f"{codes[c]:02X}" for c in line).encode())
        commands.append(b"ET")
        return commands


@dataclass(frozen=True)
class _MarkStampStyle(BaseStampStyle):
    mark: PageMark | None = None

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, Any]
    ) -> _MarkStamp:
        return _MarkStamp(writer=writer, style=self, box=box)


class _MarkStamp(BaseStamp):
    """A page mark's appearance: its image stretched over the whole box, nothing else (the
    strips of a seal meet the page edge and each other)."""

    def _render_inner_content(self) -> list[bytes]:
        assert isinstance(self.style, _MarkStampStyle) and self.style.mark is not None
        image_ref, _ = _seal_image(self._ensure_writer, self.style.mark.png)
        self.set_resource(ResourceType.XOBJECT, pdf_name("/Mark"), image_ref)
        width, height = float(self.box.width), float(self.box.height)
        return [b"q %s 0 0 %s 0 0 cm /Mark Do Q" % _nums(width, height)]


def _nums(*values: float) -> tuple[bytes, ...]:
    return tuple(_n(round(v, 3)).encode() for v in values)
