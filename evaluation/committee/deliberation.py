"""The committee at work, from a member's evaluation session: accepting the seat, the
recusal declaration, scoring, submitting (which locks the sheet), choosing a chair, the
chair's aggregation and ranking, dissent, and the operator replacing an absent member.

A member who leaves after scoring (a conflict found late, absence) has their sheet voided,
not deleted: the report prints it as void, and the backup who takes the seat scores
afresh.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.committee import draws, scoring
from evaluation.committee.projects import get_project
from evaluation.committee.tasks import SEATED, seated_members
from evaluation.identity import session_ends
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from models.clock import Clock
from models.tables import (
    Assignment,
    Dissent,
    EvaluationSession,
    Project,
    RecusalDeclaration,
    ScoreSheet,
)


class NotSeated(DomainError):
    status = 403
    code = "not-seated"
    title = "You no longer hold a seat on this committee"


class NotAccepted(DomainError):
    status = 409
    code = "seat-not-accepted"
    title = "Accept the invitation before evaluating"


class RecusalMissing(DomainError):
    status = 409
    code = "recusal-missing"
    title = "Declare whether you have a conflict of interest before scoring"


class RecusalExists(DomainError):
    status = 409
    code = "recusal-declared"
    title = "You have already made your recusal declaration"


class EvaluationNotStarted(DomainError):
    status = 409
    code = "evaluation-not-started"
    title = "The evaluation has not started yet; declarations and scores wait for it"


def _refuse_before_start(project: Project, clock: Clock) -> None:
    if clock.now() < project.evaluation_start:
        raise EvaluationNotStarted(
            f"the evaluation starts at {project.evaluation_start.isoformat()}",
            starts_at=project.evaluation_start.isoformat(),
        )


class ScoresInvalid(DomainError):
    status = 422
    code = "scores-invalid"
    title = "The scores break the project's criteria"


class ScoresLocked(DomainError):
    status = 409
    code = "scores-locked"
    title = "The scores were submitted and are locked"


class NotChair(DomainError):
    status = 403
    code = "not-chair"
    title = "Only the committee's chair may do this"


class ScoringIncomplete(DomainError):
    status = 409
    code = "scoring-incomplete"
    title = "Not every seated member has accepted and submitted scores"


class CommitteeIncomplete(DomainError):
    status = 409
    code = "committee-incomplete"
    title = "A seat is vacant (no backup was left); a supplementary draw must fill it first"


class ResultsFrozen(DomainError):
    status = 409
    code = "results-frozen"
    title = "The results were aggregated; the committee can no longer change"


class ResultsMissing(DomainError):
    status = 409
    code = "results-missing"
    title = "The chair has not aggregated the scores yet"


def expert_caller(me: EvaluationSession, request_id: str | None = None) -> audit.Caller:
    """The member acting through their evaluation session, as the audit log names them."""
    return audit.Caller(me.center_id, f"expert:{me.expert_id}", "expert", request_id)


def _project(db: Session, me: EvaluationSession, *, lock: bool = False) -> Project:
    return get_project(db, me.center_id, me.project_id, lock=lock)


def my_seat(db: Session, me: EvaluationSession) -> Assignment:
    """The session's assignment, if it is still a seat (not declined, not replaced)."""
    seat = db.get(Assignment, me.assignment_id)
    assert seat is not None
    if seat.role != "member" or seat.status not in SEATED:
        raise NotSeated(f"your assignment is {seat.status}", assignment_status=seat.status)
    return seat


def _accepted_seat(db: Session, me: EvaluationSession) -> Assignment:
    seat = my_seat(db, me)
    if seat.status != draws.AssignmentStatus.ACCEPTED:
        raise NotAccepted("accept the invitation first (POST /api/v1/evaluation/response)")
    return seat


def respond(
    db: Session, clock: Clock, me: EvaluationSession, accept: bool, reason: str | None
) -> tuple[Assignment, Assignment | None]:
    """The member's own answer to the invitation, from their phone."""
    my_seat(db, me)
    return draws.respond(
        db, expert_caller(me), clock, me.project_id, me.assignment_id, accept, reason
    )


def _refuse_after_results(project: Project) -> None:
    if project.results is not None:
        raise ResultsFrozen(f"project {project.code} was aggregated at {project.aggregated_at}")


