"""Transaction contracts: after the award, the tenderer and the winning bidder sign the
contract, each as a unit (its organization seal) through an authorized representative
(their own signature), after a fresh face check, in order or in parallel.

The operator creates the contract from the awarded project and a template whose
placeholders the project fills (parties, credit codes, the amount in figures and in
capitals, dates); the PDF gets four signer slots. Each representative gets a personal link
(`evc_...`) that opens the phone pages; their face check unlocks both their marks, one
request, two single-use SADs. The last one completes the contract with a document
time-stamp (B-LTA).
"""

from __future__ import annotations

import io
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.committee import tasks
from evaluation.committee.projects import ProjectStatus, get_project
from evaluation.documents import documents
from evaluation.documents.documents import DocumentAction, DocumentStatus, Purpose
from evaluation.documents.store import DocumentStore
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, SigningRefused
from evaluation.kernel.identifiers import Prose, Text, Token
from evaluation.kernel.money import MAX_FEN, in_figures, in_words
from evaluation.kernel.tenancy import in_center
from evaluation.kernel.tokens import hash_token, new_secret
from evaluation.registry import unit_authority, units
from evaluation.trust import credentials, seals
from models.base import new_id
from models.clock import Clock
from models.tables import (
    Contract,
    ContractLink,
    Document,
    IssuedCertificate,
    Project,
    ScanSession,
    Unit,
    UnitAuthorization,
)
from signing import contract_pdf

LINK_PREFIX = "evc_"
TENDERER, WINNER = "tenderer", "winner"
LABELS = {TENDERER: "甲方（招标人）", WINNER: "乙方（中标人）"}
# The strip of a cross-page seal: this wide at the right edge, its seal this tall (points).
CROSS_SEAL_SIDE = 96.0

DEFAULT_TEMPLATE = (
    "根据《中华人民共和国民法典》《中华人民共和国招标投标法》及有关规定，遵循平等、自愿、"
    "公平和诚信的原则，甲方就{project_name}（项目编号：{project_code}）经公开招标确定乙方为"
    "中标人，双方协商一致，订立本合同。",
    "第一条 合同标的：乙方按招标文件、投标文件及本合同的约定完成{project_name}的全部内容。",
    "第二条 合同金额：人民币{amount_words}（{amount_figures}）。该金额为中标价，除本合同"
    "另有约定外不作调整。",
    "第三条 履行期限：自{start_date}起至{end_date}止。",
    "第四条 组成本合同的文件：中标通知书、投标文件、招标文件及其澄清和补充、本合同条款；"
    "上述文件互相解释，互为说明。",
    "第五条 双方的权利义务、验收、付款、违约责任及争议解决，按招标文件所附合同条款执行；"
    "争议协商不成的，提交{dispute_venue}。",
    "第六条 本合同经双方加盖单位电子印章并由授权代表电子签名后生效。电子签名与手写签名或者"
    "盖章具有同等的法律效力（《中华人民共和国电子签名法》第十四条）。",
    "甲方：{tenderer_name}（统一社会信用代码 {tenderer_credit_code}）\n"
    "乙方：{winner_name}（统一社会信用代码 {winner_credit_code}）",
)
PLACEHOLDERS = frozenset(
    {
        "project_name",
        "project_code",
        "tenderer_name",
        "tenderer_credit_code",
        "winner_name",
        "winner_credit_code",
        "amount_figures",
        "amount_words",
        "start_date",
        "end_date",
        "dispute_venue",
        "contract_number",
    }
)


class ProjectNotAwarded(DomainError):
    status = 409
    code = "project-not-awarded"
    title = "The project has no signed evaluation report yet; there is no award to contract"


class ContractExists(DomainError):
    status = 409
    code = "contract-exists"
    title = "The project already has a contract that is not cancelled"


class WinnerInvalid(DomainError):
    status = 422
    code = "winner-invalid"
    title = "The winner must be one of the project's bidders"


class TemplateInvalid(DomainError):
    status = 422
    code = "template-invalid"
    title = "The contract template uses a placeholder this service does not fill"


class SealNotReady(SigningRefused):
    status = 409
    code = "seal-not-ready"
    title = "A party has no usable organization seal (image and credential) yet"


class ContractLinkInvalid(DomainError):
    status = 401
    code = "contract-link-invalid"
    title = "The contract link is unknown, revoked or expired"


class ContractLinkOtherDevice(DomainError):
    status = 409
    code = "contract-link-other-device"
    title = "This contract link was opened on another phone; ask the center for a new link"


