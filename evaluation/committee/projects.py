"""Bid-evaluation projects and the committee rules of the field.

Under the Tendering and Bidding Law (招标投标法) a committee has at least 5 members, an odd
number, and experts make up at least two thirds of it (the tenderer's own representatives
are named, not drawn). Under the Government Procurement Law (政府采购法) a committee has at
least 5 members, and at least 7 when the budget is 10 million yuan or more.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.kernel.identifiers import Text, Token, credit_code_check_char
from evaluation.kernel.transitions import next_status
from evaluation.registry import units
from models.base import new_id
from models.clock import Clock
from models.tables import Project

LARGE_PROCUREMENT_YUAN = 10_000_000


class Regime(StrEnum):
    TENDERING = "tendering"
    PROCUREMENT = "procurement"


class CommitteeRuleViolated(DomainError):
    status = 422
    code = "committee-rule-violated"
    title = "The committee spec breaks the rules of the project's legal regime"


class DuplicateProject(DomainError):
    status = 409
    code = "duplicate-project"
    title = "A project with this code already exists in this center"


CreditCode = Annotated[str, Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]


def _checked_credit_code(value: str) -> str:
    if credit_code_check_char(value[:17]) != value[17]:
        raise ValueError("the unified social credit code's check character is wrong")
    return value


class Unit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    credit_code: CreditCode

    _check = field_validator("credit_code")(_checked_credit_code)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Token = Field(min_length=1, max_length=32)
    name: Text = Field(min_length=1, max_length=200)


class Seats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    specialty: str = Field(pattern=r"^[A-Z][0-9A-Z]{0,15}$")
    seats: int = Field(ge=1, le=50)
    backups: int = Field(default=2, ge=0, le=50)


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=100)
    max_points: float = Field(gt=0, le=100)
    group: str = Field(pattern="^(price|technical|business)$")


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Token = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=300)
    regime: Regime
    budget_yuan: int | None = Field(default=None, ge=0, le=2**63 - 1)
    tenderer: Unit
    bidders: list[Unit] = Field(min_length=1, max_length=200)
    sections: list[Section] = Field(min_length=1, max_length=50)
    evaluation_start: datetime
    evaluation_end: datetime
    mode: str = Field(default="remote", pattern="^(remote|onsite)$")
    committee: list[Seats] = Field(min_length=1, max_length=20)
    tenderer_representatives: int = Field(default=0, ge=0, le=10)
    criteria: list[Criterion] = Field(min_length=1, max_length=50)
    aggregation: str = Field(default="mean", pattern="^(mean|trimmed_mean)$")

    @model_validator(mode="after")
    def _consistent(self) -> NewProject:
        if self.evaluation_end <= self.evaluation_start:
            raise ValueError("evaluation_end must be after evaluation_start")
        if self.evaluation_start.tzinfo is None:
            raise ValueError("give the evaluation window with a time zone")
        specialties = [seat.specialty for seat in self.committee]
        if len(set(specialties)) != len(specialties):
            raise ValueError("a specialty appears twice in the committee spec")
        names = [criterion.name for criterion in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError("two scoring criteria have the same name")
        codes = [bidder.credit_code for bidder in self.bidders]
        if len(set(codes)) != len(codes) or self.tenderer.credit_code in codes:
            raise ValueError("bidders and the tenderer must be different units")
        if self.regime is Regime.PROCUREMENT and self.budget_yuan is None:
            raise ValueError("a procurement project states its budget (budget_yuan)")
        return self


def committee_problems(fields: NewProject) -> list[str]:
    """Every rule of the regime the committee spec breaks (empty: it is lawful)."""
    drawn = sum(seat.seats for seat in fields.committee)
    total = drawn + fields.tenderer_representatives
    problems = []
    if total < 5:
        problems.append(f"a committee has at least 5 members; this one has {total}")
    if fields.regime is Regime.TENDERING:
        if total % 2 == 0:
            problems.append(f"a committee has an odd number of members; this one has {total}")
        if drawn * 3 < total * 2:
            problems.append(
                f"experts must be at least two thirds of the committee: {drawn} of {total}"
            )
    else:
        budget = fields.budget_yuan or 0
        if budget >= LARGE_PROCUREMENT_YUAN and total < 7:
            problems.append(
                f"a procurement of {budget} yuan (10 million or more) needs at least 7 "
                f"members; this one has {total}"
            )
        if fields.tenderer_representatives and drawn * 3 < total * 2:
            problems.append(
                f"experts must be at least two thirds of the committee: {drawn} of {total}"
            )
    if fields.aggregation == "trimmed_mean" and drawn < 5:
        problems.append("dropping the highest and lowest score needs at least 5 experts")
    return problems


def parties(fields: NewProject) -> list[Unit]:
    return [fields.tenderer, *fields.bidders]


def _lawful(db: Session, caller: audit.Caller, clock: Clock, fields: NewProject) -> dict[str, Any]:
    """The project's columns for these fields, once the committee is lawful and every party
    is a registered unit (new ones registered on the way)."""
    problems = committee_problems(fields)
    if problems:
        raise CommitteeRuleViolated("; ".join(problems), problems=problems)
    registered = units.units_of_project(
        db, caller, clock, [units.Party(u.name, u.credit_code) for u in parties(fields)]
    )
    return {
        "code": fields.code,
        "name": fields.name,
        "regime": fields.regime.value,
        "budget_yuan": fields.budget_yuan,
        "tenderer_name": fields.tenderer.name,
        "tenderer_credit_code": fields.tenderer.credit_code,
        "tenderer_unit_id": registered[fields.tenderer.credit_code].id,
        "bidders": [
            {**bidder.model_dump(), "unit_id": registered[bidder.credit_code].id}
            for bidder in fields.bidders
        ],
        "sections": [section.model_dump() for section in fields.sections],
        "evaluation_start": fields.evaluation_start,
        "evaluation_end": fields.evaluation_end,
        "mode": fields.mode,
        "committee_spec": [seat.model_dump() for seat in fields.committee],
        "tenderer_representatives": fields.tenderer_representatives,
        "criteria": [criterion.model_dump() for criterion in fields.criteria],
        "aggregation": fields.aggregation,
    }


def create_project(db: Session, caller: audit.Caller, clock: Clock, fields: NewProject) -> Project:
    columns = _lawful(db, caller, clock, fields)
    now = clock.now()
    project = Project(
        id=new_id(),
        center_id=caller.center_id,
        **columns,
        status=ProjectStatus.DRAFT.value,
        created_by=caller.actor,
        created_at=now,
        updated_at=now,
    )
    db.add(project)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError as exc:
        raise DuplicateProject(f"project code {fields.code!r} is taken in this center") from exc
    audit.record(
        db,
        caller,
        clock,
        Action.PROJECT_CREATED,
        "project",
        project.id,
        {"code": project.code, "regime": project.regime, "tenderer": project.tenderer_credit_code},
    )
    return project


class ProjectStatus(StrEnum):
    DRAFT = "draft"
    DRAWN = "drawn"
    EVALUATING = "evaluating"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # the column allows it; no transition leads there (below)


class ProjectAction(StrEnum):
    DRAW = "draw"  # its first draw ran: the committee is seated
    START = "start"  # a member signed in: the evaluation is under way
    COMPLETE = "complete"  # the whole committee signed the report


# Every allowed status change, in one place: (from, action) -> to. Nothing in the domain
# cancels a project (no route, no audit action, no event), so `cancelled` gets no arrow
# until something needs it.
PROJECT_TRANSITIONS: dict[tuple[ProjectStatus, ProjectAction], ProjectStatus] = {
    (ProjectStatus.DRAFT, ProjectAction.DRAW): ProjectStatus.DRAWN,
    (ProjectStatus.DRAWN, ProjectAction.START): ProjectStatus.EVALUATING,
    (ProjectStatus.EVALUATING, ProjectAction.COMPLETE): ProjectStatus.COMPLETED,
}
# The changes with an audit entry of their own; the others are in the entry of what made
# them (the draw's draw.completed, the member's evaluation.signed_in).
_AUDITED = {ProjectAction.COMPLETE: Action.PROJECT_COMPLETED}


def change_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    project: Project,
    action: ProjectAction,
    details: dict[str, Any] | None = None,
) -> ProjectStatus:
    """Move the project along PROJECT_TRANSITIONS (InvalidTransition otherwise, nothing
    written), with its audit entry where the change has one."""
    current = ProjectStatus(project.status)
    target = next_status(
        PROJECT_TRANSITIONS,
        current,
        action,
        f"project {project.code} is {current}; it cannot {action}",
    )
    project.status = target.value
    db.flush()
    if action in _AUDITED:
        audit.record(db, caller, clock, _AUDITED[action], "project", project.id, details)
    return target


def get_project(db: Session, center_id: str, project_id: str, *, lock: bool = False) -> Project:
    query = select(Project).where(Project.id == project_id, Project.center_id == center_id)
    if lock:
        query = query.with_for_update()
    project = db.execute(query).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project {project_id} in this center")
    return project


def list_projects(db: Session, center_id: str, limit: int = 100) -> list[Project]:
    return list(
        db.execute(
            select(Project)
            .where(Project.center_id == center_id)
            .order_by(Project.created_at.desc(), Project.id)
            .limit(limit)
        ).scalars()
    )


# What may still change once the committee is drawn: the experts were drawn, checked for
# conflicts of interest against these parties and called up for this window, so only an
# evaluation that runs over may end later. A completed project changes no more.
REVISABLE_AFTER_DRAW = frozenset({"evaluation_end"})
REVISABLE_STATUSES = frozenset({ProjectStatus.DRAFT, ProjectStatus.DRAWN, ProjectStatus.EVALUATING})


class ProjectFieldLocked(DomainError):
    status = 409
    code = "project-field-locked"
    title = "The project's status no longer allows this change"


class RevisionInvalid(DomainError):
    status = 422
    code = "project-revision-invalid"
    title = "The project with these changes would not be valid"


class ProjectChanges(BaseModel):
    """A revision: the fields given replace the project's; the others stay."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=300)
    regime: Regime | None = None
    budget_yuan: int | None = Field(default=None, ge=0, le=2**63 - 1)
    tenderer: Unit | None = None
    bidders: list[Unit] | None = Field(default=None, min_length=1, max_length=200)
    sections: list[Section] | None = Field(default=None, min_length=1, max_length=50)
    evaluation_start: datetime | None = None
    evaluation_end: datetime | None = None
    mode: str | None = Field(default=None, pattern="^(remote|onsite)$")
    committee: list[Seats] | None = Field(default=None, min_length=1, max_length=20)
    tenderer_representatives: int | None = Field(default=None, ge=0, le=10)
    criteria: list[Criterion] | None = Field(default=None, min_length=1, max_length=50)
    aggregation: str | None = Field(default=None, pattern="^(mean|trimmed_mean)$")

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def fields_of(project: Project) -> NewProject:
    """The project as the fields that made it (what a revision is merged into)."""
    return NewProject(
        code=project.code,
        name=project.name,
        regime=Regime(project.regime),
        budget_yuan=project.budget_yuan,
        tenderer=Unit(name=project.tenderer_name, credit_code=project.tenderer_credit_code),
        bidders=[Unit(name=b["name"], credit_code=b["credit_code"]) for b in project.bidders],
        sections=[Section(**section) for section in project.sections],
        evaluation_start=project.evaluation_start,
        evaluation_end=project.evaluation_end,
        mode=project.mode,
        committee=[Seats(**seat) for seat in project.committee_spec],
        tenderer_representatives=project.tenderer_representatives,
        criteria=[Criterion(**criterion) for criterion in project.criteria],
        aggregation=project.aggregation,
    )


