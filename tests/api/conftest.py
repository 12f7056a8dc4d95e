"""Fixtures shared by the API tests of the evaluation workflow."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.services import Services
from models.clock import FrozenClock
from tests.api.committee import Committee, build_committee
from tests.api.contracting import Award, build_award
from tests.factories import CenterWithStaff


@pytest.fixture
def committee(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> Committee:
    """A drawn project with its evaluation window open (see tests/api/committee.py)."""
    return build_committee(client, center, db, clock, services)


@pytest.fixture
def award(
    client: TestClient,
    center: CenterWithStaff,
    db: Session,
    clock: FrozenClock,
    services: Services,
) -> Award:
    """An awarded project ready for its contract (see tests/api/contracting.py)."""
    return build_award(client, center, db, clock, services)
