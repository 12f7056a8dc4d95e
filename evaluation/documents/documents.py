"""Documents to be signed: upload with signer slots, the status machine, and signing a slot
with the signer's cloud credential through the same signature activation (SAD) the CSC API
uses, so every PDF signature is a face-verified, audited, single-use authorization.

A document's signings are serialized: the document row is locked for the whole signing
(PostgreSQL row lock; SQLite's write lock), so two signers pressing "sign" together both
land, one incremental update after the other.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.documents import prepared as prepared_signatures
from evaluation.documents.store import (
    DocumentStore,
    Received,
    StoredObject,
    StoredRevision,
    revision_of_rows,
)
from evaluation.documents.store import sweep as store_sweep
from evaluation.identity import one_time_codes, passkeys
from evaluation.identity.one_time_codes import SmsPolicy
from evaluation.identity.passkeys import PasskeyPolicy
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound, SigningRefused
from evaluation.kernel.identifiers import Name, Text, Token
from evaluation.kernel.transitions import next_status
from evaluation.trust import activation, credentials, pki, providers
from evaluation.trust.activation import ActivationPolicy
from evaluation.trust.pki import PkiPolicy
from evaluation.trust.providers import ProviderPolicy
from models.base import new_id
from models.clock import Clock
from models.tables import (
    Authority,
    Document,
    DocumentRevision,
    Expert,
    IssuedCertificate,
    SignerSlot,
    VerifiedSession,
)
from signing import pades
from signing.algorithms import HASH_OID_BY_NAME
from signing.csc_client import CscError, Timeouts
from signing.field_cipher import FieldCipher
from signing.vault import Vault

SHA256_OID = HASH_OID_BY_NAME["sha256"]
# Stamps show the time where the signers are (China Standard Time, no DST).
TZ_CHINA = timezone(timedelta(hours=8), "CST")
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"


class Purpose(StrEnum):
    REPORT = "report"
    CONTRACT = "contract"
    OTHER = "other"


class PdfRejected(DomainError):
    status = 422
    code = "pdf-rejected"
    title = "The file is not a PDF this service can sign"


def budget_limit(exc: pades.PdfRejected) -> dict[str, str]:
    """The problem's `limit` member when a reading budget refused the file."""
    return {} if exc.limit is None else {"limit": exc.limit}


class SlotsInvalid(DomainError):
    status = 422
    code = "slots-invalid"
    title = "The signer slots do not fit the document or the center"


class StampUnavailable(DomainError):
    status = 503
    code = "stamp-unavailable"
    title = "The visible stamp cannot be drawn (no CJK font installed?)"


class SigningNotPossible(DomainError):
    status = 409
    code = "signing-not-possible"
    title = "The signature could not be made (certificate status, time-stamp); nothing changed"


class NotYourTurn(DomainError):
    status = 409
    code = "not-your-turn"
    title = "Signers of an earlier order group have not all signed yet"


class DocumentChanged(SigningRefused):
    status = 409
    code = "document-changed"
    title = "The stored document differs from its last recorded revision; nobody may sign it"


class NoSlotForSigner(DomainError):
    status = 403
    code = "no-slot-for-signer"
    title = "This document has no pending slot for you"


Box = Annotated[list[float], Field(min_length=4, max_length=4)]


class SlotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signer_kind: str = Field(default="expert", pattern="^(expert|party)$")
    expert_id: Token | None = Field(default=None, max_length=64)
    party_name: Name | None = Field(default=None, min_length=1, max_length=200)
    role: Text = Field(min_length=1, max_length=100)
    order_group: int = Field(default=1, ge=1, le=100)
    page: int = Field(default=0, ge=0, le=100_000, description="0-based page of the visible stamp")
    box: Box = Field(description="x1, y1, x2, y2 in PDF points")

    @model_validator(mode="after")
    def _signer(self) -> SlotIn:
        if self.signer_kind == "expert" and not self.expert_id:
            raise ValueError("an expert slot names expert_id")
        if self.signer_kind == "party" and not self.party_name:
            raise ValueError("a party slot names party_name")
        x1, y1, x2, y2 = self.box
        if x2 - x1 < 60 or y2 - y1 < 30:
            raise ValueError("the stamp box must be at least 60 x 30 points")
        return self


class NewDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(min_length=1, max_length=300)
    purpose: Purpose
    slots: list[SlotIn] = Field(min_length=1, max_length=50)


@dataclass(frozen=True)
class SigningContext:
    """What signing needs from the running service."""

    vault: Vault
    pki: PkiPolicy
    activation: ActivationPolicy
    store: DocumentStore
    passkeys: PasskeyPolicy
    # What a report signed by its whole committee does to its project: complete it. The
    # committee context sits above this one, so the service wires it in (api/services.py).
    report_signed: Callable[[Session, audit.Caller, Clock, Document, datetime], None]
    seal_png: bytes | None = None
    # Where the center lets an SMS code stand in for the passkey (one_time_codes.py).
    sms: SmsPolicy | None = None
    cipher: FieldCipher | None = None
    # Credentials whose key a licensed CA's remote signing service holds (providers.py).
    provider_policy: ProviderPolicy | None = None

    def provider_access(self) -> providers.ProviderAccess:
        assert self.cipher is not None, "remote signing providers need the field cipher"
        policy = self.provider_policy or ProviderPolicy(Timeouts())
        return providers.ProviderAccess(self.cipher, policy)


