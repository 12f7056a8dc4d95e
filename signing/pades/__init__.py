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

from signing.pades.files import PdfInfo, PdfRejected, check_pdf
from signing.pades.material import RevocationMaterial
from signing.pades.signatures import (
    IdentitySigner,
    InProcessTimeStamper,
    PreparedSignature,
    SignatureBaseChanged,
    SigningFailed,
    SigningIdentity,
    SignResult,
    add_document_timestamp,
    async_add_document_timestamp,
    async_sign_in_place,
    finish_signature,
    prepare_signature,
    sign_in_place,
    sign_page_marks,
)
from signing.pades.stamp import (
    FONT_ENV,
    FONT_INDEX_ENV,
    PageMark,
    Stamp,
    StampError,
    cjk_font_location,
    preload_stamp_font,
    stamp_font,
)
from signing.pades.validation import (
    SignatureReport,
    ValidationReport,
    approved_digests,
    async_validate,
    validate,
)

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
    "stamp_font",
    "validate",
]
