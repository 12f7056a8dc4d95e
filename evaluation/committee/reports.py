"""The evaluation report: generated from the frozen results as a PDF with one signature
slot per member, signed by every member through the documents flow; the last signature
(or a refusal that leaves nothing pending) completes the document, and the project.

Under the regulations a member who refuses to sign without a written dissent is deemed to
agree with the result; the refusal is recorded on the slot and in the audit log.
"""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.committee import deliberation
from evaluation.committee.projects import ProjectAction, change_status, get_project
from evaluation.documents import documents
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition
from models.clock import Clock
from models.tables import (
    Assignment,
    Center,
    Dissent,
    Document,
    EvaluationSession,
    Expert,
    Project,
    ScoreSheet,
    SignerSlot,
)
from signing import report_pdf

TZ_CHINA = ZoneInfo("Asia/Shanghai")
CHAIR = "评标委员会主任"
MEMBER = "评标委员会成员"
REGIMES = {
    "tendering": "依法必须招标项目（招标投标法）",
    "procurement": "政府采购项目（政府采购法）",
}
MODES = {"remote": "远程异地评标", "onsite": "现场评标"}
RULES = {
    "mean": "各评委评分的算术平均值",
    "trimmed_mean": "去掉一个最高分和一个最低分后的算术平均值",
}


class ReportExists(DomainError):
    status = 409
    code = "report-exists"
    title = "The evaluation report was already generated"


class ResultsUnderReview(DomainError):
    status = 409
    code = "results-under-review"
    title = "Not every member has agreed with the results or recorded a dissent yet"


class ReportUnavailable(DomainError):
    status = 503
    code = "report-unavailable"
    title = "The report cannot be rendered on this server (no CJK font)"


def _local(value: datetime) -> str:
    return f"{value.astimezone(TZ_CHINA):%Y年%m月%d日 %H:%M}"


def _names(db: Session, expert_ids: list[str]) -> dict[str, str]:
    rows = db.execute(select(Expert.id, Expert.name).where(Expert.id.in_(expert_ids))).all()
    return {expert_id: name for expert_id, name in rows}


def report_content(db: Session, project: Project, now: datetime) -> report_pdf.ReportContent:
    """What the report says, from the frozen results and the records behind them."""
    assert project.results is not None
    member_ids: list[str] = list(project.results["members"])
    seats = {
        a.id: a
        for a in db.execute(select(Assignment).where(Assignment.project_id == project.id)).scalars()
    }
    sheets = list(
        db.execute(
            select(ScoreSheet)
            .where(ScoreSheet.project_id == project.id, ScoreSheet.status != "draft")
            .order_by(ScoreSheet.voided_at.is_not(None), ScoreSheet.submitted_at)
        ).scalars()
    )
    dissents = list(
        db.execute(
            select(Dissent).where(Dissent.project_id == project.id).order_by(Dissent.created_at)
        ).scalars()
    )
    names = _names(db, [seats[m].expert_id for m in member_ids] + [s.expert_id for s in sheets])
    criteria = project.criteria
    bidders = project.bidders
    order = {m: i for i, m in enumerate(member_ids)}
    sheets.sort(key=lambda s: (s.status == "void", order.get(s.assignment_id, len(order))))
    center = db.get(Center, project.center_id)
    assert center is not None
    return report_pdf.ReportContent(
        center_name=center.name,
        project_code=project.code,
        project_name=project.name,
        tenderer_name=project.tenderer_name,
        regime=REGIMES.get(project.regime, project.regime),
        evaluation_window=f"{_local(project.evaluation_start)} 至 {_local(project.evaluation_end)}",
        mode=MODES.get(project.mode, project.mode),
        aggregation=RULES.get(project.aggregation, project.aggregation),
        criteria=[
            report_pdf.CriterionRow(str(c["name"]), float(c["max_points"]), str(c["group"]))
            for c in criteria
        ],
        bidders=[report_pdf.BidderRow(str(b["name"]), str(b["credit_code"])) for b in bidders],
        members=[
            report_pdf.MemberRow(
                expert_id=seats[m].expert_id,
                name=names[seats[m].expert_id],
                specialty=seats[m].specialty,
                role=CHAIR if project.chair_assignment_id == m else MEMBER,
            )
            for m in member_ids
        ],
        sheets=[
            report_pdf.ScoreSheetRow(
                expert_name=names[s.expert_id],
                void=s.status == "void",
                void_reason=s.void_reason,
                points=[
                    [
                        float(s.points.get(str(b["credit_code"]), {}).get(str(c["name"]), 0))
                        for c in criteria
                    ]
                    for b in bidders
                ],
            )
            for s in sheets
        ],
        results=[
            report_pdf.ResultRow(
                rank=int(row["rank"]),
                bidder_name=str(row["name"]),
                credit_code=str(row["credit_code"]),
                score=float(row["score"]),
                recommended=bool(row["recommended"]),
            )
            for row in project.results["standings"]
        ],
        dissents=[
            report_pdf.DissentRow(names.get(d.expert_id) or _name(db, d.expert_id), d.text)
            for d in dissents
        ],
        generated_at=_local(now),
    )