@dataclass(frozen=True)
class SlotSigning:
    """One signature on its way: the request's database session and clock, the service's
    signing context, the signer's face session, the document, the slot and the credential
    that signs it (the signer's own, or a unit's seal). `caller` is who asks, needed to
    finish (the SAD and the log name them), not to prepare."""

    db: Session
    caller: audit.Caller | None
    clock: Clock
    context: SigningContext
    session: VerifiedSession
    document: Document
    slot: SignerSlot
    credential: IssuedCertificate

    def acting(self) -> audit.Caller:
        assert self.caller is not None, "a signature is finished on someone's request"
        return self.caller


@dataclass(frozen=True)
class PasskeyApproval:
    """The signer's phone approving this signature: the nonce it was given and its
    assertion (AuthenticationResponseJSON)."""

    nonce: str
    assertion: dict[str, Any]


@dataclass(frozen=True)
class SmsApproval:
    """The SMS code that approves this signature where the center allows one: the nonce it
    was sent under and the code the person typed."""

    nonce: str
    code: str


def _load(db: Session, center_id: str, document_id: str, *, lock: bool = False) -> Document:
    query = select(Document).where(Document.id == document_id, Document.center_id == center_id)
    if lock:
        query = query.with_for_update()
    document = db.execute(query).scalar_one_or_none()
    if document is None:
        raise NotFound(f"no document {document_id} in this center")
    return document


def get_document(db: Session, center_id: str, document_id: str) -> Document:
    return _load(db, center_id, document_id)


def slots_of(db: Session, document_id: str) -> list[SignerSlot]:
    return list(
        db.execute(
            select(SignerSlot)
            .where(SignerSlot.document_id == document_id)
            .order_by(SignerSlot.order_group, SignerSlot.field_name)
        ).scalars()
    )


def revisions_of(db: Session, document_id: str) -> list[DocumentRevision]:
    return list(
        db.execute(
            select(DocumentRevision)
            .where(DocumentRevision.document_id == document_id)
            .order_by(DocumentRevision.number)
        ).scalars()
    )


def list_documents(db: Session, center_id: str, limit: int = 100) -> list[Document]:
    return list(
        db.execute(
            select(Document)
            .where(Document.center_id == center_id)
            .order_by(Document.created_at.desc(), Document.id)
            .limit(limit)
        ).scalars()
    )


def _check_slots(db: Session, center_id: str, fields: NewDocument, info: pades.PdfInfo) -> None:
    expert_ids = {s.expert_id for s in fields.slots if s.expert_id}
    found = set(
        db.execute(
            select(Expert.id).where(Expert.center_id == center_id, Expert.id.in_(expert_ids))
        ).scalars()
    )
    problems = []
    for index, slot in enumerate(fields.slots):
        if slot.expert_id and slot.expert_id not in found:
            problems.append(f"slots[{index}]: no expert {slot.expert_id} in this center")
        if slot.page >= info.page_count:
            problems.append(f"slots[{index}]: page {slot.page} (the PDF has {info.page_count})")
            continue
        width, height = info.page_sizes[slot.page]
        x1, y1, x2, y2 = slot.box
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            problems.append(
                f"slots[{index}]: box {slot.box} is outside page {slot.page} "
                f"({width:.0f} x {height:.0f} pt)"
            )
    pairs = [(s.signer_kind, s.expert_id or s.party_name) for s in fields.slots]
    if len(set(pairs)) != len(pairs):
        problems.append("a signer has two slots on one document")
    if problems:
        raise SlotsInvalid("; ".join(problems), problems=problems)


def create_document(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    store: DocumentStore,
    received: Received,
    file_name: str,
    fields: NewDocument,
) -> Document:
    """Check the PDF and the slots, then keep the upload as revision 0 (a draft)."""
    try:
        info = pades.check_pdf(received.path)
    except pades.PdfRejected as exc:
        store.discard(received)
        raise PdfRejected(str(exc), **budget_limit(exc)) from exc
    if info.signature_fields:
        store.discard(received)
        raise PdfRejected("the PDF already carries signature fields; upload the unsigned file")
    try:
        _check_slots(db, caller.center_id, fields, info)
    except DomainError:
        store.discard(received)
        raise
    document = _first_revision(
        db, caller, clock, received, file_name, fields.title, fields.purpose, info
    )
    for index, slot in enumerate(fields.slots):
        db.add(
            SignerSlot(
                document_id=document.id,
                field_name=f"Signature{index + 1}",
                signer_kind=slot.signer_kind,
                expert_id=slot.expert_id,
                party_name=slot.party_name,
                role=slot.role,
                order_group=slot.order_group,
                page=slot.page,
                box=slot.box,
                status="pending",
            )
        )
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.DOCUMENT_UPLOADED,
        "document",
        document.id,
        {
            "title": document.title,
            "purpose": document.purpose,
            "sha256": received.sha256,
            "size": received.size,
            "slots": len(fields.slots),
        },
    )
    # The file moves into place last: a failure above leaves no orphan under documents/.
    store.adopt(received, document.id)
    return document