class NewContract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_yuan: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    winner_credit_code: Token | None = Field(
        default=None,
        min_length=18,
        max_length=18,
        description="Default: the first recommended candidate of the committee's ranking",
    )
    number: Text | None = Field(default=None, min_length=1, max_length=64)
    title: Text | None = Field(default=None, min_length=1, max_length=200)
    clauses: list[Annotated[Prose, Field(min_length=1, max_length=4000)]] | None = Field(
        default=None,
        min_length=1,
        max_length=60,
        description="Template paragraphs with {placeholders}; default: the built-in template",
    )
    start_date: Text = Field(default="合同生效之日", max_length=40)
    end_date: Text = Field(default="合同义务履行完毕之日", max_length=40)
    dispute_venue: Text = Field(default="甲方所在地人民法院诉讼解决", max_length=100)
    ordered: bool = Field(default=True, description="Tenderer first, then the winner")
    cross_page_seal: bool = False


class NewLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    authorization_id: Token = Field(min_length=1, max_length=64)
    valid_hours: int = Field(default=72, ge=1, le=720)


@dataclass(frozen=True)
class IssuedLink:
    link: ContractLink
    token: str


def _fill(clauses: list[str], values: dict[str, str]) -> list[str]:
    used: set[str] = set()
    problems = []
    for number, clause in enumerate(clauses):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(clause) if f is not None]
        except ValueError as exc:
            problems.append(f"clauses[{number}]: {exc}")
            continue
        for name in fields:
            if name not in PLACEHOLDERS:
                problems.append(f"clauses[{number}]: unknown placeholder {{{name}}}")
            used.add(name)
    if problems:
        raise TemplateInvalid("; ".join(problems), problems=problems, known=sorted(PLACEHOLDERS))
    return [clause.format_map(values) for clause in clauses]


def _winner(project: Project, wanted: str | None) -> dict[str, Any]:
    bidders = {b["credit_code"]: b for b in project.bidders}
    if wanted is None:
        recommended = (project.results or {}).get("recommended") or []
        if not recommended:
            raise WinnerInvalid("the project's results recommend no one; name winner_credit_code")
        wanted = recommended[0]
    if wanted not in bidders:
        raise WinnerInvalid(f"{wanted} is not a bidder of project {project.code}")
    return bidders[wanted]


def _party_unit(
    db: Session, caller: audit.Caller, clock: Clock, name: str, credit_code: str
) -> Unit:
    # Projects created before units existed name their parties by credit code only.
    return units.units_of_project(db, caller, clock, [units.Party(name, credit_code)])[credit_code]


def require_seal(db: Session, unit: Unit, now: datetime) -> IssuedCertificate:
    credential = seals.current_seal_credential(db, unit.id)
    if unit.seal_png is None or credential is None:
        raise SealNotReady(f"{unit.name} has no seal image and credential yet", unit_id=unit.id)
    state = credentials.state(credential, now)
    if not state.usable:
        raise SealNotReady(f"{unit.name}'s seal credential is {state.status}", unit_id=unit.id)
    return credential


def create_contract(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    store: DocumentStore,
    max_bytes: int,
    project_id: str,
    fields: NewContract,
) -> Contract:
    """The contract of an awarded project: rendered from the template, stored as a document
    being signed, with the seal and the signature slot of each party."""
    project = _awarded_project(db, caller, project_id)
    winner = _winner(project, fields.winner_credit_code)
    tenderer_unit = _party_unit(
        db, caller, clock, project.tenderer_name, project.tenderer_credit_code
    )
    winner_unit = _party_unit(db, caller, clock, winner["name"], winner["credit_code"])
    now = clock.now()
    for unit in (tenderer_unit, winner_unit):
        require_seal(db, unit, now)
    amount_fen = int(fields.amount_yuan * 100)
    if amount_fen > MAX_FEN:
        raise WinnerInvalid("the amount is out of range")  # unreachable with max_digits
    parties = [(TENDERER, tenderer_unit), (WINNER, winner_unit)]
    number = fields.number or f"{project.code}-HT"
    title = fields.title or f"{project.name} 合同书"
    rendered = _render(project, fields, parties, amount_fen, number, title, now)
    document = documents.create_document(
        db,
        caller,
        clock,
        store,
        store.receive(io.BytesIO(rendered.pdf), max_bytes),
        f"{number}.pdf",
        documents.NewDocument(
            title=title,
            purpose=Purpose.CONTRACT,
            slots=_party_slots(parties, rendered.boxes, ordered=fields.ordered),
        ),
    )
    # create_document names the slots Signature1.. in the order given: seal, then signature.
    for slot in documents.slots_of(db, document.id):
        index = int(slot.field_name.removeprefix("Signature")) - 1
        slot.unit_id = parties[index // 2][1].id
        slot.mark = "seal" if index % 2 == 0 else "signature"
    documents.transition(db, caller, clock, document, DocumentAction.ISSUE)
    contract = Contract(
        id=new_id(),
        center_id=caller.center_id,
        project_id=project.id,
        document_id=document.id,
        tenderer_unit_id=tenderer_unit.id,
        winner_unit_id=winner_unit.id,
        amount_fen=amount_fen,
        ordered=fields.ordered,
        cross_page_seal=fields.cross_page_seal,
        created_by=caller.actor,
        created_at=now,
    )
    db.add(contract)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.CONTRACT_CREATED,
        "contract",
        contract.id,
        {
            "project_id": project.id,
            "document_id": document.id,
            "sha256": document.sha256,
            "tenderer_unit_id": tenderer_unit.id,
            "winner_unit_id": winner_unit.id,
            "amount_fen": amount_fen,
            "ordered": fields.ordered,
            "cross_page_seal": fields.cross_page_seal,
        },
    )
    return contract


