"""A document's status machine, which is also a contract's (a contract has no status of
its own): every arrow of DOCUMENT_TRANSITIONS works through `transition`, with its audit
entry where it has one (a contract's issue is in contract.created), and every other
(status, action) is refused with InvalidTransition, changing nothing."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from evaluation.documents.documents import (
    DOCUMENT_TRANSITIONS,
    DocumentAction,
    DocumentStatus,
    change_status,
    transition,
)
from evaluation.kernel.errors import InvalidTransition
from models.base import new_id
from models.clock import FrozenClock
from models.tables import Document
from tests.evaluation.status_machines import allowed_statuses, entries
from tests.factories import CenterWithStaff

PAIRS = list(itertools.product(DocumentStatus, DocumentAction))
RECORDED = {
    DocumentAction.START: "document.start",
    DocumentAction.CANCEL: "document.cancel",
    DocumentAction.ARCHIVE: "document.archived",
    DocumentAction.COMPLETE: "document.completed",
}


def document_in(status: DocumentStatus, center: CenterWithStaff) -> Document:
    return Document(id=new_id(), center_id=center.id, status=status.value)


def test_the_statuses_are_those_the_column_allows() -> None:
    assert {s.value for s in DocumentStatus} == allowed_statuses(Document)


@pytest.mark.parametrize(("status", "action"), [p for p in PAIRS if p in DOCUMENT_TRANSITIONS])
def test_an_allowed_change_moves_the_document(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: DocumentStatus,
    action: DocumentAction,
) -> None:
    document = document_in(status, center)
    before = len(entries(db, center.id))
    details = {"sha256": "cd" * 32}

    target = transition(db, center.caller, clock, document, action, details)

    assert target is DOCUMENT_TRANSITIONS[(status, action)]
    assert document.status == target.value
    written = entries(db, center.id)[before:]
    if action is DocumentAction.ISSUE:
        assert written == []  # the contract's own entry records it
    else:
        [entry] = written
        assert (entry.action, entry.subject_type, entry.subject_id, entry.details) == (
            RECORDED[action],
            "document",
            document.id,
            details,
        )


@pytest.mark.parametrize(("status", "action"), [p for p in PAIRS if p not in DOCUMENT_TRANSITIONS])
def test_any_other_change_is_refused_and_writes_nothing(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: DocumentStatus,
    action: DocumentAction,
) -> None:
    document = document_in(status, center)
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition) as refused:
        transition(db, center.caller, clock, document, action, {})

    assert refused.value.status == 409
    assert refused.value.extensions == {"current_status": status.value}
    assert document.status == status.value
    assert len(entries(db, center.id)) == before


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (DocumentStatus.DRAFT, "issue"),
        (DocumentStatus.DRAFT, "archive"),
        (DocumentStatus.SIGNING, "complete"),
    ],
)
def test_the_operator_only_starts_or_cancels(
    db: Session, clock: FrozenClock, center: CenterWithStaff, status: DocumentStatus, action: str
) -> None:
    """Completing, archiving and issuing happen in their flows, never by the status route."""
    document = document_in(status, center)
    document.title, document.purpose, document.file_name = "t", "other", "t.pdf"
    document.page_count, document.size, document.sha256 = 1, 1, "00" * 32
    document.created_by, document.created_at, document.updated_at = "test", clock.now(), clock.now()
    db.add(document)
    db.flush()
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition):
        change_status(db, center.caller, clock, document.id, action, None)

    assert document.status == status.value
    assert len(entries(db, center.id)) == before
