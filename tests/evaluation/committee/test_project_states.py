"""A project's status machine: every arrow of PROJECT_TRANSITIONS works through
change_status, only completion writes an audit entry of its own, and every other
(status, action) is refused with InvalidTransition, changing nothing."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from evaluation.committee.projects import (
    PROJECT_TRANSITIONS,
    ProjectAction,
    ProjectStatus,
    change_status,
)
from evaluation.kernel.errors import InvalidTransition
from models.base import new_id
from models.clock import FrozenClock
from models.tables import Project
from tests.evaluation.status_machines import allowed_statuses, entries
from tests.factories import CenterWithStaff

PAIRS = list(itertools.product(ProjectStatus, ProjectAction))


def project_in(status: ProjectStatus, center: CenterWithStaff) -> Project:
    return Project(id=new_id(), center_id=center.id, code="ZB-2026-001", status=status.value)


def test_the_statuses_are_those_the_column_allows() -> None:
    assert {s.value for s in ProjectStatus} == allowed_statuses(Project)


def test_the_table_runs_from_draft_to_completed_and_never_to_cancelled() -> None:
    assert PROJECT_TRANSITIONS == {
        (ProjectStatus.DRAFT, ProjectAction.DRAW): ProjectStatus.DRAWN,
        (ProjectStatus.DRAWN, ProjectAction.START): ProjectStatus.EVALUATING,
        (ProjectStatus.EVALUATING, ProjectAction.COMPLETE): ProjectStatus.COMPLETED,
    }


@pytest.mark.parametrize(("status", "action"), [p for p in PAIRS if p in PROJECT_TRANSITIONS])
def test_an_allowed_change_moves_the_project(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: ProjectStatus,
    action: ProjectAction,
) -> None:
    project = project_in(status, center)
    before = len(entries(db, center.id))
    details = {"report_document_id": "doc-1", "sha256": "ab" * 32}

    target = change_status(db, center.caller, clock, project, action, details)

    assert target is PROJECT_TRANSITIONS[(status, action)]
    assert project.status == target.value
    written = entries(db, center.id)[before:]
    if action is ProjectAction.COMPLETE:
        [entry] = written
        assert (entry.action, entry.subject_type, entry.subject_id) == (
            "project.completed",
            "project",
            project.id,
        )
        assert entry.details == details
    else:  # recorded by the draw's or the sign-in's own entry
        assert written == []


@pytest.mark.parametrize(("status", "action"), [p for p in PAIRS if p not in PROJECT_TRANSITIONS])
def test_any_other_change_is_refused_and_writes_nothing(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: ProjectStatus,
    action: ProjectAction,
) -> None:
    project = project_in(status, center)
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition) as refused:
        change_status(db, center.caller, clock, project, action, {})

    assert refused.value.status == 409
    assert refused.value.extensions == {"current_status": status.value}
    assert project.status == status.value
    assert len(entries(db, center.id)) == before
