"""A certificate's status machine (an expert's credential, a unit's seal): hold and
release follow the expert's suspension, revocation is for good; every arrow writes its
audit entry, and every other (status, action) is refused with InvalidTransition, changing
nothing."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from evaluation.kernel.errors import InvalidTransition
from evaluation.trust.credential_states import (
    CREDENTIAL_TRANSITIONS,
    CredentialAction,
    CredentialStatus,
    change_status,
)
from models.base import new_id
from models.clock import FrozenClock
from models.tables import IssuedCertificate
from tests.evaluation.status_machines import allowed_statuses, entries
from tests.factories import CenterWithStaff

PAIRS = list(itertools.product(CredentialStatus, CredentialAction))
RECORDED = {
    CredentialAction.HOLD: "credential.suspended",
    CredentialAction.RELEASE: "credential.resumed",
    CredentialAction.REVOKE: "credential.revoked",
}


def credential_in(status: CredentialStatus, center: CenterWithStaff) -> IssuedCertificate:
    return IssuedCertificate(id=new_id(), center_id=center.id, serial="0a1b", status=status.value)


def test_the_statuses_are_those_the_column_allows() -> None:
    assert {s.value for s in CredentialStatus} == allowed_statuses(IssuedCertificate)


def test_a_revoked_credential_stays_revoked() -> None:
    assert CREDENTIAL_TRANSITIONS == {
        (CredentialStatus.VALID, CredentialAction.HOLD): CredentialStatus.SUSPENDED,
        (CredentialStatus.SUSPENDED, CredentialAction.RELEASE): CredentialStatus.VALID,
        (CredentialStatus.VALID, CredentialAction.REVOKE): CredentialStatus.REVOKED,
        (CredentialStatus.SUSPENDED, CredentialAction.REVOKE): CredentialStatus.REVOKED,
    }


@pytest.mark.parametrize(("status", "action"), [p for p in PAIRS if p in CREDENTIAL_TRANSITIONS])
def test_an_allowed_change_moves_the_credential_with_its_entry(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: CredentialStatus,
    action: CredentialAction,
) -> None:
    row = credential_in(status, center)
    before = len(entries(db, center.id))
    details = {"expert_id": "e-1", "serial": row.serial}

    target = change_status(db, center.caller, clock, row, action, details)

    assert target is CREDENTIAL_TRANSITIONS[(status, action)]
    assert row.status == target.value
    [entry] = entries(db, center.id)[before:]
    assert (entry.action, entry.subject_type, entry.subject_id, entry.details) == (
        RECORDED[action],
        "certificate",
        row.id,
        details,
    )


@pytest.mark.parametrize(
    ("status", "action"), [p for p in PAIRS if p not in CREDENTIAL_TRANSITIONS]
)
def test_any_other_change_is_refused_and_writes_nothing(
    db: Session,
    clock: FrozenClock,
    center: CenterWithStaff,
    status: CredentialStatus,
    action: CredentialAction,
) -> None:
    row = credential_in(status, center)
    before = len(entries(db, center.id))

    with pytest.raises(InvalidTransition) as refused:
        change_status(db, center.caller, clock, row, action, {})

    assert refused.value.status == 409
    assert refused.value.extensions == {"current_status": status.value}
    assert row.status == status.value
    assert len(entries(db, center.id)) == before