def _void_and_replace(
    db: Session, caller: audit.Caller, clock: Clock, seat: Assignment, reason: str
) -> Assignment | None:
    """Take a member off the committee: their sheet is void (kept), their sessions end, and
    the next backup is invited to the seat. With no backup left the seat stays vacant (a
    conflict must still be declarable) and the results wait for a supplementary draw."""
    now = clock.now()
    seat.reason = reason
    seat.responded_at = now
    project = db.get(Project, seat.project_id)
    if project is not None and project.chair_assignment_id == seat.id:
        project.chair_assignment_id = None  # the committee chooses again
        project.chair_chosen_by = None
    sheet = _sheet(db, seat.id)
    if sheet is not None and sheet.status != "void":
        sheet.status = "void"
        sheet.void_reason = reason
        sheet.voided_at = now
    ended = db.execute(
        update(EvaluationSession)
        .where(EvaluationSession.assignment_id == seat.id, EvaluationSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(EvaluationSession.expert_id, EvaluationSession.device_id)
    ).all()
    for expert_id, device_id in ended:
        session_ends.end_face_sessions(db, now, expert_id=expert_id, device_id=device_id)
    try:
        promoted: Assignment | None = draws.promote_backup(db, caller, clock, leaving=seat, now=now)
    except draws.NoBackupLeft:
        promoted = None
    draws.change_assignment_status(
        db,
        caller,
        clock,
        seat,
        draws.AssignmentAction.REPLACE,
        {
            "project_id": seat.project_id,
            "expert_id": seat.expert_id,
            "reason": reason,
            "scores_voided": sheet is not None,
            "promoted_expert_id": promoted.expert_id if promoted else None,
            "seat_vacant": promoted is None,
        },
    )
    return promoted


def declare_recusal(
    db: Session,
    clock: Clock,
    me: EvaluationSession,
    conflict: bool,
    statement: str,
    related_units: list[str],
) -> tuple[RecusalDeclaration, Assignment | None]:
    """The member's declaration, tied to their face-verified session. Declaring a conflict
    ends their seat; the next backup is invited."""
    project = _project(db, me, lock=True)
    seat = _accepted_seat(db, me)
    _refuse_before_start(project, clock)
    _refuse_after_results(project)
    if _recusal(db, seat.id) is not None:
        raise RecusalExists("you have already declared; a conflict found later is reported")
    units = {project.tenderer_credit_code} | {str(b["credit_code"]) for b in project.bidders}
    unknown = [code for code in related_units if code not in units]
    if unknown:
        raise ScoresInvalid(f"not a unit of this project: {', '.join(unknown)}")
    if conflict and not related_units:
        raise ScoresInvalid("name the unit(s) you have a conflict with")
    declaration = RecusalDeclaration(
        center_id=me.center_id,
        project_id=project.id,
        assignment_id=seat.id,
        expert_id=me.expert_id,
        conflict=conflict,
        statement=statement,
        statement_sha256=hashlib.sha256(statement.encode()).hexdigest(),
        related_units=related_units,
        evaluation_session_id=me.id,
        verification_id=me.verification_id,
        device_id=me.device_id,
        created_at=clock.now(),
    )
    db.add(declaration)
    db.flush()
    caller = expert_caller(me)
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_RECUSAL_DECLARED,
        "recusal_declaration",
        declaration.id,
        {
            "project_id": project.id,
            "assignment_id": seat.id,
            "conflict": conflict,
            "related_units": related_units,
            "statement_sha256": declaration.statement_sha256,
            "verification_id": me.verification_id,
        },
    )
    promoted = None
    if conflict:
        promoted = _void_and_replace(db, caller, clock, seat, "recusal: conflict of interest")
    return declaration, promoted


def _recusal(db: Session, assignment_id: str) -> RecusalDeclaration | None:
    return db.execute(
        select(RecusalDeclaration).where(RecusalDeclaration.assignment_id == assignment_id)
    ).scalar_one_or_none()


def _sheet(db: Session, assignment_id: str) -> ScoreSheet | None:
    return db.execute(
        select(ScoreSheet).where(ScoreSheet.assignment_id == assignment_id)
    ).scalar_one_or_none()


def _ready_to_score(db: Session, clock: Clock, me: EvaluationSession) -> tuple[Project, Assignment]:
    project = _project(db, me, lock=True)
    seat = _accepted_seat(db, me)
    _refuse_before_start(project, clock)
    _refuse_after_results(project)
    if _recusal(db, seat.id) is None:
        raise RecusalMissing("make your recusal declaration first")
    return project, seat


def _bidder_codes(project: Project) -> list[str]:
    return [str(b["credit_code"]) for b in project.bidders]


