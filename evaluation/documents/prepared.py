"""Prepared signatures kept between prepare and finish.

A report or contract signature is made in two requests: the first prepares it on the
document as it stands and hands the signer's phone the SHA-256 of its signed attributes
to approve with their passkey; the second verifies that approval and finishes the very
signature that was prepared. What lies between the two is kept here, in the database, so
any replica can serve either request.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.kernel.errors import DomainError
from evaluation.kernel.tokens import hash_token
from models.tables import Document, PreparedSignature, SignerSlot, VerifiedSession
from signing import pades


class SignatureNotPrepared(DomainError):
    status = 409
    code = "signature-not-prepared"
    title = "No signature of yours was prepared under this approval; ask for a new approval"


class DocumentMovedOn(DomainError):
    status = 409
    code = "document-moved-on"
    title = (
        "Another signature was added after yours was prepared; approve the document again "
        "as it now stands"
    )


def keep(
    db: Session,
    prepared: pades.PreparedSignature,
    *,
    prepared_id: str,
    nonce: str,
    document: Document,
    slot: SignerSlot,
    credential_id: str,
    session: VerifiedSession,
    now: datetime,
    ttl: timedelta,
) -> PreparedSignature:
    row = PreparedSignature(
        id=prepared_id,
        center_id=document.center_id,
        document_id=document.id,
        slot_id=slot.id,
        signer_id=session.expert_id,
        credential_id=credential_id,
        verified_session_id=session.id,
        nonce_hash=hash_token(nonce),
        base_revision=document.revision,
        base_size=prepared.base_size,
        base_sha256=prepared.base_sha256.hex(),
        field_name=prepared.field_name,
        revision=prepared.revision,
        reserved_start=prepared.reserved_start,
        reserved_end=prepared.reserved_end,
        document_digest=prepared.document_digest.hex(),
        signed_attributes=prepared.signed_attributes,
        approval_digest=prepared.approval_digest.hex(),
        signing_time=prepared.signing_time,
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(row)
    db.flush()
    return row


def approved_hashes(row: PreparedSignature) -> list[str]:
    """What the passkey approves: the signed attributes' SHA-256, base64 as in CSC."""
    return [base64.b64encode(bytes.fromhex(row.approval_digest)).decode()]


def for_approval(
    db: Session, document: Document, slot: SignerSlot, session: VerifiedSession, nonce: str
) -> PreparedSignature:
    """The signature prepared for this signer's slot under the approval `nonce`."""
    row = db.execute(
        select(PreparedSignature).where(PreparedSignature.nonce_hash == hash_token(nonce))
    ).scalar_one_or_none()
    if (
        row is None
        or row.document_id != document.id
        or row.slot_id != slot.id
        or row.verified_session_id != session.id
        or row.revision is None
    ):
        raise SignatureNotPrepared("no signature of yours was prepared under this approval")
    return row


def still_current(row: PreparedSignature, document: Document) -> None:
    if row.base_revision != document.revision:
        raise DocumentMovedOn(
            f"the signature was prepared on revision {row.base_revision}; the document is at "
            f"revision {document.revision} now",
            prepared_on=row.base_revision,
            current_revision=document.revision,
        )


def as_pades(row: PreparedSignature) -> pades.PreparedSignature:
    assert row.revision is not None
    return pades.PreparedSignature(
        field_name=row.field_name,
        base_size=row.base_size,
        base_sha256=bytes.fromhex(row.base_sha256),
        revision=row.revision,
        reserved_start=row.reserved_start,
        reserved_end=row.reserved_end,
        document_digest=bytes.fromhex(row.document_digest),
        signed_attributes=row.signed_attributes,
        signing_time=row.signing_time,
    )


def finished(row: PreparedSignature, now: datetime) -> None:
    # The revision is in the document now; its copy here would only take space.
    row.finished_at = now
    row.revision = None


def drop_stale(db: Session, document_id: str, now: datetime) -> None:
    """Forget the revisions of this document's signatures that were never finished in
    time: their approvals have expired, so nothing can finish them."""
    db.execute(
        update(PreparedSignature)
        .where(
            PreparedSignature.document_id == document_id,
            PreparedSignature.finished_at.is_(None),
            PreparedSignature.expires_at < now,
            PreparedSignature.revision.is_not(None),
        )
        .values(revision=None)
    )