def _first_revision(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    received: Received,
    file_name: str,
    title: str,
    purpose: Purpose,
    info: pades.PdfInfo,
) -> Document:
    """The document row of a checked upload, a draft, with the upload as revision 0."""
    now = clock.now()
    document = Document(
        id=new_id(),
        center_id=caller.center_id,
        title=title,
        purpose=purpose.value,
        status=DocumentStatus.DRAFT.value,
        file_name=file_name[:300],
        page_count=info.page_count,
        revision=0,
        size=received.size,
        sha256=received.sha256,
        created_by=caller.actor,
        created_at=now,
        updated_at=now,
    )
    db.add(document)
    db.flush()
    db.add(
        DocumentRevision(
            document_id=document.id,
            number=0,
            kind="upload",
            size=received.size,
            sha256=received.sha256,
            created_at=now,
        )
    )
    return document


def archive_document(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    store: DocumentStore,
    received: Received,
    file_name: str,
    title: str,
) -> Document:
    """Keep a PDF that takes no signatures (an authorization letter, an exhibit): checked
    like any upload, stored as revision 0, and complete from the start."""
    try:
        info = pades.check_pdf(received.path)
    except pades.PdfRejected as exc:
        store.discard(received)
        raise PdfRejected(str(exc), **budget_limit(exc)) from exc
    document = _first_revision(
        db, caller, clock, received, file_name, title[:300], Purpose.OTHER, info
    )
    document.completed_at = document.created_at
    transition(
        db,
        caller,
        clock,
        document,
        DocumentAction.ARCHIVE,
        {"title": document.title, "sha256": received.sha256, "size": received.size},
    )
    store.adopt(received, document.id)
    return document


class DocumentStatus(StrEnum):
    DRAFT = "draft"
    SIGNING = "signing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DocumentAction(StrEnum):
    START = "start"  # the operator opens an upload for signing
    CANCEL = "cancel"
    ISSUE = "issue"  # a contract is created ready to sign; contract.created records it
    ARCHIVE = "archive"  # kept as it is, taking no signatures
    COMPLETE = "complete"  # every slot answered, the document time-stamped


# Every allowed status change, in one place: (from, action) -> to. A contract has no status
# of its own: it is its document's (issue, complete, cancel).
DOCUMENT_TRANSITIONS: dict[tuple[DocumentStatus, DocumentAction], DocumentStatus] = {
    (DocumentStatus.DRAFT, DocumentAction.START): DocumentStatus.SIGNING,
    (DocumentStatus.DRAFT, DocumentAction.CANCEL): DocumentStatus.CANCELLED,
    (DocumentStatus.SIGNING, DocumentAction.CANCEL): DocumentStatus.CANCELLED,
    (DocumentStatus.DRAFT, DocumentAction.ISSUE): DocumentStatus.SIGNING,
    (DocumentStatus.DRAFT, DocumentAction.ARCHIVE): DocumentStatus.COMPLETED,
    (DocumentStatus.SIGNING, DocumentAction.COMPLETE): DocumentStatus.COMPLETED,
}
_STATUS_ACTIONS = {
    DocumentAction.START: Action.DOCUMENT_START,
    DocumentAction.CANCEL: Action.DOCUMENT_CANCEL,
    DocumentAction.ARCHIVE: Action.DOCUMENT_ARCHIVED,
    DocumentAction.COMPLETE: Action.DOCUMENT_COMPLETED,
}
# What an operator may do to a document directly; the others happen in their flows.
_OPERATOR_ACTIONS = frozenset({DocumentAction.START, DocumentAction.CANCEL})


def transition(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    document: Document,
    action: DocumentAction,
    details: dict[str, Any] | None = None,
) -> DocumentStatus:
    """Move the document along DOCUMENT_TRANSITIONS (InvalidTransition otherwise, nothing
    written), with its audit entry where the change has one."""
    current = DocumentStatus(document.status)
    target = next_status(
        DOCUMENT_TRANSITIONS, current, action, f"cannot {action} a document that is {current}"
    )
    document.status = target.value
    db.flush()
    if action in _STATUS_ACTIONS:
        audit.record(db, caller, clock, _STATUS_ACTIONS[action], "document", document.id, details)
    return target


def change_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    document_id: str,
    action: str,
    reason: str | None,
) -> Document:
    """The operator starts or cancels a document."""
    document = _load(db, caller.center_id, document_id, lock=True)
    refusal = f"cannot {action} a document that is {document.status}"
    if action not in _OPERATOR_ACTIONS:
        raise InvalidTransition(refusal, current_status=document.status)
    previous = DocumentStatus(document.status)
    target = next_status(DOCUMENT_TRANSITIONS, previous, DocumentAction(action), refusal)
    document.updated_at = clock.now()
    if target is DocumentStatus.CANCELLED:
        document.cancelled_reason = reason
    transition(
        db,
        caller,
        clock,
        document,
        DocumentAction(action),
        {"from": previous.value, "to": target.value, "reason": reason},
    )
    return document


@dataclass(frozen=True)
class Signed:
    document: Document
    slot: SignerSlot
    revision: DocumentRevision


