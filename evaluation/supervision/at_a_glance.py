"""What a supervisor's console shows at a glance: the day's and the coming evaluations,
each with its committee's sign-in progress (who, when, by which method), open flags and
the report's signatures still missing; and a project search.

Who sits on a committee is sealed until the evaluation starts (draws.proof_is_sealed):
before that a supervisor sees how many seats are filled and signed in, never names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from evaluation.committee.draws import AssignmentStatus, proof_is_sealed
from evaluation.committee.projects import ProjectStatus
from models.clock import Clock
from models.tables import (
    AnomalyFlag,
    Assignment,
    EvaluationSession,
    Expert,
    Project,
    SignerSlot,
    StaffToken,
)

UPCOMING_DAYS = 7
SEARCH_LIMIT = 100


@dataclass(frozen=True)
class Seat:
    """One committee seat; `name` is None while the committee is sealed."""

    assignment_id: str
    name: str | None
    chair: bool
    signed_in_at: datetime | None
    method: str | None  # passkey | sms | in-person, how the sign-in's second factor came


@dataclass(frozen=True)
class Glance:
    project: Project
    sealed: bool
    seats: list[Seat]
    open_flags: int
    signatures_missing: int | None  # None until a report exists

    @property
    def signed_in(self) -> int:
        return sum(seat.signed_in_at is not None for seat in self.seats)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The center's calendar day as an interval of instants."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, start + timedelta(days=1)


def evaluations_at_a_glance(
    db: Session, center_id: str, role: str, clock: Clock, zone: ZoneInfo
) -> list[Glance]:
    """Today's evaluations (in the center's time zone), those still running, and those of
    the next days, in the order they start."""
    today, _ = day_bounds(clock.now().astimezone(zone).date(), zone)
    horizon = today + timedelta(days=UPCOMING_DAYS + 1)
    projects = db.execute(
        select(Project)
        .where(
            Project.center_id == center_id,
            Project.status != ProjectStatus.CANCELLED,
            Project.evaluation_start < horizon,
            or_(Project.evaluation_end >= today, Project.status == ProjectStatus.EVALUATING),
        )
        .order_by(Project.evaluation_start, Project.code)
    ).scalars()
    return [_glance(db, project, role, clock) for project in projects]


def search_projects(
    db: Session, center_id: str, text: str | None = None, status: str | None = None
) -> list[Project]:
    """Projects whose code or name contains `text`, newest evaluation first."""
    query = select(Project).where(Project.center_id == center_id)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Project.code.ilike(pattern, escape="\\"), Project.name.ilike(pattern, escape="\\"))
        )
    if status:
        query = query.where(Project.status == status)
    order = (Project.evaluation_start.desc(), Project.code)
    return list(db.execute(query.order_by(*order).limit(SEARCH_LIMIT)).scalars())


def _glance(db: Session, project: Project, role: str, clock: Clock) -> Glance:
    sealed = proof_is_sealed(project, role, clock)
    members = db.execute(
        select(Assignment, Expert.name)
        .join(Expert, Expert.id == Assignment.expert_id)
        .where(
            Assignment.project_id == project.id,
            Assignment.role == "member",
            Assignment.status.in_((AssignmentStatus.INVITED, AssignmentStatus.ACCEPTED)),
        )
        .order_by(Assignment.rank)
    ).all()
    sessions: dict[str, EvaluationSession] = {}
    for session in db.execute(
        select(EvaluationSession)
        .where(EvaluationSession.project_id == project.id, EvaluationSession.revoked_at.is_(None))
        .order_by(EvaluationSession.created_at)
    ).scalars():
        sessions.setdefault(session.assignment_id, session)  # the first sign-in counts
    seats = [
        Seat(
            assignment_id=assignment.id,
            name=None if sealed else name,
            chair=assignment.id == project.chair_assignment_id,
            signed_in_at=session.created_at if session else None,
            method=_method(session) if session else None,
        )
        for assignment, name in members
        for session in [sessions.get(assignment.id)]
    ]
    open_flags = db.execute(
        select(func.count())
        .select_from(AnomalyFlag)
        .where(AnomalyFlag.project_id == project.id, AnomalyFlag.status == "open")
    ).scalar_one()
    missing = None
    if project.report_document_id is not None:
        missing = db.execute(
            select(func.count())
            .select_from(SignerSlot)
            .where(
                SignerSlot.document_id == project.report_document_id,
                SignerSlot.status != "signed",
            )
        ).scalar_one()
    return Glance(project, sealed, seats, open_flags, missing)


def _method(session: EvaluationSession) -> str:
    if session.passkey_use_id is not None:
        return "passkey"
    if session.one_time_code_id is not None:
        return "sms"
    return "in-person"


@dataclass(frozen=True)
class Actor:
    """Who an audit entry's actor is, in words: a kind the console translates (staff roles,
    expert, phone, face check, command line, service) and a name where one is known and may
    be shown."""

    kind: str
    name: str | None


def actors_in_words(
    db: Session, center_id: str, actors: Iterable[str], sealed: bool
) -> dict[str, Actor]:
    """Names for the actors of a project's timeline. Experts stay unnamed while the
    committee is sealed; phones and face checks are named by what they are."""
    wanted = set(actors)
    by_kind: dict[str, set[str]] = {}
    for actor in wanted:
        kind, _, ident = actor.partition(":")
        by_kind.setdefault(kind, set()).add(ident)
    staff = {
        token.id: token
        for token in db.execute(
            select(StaffToken).where(
                StaffToken.center_id == center_id, StaffToken.id.in_(by_kind.get("staff", ()))
            )
        ).scalars()
    }
    experts: dict[str, str] = {
        expert_id: name
        for expert_id, name in db.execute(
            select(Expert.id, Expert.name).where(
                Expert.center_id == center_id, Expert.id.in_(by_kind.get("expert", ()))
            )
        ).all()
    }
    named: dict[str, Actor] = {}
    for actor in wanted:
        kind, _, ident = actor.partition(":")
        if kind == "staff" and ident in staff:
            named[actor] = Actor(staff[ident].role, staff[ident].label)
        elif kind == "expert":
            named[actor] = Actor("expert", None if sealed else experts.get(ident))
        elif kind in ("scan", "device"):
            named[actor] = Actor("phone", None)
        elif kind == "challenge":
            named[actor] = Actor("face-check", None)
        elif kind in ("cli", "job"):
            named[actor] = Actor("service" if kind == "job" else "cli", None)
        else:
            named[actor] = Actor("other", None)
    return named
