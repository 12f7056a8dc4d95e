"""The one tenant-scoped lookup: a row of the caller's center, and the same 404 for a row
of another center as for one that does not exist."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel.errors import NotFound
from evaluation.kernel.tenancy import in_center
from models.tables import StaffToken
from tests.factories import CenterWithStaff


def _token_of(db: Session, center: CenterWithStaff) -> StaffToken:
    return db.scalars(select(StaffToken).where(StaffToken.center_id == center.id)).first()  # type: ignore[return-value]


def test_a_row_of_the_callers_center_is_found(db: Session, center: CenterWithStaff) -> None:
    token = _token_of(db, center)
    assert in_center(db, StaffToken, token.id, center.id, "staff token") is token
    assert in_center(db, StaffToken, token.id, center.id, "staff token", lock=True) is token


def test_another_centers_row_answers_as_a_missing_one(
    db: Session, center: CenterWithStaff, other_center: CenterWithStaff
) -> None:
    theirs = _token_of(db, other_center)
    with pytest.raises(NotFound) as foreign:
        in_center(db, StaffToken, theirs.id, center.id, "staff token")
    with pytest.raises(NotFound) as missing:
        in_center(db, StaffToken, "no-such-id", center.id, "staff token")
    assert str(foreign.value) == f"no staff token {theirs.id} in this center"
    assert str(missing.value) == "no staff token no-such-id in this center"