def _pending_slot(
    db: Session, document: Document, expert_id: str, slot_id: str | None
) -> SignerSlot:
    slots = slots_of(db, document.id)
    mine = [
        s
        for s in slots
        if s.expert_id == expert_id and s.status == "pending" and (slot_id in (None, s.id))
    ]
    if not mine:
        raise NoSlotForSigner(f"document {document.id} has no pending slot for you")
    slot = mine[0]
    waiting = [s for s in slots if s.order_group < slot.order_group and s.status == "pending"]
    if waiting:
        raise NotYourTurn(
            f"{len(waiting)} signer(s) of an earlier order group must sign first",
            waiting_for=[s.role for s in waiting],
        )
    return slot


def _authority_of(db: Session, credential: IssuedCertificate) -> Authority:
    authority = db.get(Authority, credential.authority_id)
    assert authority is not None
    return authority


def _chain_and_revocation(
    db: Session, clock: Clock, context: SigningContext, credential: IssuedCertificate
) -> tuple[list[x509.Certificate], pades.RevocationMaterial, list[x509.Certificate]]:
    if providers.is_remote(credential):
        return _remote_chain_and_revocation(db, clock, context, credential)
    authority = _authority_of(db, credential)
    chain = pki.chain_of(db, authority)
    crls = [pki.current_crl(db, clock, context.vault, context.pki, authority)]
    if not authority.external:
        root = pki.center_root(db, authority.center_id)
        crls.append(pki.current_crl(db, clock, context.vault, context.pki, root))
    roots = pki.trust_roots(db, credential.center_id)
    return chain, pades.RevocationMaterial(crls=crls), roots


def _remote_chain_and_revocation(
    db: Session, clock: Clock, context: SigningContext, credential: IssuedCertificate
) -> tuple[list[x509.Certificate], pades.RevocationMaterial, list[x509.Certificate]]:
    """A remote provider's chain and CRLs, checked now, plus the center's own CRLs (its
    time-stamp authority's chain); the provider's root is on the center's trust list."""
    chain, provider_crls = providers.signing_material(
        db, context.provider_access(), credential, clock.now()
    )
    own = _own_revocation(db, clock, context, credential.center_id)
    roots = pki.trust_roots(db, credential.center_id)
    return chain, pades.RevocationMaterial(crls=[*provider_crls, *own.crls]), roots


def _own_revocation(
    db: Session, clock: Clock, context: SigningContext, center_id: str
) -> pades.RevocationMaterial:
    """The CRLs of the center's own authorities: what its time-stamps' chains need."""
    own = db.execute(
        select(Authority).where(Authority.center_id == center_id, Authority.external.is_(False))
    ).scalars()
    return pades.RevocationMaterial(
        crls=[pki.current_crl(db, clock, context.vault, context.pki, a) for a in own]
    )


def _completion_material(
    db: Session, clock: Clock, context: SigningContext, credential: IssuedCertificate
) -> tuple[list[x509.Certificate], pades.RevocationMaterial, list[x509.Certificate]]:
    """What the document time-stamp needs. The signatures' own revisions already carry
    their chains' revocation data; for a remote signer, the provider is not asked again
    (a provider down after the last signature must not undo it)."""
    if providers.is_remote(credential):
        own = _own_revocation(db, clock, context, credential.center_id)
        return [], own, pki.trust_roots(db, credential.center_id)
    return _chain_and_revocation(db, clock, context, credential)


def _timestamper(
    db: Session, clock: Clock, context: SigningContext, center_id: str
) -> pades.InProcessTimeStamper:
    authority = pki.time_stamp_authority(db, context.vault, context.pki, center_id)
    return pades.InProcessTimeStamper(authority, clock.now)


def stamp_lines(name: str, role: str, credential: IssuedCertificate, now: datetime) -> list[str]:
    local = now.astimezone(TZ_CHINA)
    return [
        name,
        role,
        f"{local:%Y-%m-%d %H:%M:%S} (UTC+8)",
        f"证书 {credential.serial[:16].upper()}",
    ]


def sign_document(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    document_id: str,
    slot_id: str | None = None,
    *,
    approval: PasskeyApproval | SmsApproval | None,
) -> Signed:
    """Sign the session's expert's slot. With a passkey approval: finish the signature that
    `approval_options` prepared and the signer's phone approved (its signed attributes'
    digest), refused if another signature landed meanwhile. Without one (only the
    in-person path, whose PIN stands in): prepare and finish at once. Either way a
    single-use SAD for exactly that digest, the new revision recorded; the last slot
    completes the document with a document timestamp (B-LTA)."""
    signing = _own_slot(db, caller, clock, context, session, document_id, slot_id)
    document, credential = signing.document, signing.credential
    if approval is None:
        passkeys.signing_approval(
            db,
            clock,
            context.passkeys,
            session,
            nonce=None,
            assertion=None,
            credential_id=credential.id,
            hashes=[],
            kind=f"document:{document.id}",
            request_id=caller.request_id,
        )
        lines = _own_stamp(signing)
        signed = sign_slot(signing, lines, seal_png=context.seal_png, passkey_use_id=None)
    else:
        signed = finish_approved(signing, approval)
    finish_if_complete(db, caller, clock, context, document, credential)
    return signed


