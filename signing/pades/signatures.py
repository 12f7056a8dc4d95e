"""Making PAdES signatures: in place or prepared then finished, the strips of a cross-page
seal, document time-stamps; and the in-process time-stamper and the signer that asks the
service's `sign_digest` callback for exactly one digest."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from asn1crypto import algos, cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
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
from pyhanko.stamp.base import BaseStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.pades.files import (
    CHUNK_SIZE,
    DIGEST_ALGORITHM,
    PdfRejected,
    finish_writing,
    open_reader,
    roll_back,
    writing,
)
from signing.pades.material import RevocationMaterial, load_crls, load_ocsps, to_asn1
from signing.pades.stamp import (
    CjkStampStyle,
    MarkStampStyle,
    PageMark,
    Stamp,
    StampError,
    stamp_font,
)
from signing.tsa import TimeStampAuthority, TimeStampRejected, token_of

log = logging.getLogger(__name__)


class _NoFetchingIsIntended(logging.Filter):
    """pyHanko warns on every signature that embeds validation data without fetching it;
    here that is the design (the service hands over its own CRLs), not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_NoFetchingIsIntended())


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
        certificate = to_asn1(identity.certificate)
        super().__init__(
            signing_cert=certificate,
            # The chain only: pyHanko adds the signing certificate itself, and a registry
            # holding it too put it in the CMS twice.
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [to_asn1(c) for c in identity.chain if c != identity.certificate]
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


def _signing_context(
    trust_roots: Sequence[x509.Certificate],
    other_certs: Iterable[x509.Certificate],
    revocation: RevocationMaterial,
    moment: datetime,
) -> ValidationContext:
    # hard-fail: a certificate whose CRL we were not given means the material is
    # incomplete, and the document would not be B-LT; better to refuse than to pretend.
    return ValidationContext(
        trust_roots=[to_asn1(c) for c in trust_roots],
        other_certs=[to_asn1(c) for c in other_certs],
        crls=load_crls(revocation.crls),
        ocsps=load_ocsps(revocation.ocsps),
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
    with writing(document) as stream:
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
    with writing(document) as stream:
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
    with writing(document) as stream:
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

    with writing(document) as stream:
        size = stream.seek(0, os.SEEK_END)
        try:
            return asyncio.run(sign_all(stream))
        except BaseException:
            roll_back(stream, size)
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
        style = MarkStampStyle(mark=mark, border_width=0)
    elif stamp is not None:
        style = CjkStampStyle(stamp=stamp, font=stamp_font())
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
        roll_back(stream, base_size)
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
        size = finish_writing(stream)
    except BaseException as exc:
        roll_back(stream, prepared.base_size)
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
    reader = open_reader(stream)
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
    with writing(document) as stream:
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
            finish_writing(stream)
        except BaseException as exc:
            roll_back(stream, original_size)
            if isinstance(exc, SigningError | TimestampRequestError):
                raise SigningFailed(str(exc)) from exc
            raise
