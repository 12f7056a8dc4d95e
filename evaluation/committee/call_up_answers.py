"""A called-up member's answer from the link in their message, and the deadline: a member
who has not answered by it is counted as declining, and the next backup of the same
specialty moves up and is called up in turn (draws.respond does both, as it does for an
answer the operator takes by phone)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from evaluation.committee import call_ups, draws
from evaluation.committee.call_ups import CallUpExpired
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from models.clock import Clock
from models.tables import Assignment, CallUp, Project

NO_ANSWER = "no answer by the call-up's deadline"


@dataclass(frozen=True)
class Invitation:
    """What the answer page shows: no project name, tenderer or bidders."""

    call_up: CallUp
    project: Project
    assignment: Assignment
    answerable: bool


def invitation(db: Session, clock: Clock, token: str) -> Invitation:
    call_up = call_ups.by_token(db, token)
    project = db.get(Project, call_up.project_id)
    assignment = db.get(Assignment, call_up.assignment_id)
    assert project is not None and assignment is not None
    return Invitation(call_up, project, assignment, _answerable(call_up, assignment, clock))


def answer(
    db: Session, clock: Clock, token: str, accept: bool, reason: str | None
) -> tuple[Assignment, Assignment | None]:
    """The member's own answer by the link; a decline moves the next backup up (and calls
    them up). CallUpExpired once the deadline has passed or the seat was answered."""
    found = invitation(db, clock, token)
    call_up = found.call_up
    if not found.answerable:
        raise CallUpExpired(
            "this call-up can no longer be answered",
            answer=call_up.answer or found.assignment.status,
        )
    caller = audit.Caller(call_up.center_id, f"expert:{call_up.expert_id}")
    # A member who cannot come is not refused because nobody is left to ask: the decline
    # stands and the seat waits for a supplementary draw.
    answered, promoted = draws.respond(
        db,
        caller,
        clock,
        call_up.project_id,
        call_up.assignment_id,
        accept,
        reason,
        vacant_ok=True,
    )
    if not accept and promoted is None:
        _seat_unfilled(db, caller, clock, answered)
    return answered, promoted


def expire_overdue(db: Session, clock: Clock) -> int:
    """Count every member who let the deadline pass as declining; returns how many."""
    expired = 0
    for call_up in call_ups.overdue(db, clock.now()):
        assignment = db.get(Assignment, call_up.assignment_id)
        assert assignment is not None
        caller = audit.Caller(call_up.center_id, "job:call-up")
        if assignment.role != "member" or assignment.status != draws.AssignmentStatus.INVITED:
            call_ups.close(db, assignment, assignment.status, clock.now())
            continue
        audit.record(
            db,
            caller,
            clock,
            Action.CALL_UP_EXPIRED,
            "assignment",
            assignment.id,
            {
                "project_id": assignment.project_id,
                "expert_id": assignment.expert_id,
                "call_up_id": call_up.id,
                "deadline": call_up.deadline_at.isoformat() if call_up.deadline_at else None,
            },
        )
        call_up.answer, call_up.answered_at = "expired", clock.now()
        _, promoted = draws.respond(
            db,
            caller,
            clock,
            assignment.project_id,
            assignment.id,
            False,
            NO_ANSWER,
            vacant_ok=True,
        )
        if promoted is None:  # the seat waits for a supplementary draw
            _seat_unfilled(db, caller, clock, assignment)
        expired += 1
    return expired


def _answerable(call_up: CallUp, assignment: Assignment, clock: Clock) -> bool:
    return (
        call_up.answer is None
        and assignment.role == "member"
        and assignment.status == draws.AssignmentStatus.INVITED
        and (call_up.deadline_at is None or clock.now() < call_up.deadline_at)
    )


def _seat_unfilled(db: Session, caller: audit.Caller, clock: Clock, seat: Assignment) -> None:
    audit.record(
        db,
        caller,
        clock,
        Action.CALL_UP_SEAT_UNFILLED,
        "assignment",
        seat.id,
        {"project_id": seat.project_id, "specialty": seat.specialty},
    )
