"""Projects sent by the trading platform, the center's system of record: created and
revised by the platform's own project code, each platform seeing only its own projects.

The operator's path (api/routers/projects.py) stays; both go through the same project
rules (committee_problems, revise_project). What the platform adds: units must already be
in the center's register unless the center lets intake register them, since a code the
register has never seen, arriving by machine, is more often a typo than a new company.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.committee import projects
from evaluation.committee.projects import NewProject, ProjectChanges
from evaluation.kernel import audit
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.registry import units
from models.clock import Clock
from models.tables import Project

PLATFORM_ROLE = "platform"


class UnitUnknown(DomainError):
    status = 422
    code = "unit-unknown"
    title = "A credit code is not in the center's register of units"


def platform_actor(platform: str) -> str:
    return f"platform:{platform}"


def _refuse_unknown_units(db: Session, center_id: str, fields: NewProject) -> None:
    unknown = [
        party.credit_code
        for party in projects.parties(fields)
        if units.unit_by_credit_code(db, center_id, party.credit_code) is None
    ]
    if unknown:
        raise UnitUnknown(
            f"not in the center's register: {', '.join(unknown)}; register the units first "
            "or ask the center to let intake register them",
            credit_codes=unknown,
        )


def create_from_platform(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    fields: NewProject,
    *,
    register_units: bool,
) -> Project:
    if not register_units:
        _refuse_unknown_units(db, caller.center_id, fields)
    return projects.create_project(db, caller, clock, fields)


def platform_project(
    db: Session, caller: audit.Caller, code: str, *, lock: bool = False
) -> Project:
    """The platform's project by its code; another platform's or the operator's is not
    found (it is not this platform's to read or change)."""
    query = select(Project).where(
        Project.center_id == caller.center_id,
        Project.code == code,
        Project.created_by == caller.actor,
    )
    if lock:
        query = query.with_for_update()
    project = db.execute(query).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project {code!r} from this platform")
    return project


def revise_from_platform(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    code: str,
    changes: ProjectChanges,
    *,
    register_units: bool,
) -> tuple[Project, list[str]]:
    project = platform_project(db, caller, code, lock=True)
    if not register_units:
        _refuse_unknown_units(db, caller.center_id, projects.revised_fields(project, changes))
    return project, projects.revise_project(db, caller, clock, project, changes)
