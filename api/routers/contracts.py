"""Transaction contracts: created from an awarded project (operator), personal signing links
for the parties' representatives, and signing from the representative's phone."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import AnyStaff, Db, Operator, ServicesDep
from api.logs import request_id_var
from api.rate_limits import phone_limits
from api.routers.csc import Phone, as_signer, signer_caller
from api.routers.documents import document_out
from api.schemas.contracts import (
    BindingCompleteIn,
    BindingOptionsOut,
    ContractApprovalOut,
    ContractOut,
    ContractSignedOut,
    ContractSignIn,
    LinkOut,
)
from api.schemas.documents import RevisionOut
from api.schemas.identity import PasskeyOut
from api.services import Services
from evaluation.committee import tasks
from evaluation.contracts import contracts, link_binding, sealing
from evaluation.contracts.contracts import NewContract, NewLink
from evaluation.documents import documents
from evaluation.documents.documents import PasskeyApproval
from evaluation.kernel.money import in_figures, in_words
from models.tables import Contract, VerifiedSession

router = APIRouter(tags=["contracts"])


def contract_out(db: Session, contract: Contract) -> ContractOut:
    document = documents.get_document(db, contract.center_id, contract.document_id)
    return ContractOut(
        id=contract.id,
        project_id=contract.project_id,
        tenderer_unit_id=contract.tenderer_unit_id,
        winner_unit_id=contract.winner_unit_id,
        amount_fen=contract.amount_fen,
        amount_figures=in_figures(contract.amount_fen),
        amount_words=in_words(contract.amount_fen),
        ordered=contract.ordered,
        cross_page_seal=contract.cross_page_seal,
        status=document.status,
        created_at=contract.created_at,
        document=document_out(db, document),
    )


@router.post(
    "/api/v1/projects/{project_id}/contracts",
    response_model=ContractOut,
    status_code=status.HTTP_201_CREATED,
)
def create_contract(
    project_id: str, body: NewContract, staff: Operator, db: Db, services: ServicesDep
) -> ContractOut:
    """The contract of an awarded project (its report signed): the template filled from the
    project, a PDF with each party's seal and representative's signature slot, open for
    signing. Both parties need a seal image and a seal credential first."""
    contract = contracts.create_contract(
        db,
        staff.caller,
        services.clock,
        services.documents.store,
        services.settings.document_max_bytes,
        project_id,
        body,
    )
    return contract_out(db, contract)


@router.get("/api/v1/projects/{project_id}/contracts", response_model=list[ContractOut])
def project_contracts(project_id: str, staff: AnyStaff, db: Db) -> list[ContractOut]:
    """The project's transaction contracts."""
    return [
        contract_out(db, c) for c in contracts.contracts_of_project(db, staff.center_id, project_id)
    ]


