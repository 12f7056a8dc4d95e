"""Validating every signature and document time-stamp of a PDF (pyHanko): trust only
from the roots given, revocation from the document's DSS and the material handed in, and
online only when the caller allows it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
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
from pyhanko_certvalidator import CertificateValidator, ValidationContext

from signing.certificates import dn
from signing.online_revocation import OnlineRevocation, RevocationPolicy, pairs_of
from signing.pades.files import (
    PdfRejected,
    check_header,
    fields_within_budget,
    open_reader,
    page_sizes,
    structure_read,
    within_budget,
)
from signing.pades.material import RevocationMaterial, load_crls, load_ocsps, to_asn1, to_crypto

log = logging.getLogger(__name__)


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
    reader = open_reader(stream)
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
    check_header(stream)
    within_budget(stream)
    reader = open_reader(stream)
    # A file no reader can show (its page tree broken) is refused as upload refuses it,
    # not reported as a document without signatures.
    with structure_read():
        page_sizes(reader)
        fields_within_budget(reader)
    roots = [to_asn1(c) for c in trust_roots]
    try:
        embedded = list(reader.embedded_signatures)
        dss = _dss_material(reader)
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise PdfRejected(f"the signatures cannot be read: {exc!r}") from exc
    given = _Material(
        [],
        load_crls(revocation.crls) if revocation else [],
        load_ocsps(revocation.ocsps) if revocation else [],
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
        and online.may_fetch_for(to_crypto(status.validation_path.first))
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
        signer_subject=dn(to_crypto(signer).subject),
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
        chain = [to_crypto(c) for c in path.iter_certs(include_root=True)]
        if online.may_fetch_for(chain[0]):
            pairs += [p for p in pairs_of(chain) if p not in pairs]
    fetched = await asyncio.to_thread(online.fetcher.fetch_for_path, pairs)
    more = _Material(
        given.certs,
        given.crls + load_crls(fetched.crls),
        given.ocsps + load_ocsps(fetched.ocsps),
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
