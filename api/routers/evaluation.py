"""The member's side of an evaluation, from the phone's evaluation session
(`Authorization: Bearer eve_...` plus `X-Device-Id`), and the operator's part: appointing
the chair, replacing an absent member, reading the results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, Field

from api.deps import (
    AnyStaff,
    AuditReader,
    Db,
    FaceEngineDep,
    Operator,
    ServicesDep,
    phone_token,
    transaction,
)
from api.errors import ValidationFailed
from api.logs import request_id_var
from api.routers.anomalies import raise_for
from api.routers.tasks import challenge_out
from api.schemas.committee.deliberation import (
    AnswerIn,
    AnswerOut,
    AppointIn,
    ChairOut,
    DissentIn,
    DissentOut,
    RecusalIn,
    RecusalOut,
    RecusalResult,
    ReplaceIn,
    ReplaceOut,
    ResultsOut,
    ScoresIn,
    SheetOut,
    VoteIn,
)
from api.schemas.committee.reports import OverrideIn, RefusalOut, ReportOut
from api.schemas.committee.tasks import ScanChallengeOut
from api.schemas.kernel import AuditEntryOut
from evaluation.committee import deliberation, draws, projects, reports, sign_in, tasks
from evaluation.identity import face_checks
from evaluation.supervision import at_a_glance, evidence
from models.tables import Document, EvaluationSession, Expert, Project, ScoreSheet

router = APIRouter(tags=["evaluation"])


def evaluation_session(
    request: Request,
    db: Db,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header()] = None,
) -> EvaluationSession:
    sent = phone_token(request, services, sign_in.SESSION_PREFIX, authorization, x_device_id)
    if sent.token is None:
        raise sign_in.EvaluationSessionInvalid("send Authorization: Bearer eve_... and X-Device-Id")
    return sign_in.authenticate(db, sent.token, sent.device_id, services.clock.now())


Me = Annotated[EvaluationSession, Depends(evaluation_session)]


# Kept here with OverviewOut, which holds it, not in api/schemas: the console's glance has a
# SeatOut too, so FastAPI names this component by its module (api__routers__evaluation__SeatOut)
# and moving it would rename it in the OpenAPI document.
class SeatOut(BaseModel):
    assignment_id: str
    expert_id: str
    name: str | None = Field(description="Shown once the evaluation has started")
    specialty: str
    status: str
    is_chair: bool


class OverviewOut(BaseModel):
    project_id: str
    code: str
    name: str
    status: str
    tenderer_name: str
    tenderer_credit_code: str
    bidders: list[dict[str, Any]]
    criteria: list[dict[str, Any]]
    aggregation: str
    evaluation_start: datetime
    evaluation_end: datetime
    me: SeatOut
    committee: list[SeatOut]
    recusal: RecusalOut | None
    sheet: SheetOut | None
    results: dict[str, Any] | None
    results_reviewed: bool = Field(description="I have agreed with the results or dissented")
    report_document_id: str | None
    session_flagged: bool


def _seat_out(db: Db, project: Project, show_names: bool) -> list[SeatOut]:
    rows = []
    for seat in tasks.seated_members(db, project.id):
        expert = db.get(Expert, seat.expert_id) if show_names else None
        rows.append(
            SeatOut(
                assignment_id=seat.id,
                expert_id=seat.expert_id,
                name=expert.name if expert else None,
                specialty=seat.specialty,
                status=seat.status,
                is_chair=project.chair_assignment_id == seat.id,
            )
        )
    return rows


@router.get("/api/v1/evaluation", response_model=OverviewOut)
def overview(me: Me, db: Db, services: ServicesDep) -> OverviewOut:
    """Everything the phone shows: the project, my seat, the committee, my declaration
    and sheet, the chair, the results once aggregated."""
    project = projects.get_project(db, me.center_id, me.project_id)
    seat = deliberation.my_seat(db, me)
    show = services.clock.now() >= project.evaluation_start
    committee = _seat_out(db, project, show)
    mine = next(s for s in committee if s.assignment_id == seat.id)
    if mine.name is None:
        expert = db.get(Expert, me.expert_id)
        mine = mine.model_copy(update={"name": expert.name if expert else None})
    recusal = deliberation.my_recusal(db, me)
    sheet = deliberation.my_sheet(db, me)
    return OverviewOut(
        project_id=project.id,
        code=project.code,
        name=project.name,
        status=project.status,
        tenderer_name=project.tenderer_name,
        tenderer_credit_code=project.tenderer_credit_code,
        bidders=project.bidders,
        criteria=project.criteria,
        aggregation=project.aggregation,
        evaluation_start=project.evaluation_start,
        evaluation_end=project.evaluation_end,
        me=mine,
        committee=committee,
        recusal=RecusalOut.model_validate(recusal) if recusal else None,
        sheet=SheetOut.model_validate(sheet) if sheet else None,
        results=project.results,
        results_reviewed=seat.results_reviewed_at is not None,
        report_document_id=project.report_document_id,
        session_flagged=me.flagged,
    )


@router.post("/api/v1/evaluation/response", response_model=AnswerOut)
def answer_invitation(body: AnswerIn, me: Me, db: Db, services: ServicesDep) -> AnswerOut:
    """Accept the seat, or decline it with a reason (the next backup is invited)."""
    if not body.accept and not (body.reason and body.reason.strip()):
        raise ValidationFailed("a decline states its reason")
    seat, _ = deliberation.respond(db, services.clock, me, body.accept, body.reason)
    return AnswerOut(assignment_id=seat.id, status=seat.status)


@router.post(
    "/api/v1/evaluation/recusal",
    response_model=RecusalResult,
    status_code=status.HTTP_201_CREATED,
)
def declare_recusal(body: RecusalIn, me: Me, db: Db, services: ServicesDep) -> RecusalResult:
    """The recusal declaration, made once before scoring; a declared conflict ends the
    seat and invites the next backup."""
    declaration, _ = deliberation.declare_recusal(
        db, services.clock, me, body.conflict, body.statement.strip(), body.related_units
    )
    seat_status = "replaced" if body.conflict else "accepted"
    return RecusalResult(
        declaration=RecusalOut.model_validate(declaration), seat_status=seat_status
    )


def _sheet_out(sheet: ScoreSheet) -> SheetOut:
    return SheetOut.model_validate(sheet)


@router.put("/api/v1/evaluation/scores", response_model=SheetOut)
def save_scores(body: ScoresIn, me: Me, db: Db, services: ServicesDep) -> SheetOut:
    """Save the draft sheet (every value is checked against its criterion now)."""
    if len(body.points) > 500:
        raise ValidationFailed("too many bidders in one sheet")
    return _sheet_out(deliberation.save_scores(db, services.clock, me, body.points))


@router.post("/api/v1/evaluation/scores/submit", response_model=SheetOut)
def submit_scores(me: Me, db: Db, services: ServicesDep) -> SheetOut:
    """Submit the sheet: complete, and locked from now on."""
    sheet = deliberation.submit_scores(db, services.clock, me)
    caller = deliberation.expert_caller(me, request_id_var.get())
    raise_for(db, services, caller, me.project_id)
    return _sheet_out(sheet)


def _chair_out(project: Project) -> ChairOut:
    return ChairOut(
        chair_assignment_id=project.chair_assignment_id, chosen_by=project.chair_chosen_by
    )


@router.post("/api/v1/evaluation/chair/vote", response_model=ChairOut)
def vote_chair(body: VoteIn, me: Me, db: Db, services: ServicesDep) -> ChairOut:
    """Vote for a chair; a majority of the seated members elects."""
    return _chair_out(deliberation.vote_chair(db, services.clock, me, body.assignment_id))


@router.post("/api/v1/evaluation/aggregate", response_model=ResultsOut)
def aggregate(me: Me, db: Db, services: ServicesDep) -> ResultsOut:
    """The chair combines the submitted sheets and ranks the bidders (frozen afterwards)."""
    project = deliberation.aggregate(db, services.clock, me)
    return ResultsOut(
        project_id=project.id, aggregated_at=project.aggregated_at, results=project.results
    )


@router.post("/api/v1/evaluation/results/agree", response_model=AnswerOut)
def agree_with_results(me: Me, db: Db, services: ServicesDep) -> AnswerOut:
    """I have read the aggregated results and agree (or record a dissent instead); the
    report waits until every member has done one or the other."""
    seat = deliberation.agree_with_results(db, services.clock, me)
    return AnswerOut(assignment_id=seat.id, status=seat.status)


@router.post(
    "/api/v1/evaluation/dissent", response_model=DissentOut, status_code=status.HTTP_201_CREATED
)
def record_dissent(body: DissentIn, me: Me, db: Db, services: ServicesDep) -> DissentOut:
    """A written disagreement with the result and its reasons; the report prints it."""
    dissent = deliberation.record_dissent(db, services.clock, me, body.text.strip())
    return DissentOut.model_validate(dissent)


@router.post(
    "/api/v1/evaluation/challenge",
    response_model=ScanChallengeOut,
    status_code=status.HTTP_201_CREATED,
)
def fresh_face_check(
    me: Me, db: Db, services: ServicesDep, engine: FaceEngineDep
) -> ScanChallengeOut:
    """A 1:1 face check for this member, e.g. before signing the report when the last one
    is older than the signing freshness. The passed check's evf_ session signs."""
    deliberation.my_seat(db, me)
    caller = deliberation.expert_caller(me, request_id_var.get())
    issued = face_checks.issue_challenge(
        db, caller, services.clock, services.cipher, engine, services.liveness, [me.expert_id]
    )
    return challenge_out(issued)