def save_scores(
    db: Session, clock: Clock, me: EvaluationSession, points: dict[str, dict[str, Any]]
) -> ScoreSheet:
    """Save a draft (it may be partial): every value given is checked now, so the phone
    shows mistakes as they are made."""
    project, seat = _ready_to_score(db, clock, me)
    criteria = scoring.criteria_of(project.criteria)
    problems = scoring.sheet_problems(points, _bidder_codes(project), criteria, complete=False)
    if problems:
        raise ScoresInvalid("; ".join(problems), problems=problems)
    now = clock.now()
    sheet = _sheet(db, seat.id)
    if sheet is None:
        sheet = ScoreSheet(
            center_id=me.center_id,
            project_id=project.id,
            assignment_id=seat.id,
            expert_id=me.expert_id,
            points=points,
            status="draft",
            version=1,
            updated_at=now,
        )
        db.add(sheet)
    elif sheet.status != "draft":
        raise ScoresLocked(f"your scores are {sheet.status}", sheet_status=sheet.status)
    else:
        sheet.points = points
        sheet.version += 1
        sheet.updated_at = now
    db.flush()
    return sheet


def submit_scores(db: Session, clock: Clock, me: EvaluationSession) -> ScoreSheet:
    """Lock the draft: every bidder must be scored on every criterion."""
    project, seat = _ready_to_score(db, clock, me)
    sheet = _sheet(db, seat.id)
    if sheet is None:
        raise ScoresInvalid("save your scores before submitting them")
    if sheet.status != "draft":
        raise ScoresLocked(f"your scores are {sheet.status}", sheet_status=sheet.status)
    criteria = scoring.criteria_of(project.criteria)
    problems = scoring.sheet_problems(sheet.points, _bidder_codes(project), criteria, complete=True)
    if problems:
        raise ScoresInvalid("; ".join(problems), problems=problems)
    now = clock.now()
    sheet.status = "submitted"
    sheet.submitted_at = now
    db.flush()
    digest = hashlib.sha256(
        repr(sorted((b, sorted(r.items())) for b, r in sheet.points.items())).encode()
    ).hexdigest()
    audit.record(
        db,
        expert_caller(me),
        clock,
        Action.EVALUATION_SCORES_SUBMITTED,
        "score_sheet",
        sheet.id,
        {"project_id": project.id, "assignment_id": seat.id, "points_sha256": digest},
    )
    return sheet


def my_sheet(db: Session, me: EvaluationSession) -> ScoreSheet | None:
    return _sheet(db, me.assignment_id)


def my_dissent(db: Session, me: EvaluationSession) -> Dissent | None:
    return db.execute(
        select(Dissent).where(Dissent.assignment_id == me.assignment_id)
    ).scalar_one_or_none()


def my_recusal(db: Session, me: EvaluationSession) -> RecusalDeclaration | None:
    return _recusal(db, me.assignment_id)


def _set_chair(
    db: Session, caller: audit.Caller, clock: Clock, project: Project, seat: Assignment, how: str
) -> None:
    project.chair_assignment_id = seat.id
    project.chair_chosen_by = how
    project.updated_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_CHAIR_CHOSEN,
        "project",
        project.id,
        {"assignment_id": seat.id, "expert_id": seat.expert_id, "chosen_by": how},
    )


def appoint_chair(
    db: Session, caller: audit.Caller, clock: Clock, project_id: str, assignment_id: str
) -> Project:
    """The operator appoints a seated member as chair (the tenderer's choice, or on the
    committee's behalf)."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    _refuse_after_results(project)
    seat = draws.get_assignment(db, project, assignment_id)
    if seat.role != "member" or seat.status not in SEATED:
        raise InvalidTransition(f"assignment {assignment_id} holds no seat")
    _set_chair(db, caller, clock, project, seat, "appointed")
    return project


def vote_chair(db: Session, clock: Clock, me: EvaluationSession, assignment_id: str) -> Project:
    """A member's vote for chair; a majority of the seated members elects."""
    project = _project(db, me, lock=True)
    _refuse_after_results(project)
    seat = _accepted_seat(db, me)
    members = seated_members(db, project.id)
    if assignment_id not in {m.id for m in members}:
        raise NotFound(f"no seated member {assignment_id} on this committee")
    seat.chair_vote = assignment_id
    db.flush()
    caller = expert_caller(me)
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_CHAIR_VOTE,
        "assignment",
        seat.id,
        {"for": assignment_id},
    )
    votes = sum(1 for m in members if m.chair_vote == assignment_id)
    if votes * 2 > len(members) and project.chair_assignment_id != assignment_id:
        chosen = next(m for m in members if m.id == assignment_id)
        _set_chair(db, caller, clock, project, chosen, "elected")
    return project