def _own_slot(
    db: Session,
    caller: audit.Caller | None,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    document_id: str,
    slot_id: str | None,
) -> SlotSigning:
    """The signer's own pending slot of the document, locked for signing, with their
    credential."""
    document = lock_for_signing(db, session.center_id, document_id)
    slot = _pending_slot(db, document, session.expert_id, slot_id)
    credential = _signing_credential(db, session)
    return SlotSigning(db, caller, clock, context, session, document, slot, credential)


def _own_stamp(signing: SlotSigning) -> list[str]:
    """The stamp of an expert's own signature: their name, role, the time, the certificate."""
    expert = signing.db.get(Expert, signing.session.expert_id)
    assert expert is not None
    now = signing.clock.now()
    return stamp_lines(expert.name, signing.slot.role, signing.credential, now)


def _signing_credential(db: Session, session: VerifiedSession) -> IssuedCertificate:
    credential = credentials.current_credential(db, session.expert_id)
    if credential is None:
        raise activation.CredentialUnusable(
            "you have no signing credential; ask the center", credential_status="missing"
        )
    return credential


def approval_options(
    db: Session,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    document_id: str,
    slot_id: str | None = None,
) -> passkeys.SigningApproval:
    """Prepare the signer's signature on the document as it stands (stamp, signing time,
    revocation data: all but the signature value) and the challenge their phone answers
    to approve exactly it: the SHA-256 of its CMS signed attributes, which name the
    document's digest and the signer's certificate."""
    signing = _own_slot(db, None, clock, context, session, document_id, slot_id)
    return prepare_for_approval(signing, _own_stamp(signing), seal_png=context.seal_png)


def prepare_for_approval(
    signing: SlotSigning,
    lines: list[str],
    *,
    seal_png: bytes | None = None,
) -> passkeys.SigningApproval:
    """The slot's signature prepared and kept, and the passkey challenge over the SHA-256
    of its signed attributes, its nonce naming this prepared signature only."""
    db, clock, context, session = signing.db, signing.clock, signing.context, signing.session
    credential = signing.credential

    def challenge(kind: str, hashes: list[str]) -> tuple[str, passkeys.SigningApproval]:
        approval = passkeys.signing_options(
            db,
            clock,
            context.passkeys,
            session,
            credential_id=credential.id,
            hashes=hashes,
            kind=kind,
        )
        return approval.nonce, approval

    return _prepare_and_keep(
        signing,
        lines,
        challenge,
        ttl=context.passkeys.challenge_ttl,
        seal_png=seal_png,
    )


_Approval = TypeVar("_Approval")


def _prepare_and_keep(
    signing: SlotSigning,
    lines: list[str],
    ask: Callable[[str, list[str]], tuple[str, _Approval]],
    *,
    ttl: timedelta,
    seal_png: bytes | None,
) -> _Approval:
    """Prepare the slot's signature, `ask` the signer to approve it (a passkey challenge
    or an SMS code over its hashes, for the kind naming it; returning the nonce that
    will name it in the answer) and keep it under that nonce."""
    db, clock, context, session = signing.db, signing.clock, signing.context, signing.session
    document, slot, credential = signing.document, signing.slot, signing.credential
    now = clock.now()
    activation.require_fresh(context.activation, session, now)
    prepared_signatures.drop_stale(db, document.id, now)
    prepared = prepare_slot(signing, lines, seal_png=seal_png)
    prepared_id = new_id()
    nonce, approval = ask(
        f"signature:{prepared_id}", [base64.b64encode(prepared.approval_digest).decode()]
    )
    prepared_signatures.keep(
        db,
        prepared,
        prepared_id=prepared_id,
        nonce=nonce,
        document=document,
        slot=slot,
        credential_id=credential.id,
        session=session,
        now=now,
        ttl=ttl,
    )
    return approval


def finish_approved(
    signing: SlotSigning,
    approval: PasskeyApproval | SmsApproval,
    *,
    marks: Sequence[pades.PageMark] = (),
) -> Signed:
    """The signature prepared under `approval`, finished once its passkey assertion (or,
    where allowed, its SMS code) verifies over exactly its digest; refused if the document
    moved on meanwhile. `marks` are signed right after it (see `finish_slot`)."""
    db, clock, context, session = signing.db, signing.clock, signing.context, signing.session
    document, slot, credential = signing.document, signing.slot, signing.credential
    caller = signing.acting()
    row = prepared_signatures.for_approval(db, document, slot, session, approval.nonce)
    hashes = prepared_signatures.approved_hashes(row)
    passkey_use_id = one_time_code_id = None
    if isinstance(approval, SmsApproval):
        one_time_code_id = one_time_codes.verify_signing_code(
            db,
            clock,
            session,
            approval.nonce,
            approval.code,
            credential_id=credential.id,
            hashes=hashes,
            kind=f"signature:{row.id}",
            request_id=caller.request_id,
        ).id
    else:
        passkey_use_id = passkeys.signing_approval(
            db,
            clock,
            context.passkeys,
            session,
            nonce=approval.nonce,
            assertion=approval.assertion,
            credential_id=credential.id,
            hashes=hashes,
            kind=f"signature:{row.id}",
            request_id=caller.request_id,
        )
    prepared_signatures.still_current(row, document)
    signed = finish_slot(
        signing,
        prepared_signatures.as_pades(row),
        passkey_use_id=passkey_use_id,
        one_time_code_id=one_time_code_id,
        marks=marks,
    )
    prepared_signatures.finished(row, clock.now())
    return signed