def revised_fields(project: Project, changes: ProjectChanges) -> NewProject:
    """The project's fields with the changes applied, checked as a whole (a new end must
    still follow the start, a new bidder must differ from the tenderer)."""
    merged = fields_of(project).model_dump()
    merged.update(changes.given())
    try:
        return NewProject.model_validate(merged)
    except ValidationError as exc:
        messages = [str(error["msg"]) for error in exc.errors(include_url=False)]
        raise RevisionInvalid("; ".join(messages), problems=messages) from exc


def revise_project(
    db: Session, caller: audit.Caller, clock: Clock, project: Project, changes: ProjectChanges
) -> list[str]:
    """Apply a revision the project's status allows, audited; returns the fields that
    changed (none: nothing written). Refused whole when any field is locked."""
    before = fields_of(project)
    after = revised_fields(project, changes)
    changed = sorted(
        name for name in changes.given() if getattr(after, name) != getattr(before, name)
    )
    if not changed:
        return []
    if project.status not in REVISABLE_STATUSES:
        raise ProjectFieldLocked(
            f"project {project.code} is {project.status}; it changes no more",
            fields=changed,
        )
    if project.status != ProjectStatus.DRAFT:
        locked = [name for name in changed if name not in REVISABLE_AFTER_DRAW]
        if locked:
            raise ProjectFieldLocked(
                f"project {project.code} is {project.status}: after the draw only the "
                f"evaluation's end may move; refused: {', '.join(locked)}",
                fields=locked,
            )
        if after.evaluation_end < before.evaluation_end:
            raise ProjectFieldLocked(
                "after the draw the evaluation may end later, not earlier",
                fields=["evaluation_end"],
            )
    for column, value in _lawful(db, caller, clock, after).items():
        setattr(project, column, value)
    project.updated_at = clock.now()
    audit.record(
        db, caller, clock, Action.PROJECT_REVISED, "project", project.id, {"fields": changed}
    )
    return changed