def aggregate(db: Session, clock: Clock, me: EvaluationSession) -> Project:
    """The chair combines the submitted sheets by the project's rule and ranks the bidders.
    The results are frozen: the committee, recusals and scores no longer change."""
    project = _project(db, me, lock=True)
    seat = _accepted_seat(db, me)
    if project.chair_assignment_id != seat.id:
        raise NotChair("only the chair triggers the aggregation")
    _refuse_after_results(project)
    members = seated_members(db, project.id)
    vacant = [
        f"{spec['specialty']}: {sum(m.specialty == spec['specialty'] for m in members)} of "
        f"{spec['seats']}"
        for spec in project.committee_spec
        if sum(m.specialty == spec["specialty"] for m in members) < int(spec["seats"])
    ]
    if vacant:
        raise CommitteeIncomplete("seats are vacant: " + "; ".join(vacant), vacant=vacant)
    points = {
        m.id: sheet.points
        for m in members
        if m.status == draws.AssignmentStatus.ACCEPTED
        and (sheet := _sheet(db, m.id)) is not None
        and sheet.status == "submitted"
    }
    waiting = [m.id for m in members if m.id not in points]
    if waiting:
        raise ScoringIncomplete(
            f"{len(waiting)} of {len(members)} members have not submitted", waiting=waiting
        )
    criteria = scoring.criteria_of(project.criteria)
    standings = scoring.rank_bidders(points, project.bidders, criteria, project.aggregation)
    now = clock.now()
    project.results = {
        "rule": project.aggregation,
        "members": [m.id for m in members],
        "standings": [
            {
                "credit_code": s.credit_code,
                "name": s.name,
                "score": str(s.score),
                "rank": s.rank,
                "recommended": s.recommended,
                "totals": {member: str(value) for member, value in s.totals.items()},
            }
            for s in standings
        ],
        "recommended": [s.credit_code for s in standings if s.recommended],
    }
    project.aggregated_at = now
    project.updated_at = now
    db.flush()
    audit.record(
        db,
        expert_caller(me),
        clock,
        Action.EVALUATION_AGGREGATED,
        "project",
        project.id,
        {
            "rule": project.aggregation,
            "ranking": [[s.rank, s.credit_code, str(s.score)] for s in standings],
        },
    )
    outbox.scores_frozen(db, now, project)
    return project


def record_dissent(db: Session, clock: Clock, me: EvaluationSession, text: str) -> Dissent:
    """A member's written disagreement with the result; printed in the report. Possible
    between the aggregation and the report's generation."""
    project = _project(db, me, lock=True)
    seat = _accepted_seat(db, me)
    if project.results is None:
        raise ResultsMissing("there is no result to disagree with yet")
    if project.report_document_id is not None:
        raise InvalidTransition("the report was generated; a dissent can no longer be added")
    existing = db.execute(
        select(Dissent).where(Dissent.assignment_id == seat.id)
    ).scalar_one_or_none()
    if existing is not None:
        raise InvalidTransition("you have already recorded your dissent")
    if seat.results_reviewed_at is not None:
        raise InvalidTransition("you have already agreed with the results")
    dissent = Dissent(
        center_id=me.center_id,
        project_id=project.id,
        assignment_id=seat.id,
        expert_id=me.expert_id,
        text=text,
        created_at=clock.now(),
    )
    seat.results_reviewed_at = dissent.created_at
    db.add(dissent)
    db.flush()
    audit.record(
        db,
        expert_caller(me),
        clock,
        Action.EVALUATION_DISSENT_RECORDED,
        "dissent",
        dissent.id,
        {"project_id": project.id, "sha256": hashlib.sha256(text.encode()).hexdigest()},
    )
    return dissent


def agree_with_results(db: Session, clock: Clock, me: EvaluationSession) -> Assignment:
    """The member has read the aggregated results and agrees (the alternative is a written
    dissent); the report is generated once every member has done one or the other."""
    project = _project(db, me, lock=True)
    seat = _accepted_seat(db, me)
    if project.results is None:
        raise ResultsMissing("there is no result to agree with yet")
    if seat.results_reviewed_at is not None:
        raise InvalidTransition("you have already answered the results")
    seat.results_reviewed_at = clock.now()
    db.flush()
    audit.record(
        db,
        expert_caller(me),
        clock,
        Action.EVALUATION_RESULTS_AGREED,
        "assignment",
        seat.id,
        {"project_id": project.id},
    )
    return seat


def replace_member(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    project_id: str,
    assignment_id: str,
    reason: str,
) -> Assignment | None:
    """The operator takes a member off the committee (absent, a conflict found late);
    their scores are voided and the next backup is invited (None: no backup was left)."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    _refuse_after_results(project)
    seat = draws.get_assignment(db, project, assignment_id)
    if seat.role != "member" or seat.status not in SEATED:
        raise InvalidTransition(
            f"assignment {assignment_id} is a {seat.role} that is {seat.status}",
            current_status=seat.status,
        )
    return _void_and_replace(db, caller, clock, seat, reason)
