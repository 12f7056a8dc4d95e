"""A party signs the contract: the unit's seal, then the representative's own signature.

Each mark is prepared, approved by the representative's bound phone (its passkey signs the
SHA-256 of that mark's signed attributes) and finished, one mark per approval: the second
mark's digest covers the first mark's signature, so it exists only once that signature is
in. The phone asks for the next approval until `remaining` is 0; the party's last mark
records the contract signed, and the contract's last completes it with a document
time-stamp (B-LTA). A representative binds their phone on the contract link itself, once
the center knows who they are (see link_binding.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from evaluation.contracts.contracts import (
    CROSS_SEAL_SIDE,
    TENDERER,
    WINNER,
    get_contract,
    require_seal,
)
from evaluation.documents import documents
from evaluation.documents.documents import PasskeyApproval, SigningContext
from evaluation.identity import passkeys, remote_review
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, SigningRefused
from evaluation.registry import unit_authority
from evaluation.trust import activation, credentials
from models.clock import Clock
from models.tables import (
    Contract,
    Document,
    DocumentRevision,
    Expert,
    IssuedCertificate,
    SignerSlot,
    Unit,
    UnitAuthorization,
    VerifiedSession,
)
from signing import pades, seal_image
from signing.pades import PageMark


class RepresentsBothParties(SigningRefused):
    status = 409
    code = "represents-both-parties"
    title = "One person may not sign a contract for both of its parties"


@dataclass(frozen=True)
class ContractSigned:
    contract: Contract
    document: Document
    party: str
    revisions: list[DocumentRevision]
    completed: bool
    remaining: int  # the party's marks still to sign, each with its own approval


@dataclass(frozen=True)
class ContractApproval:
    approval: passkeys.SigningApproval
    slot: SignerSlot
    remaining: int  # this mark included


@dataclass(frozen=True)
class _PartyTurn:
    """Who signs for which party now, and the party's next mark."""

    contract: Contract
    document: Document
    party: str
    unit: Unit
    authorization: UnitAuthorization
    person: Expert
    pending: list[SignerSlot]  # the party's marks not yet signed, next first
    seal: IssuedCertificate
    personal: IssuedCertificate


def _check_unchanged(db: Session, context: SigningContext, document: Document) -> None:
    """The stored file must be exactly its last recorded revision: a contract altered
    outside the service after the first signature is never signed again. Checked before
    the cross-page strips read its pages (preparing checks it again, as for any document)."""
    if context.store.digest(documents.stored_revision(db, document)) != document.sha256:
        raise documents.DocumentChanged(
            f"contract file {document.id} no longer matches revision {document.revision}",
            revision=document.revision,
        )


def _cross_page_marks(
    db: Session, context: SigningContext, document: Document, seal_png: bytes, party_index: int
) -> list[PageMark]:
    """The strips of a cross-page seal, one per page at its right edge; the second party's
    seal sits lower, so the two never overlap. Each strip is a signature of the unit's seal
    credential, made right after the seal's own (documents.finish_slot)."""
    with context.store.open(documents.stored_revision(db, document)) as file:
        sizes = pades.check_pdf(file.stream).page_sizes
    strips = seal_image.cross_page_strips(seal_png, len(sizes))
    strip_w = CROSS_SEAL_SIDE / len(sizes)
    marks = []
    for page, (strip, (width, height)) in enumerate(zip(strips, sizes, strict=True)):
        top = height * (0.62 if party_index == 0 else 0.36)
        marks.append(
            PageMark(
                page=page,
                box=(width - strip_w, top - CROSS_SEAL_SIDE, width, top),
                png=strip,
                name=f"CrossPageSeal{party_index + 1}-{page + 1}",
                label="骑缝章",
            )
        )
    return marks


def _representing(
    db: Session, contract: Contract, person_id: str, now: datetime
) -> tuple[str, Unit, UnitAuthorization]:
    """The party the person signs for now, by their authorization; the refusal of the
    party they are closest to representing otherwise (revoked, expired, out of scope)."""
    refusals: list[DomainError] = []
    valid: list[tuple[str, str, UnitAuthorization]] = []
    for role, unit_id in ((TENDERER, contract.tenderer_unit_id), (WINNER, contract.winner_unit_id)):
        try:
            authorization = unit_authority.valid_authorization(
                db, person_id, unit_id, documents.Purpose.CONTRACT.value, now
            )
        except DomainError as refused:
            refusals.append(refused)
            continue
        valid.append((role, unit_id, authorization))
    if len(valid) == 2:
        # One person on both sides of a contract (双方代理, Civil Code art. 168).
        raise RepresentsBothParties(
            "you are authorized by both parties; each party signs through its own person"
        )
    if valid:
        role, unit_id, authorization = valid[0]
        unit = db.get(Unit, unit_id)
        assert unit is not None
        return role, unit, authorization
    specific = [r for r in refusals if not isinstance(r, unit_authority.NotARepresentative)]
    raise (specific or refusals)[0]


