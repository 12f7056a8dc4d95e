"""The contract as a representative's phone shows it, from the scan of their personal link:
the parties and who has signed, page images of the PDF, and the file to keep. Signing is
POST /api/v1/contracts/{id}/signatures with the fresh face session the scan's check gave."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.orm import Session

from api.deps import Db, ServicesDep
from api.rate_limits import phone_limits
from api.routers.documents import render_report, validation_out
from api.routers.report_pages import (
    DEFAULT_WIDTH,
    PDF,
    PNG,
    file_response,
    page_response,
)
from api.routers.tasks import ScanSessionDep
from api.schemas.contracts import ContractPagesOut, PartyOut
from api.schemas.documents import ValidationOut
from api.schemas.inputs import Count, Int32, Token
from evaluation.committee import projects
from evaluation.contracts import contracts
from evaluation.documents import documents
from evaluation.kernel.errors import NotFound
from evaluation.kernel.money import in_figures, in_words
from evaluation.trust import pki
from models.tables import (
    Contract,
    ContractLink,
    Document,
    Expert,
    ScanSession,
    Unit,
    UnitAuthorization,
)
from signing import pades, pdf_pages

# Every route here is a contract link's phone reading its contract.
router = APIRouter(tags=["contracts"], dependencies=[Depends(phone_limits)])

BASE = "/api/v1/contract"


class NotAContractScan(NotFound):
    code = "not-a-contract-scan"
    title = "This scan is not of a contract link"


def _mine(db: Session, scan: ScanSession) -> tuple[Contract, Document, UnitAuthorization]:
    if scan.kind != "contract" or scan.contract_link_id is None:
        raise NotAContractScan("scan a contract link first")
    link = db.get(ContractLink, scan.contract_link_id)
    assert link is not None
    contract = contracts.get_contract(db, scan.center_id, link.contract_id)
    document = documents.get_document(db, scan.center_id, contract.document_id)
    authorization = db.get(UnitAuthorization, link.authorization_id)
    assert authorization is not None
    return contract, document, authorization


@router.get(BASE, response_model=ContractPagesOut)
def contract_overview(scan: ScanSessionDep, db: Db, services: ServicesDep) -> ContractPagesOut:
    """The contract my link is for, and my party's part in it."""
    contract, document, authorization = _mine(db, scan)
    slots = documents.slots_of(db, document.id)
    parties = []
    for role, unit_id in (
        (contracts.TENDERER, contract.tenderer_unit_id),
        (contracts.WINNER, contract.winner_unit_id),
    ):
        unit = db.get(Unit, unit_id)
        assert unit is not None
        own = [s for s in slots if s.unit_id == unit_id]
        done = bool(own) and all(s.status == "signed" for s in own)
        parties.append(
            PartyOut(
                role=role,
                name=unit.name,
                credit_code=unit.credit_code,
                signed=done,
                signed_at=max((s.signed_at for s in own if s.signed_at), default=None),
                is_mine=unit_id == authorization.unit_id,
            )
        )
    mine = next(p for p in parties if p.is_mine)
    first_group = {s.unit_id: s.order_group for s in slots}
    my_group = first_group.get(authorization.unit_id, 1)
    waiting = any(s.status == "pending" and s.order_group < my_group for s in slots)
    person = db.get(Expert, authorization.person_id)
    pinned = f"?revision={document.revision}"
    return ContractPagesOut(
        contract_id=contract.id,
        document_id=document.id,
        title=document.title,
        status=document.status,
        project_code=projects.get_project(db, contract.center_id, contract.project_id).code,
        amount_figures=in_figures(contract.amount_fen),
        amount_words=in_words(contract.amount_fen),
        representative=person.name if person else "",
        parties=parties,
        can_sign=document.status == "signing" and not mine.signed and not waiting,
        signed_by_my_party=mine.signed,
        ordered=contract.ordered,
        waiting_for_other_party=waiting and not mine.signed,
        signing_freshness_s=services.settings.signing_freshness_s,
        page_count=document.page_count,
        revision=document.revision,
        page_urls=[f"{BASE}/pages/{n}.png{pinned}" for n in range(1, document.page_count + 1)],
        file_url=f"{BASE}/file{pinned}",
        validation_url=f"{BASE}/validation",
        sign_url=f"/api/v1/contracts/{contract.id}/signatures",
        face_check_url="/api/v1/scan/challenge",
    )


@router.get(
    BASE + "/pages/{page}.png",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, 304: {"description": "Not modified"}},
)
def contract_page(
    page: Int32,
    scan: ScanSessionDep,
    db: Db,
    services: ServicesDep,
    width: Annotated[int, Query(ge=pdf_pages.MIN_WIDTH, le=pdf_pages.MAX_WIDTH)] = DEFAULT_WIDTH,
    revision: Annotated[Count | None, Query(ge=0, description="Default: the latest")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Page `page` (from 1) of the contract as a PNG, seals and signatures included."""
    _, document, _ = _mine(db, scan)
    return page_response(services, db, document, page, width, revision, if_none_match)


@router.get(
    BASE + "/file",
    response_class=StreamingResponse,
    responses={200: {"content": {PDF: {}}}, 304: {"description": "Not modified"}},
)
def contract_file(
    scan: ScanSessionDep,
    db: Db,
    services: ServicesDep,
    revision: Annotated[Count | None, Query(ge=0, description="Default: the latest")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The contract's PDF with every seal and signature so far, to keep."""
    _, document, _ = _mine(db, scan)
    return file_response(services, db, document, revision, if_none_match)


@router.get(
    BASE + "/validation",
    response_model=ValidationOut,
    responses={200: {"content": {"text/html": {}}}},
)
def contract_validation(
    scan: ScanSessionDep,
    db: Db,
    services: ServicesDep,
    format: Annotated[Token, Query(pattern="^(json|html)$")] = "html",
) -> Any:
    """The validation report of the contract as it stands (every seal, signature and the
    time-stamp checked against the center's trust list), for the party to keep with it."""
    _, document, _ = _mine(db, scan)
    roots = pki.trust_roots(db, scan.center_id)
    with services.documents.store.open(documents.stored_revision(db, document)) as file:
        report = validation_out(pades.validate(file.stream, roots, now=services.clock.now()))
    if format == "html":
        return HTMLResponse(render_report(report, document.file_name))
    return report