def _awarded_project(db: Session, caller: audit.Caller, project_id: str) -> Project:
    """The project, locked: completed (awarded) and without an open contract."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    if project.status != ProjectStatus.COMPLETED:
        raise ProjectNotAwarded(f"project {project.code} is {project.status}")
    existing = db.execute(
        select(Contract.id)
        .join(Document, Document.id == Contract.document_id)
        .where(Contract.project_id == project.id, Document.status != DocumentStatus.CANCELLED)
    ).first()
    if existing is not None:
        raise ContractExists(f"contract {existing[0]} is open", contract_id=existing[0])
    return project


def _render(
    project: Project,
    fields: NewContract,
    parties: list[tuple[str, Unit]],
    amount_fen: int,
    number: str,
    title: str,
    now: datetime,
) -> contract_pdf.RenderedContract:
    """The template's clauses filled in and typeset, with where each party seals and signs."""
    (_, tenderer), (_, winner) = parties
    values = {
        "project_name": project.name,
        "project_code": project.code,
        "tenderer_name": tenderer.name,
        "tenderer_credit_code": tenderer.credit_code,
        "winner_name": winner.name,
        "winner_credit_code": winner.credit_code,
        "amount_figures": in_figures(amount_fen),
        "amount_words": in_words(amount_fen),
        "start_date": fields.start_date,
        "end_date": fields.end_date,
        "dispute_venue": fields.dispute_venue,
        "contract_number": number,
    }
    try:
        return contract_pdf.render_contract(
            contract_pdf.ContractContent(
                title=title,
                number=number,
                parties=[
                    contract_pdf.ContractParty(
                        LABELS[role], unit.name, unit.credit_code, unit.legal_representative or "—"
                    )
                    for role, unit in parties
                ],
                clauses=_fill(list(fields.clauses or DEFAULT_TEMPLATE), values),
                generated_at=now.isoformat(),
            )
        )
    except contract_pdf.ContractRenderError as exc:
        raise TemplateInvalid(str(exc)) from exc


def _party_slots(
    parties: list[tuple[str, Unit]],
    boxes: Sequence[contract_pdf.PartyBoxes],
    *,
    ordered: bool,
) -> list[documents.SlotIn]:
    """Each party's seal, then its representative's signature; in order when `ordered`."""
    slots = []
    for order, ((role, unit), placed) in enumerate(zip(parties, boxes, strict=True)):
        group = order + 1 if ordered else 1
        label = LABELS[role]
        slots.append(
            documents.SlotIn(
                signer_kind="party",
                party_name=f"{unit.name}（盖章）",
                role=f"{label}（盖章）",
                order_group=group,
                page=placed.page,
                box=list(placed.seal),
            )
        )
        slots.append(
            documents.SlotIn(
                signer_kind="party",
                party_name=f"{unit.name}（授权代表）",
                role=f"{label}授权代表",
                order_group=group,
                page=placed.page,
                box=list(placed.signature),
            )
        )
    return slots


def get_contract(db: Session, center_id: str, contract_id: str) -> Contract:
    return in_center(db, Contract, contract_id, center_id, "contract")


def contracts_of_project(db: Session, center_id: str, project_id: str) -> list[Contract]:
    get_project(db, center_id, project_id)
    return list(
        db.execute(
            select(Contract)
            .where(Contract.project_id == project_id)
            .order_by(Contract.created_at, Contract.id)
        ).scalars()
    )