def sms_approval(
    db: Session,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    document_id: str,
    slot_id: str | None = None,
) -> one_time_codes.SentCode:
    """Where the center allows it: the signer's signature prepared as for a passkey, and an
    SMS code to their registered mobile that approves exactly it."""
    sms, cipher = context.sms, context.cipher
    if sms is None or cipher is None or not sms.allowed:
        raise one_time_codes.SmsCodeNotAllowed("approve with the passkey of your bound phone")
    signing = _own_slot(db, None, clock, context, session, document_id, slot_id)
    document, slot = signing.document, signing.slot

    def code(kind: str, hashes: list[str]) -> tuple[str, one_time_codes.SentCode]:
        sent = one_time_codes.send_signing_code(
            db,
            clock,
            sms,
            cipher,
            session,
            credential_id=signing.credential.id,
            hashes=hashes,
            kind=kind,
            what=f"《{document.title[:40]}》{slot.role}签名",
        )
        return sent.nonce, sent

    lines = _own_stamp(signing)
    return _prepare_and_keep(signing, lines, code, ttl=sms.ttl, seal_png=context.seal_png)


def lock_for_signing(db: Session, center_id: str, document_id: str) -> Document:
    """The document, locked for the whole signing, if it is being signed."""
    document = _load(db, center_id, document_id, lock=True)
    if document.status != DocumentStatus.SIGNING:
        raise InvalidTransition(
            f"document {document_id} is {document.status}; only documents being signed take "
            "signatures",
            current_status=document.status,
        )
    return document


def sign_slot(
    signing: SlotSigning,
    lines: list[str],
    *,
    seal_png: bytes | None = None,
    marks: Sequence[pades.PageMark] = (),
    passkey_use_id: str | None,
) -> Signed:
    """One signature in one slot with this credential (the signer's own, or a unit's seal
    their authorization lets them use), prepared and finished at once, with its `marks`."""
    prepared = prepare_slot(signing, lines, seal_png=seal_png)
    return finish_slot(signing, prepared, passkey_use_id=passkey_use_id, marks=marks)


def prepare_slot(
    signing: SlotSigning,
    lines: list[str],
    *,
    seal_png: bytes | None = None,
) -> pades.PreparedSignature:
    """The slot's signature on the document's current revision, up to its value."""
    db, clock, context, session = signing.db, signing.clock, signing.context, signing.session
    document, slot, credential = signing.document, signing.slot, signing.credential
    chain, revocation, roots = _chain_and_revocation(db, clock, context, credential)
    stamp = pades.Stamp(
        page=slot.page,
        box=(slot.box[0], slot.box[1], slot.box[2], slot.box[3]),
        lines=lines,
        seal_png=seal_png,
    )
    timestamper = _timestamper(db, clock, context, session.center_id)
    revision = stored_revision(db, document)
    try:
        with context.store.open(revision) as file:
            prepared = pades.prepare_signature(
                file.stream,
                slot.field_name,
                pki.load_certificate(credential.certificate_der),
                chain,
                timestamper,
                revocation,
                roots,
                stamp,
                reason=f"{slot.role} 签署",
                location=None,
                now=clock.now,
            )
    except (pades.PdfRejected, pades.StampError, pades.SigningFailed) as exc:
        # A document altered in the store may not even parse any more: say that first.
        if context.store.digest(revision) != document.sha256:
            raise _changed(document) from exc
        if isinstance(exc, pades.StampError):
            raise StampUnavailable(str(exc)) from exc
        if isinstance(exc, pades.SigningFailed):
            raise SigningNotPossible(str(exc)) from exc
        raise
    # The bytes were hashed while preparing anyway: a document altered in the store (or a
    # damaged copy) is never signed, and finishing checks the same digest again.
    if prepared.base_sha256.hex() != document.sha256:
        raise _changed(document)
    return prepared


def _changed(document: Document) -> DocumentChanged:
    return DocumentChanged(
        f"document {document.id} no longer matches revision {document.revision}",
        revision=document.revision,
    )