def _name(db: Session, expert_id: str) -> str:
    expert = db.get(Expert, expert_id)
    return expert.name if expert else expert_id


def generate_report(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    context: documents.SigningContext,
    project_id: str,
    override_reason: str | None = None,
) -> Document:
    """Render the report and open it for signing: one slot per member of the results.
    It waits until every member has agreed or dissented, so nobody loses the chance to
    dissent; an operator may go ahead without a member who does not answer, saying why."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    if project.results is None:
        raise deliberation.ResultsMissing("aggregate the scores before generating the report")
    if project.report_document_id is not None:
        raise ReportExists(
            f"project {project.code} has its report", document_id=project.report_document_id
        )
    pending = [
        assignment_id
        for assignment_id in project.results["members"]
        if (seat := db.get(Assignment, assignment_id)) is not None
        and seat.results_reviewed_at is None
    ]
    if pending and not override_reason:
        raise ResultsUnderReview(
            f"{len(pending)} member(s) have neither agreed with the results nor dissented",
            pending=pending,
        )
    now = clock.now()
    content = report_content(db, project, now)
    try:
        rendered = report_pdf.render_report(content)
    except report_pdf.ReportRenderError as exc:
        raise ReportUnavailable(str(exc)) from exc
    boxes = {box.expert_id: box for box in rendered.signature_boxes}
    # One slot per member the report names, with the role it prints.
    slots = [
        documents.SlotIn(
            signer_kind="expert",
            expert_id=member.expert_id,
            role=member.role,
            order_group=1,
            page=boxes[member.expert_id].page,
            box=list(boxes[member.expert_id].box),
        )
        for member in content.members
    ]
    received = context.store.receive(io.BytesIO(rendered.pdf), len(rendered.pdf) + 1)
    document = documents.create_document(
        db,
        caller,
        clock,
        context.store,
        received,
        f"{project.code}-评标报告.pdf",
        documents.NewDocument(
            title=f"{project.name} 评标报告", purpose=documents.Purpose.REPORT, slots=slots
        ),
    )
    documents.change_status(db, caller, clock, document.id, "start", None)
    project.report_document_id = document.id
    project.updated_at = now
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_REPORT_GENERATED,
        "project",
        project.id,
        {
            "document_id": document.id,
            "sha256": document.sha256,
            "pages": rendered.page_count,
            "slots": len(slots),
            "without_review": pending,
            "override_reason": override_reason if pending else None,
        },
    )
    return document


def refuse_to_sign(
    db: Session,
    clock: Clock,
    context: documents.SigningContext,
    me: EvaluationSession,
    request_id: str | None,
) -> SignerSlot:
    """The member will not sign. With no written dissent on record this is deemed
    agreement with the result; either way the report can complete without them."""
    project = get_project(db, me.center_id, me.project_id, lock=True)
    seat = deliberation.my_seat(db, me)
    if project.report_document_id is None:
        raise InvalidTransition("there is no report to sign yet")
    # The document's row first, as signing takes it: a refusal and a signature of the same
    # slot cannot both go through.
    document = db.execute(
        select(Document).where(Document.id == project.report_document_id).with_for_update()
    ).scalar_one()
    if document.status != documents.DocumentStatus.SIGNING:
        raise InvalidTransition(f"the report is {document.status}", current_status=document.status)
    slot = db.execute(
        select(SignerSlot).where(
            SignerSlot.document_id == project.report_document_id,
            SignerSlot.expert_id == me.expert_id,
            SignerSlot.status == "pending",
        )
    ).scalar_one_or_none()
    if slot is None:
        raise documents.NoSlotForSigner("you have no pending signature on the report")
    dissent = db.execute(
        select(Dissent.id).where(Dissent.assignment_id == seat.id)
    ).scalar_one_or_none()
    now = clock.now()
    slot.status = "refused"
    slot.signed_at = now
    seat.refused_to_sign_at = now
    db.flush()
    caller = deliberation.expert_caller(me, request_id)
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_REFUSED_TO_SIGN,
        "document",
        project.report_document_id,
        {
            "slot_id": slot.id,
            "assignment_id": seat.id,
            "dissent_id": dissent,
            # 拒绝签字且不陈述不同意见和理由的，视为同意评标结果.
            "deemed": "dissent on record" if dissent else "agreement",
        },
    )
    documents.complete_if_done(db, caller, clock, context, project.report_document_id)
    return slot


def complete_project(
    db: Session, caller: audit.Caller, clock: Clock, document: Document, now: datetime
) -> None:
    """An evaluation report signed by its whole committee completes its project (the
    documents context calls this as its SigningContext.report_signed)."""
    project = db.execute(
        select(Project).where(Project.report_document_id == document.id)
    ).scalar_one_or_none()
    if project is None:
        return  # a report uploaded by hand, not generated for a project
    project.completed_at = now
    project.updated_at = now
    change_status(
        db,
        caller,
        clock,
        project,
        ProjectAction.COMPLETE,
        {"report_document_id": document.id, "sha256": document.sha256},
    )
    outbox.report_signed(db, now, project, document)
