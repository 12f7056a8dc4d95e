"""Trading centers: the tenants. Every other record belongs to exactly one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DuplicateCenter, NotFound
from models.base import new_id
from models.clock import Clock
from models.tables import Center


def create_center(db: Session, name: str, clock: Clock, *, actor: str = "cli") -> Center:
    """Create a center with its empty audit chain; the creation is the chain's first entry."""
    name = name.strip()
    if find_center_by_name(db, name) is not None:
        raise DuplicateCenter(f"center {name!r} already exists")
    center = Center(id=new_id(), name=name, created_at=clock.now())
    db.add(center)
    db.flush()
    audit.start_chain(db, center.id)
    audit.record(
        db,
        audit.Caller(center.id, actor),
        clock,
        Action.CENTER_CREATED,
        "center",
        center.id,
        {"name": name},
    )
    return center


def find_center_by_name(db: Session, name: str) -> Center | None:
    return db.execute(select(Center).where(Center.name == name.strip())).scalar_one_or_none()


def get_center(db: Session, center_id: str) -> Center:
    center = db.get(Center, center_id)
    if center is None:
        raise NotFound(f"no center {center_id}")
    return center


def list_centers(db: Session) -> list[Center]:
    return list(db.execute(select(Center).order_by(Center.created_at)).scalars())
