"""What the tests of every status machine share: the values a status column's CHECK
constraint allows, and the audit entries a change left."""

from __future__ import annotations

import re

from sqlalchemy import CheckConstraint, select
from sqlalchemy.orm import Session

from models.base import Base
from models.tables import AuditEntry


def allowed_statuses(model: type[Base]) -> set[str]:
    """The values the table's `status IN (...)` constraint lets the database store."""
    for constraint in model.__table__.constraints:
        if isinstance(constraint, CheckConstraint):
            text = str(constraint.sqltext)
            if text.startswith("status IN"):
                return set(re.findall(r"'([^']*)'", text))
    raise AssertionError(f"{model.__name__} has no status constraint")


def entries(db: Session, center_id: str) -> list[AuditEntry]:
    return list(
        db.scalars(
            select(AuditEntry).where(AuditEntry.center_id == center_id).order_by(AuditEntry.seq)
        )
    )