def finish_slot(
    signing: SlotSigning,
    prepared: pades.PreparedSignature,
    *,
    passkey_use_id: str | None,
    one_time_code_id: str | None = None,
    marks: Sequence[pades.PageMark] = (),
) -> Signed:
    """The prepared signature finished: a single-use SAD for exactly its approved digest,
    the signature appended in place, the new revision recorded and audited.

    `marks` (a seal's cross-page strips) are then signed with the same credential, one
    signature each, so a finished document has no empty field a reader offers for
    signing. No phone can approve a strip's digest beforehand: it covers the approved
    signature, so it exists only once that is in. The approval of the mark they belong to
    is what authorizes them: each gets its own single-use SAD naming that approval, they
    are made in the same act (request, revision and audit entry) or not at all, and the
    signer's next approved signature covers them."""
    db, clock, context, session = signing.db, signing.clock, signing.context, signing.session
    document, slot, credential = signing.document, signing.slot, signing.credential
    signing.acting()  # fails before any work when nobody asks
    # The revocation data went into the prepared revision; finishing needs only the chain.
    chain = pki.credential_chain(db, credential)
    spent: list[str] = []
    marked: list[str] = []  # the marks' SADs
    once = _SingleUse(signing, passkey_use_id, one_time_code_id)

    def sign_digest(digest: bytes, hash_name: str) -> bytes:
        if digest != prepared.approval_digest:
            raise pades.SigningFailed("asked to sign another digest than the one approved")
        return once.sign(digest, hash_name, spent)

    def sign_mark(digest: bytes, hash_name: str) -> bytes:
        if len(marked) >= len(marks):
            raise pades.SigningFailed("asked to sign more than the marks")
        return once.sign(digest, hash_name, marked)

    now = clock.now()
    identity = pades.SigningIdentity(
        certificate=pki.load_certificate(credential.certificate_der),
        chain=chain,
        sign_digest=sign_digest,
    )
    timestamper = _timestamper(db, clock, context, session.center_id)
    base = stored_revision(db, document)
    with context.store.open(base) as file:
        try:
            pades.finish_signature(file.stream, prepared, identity, timestamper)
        except pades.SignatureBaseChanged as exc:
            raise prepared_signatures.DocumentMovedOn(str(exc)) from exc
        except pades.SigningFailed as exc:
            raise SigningNotPossible(str(exc)) from exc
        if marks:
            _, revocation, roots = _chain_and_revocation(db, clock, context, credential)
            try:
                pades.sign_page_marks(
                    file.stream,
                    marks,
                    dataclasses.replace(identity, sign_digest=sign_mark),
                    timestamper,
                    revocation,
                    roots,
                    now=clock.now,
                )
            except pades.StampError as exc:
                raise StampUnavailable(str(exc)) from exc
            except pades.SigningFailed as exc:
                raise SigningNotPossible(str(exc)) from exc
        kept = context.store.keep(base, file)
    revision = _record_revision(db, document, kept, "signature", slot.id, now)
    _record_signed(
        signing,
        revision,
        sad_id=spent[-1] if spent else None,
        now=now,
        marks=[{"field": m.name, "sad_id": sad} for m, sad in zip(marks, marked, strict=True)],
    )
    return Signed(document, slot, revision)


class _SingleUse:
    """Signs one digest at a time for a finishing signature: a single-use SAD for exactly
    that digest (the approval already verified), then the credential's key signs it, here
    or at a remote provider. Each SAD's id goes to the list the caller keeps for it."""

    def __init__(
        self, signing: SlotSigning, passkey_use_id: str | None, one_time_code_id: str | None
    ) -> None:
        self.signing = signing
        self.passkey_use_id = passkey_use_id
        self.one_time_code_id = one_time_code_id
        key_algorithm = pki.key_of(signing.db, signing.credential.key_id).algorithm
        self.sign_algo = ECDSA_SHA256 if key_algorithm.value == "ec-p256" else RSA_SHA256

    def _remote(self, row: IssuedCertificate) -> Vault:
        # A key at a remote provider signs there, once EvalSign's own SAD allows it.
        return providers.vault_for(self.signing.db, self.signing.context.provider_access(), row)

    def sign(self, digest: bytes, hash_name: str, sads: list[str]) -> bytes:
        signing = self.signing
        db, clock, context, caller = signing.db, signing.clock, signing.context, signing.acting()
        credential, document = signing.credential, signing.document
        hash_oid = HASH_OID_BY_NAME[hash_name]
        encoded = base64.b64encode(digest).decode()
        granted = activation.authorize_signing(
            db,
            caller,
            clock,
            policy=context.activation,
            session=signing.session,
            credential_id=credential.id,
            hashes=[encoded],
            hash_oid=hash_oid,
            num_signatures=1,
            purpose=document.purpose,
            approve=lambda: self.passkey_use_id,  # verified before the SAD was asked for
            one_time_code_id=self.one_time_code_id,
        )
        sads.append(granted.activation.id)
        try:
            [signature] = activation.sign_hashes(
                db,
                caller,
                clock,
                vault=context.vault,
                policy=context.activation,
                session=signing.session,
                credential_id=credential.id,
                sad=granted.sad,
                hashes=[encoded],
                hash_oid=hash_oid,
                sign_algo=self.sign_algo,
                purpose=document.purpose,
                remote=self._remote,
            )
        except CscError as exc:
            raise providers.refusal(
                exc, credential_id=credential.id, document_id=document.id
            ) from exc
        return signature


def _record_signed(
    signing: SlotSigning,
    revision: DocumentRevision,
    *,
    sad_id: str | None,
    now: datetime,
    marks: list[dict[str, str]],
) -> None:
    """The slot signed by this revision, and its `document.signed` entry (with a seal's
    strips and the SAD of each, when it has them)."""
    slot, session, credential = signing.slot, signing.session, signing.credential
    slot.status = "signed"
    slot.signed_at = now
    slot.signed_by = session.expert_id
    slot.credential_id = credential.id
    slot.sad_id = sad_id
    slot.verification_id = session.verification_id
    slot.revision = revision.number
    signing.db.flush()
    audit.record(
        signing.db,
        signing.acting(),
        signing.clock,
        Action.DOCUMENT_SIGNED,
        "document",
        signing.document.id,
        {
            "slot_id": slot.id,
            "field": slot.field_name,
            "role": slot.role,
            "expert_id": session.expert_id,
            "credential_id": credential.id,
            "sad_id": slot.sad_id,
            "verification_id": session.verification_id,
            "revision": revision.number,
            "sha256": revision.sha256,
            # Each strip of a seal with the SAD that signed it, in the seal's entry.
            **({"marks": marks} if marks else {}),
        },
    )


