"""A draw's status machine: a committed draw runs once, with its audit entry (draw.completed,
or draw.supplementary_completed for a draw that fills vacant seats); running it again is
refused with InvalidTransition, changing nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from evaluation.committee.draws import DRAW_TRANSITIONS, DrawAction, DrawStatus, change_draw_status
from evaluation.kernel.errors import InvalidTransition
from models.base import new_id
from models.clock import FrozenClock
from models.tables import Draw
from tests.evaluation.status_machines import allowed_statuses, entries
from tests.factories import CenterWithStaff


def draw_in(status: DrawStatus, center: CenterWithStaff, previous: str | None = None) -> Draw:
    return Draw(id=new_id(), center_id=center.id, status=status.value, previous_draw_id=previous)


def test_the_statuses_are_those_the_column_allows() -> None:
    assert {s.value for s in DrawStatus} == allowed_statuses(Draw)


def test_a_draw_runs_once() -> None:
    assert DRAW_TRANSITIONS == {(DrawStatus.COMMITTED, DrawAction.RUN): DrawStatus.COMPLETED}


@pytest.mark.parametrize(
    ("previous", "recorded"),
    [(None, "draw.completed"), ("draw-1", "draw.supplementary_completed")],
)
def test_running_a_committed_draw_completes_it_with_its_entry(
    db: Session, clock: FrozenClock, center: CenterWithStaff, previous: str | None, recorded: str
) -> None:
    draw = draw_in(DrawStatus.COMMITTED, center, previous)
    before = len(entries(db, center.id))

    target = change_draw_status(db, center.caller, clock, draw, DrawAction.RUN, {"n": 1})

    assert target is DrawStatus.COMPLETED
    assert draw.status == "completed"
    [entry] = entries(db, center.id)[before:]
    assert (entry.action, entry.subject_type, entry.subject_id, entry.details) == (
        recorded,
        "draw",
        draw.id,
        {"n": 1},
    )


def test_a_completed_draw_does_not_run_again(
    db: Session, clock: FrozenClock, center: CenterWithStaff
) -> None:
    draw = draw_in(DrawStatus.COMPLETED, center)
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition) as refused:
        change_draw_status(db, center.caller, clock, draw, DrawAction.RUN, {})

    assert refused.value.extensions == {"current_status": "completed"}
    assert draw.status == "completed"
    assert len(entries(db, center.id)) == before