def _party_of(contract: Contract, unit_id: str) -> str | None:
    if unit_id == contract.tenderer_unit_id:
        return TENDERER
    if unit_id == contract.winner_unit_id:
        return WINNER
    return None


def issue_link(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    contract_id: str,
    fields: NewLink,
) -> IssuedLink:
    """A representative's personal link to the contract, for an authorization of one of its
    parties that is valid now and covers contracts."""
    contract = get_contract(db, caller.center_id, contract_id)
    authorization = in_center(
        db, UnitAuthorization, fields.authorization_id, caller.center_id, "authorization"
    )
    if _party_of(contract, authorization.unit_id) is None:
        raise unit_authority.NotARepresentative(
            "the authorization is of a unit that is not a party to this contract"
        )
    now = clock.now()
    unit_authority.valid_authorization(
        db, authorization.person_id, authorization.unit_id, Purpose.CONTRACT.value, now
    )
    token = new_secret(LINK_PREFIX)
    link = ContractLink(
        id=new_id(),
        center_id=caller.center_id,
        contract_id=contract.id,
        authorization_id=authorization.id,
        token_hash=hash_token(token),
        created_by=caller.actor,
        created_at=now,
        expires_at=now + timedelta(hours=fields.valid_hours),
    )
    db.add(link)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.CONTRACT_LINK_ISSUED,
        "contract",
        contract.id,
        {
            "link_id": link.id,
            "authorization_id": authorization.id,
            "person_id": authorization.person_id,
            "expires_at": link.expires_at.isoformat(),
        },
    )
    return IssuedLink(link, token)


def open_link(db: Session, token: str, now: datetime) -> tuple[ContractLink, Contract]:
    link = db.execute(
        select(ContractLink).where(ContractLink.token_hash == hash_token(token.strip()))
    ).scalar_one_or_none()
    if link is None or link.revoked_at is not None or now >= link.expires_at:
        raise ContractLinkInvalid("the contract link is unknown, revoked or expired")
    contract = db.get(Contract, link.contract_id)
    assert contract is not None
    return link, contract


def scan_link(
    db: Session,
    clock: Clock,
    token: str,
    device_id: str,
    client_ip: str | None,
    request_id: str | None,
    ttl: timedelta,
) -> tuple[ScanSession, str, Contract]:
    """A phone opened a contract link: a scan session whose face check is the link's
    representative's alone (1:1)."""
    now = clock.now()
    link, contract = open_link(db, token, now)
    _claim_for_device(db, link, contract, device_id, client_ip, request_id, now)
    document = db.get(Document, contract.document_id)
    assert document is not None
    if document.status != DocumentStatus.SIGNING:
        raise InvalidTransition(
            f"the contract is {document.status}; there is nothing to sign",
            current_status=document.status,
        )
    session, secret = tasks.open_scan_session(
        db,
        clock,
        ScanSession(
            center_id=contract.center_id,
            project_id=contract.project_id,
            kind="contract",
            contract_link_id=link.id,
        ),
        tasks.ScanContext(device_id, client_ip, request_id),
        ttl,
        {
            "kind": "contract",
            "contract_id": contract.id,
            "link_id": link.id,
            "project_id": contract.project_id,
        },
    )
    return session, secret, contract


def _claim_for_device(
    db: Session,
    link: ContractLink,
    contract: Contract,
    device_id: str,
    client_ip: str | None,
    request_id: str | None,
    now: datetime,
) -> None:
    """The first phone to open a link keeps it: a copy opened elsewhere is refused (and
    logged), so a forwarded or photographed link is worth nothing once used."""
    claimed = db.execute(
        update(ContractLink)
        .where(ContractLink.id == link.id, ContractLink.device_id.is_(None))
        .values(device_id=device_id, opened_at=now)
        .returning(ContractLink.device_id)
    ).first()
    db.refresh(link)
    if claimed is None and link.device_id != device_id:
        refused = ContractLinkOtherDevice("open the link on the phone you first opened it on")
        caller = audit.Caller(contract.center_id, f"device:{device_id}", None, request_id)
        event = audit.AuditEvent(
            Action.TASK_SCAN_REFUSED,
            "contract_link",
            link.id,
            {
                "reason": refused.code,
                "contract_id": contract.id,
                "device_id": device_id,
                "client_ip": client_ip,
                "first_device_id": link.device_id,
            },
        )
        # A second phone holding the link is nobody signed in: counted, not chained.
        raise audit.refused(refused, caller, event, anonymous_from=client_ip or caller.actor)