def finish_if_complete(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: SigningContext,
    document: Document,
    credential: IssuedCertificate,
) -> bool:
    """Complete the document when no slot is pending: a document time-stamp (B-LTA) over
    the revocation data of the last signer's chain."""
    if not _all_answered(slots_of(db, document.id)):
        return False
    _, revocation, roots = _completion_material(db, clock, context, credential)
    timestamper = _timestamper(db, clock, context, document.center_id)
    _complete(db, caller, clock, context, document, timestamper, revocation, roots)
    return True


def _all_answered(slots: Sequence[SignerSlot]) -> bool:
    """Nothing pending: a refused slot (a member deemed to agree, see
    evaluation/committee/reports.py) does not hold the document open."""
    return all(s.status != "pending" for s in slots)


def complete_if_done(
    db: Session, caller: audit.Caller, clock: Clock, context: SigningContext, document_id: str
) -> bool:
    """Complete a document whose last pending slot was just refused rather than signed:
    the document time-stamp carries the revocation data of a signer's chain."""
    document = _load(db, caller.center_id, document_id, lock=True)
    slots = slots_of(db, document.id)
    if document.status != DocumentStatus.SIGNING or not _all_answered(slots):
        return False
    signed = next((s for s in slots if s.status == "signed" and s.credential_id), None)
    if signed is not None:
        credential = db.get(IssuedCertificate, signed.credential_id)
        assert credential is not None
        _, revocation, roots = _completion_material(db, clock, context, credential)
    else:  # every slot refused: the time-stamp alone seals the document
        own = db.execute(
            select(Authority).where(
                Authority.center_id == document.center_id, Authority.external.is_(False)
            )
        ).scalars()
        revocation = pades.RevocationMaterial(
            crls=[pki.current_crl(db, clock, context.vault, context.pki, a) for a in own]
        )
        roots = pki.trust_roots(db, document.center_id)
    timestamper = _timestamper(db, clock, context, document.center_id)
    _complete(db, caller, clock, context, document, timestamper, revocation, roots)
    return True


def _record_revision(
    db: Session,
    document: Document,
    kept: StoredRevision,
    kind: str,
    slot_id: str | None,
    now: datetime,
) -> DocumentRevision:
    """The stored piece `kept` becomes the document's next revision: until this row is
    committed it is an object nobody reads."""
    revision = DocumentRevision(
        document_id=document.id,
        number=document.revision + 1,
        kind=kind,
        size=kept.size,
        sha256=kept.sha256,
        slot_id=slot_id,
        created_at=now,
    )
    db.add(revision)
    document.revision = revision.number
    document.size = kept.size
    document.sha256 = revision.sha256
    document.updated_at = now
    db.flush()
    return revision


def _complete(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: SigningContext,
    document: Document,
    timestamper: pades.InProcessTimeStamper,
    revocation: pades.RevocationMaterial,
    roots: Sequence[x509.Certificate],
) -> None:
    base = stored_revision(db, document)
    with context.store.open(base) as file:
        pades.add_document_timestamp(file.stream, timestamper, revocation, roots)
        kept = context.store.keep(base, file)
    now = clock.now()
    revision = _record_revision(db, document, kept, "timestamp", None, now)
    document.completed_at = now
    transition(
        db,
        caller,
        clock,
        document,
        DocumentAction.COMPLETE,
        {"revision": revision.number, "sha256": revision.sha256},
    )
    if document.purpose == Purpose.REPORT:
        context.report_signed(db, caller, clock, document, now)


def revision_of(db: Session, document: Document, number: int | None) -> DocumentRevision:
    revisions = revisions_of(db, document.id)
    if number is None:
        return revisions[-1]
    for revision in revisions:
        if revision.number == number:
            return revision
    raise NotFound(f"document {document.id} has no revision {number}")


def sweep_unrecorded(db: Session, store: DocumentStore, older_than: datetime) -> list[StoredObject]:
    """Delete the stored objects no revision records (see store.sweep)."""

    def recorded(document_id: str) -> set[tuple[str, int]]:
        rows = db.execute(
            select(DocumentRevision.sha256, DocumentRevision.size).where(
                DocumentRevision.document_id == document_id
            )
        )
        return {(sha256, size) for sha256, size in rows}

    return store_sweep(store, recorded, older_than)


def stored_revision(db: Session, document: Document, number: int | None = None) -> StoredRevision:
    """Revision `number` (default: the latest) as the document store finds it: the pieces
    of every recorded revision up to it."""
    rows = [r for r in revisions_of(db, document.id) if number is None or r.number <= number]
    if not rows or (number is not None and rows[-1].number != number):
        raise NotFound(f"document {document.id} has no revision {number}")
    return revision_of_rows(document.id, [(r.size, r.sha256) for r in rows])
