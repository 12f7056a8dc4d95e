"""The request's transaction: a 2xx means stored, an error means nothing changed, and a
refusal the log must keep (audit.refused) is written after the rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import transaction
from api.services import Services
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from models.tables import AuditEntry
from tests.factories import CenterWithStaff


class _Refused(DomainError):
    status = 403
    code = "test-refused"
    title = "Refused"


def _actions(db: Session, center_id: str) -> list[str]:
    db.expire_all()
    return list(
        db.execute(
            select(AuditEntry.action)
            .where(AuditEntry.center_id == center_id)
            .order_by(AuditEntry.seq)
        ).scalars()
    )


def test_refusal_rolls_back_the_request_and_keeps_its_log_entry(
    db: Session, services: Services, center: CenterWithStaff
) -> None:
    db.commit()
    before = _actions(db, center.id)
    refusal = audit.AuditEvent(Action.TASK_SCAN_REFUSED, "project", None, {"reason": "x"})
    with pytest.raises(_Refused), transaction(services) as session:
        # A change the request made before it was refused: it must not survive.
        audit.record(session, center.caller, services.clock, Action.PROJECT_CREATED, "p", "1")
        raise audit.refused(_Refused("no"), center.caller, refusal)
    after = _actions(db, center.id)
    assert after == [*before, Action.TASK_SCAN_REFUSED.value]
    assert audit.verify_chain(db, center.id).ok


def test_plain_domain_error_leaves_nothing(
    db: Session, services: Services, center: CenterWithStaff
) -> None:
    db.commit()
    before = _actions(db, center.id)
    with pytest.raises(NotFound), transaction(services) as session:
        audit.record(session, center.caller, services.clock, Action.PROJECT_CREATED, "p", "1")
        raise NotFound("gone")
    assert _actions(db, center.id) == before


def test_refusal_in_a_read_only_transaction_is_still_logged(
    db: Session, services: Services, center: CenterWithStaff
) -> None:
    db.commit()
    before = _actions(db, center.id)
    refusal = audit.AuditEvent(Action.FACE_SUBMISSION_REFUSED, "face_challenge", "c", {})
    with pytest.raises(_Refused), transaction(services, read_only=True):
        raise audit.refused(_Refused("replayed"), center.caller, refusal)
    assert _actions(db, center.id) == [*before, Action.FACE_SUBMISSION_REFUSED.value]