# --- the operator's part ------------------------------------------------------------------


@router.post("/api/v1/projects/{project_id}/chair", response_model=ChairOut)
def appoint_chair(
    project_id: str, body: AppointIn, staff: Operator, db: Db, services: ServicesDep
) -> ChairOut:
    """Appoint a seated member as the committee's chair."""
    project = deliberation.appoint_chair(
        db, staff.caller, services.clock, project_id, body.assignment_id
    )
    return _chair_out(project)


@router.post(
    "/api/v1/projects/{project_id}/assignments/{assignment_id}/replace",
    response_model=ReplaceOut,
)
def replace_member(
    project_id: str,
    assignment_id: str,
    body: ReplaceIn,
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> ReplaceOut:
    """Take a member off the committee (absent, a conflict found late): their scores are
    kept as void and the next backup is invited to score afresh."""
    promoted = deliberation.replace_member(
        db, staff.caller, services.clock, project_id, assignment_id, body.reason.strip()
    )
    return ReplaceOut(
        assignment_id=assignment_id,
        status="replaced",
        promoted_assignment_id=promoted.id if promoted else None,
        promoted_expert_id=promoted.expert_id if promoted else None,
    )


@router.get("/api/v1/projects/{project_id}/results", response_model=ResultsOut)
def project_results(project_id: str, staff: AnyStaff, db: Db) -> ResultsOut:
    """The aggregate and ranking, once the chair has aggregated (null before)."""
    project = projects.get_project(db, staff.center_id, project_id)
    return ResultsOut(
        project_id=project.id, aggregated_at=project.aggregated_at, results=project.results
    )


# --- the report ---------------------------------------------------------------------------


def _report_out(document: Document) -> ReportOut:
    return ReportOut(
        document_id=document.id,
        title=document.title,
        status=document.status,
        page_count=document.page_count,
        sha256=document.sha256,
        signatures_url=f"/api/v1/documents/{document.id}/signatures",
        content_url=f"/api/v1/documents/{document.id}/content",
    )


@router.post(
    "/api/v1/evaluation/report", response_model=ReportOut, status_code=status.HTTP_201_CREATED
)
def chair_generates_report(me: Me, db: Db, services: ServicesDep) -> ReportOut:
    """The chair generates the report from the frozen results; every member then signs it
    (POST signatures_url with a fresh face session)."""
    project = projects.get_project(db, me.center_id, me.project_id)
    seat = deliberation.my_seat(db, me)
    if project.chair_assignment_id != seat.id:
        raise deliberation.NotChair("only the chair generates the report")
    caller = deliberation.expert_caller(me, request_id_var.get())
    document = reports.generate_report(
        db, caller, services.clock, services.documents, me.project_id
    )
    return _report_out(document)


@router.post(
    "/api/v1/projects/{project_id}/report",
    response_model=ReportOut,
    status_code=status.HTTP_201_CREATED,
)
def operator_generates_report(
    project_id: str,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    body: OverrideIn | None = None,
) -> ReportOut:
    """The operator generates the report on the committee's behalf; with `reason`, also
    when a member has neither agreed with the results nor dissented (recorded)."""
    document = reports.generate_report(
        db,
        staff.caller,
        services.clock,
        services.documents,
        project_id,
        override_reason=body.reason.strip() if body and body.reason else None,
    )
    return _report_out(document)


@router.post("/api/v1/evaluation/report/refusal", response_model=RefusalOut)
def refuse_to_sign(me: Me, db: Db, services: ServicesDep) -> RefusalOut:
    """Refuse to sign the report. Without a written dissent this is deemed agreement with
    the result (as the regulations say); the report completes without this signature."""
    slot = reports.refuse_to_sign(db, services.clock, services.documents, me, request_id_var.get())
    dissent = deliberation.my_dissent(db, me)
    return RefusalOut(
        slot_id=slot.id,
        status=slot.status,
        deemed="dissent on record" if dissent else "agreement",
    )


# --- the evidence package -----------------------------------------------------------------


@router.get("/api/v1/projects/{project_id}/timeline", response_model=list[AuditEntryOut])
def project_timeline(
    project_id: str, staff: AuditReader, db: Db, services: ServicesDep
) -> list[AuditEntryOut]:
    """The project's audit entries in order, for the supervisors' timeline: the draw,
    scans and sign-ins, declarations, scores, the report and its signatures; each actor
    named in words (experts once the committee is no longer sealed)."""
    entries = evidence.project_entries(db, staff.center_id, project_id)
    project = projects.get_project(db, staff.center_id, project_id)
    sealed = draws.proof_is_sealed(project, staff.role.value, services.clock)
    actors = at_a_glance.actors_in_words(
        db, staff.center_id, (entry.actor for entry in entries), sealed
    )
    return [
        AuditEntryOut.model_validate(entry, from_attributes=True).model_copy(
            update={"actor_kind": actors[entry.actor].kind, "actor_name": actors[entry.actor].name}
        )
        for entry in entries
    ]


@router.get(
    "/api/v1/projects/{project_id}/evidence",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def evidence_package(project_id: str, staff: AuditReader, services: ServicesDep) -> Response:
    """A zip with the signed report, the draw proof, the project's audit chain up to a
    signed checkpoint, the face verification records, certificates, CRLs and a signed
    manifest; its README says how to check each part with open tools."""
    # A write transaction: a checkpoint covering the project's last entry may be signed
    # now, and a stale CRL reissued.
    with transaction(services) as db:
        name, data = evidence.build_package(
            db,
            services.clock,
            services.vault,
            services.pki,
            services.documents.store,
            staff.center_id,
            project_id,
            staff.role.value,
        )
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