@router.get("/api/v1/contracts/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: str, staff: AnyStaff, db: Db) -> ContractOut:
    """One contract: its parties, marks still to make and the signed document."""
    return contract_out(db, contracts.get_contract(db, staff.center_id, contract_id))


@router.post(
    "/api/v1/contracts/{contract_id}/links",
    response_model=LinkOut,
    status_code=status.HTTP_201_CREATED,
)
def issue_link(
    contract_id: str, body: NewLink, staff: Operator, db: Db, services: ServicesDep
) -> LinkOut:
    """A representative's personal link: their phone opens it, passes the face check and
    signs for their unit. Only for an authorization of a party, valid now, for contracts."""
    issued = contracts.issue_link(db, staff.caller, services.clock, contract_id, body)
    return LinkOut(
        id=issued.link.id,
        contract_id=contract_id,
        authorization_id=issued.link.authorization_id,
        token=issued.token,
        url=tasks.task_url(services.settings.public_url, issued.token),
        expires_at=issued.link.expires_at,
    )


@router.post(
    "/api/v1/contracts/{contract_id}/approval",
    response_model=ContractApprovalOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
async def contract_approval(
    contract_id: str, phone: Phone, services: ServicesDep
) -> ContractApprovalOut:
    """Prepare your party's next mark (the unit's seal, then your own signature) on the
    contract as it stands, and get the challenge your bound phone's passkey answers to
    approve exactly it. 403 `passkey-not-bound`: bind this phone first (below)."""

    def challenge(db: Session, session: VerifiedSession) -> ContractApprovalOut:
        prepared = sealing.approval_options(
            db, services.clock, services.documents, session, contract_id
        )
        approval = prepared.approval
        return ContractApprovalOut(
            nonce=approval.nonce,
            challenge=approval.challenge,
            publicKey=approval.options,
            slot_id=prepared.slot.id,
            mark=prepared.slot.mark,
            remaining=prepared.remaining,
        )

    return await run_in_threadpool(
        as_signer, services, phone, "contract.approve", {"contract_id": contract_id}, challenge
    )


@router.post(
    "/api/v1/contracts/{contract_id}/signatures",
    response_model=ContractSignedOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
async def sign_contract(
    contract_id: str, phone: Phone, services: ServicesDep, body: ContractSignIn | None = None
) -> ContractSignedOut:
    """Sign the mark your phone approved, for your unit. Needs a face check at most
    EVALSIGN_SIGNING_FRESHNESS_S old and an authorization of a party valid now; 409
    `document-moved-on` means the other party's mark landed first: approve again."""
    approval = None if body is None or body.passkey is None else body.passkey.approval()
    return await run_in_threadpool(_sign, contract_id, approval, phone, services)


def _sign(
    contract_id: str, approval: PasskeyApproval | None, phone: Any, services: Services
) -> ContractSignedOut:
    def sign(db: Session, session: VerifiedSession) -> ContractSignedOut:
        signed = sealing.sign_contract(
            db,
            signer_caller(session),
            services.clock,
            services.documents,
            session,
            contract_id,
            approval=approval,
        )
        return ContractSignedOut(
            party=signed.party,
            completed=signed.completed,
            remaining=signed.remaining,
            revisions=[RevisionOut.model_validate(r) for r in signed.revisions],
            contract=contract_out(db, signed.contract),
        )

    return as_signer(services, phone, "contract.sign", {"contract_id": contract_id}, sign)


@router.post(
    "/api/v1/contracts/{contract_id}/passkey-binding",
    response_model=BindingOptionsOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def binding_options(contract_id: str, phone: Phone, services: ServicesDep) -> BindingOptionsOut:
    """Bind this phone to you from your contract link, after a face check on it, once the
    center has confirmed who you are: PublicKeyCredentialCreationOptions for
    navigator.credentials.create()."""

    def options(db: Session, session: VerifiedSession) -> BindingOptionsOut:
        enrollment, public_key = link_binding.binding_options(
            db, signer_caller(session), services.clock, services.passkeys, session, contract_id
        )
        return BindingOptionsOut(enrollment_id=enrollment.id, publicKey=public_key)

    return as_signer(services, phone, "contract.bind", {"contract_id": contract_id}, options)


@router.post(
    "/api/v1/contracts/{contract_id}/passkey-binding/complete",
    response_model=PasskeyOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def complete_binding(
    contract_id: str, body: BindingCompleteIn, phone: Phone, services: ServicesDep
) -> PasskeyOut:
    """Register the phone's new passkey as yours; from now on it approves your marks."""

    def complete(db: Session, session: VerifiedSession) -> PasskeyOut:
        passkey = link_binding.complete_binding(
            db,
            services.clock,
            services.passkeys,
            session,
            contract_id,
            body.enrollment_id,
            body.credential,
            label=body.label,
            request_id=request_id_var.get(),
        )
        return PasskeyOut.model_validate(passkey)

    return as_signer(services, phone, "contract.bind", {"contract_id": contract_id}, complete)
