"""The one lookup of a row that belongs to a center: by id, within the caller's center.

A row of another center answers exactly as a row that does not exist (404 `not-found`),
so one center learns nothing of another's ids."""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from evaluation.kernel.errors import NotFound


class CenterOwned(Protocol):
    @property
    def center_id(self) -> str: ...


Row = TypeVar("Row", bound=CenterOwned)


def in_center(
    db: Session, model: type[Row], row_id: str, center_id: str, what: str, *, lock: bool = False
) -> Row:
    """The `model` row `row_id` of center `center_id`, locked for update if asked; NotFound
    naming it as `what` ("contract", "webhook delivery") otherwise."""
    row = db.get(model, row_id, with_for_update=lock)
    if row is None or row.center_id != center_id:
        raise NotFound(f"no {what} {row_id} in this center")
    return row
