"""A seat's (assignment's) status machine: every arrow of ASSIGNMENT_TRANSITIONS works,
with the audit entry the change has (an answer or a replacement; not a backup's promotion,
which the seat it fills records), and every other (status, action) is refused with
InvalidTransition, changing nothing."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from evaluation.committee.draws import (
    ASSIGNMENT_TRANSITIONS,
    AssignmentAction,
    AssignmentStatus,
    change_assignment_status,
)
from evaluation.kernel.errors import InvalidTransition
from models.base import new_id
from models.clock import FrozenClock
from models.tables import Assignment
from tests.evaluation.status_machines import allowed_statuses, entries
from tests.factories import CenterWithStaff

SEAT_PAIRS = list(itertools.product(AssignmentStatus, AssignmentAction))


def seat_in(status: AssignmentStatus, center: CenterWithStaff) -> Assignment:
    role = "backup" if status is AssignmentStatus.STANDBY else "member"
    return Assignment(id=new_id(), center_id=center.id, role=role, status=status.value)


def test_the_statuses_are_those_the_column_allows() -> None:
    assert {s.value for s in AssignmentStatus} == allowed_statuses(Assignment)


def test_a_seat_is_answered_once_and_replaced_while_held() -> None:
    assert ASSIGNMENT_TRANSITIONS == {
        (AssignmentStatus.STANDBY, AssignmentAction.PROMOTE): AssignmentStatus.INVITED,
        (AssignmentStatus.INVITED, AssignmentAction.ACCEPT): AssignmentStatus.ACCEPTED,
        (AssignmentStatus.INVITED, AssignmentAction.DECLINE): AssignmentStatus.DECLINED,
        (AssignmentStatus.INVITED, AssignmentAction.REPLACE): AssignmentStatus.REPLACED,
        (AssignmentStatus.ACCEPTED, AssignmentAction.REPLACE): AssignmentStatus.REPLACED,
    }


RECORDED = {
    AssignmentAction.ACCEPT: "assignment.accepted",
    AssignmentAction.DECLINE: "assignment.declined",
    AssignmentAction.REPLACE: "assignment.replaced",
}


@pytest.mark.parametrize(
    ("status", "action"), [p for p in SEAT_PAIRS if p in ASSIGNMENT_TRANSITIONS]
)
def test_an_allowed_change_moves_the_seat(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: AssignmentStatus,
    action: AssignmentAction,
) -> None:
    seat = seat_in(status, center)
    before = len(entries(db, center.id))
    details = {"project_id": "p-1", "reason": None}

    target = change_assignment_status(db, center.caller, clock, seat, action, details)

    assert target is ASSIGNMENT_TRANSITIONS[(status, action)]
    assert seat.status == target.value
    written = entries(db, center.id)[before:]
    if action is AssignmentAction.PROMOTE:
        assert written == []  # the entry of the seat it fills names the backup
    else:
        [entry] = written
        assert (entry.action, entry.subject_type, entry.subject_id, entry.details) == (
            RECORDED[action],
            "assignment",
            seat.id,
            details,
        )


@pytest.mark.parametrize(
    ("status", "action"), [p for p in SEAT_PAIRS if p not in ASSIGNMENT_TRANSITIONS]
)
def test_any_other_seat_change_is_refused_and_writes_nothing(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: AssignmentStatus,
    action: AssignmentAction,
) -> None:
    seat = seat_in(status, center)
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition) as refused:
        change_assignment_status(db, center.caller, clock, seat, action, {})

    assert refused.value.status == 409
    assert refused.value.extensions == {"current_status": status.value}
    assert seat.status == status.value
    assert len(entries(db, center.id)) == before