def _turn(
    db: Session, context: SigningContext, session: VerifiedSession, contract_id: str, now: datetime
) -> _PartyTurn:
    """Everything a party's signing checks, the same whether preparing or finishing:
    the authorization valid now, the other party's turn over, the file unaltered, the
    person's identity confirmed, the seal usable and the person's own credential."""
    contract = get_contract(db, session.center_id, contract_id)
    document = documents.lock_for_signing(db, session.center_id, contract.document_id)
    party, unit, authorization = _representing(db, contract, session.expert_id, now)
    slots = documents.slots_of(db, document.id)
    mine = sorted(
        (s for s in slots if s.unit_id == unit.id and s.status == "pending"),
        key=lambda s: s.field_name,
    )
    if not mine:
        raise documents.NoSlotForSigner(f"{unit.name} has already signed this contract")
    waiting = [s for s in slots if s.order_group < mine[0].order_group and s.status == "pending"]
    if waiting:
        raise documents.NotYourTurn(
            "the other party signs first", waiting_for=sorted({s.role for s in waiting})
        )
    _check_unchanged(db, context, document)
    remote_review.require_confirmed(db, session.expert_id)
    seal = require_seal(db, unit, now)
    personal = credentials.current_credential(db, session.expert_id)
    if personal is None:
        raise activation.CredentialUnusable(
            "you have no personal signing credential; ask the center",
            credential_status="missing",
        )
    person = db.get(Expert, session.expert_id)
    assert person is not None and unit.seal_png is not None
    return _PartyTurn(contract, document, party, unit, authorization, person, mine, seal, personal)


@dataclass(frozen=True)
class _Mark:
    credential: IssuedCertificate
    lines: list[str]
    seal_png: bytes | None
    marks: list[PageMark]


def _mark_of(
    db: Session, context: SigningContext, turn: _PartyTurn, slot: SignerSlot, now: datetime
) -> _Mark:
    """The unit's seal (with its cross-page strips, if the contract has them) or the
    representative's own signature."""
    unit, person = turn.unit, turn.person
    if slot.mark == "seal":
        assert unit.seal_png is not None
        strips = (
            _cross_page_marks(
                db, context, turn.document, unit.seal_png, 0 if turn.party == TENDERER else 1
            )
            if turn.contract.cross_page_seal
            else []
        )
        lines = documents.stamp_lines(unit.name, unit.seal_purpose or "", turn.seal, now)
        return _Mark(turn.seal, lines, unit.seal_png, strips)
    lines = documents.stamp_lines(person.name, slot.role, turn.personal, now)
    return _Mark(turn.personal, lines, None, [])


def approval_options(
    db: Session,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    contract_id: str,
) -> ContractApproval:
    """The party's next mark prepared on the contract as it stands, and the challenge the
    representative's bound phone answers to approve exactly it."""
    now = clock.now()
    turn = _turn(db, context, session, contract_id, now)
    slot = turn.pending[0]
    mark = _mark_of(db, context, turn, slot, now)
    signing = documents.SlotSigning(
        db, None, clock, context, session, turn.document, slot, mark.credential
    )
    approval = documents.prepare_for_approval(signing, mark.lines, seal_png=mark.seal_png)
    return ContractApproval(approval, slot, len(turn.pending))


def sign_contract(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    contract_id: str,
    *,
    approval: PasskeyApproval | None,
) -> ContractSigned:
    """The representative's approved mark finished for their party. Refused, with nothing
    changed, when the authorization is not valid now or not for contracts, when the person
    represents neither party, when the seal is revoked, the face check stale, the file
    altered, the approval not of this mark or the contract moved on since it was
    prepared. Without an approval only the in-person path signs (all marks at once)."""
    now = clock.now()
    turn = _turn(db, context, session, contract_id, now)
    revisions: list[DocumentRevision] = []
    if approval is None:
        passkeys.signing_approval(
            db,
            clock,
            context.passkeys,
            session,
            nonce=None,
            assertion=None,
            credential_id=turn.personal.id,
            hashes=[],
            kind=f"contract:{turn.contract.id}",
            request_id=caller.request_id,
        )
        for slot in turn.pending:
            mark = _mark_of(db, context, turn, slot, now)
            signing = documents.SlotSigning(
                db, caller, clock, context, session, turn.document, slot, mark.credential
            )
            signed = documents.sign_slot(
                signing, mark.lines, seal_png=mark.seal_png, marks=mark.marks, passkey_use_id=None
            )
            revisions.append(signed.revision)
        remaining = 0
    else:
        slot = turn.pending[0]
        mark = _mark_of(db, context, turn, slot, now)
        signing = documents.SlotSigning(
            db, caller, clock, context, session, turn.document, slot, mark.credential
        )
        signed = documents.finish_approved(signing, approval, marks=mark.marks)
        revisions.append(signed.revision)
        remaining = len(turn.pending) - 1
    completed = False
    if remaining == 0:
        completed = _party_done(db, caller, clock, context, session, turn)
    return ContractSigned(turn.contract, turn.document, turn.party, revisions, completed, remaining)


def _party_done(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: SigningContext,
    session: VerifiedSession,
    turn: _PartyTurn,
) -> bool:
    """The party's marks are all in: record it, and complete the contract if it was the
    last party."""
    numbers = sorted(
        s.revision
        for s in documents.slots_of(db, turn.document.id)
        if s.unit_id == turn.unit.id and s.revision is not None
    )
    audit.record(
        db,
        caller,
        clock,
        Action.CONTRACT_SIGNED,
        "contract",
        turn.contract.id,
        {
            "party": turn.party,
            "unit_id": turn.unit.id,
            "person_id": session.expert_id,
            "authorization_id": turn.authorization.id,
            "verification_id": session.verification_id,
            "revisions": numbers,
        },
    )
    completed = documents.finish_if_complete(
        db, caller, clock, context, turn.document, turn.personal
    )
    if completed:
        audit.record(
            db,
            caller,
            clock,
            Action.CONTRACT_COMPLETED,
            "contract",
            turn.contract.id,
            {"document_id": turn.document.id, "sha256": turn.document.sha256},
        )
        outbox.contract_signed(db, clock.now(), turn.contract, turn.document)
    return completed
