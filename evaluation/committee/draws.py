"""Running the committee draw of a project against the expert pool: eligibility, the
conflict-of-interest exclusions with their reason codes, the commitment published before
the public entropy, the proof, the assignments, and the sealed committee list; and the
supplementary draws that fill seats no backup was left for, each chained to the proof
before it.

The algorithms and the proofs are in evaluation/committee/draw_proof.py (`evalsign-draw-v1`,
`evalsign-draw-supplementary-v1`); this module decides who may be drawn and records what
was drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.committee import call_ups
from evaluation.committee import draw_proof as algorithm
from evaluation.committee.projects import ProjectAction, ProjectStatus, change_status, get_project
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from evaluation.kernel.identifiers import Prose, Token
from evaluation.kernel.transitions import next_status
from evaluation.trust import credentials
from evaluation.trust.credential_states import CredentialStatus
from models.base import new_id
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Assignment,
    Draw,
    Expert,
    ExpertSpecialty,
    FaceTemplate,
    IssuedCertificate,
    Project,
)
from signing.field_cipher import FieldCipher


class DrawExists(DomainError):
    status = 409
    code = "draw-exists"
    title = "This project already has a completed draw"


class CommitteeSealed(DomainError):
    status = 403
    code = "committee-sealed"
    title = "The committee is sealed until the evaluation starts"


class NoVacantSeat(DomainError):
    status = 409
    code = "no-vacant-seat"
    title = "No seat of this specialty is vacant; a supplementary draw fills vacant seats only"


class UnknownSpecialty(DomainError):
    status = 422
    code = "unknown-specialty"
    title = "The specialty is not in the project's committee spec"


class SupplementaryDrawPending(DomainError):
    status = 409
    code = "supplementary-draw-pending"
    title = "A supplementary draw is committed and waits for its public entropy"


@dataclass(frozen=True)
class DrawPolicy:
    cooldown: timedelta
    decline_limit: int
    decline_window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> DrawPolicy:
        return cls(
            cooldown=timedelta(days=settings.draw_cooldown_days),
            decline_limit=settings.draw_decline_limit,
            decline_window=timedelta(days=settings.draw_decline_window_days),
        )


class OperatorExclusion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expert_id: Token = Field(min_length=1, max_length=64)
    reason: Prose = Field(min_length=2, max_length=500, description="the written reason")


class RunDraw(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_entropy: Token = Field(
        min_length=1, max_length=500, description="e.g. numbers read out in the room"
    )
    exclusions: list[OperatorExclusion] = Field(default_factory=list, max_length=1000)


class SupplementaryDraw(BaseModel):
    model_config = ConfigDict(extra="forbid")

    specialties: list[Annotated[str, Field(pattern=r"^[A-Z][0-9A-Z]{0,15}$")]] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="the specialties to draw for (default: every one with a vacant seat)",
    )
    backups: int = Field(
        default=0, ge=0, le=10, description="ordered backups per specialty, besides the seats"
    )

    @field_validator("specialties")
    @classmethod
    def _once_each(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a specialty appears twice")
        return value


# tasks.OPEN_STATUSES and tasks.SEATED (tasks imports this module): while the committee may
# still change, and the members who hold a seat.
_OPEN = (ProjectStatus.DRAWN, ProjectStatus.EVALUATING)


class DrawStatus(StrEnum):
    COMMITTED = "committed"  # its secret's hash is published; no entropy yet
    COMPLETED = "completed"  # run: the proof reveals the secret


class DrawAction(StrEnum):
    RUN = "run"


# Every allowed status change of a draw, in one place: (from, action) -> to.
DRAW_TRANSITIONS: dict[tuple[DrawStatus, DrawAction], DrawStatus] = {
    (DrawStatus.COMMITTED, DrawAction.RUN): DrawStatus.COMPLETED,
}


def change_draw_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    draw: Draw,
    action: DrawAction,
    details: dict[str, Any],
) -> DrawStatus:
    """Move the draw along DRAW_TRANSITIONS (InvalidTransition otherwise, nothing written)
    and audit the run: draw.completed, or draw.supplementary_completed for a draw that fills
    vacant seats."""
    current = DrawStatus(draw.status)
    target = next_status(
        DRAW_TRANSITIONS, current, action, f"draw {draw.id} is {current}; it cannot {action}"
    )
    draw.status = target.value
    db.flush()
    entry = Action.DRAW_SUPPLEMENTARY_COMPLETED if draw.previous_draw_id else Action.DRAW_COMPLETED
    audit.record(db, caller, clock, entry, "draw", draw.id, details)
    return target


class AssignmentStatus(StrEnum):
    STANDBY = "standby"  # a backup, waiting for a seat
    INVITED = "invited"  # a member called up, not yet answered
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REPLACED = "replaced"  # taken off the committee (recusal, or by the operator)


class AssignmentAction(StrEnum):
    PROMOTE = "promote"  # a backup takes the seat a member left
    ACCEPT = "accept"
    DECLINE = "decline"
    REPLACE = "replace"


# Every allowed status change of a seat, in one place: (from, action) -> to.
ASSIGNMENT_TRANSITIONS: dict[tuple[AssignmentStatus, AssignmentAction], AssignmentStatus] = {
    (AssignmentStatus.STANDBY, AssignmentAction.PROMOTE): AssignmentStatus.INVITED,
    (AssignmentStatus.INVITED, AssignmentAction.ACCEPT): AssignmentStatus.ACCEPTED,
    (AssignmentStatus.INVITED, AssignmentAction.DECLINE): AssignmentStatus.DECLINED,
    (AssignmentStatus.INVITED, AssignmentAction.REPLACE): AssignmentStatus.REPLACED,
    (AssignmentStatus.ACCEPTED, AssignmentAction.REPLACE): AssignmentStatus.REPLACED,
}
# A promotion has no entry of its own: the entry of the seat it fills names the backup.
_ASSIGNMENT_ENTRIES = {
    AssignmentAction.ACCEPT: Action.ASSIGNMENT_ACCEPTED,
    AssignmentAction.DECLINE: Action.ASSIGNMENT_DECLINED,
    AssignmentAction.REPLACE: Action.ASSIGNMENT_REPLACED,
}
_SEATED = (AssignmentStatus.INVITED, AssignmentStatus.ACCEPTED)


def change_assignment_status(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    assignment: Assignment,
    action: AssignmentAction,
    details: dict[str, Any] | None = None,
) -> AssignmentStatus:
    """Move the seat along ASSIGNMENT_TRANSITIONS (InvalidTransition otherwise, nothing
    written), with its audit entry where the change has one."""
    current = AssignmentStatus(assignment.status)
    target = next_status(
        ASSIGNMENT_TRANSITIONS,
        current,
        action,
        f"assignment {assignment.id} is {current}; it cannot {action}",
    )
    assignment.status = target.value
    db.flush()
    if action in _ASSIGNMENT_ENTRIES:
        audit.record(
            db, caller, clock, _ASSIGNMENT_ENTRIES[action], "assignment", assignment.id, details
        )
    return target


def _secret_context(draw_id: str) -> str:
    return f"draws/{draw_id}/server_secret"


def create_draw(
    db: Session, caller: audit.Caller, clock: Clock, cipher: FieldCipher, project_id: str
) -> Draw:
    """Commit to a fresh server secret: its SHA-256 is published before any entropy."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    if project.status != ProjectStatus.DRAFT:
        raise DrawExists(f"project {project_id} is {project.status}; its committee is drawn")
    secret = algorithm.new_server_secret()
    draw_id = new_id()
    draw = Draw(
        id=draw_id,
        center_id=caller.center_id,
        project_id=project.id,
        commitment=algorithm.commitment_of(secret),
        secret_ciphertext=cipher.encrypt_bytes(secret, _secret_context(draw_id)),
        status=DrawStatus.COMMITTED.value,
        created_at=clock.now(),
    )
    db.add(draw)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.DRAW_COMMITTED,
        "draw",
        draw.id,
        {"project_id": project.id, "commitment": draw.commitment},
    )
    return draw


def _matching(codes: set[str], spec: list[dict[str, object]]) -> frozenset[str]:
    """The spec specialties an expert's registered codes fall under (prefix match)."""
    return frozenset(
        str(seat["specialty"])
        for seat in spec
        if any(code.startswith(str(seat["specialty"])) for code in codes)
    )


def _pool(
    db: Session, project: Project, policy: DrawPolicy, clock: Clock
) -> tuple[list[algorithm.Candidate], list[algorithm.Exclusion]]:
    """Eligible experts (active, face enrolled, usable credential, a matching specialty)
    and the conflicted ones with their reason codes."""
    now = clock.now()
    rows = db.execute(
        select(Expert.id, Expert.employer_credit_code, ExpertSpecialty.code)
        .join(ExpertSpecialty, ExpertSpecialty.expert_id == Expert.id)
        .join(FaceTemplate, FaceTemplate.expert_id == Expert.id)
        .join(
            IssuedCertificate,
            (IssuedCertificate.expert_id == Expert.id)
            & (IssuedCertificate.purpose == credentials.EXPERT)
            & (IssuedCertificate.status == CredentialStatus.VALID)
            & (IssuedCertificate.not_after > now),
        )
        .where(
            Expert.center_id == project.center_id,
            Expert.status == "active",
            Expert.kind == "expert",
        )
    ).all()
    codes: dict[str, set[str]] = {}
    employers: dict[str, str] = {}
    for expert_id, employer, code in rows:
        codes.setdefault(expert_id, set()).add(code)
        employers[expert_id] = employer
    spec = project.committee_spec
    candidates = {
        expert_id: algorithm.Candidate(expert_id, _matching(found, spec))
        for expert_id, found in codes.items()
    }
    candidates = {k: v for k, v in candidates.items() if v.specialties}

    bidders = {str(b["credit_code"]) for b in project.bidders}
    reasons: dict[str, str] = {}
    for expert_id in candidates:
        if employers[expert_id] == project.tenderer_credit_code:
            reasons[expert_id] = "employer-is-tenderer"
        elif employers[expert_id] in bidders:
            reasons[expert_id] = "employer-is-bidder"
    served = db.execute(
        select(Assignment.expert_id)
        .join(Project, Project.id == Assignment.project_id)
        .where(
            Project.center_id == project.center_id,
            Project.id != project.id,
            Project.tenderer_credit_code == project.tenderer_credit_code,
            Assignment.status.in_(_SEATED),
            Assignment.role == "member",
            Assignment.created_at >= now - policy.cooldown,
        )
    ).scalars()
    for expert_id in served:
        if expert_id in candidates:
            reasons.setdefault(expert_id, "served-same-tenderer")
    declined = db.execute(
        select(Assignment.expert_id, func.count())
        .where(
            Assignment.center_id == project.center_id,
            Assignment.status == AssignmentStatus.DECLINED,
            Assignment.responded_at >= now - policy.decline_window,
        )
        .group_by(Assignment.expert_id)
    ).all()
    for expert_id, count in declined:
        if expert_id in candidates and count >= policy.decline_limit:
            reasons.setdefault(expert_id, "declined-recently")
    exclusions = [algorithm.Exclusion(k, v) for k, v in sorted(reasons.items())]
    return list(candidates.values()), exclusions


def run_draw(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    policy: DrawPolicy,
    project_id: str,
    draw_id: str,
    fields: RunDraw,
) -> Draw:
    """Run a committed draw (the first, or a supplementary one) with the operator's public
    entropy; reveal the secret in the proof; record the seats and the ordered backups."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    draw = get_draw(db, project, draw_id)
    next_status(
        DRAW_TRANSITIONS, DrawStatus(draw.status), DrawAction.RUN, f"draw {draw_id} has already run"
    )
    if draw.previous_draw_id is not None:
        return _run_supplementary(db, caller, clock, cipher, policy, project, draw, fields)
    if project.status != ProjectStatus.DRAFT:  # another draw of this project ran first
        raise DrawExists(f"project {project_id} is {project.status}; its committee is drawn")
    candidates, exclusions = _pool(db, project, policy, clock)
    exclusions = _with_operator_exclusions(candidates, exclusions, fields)
    secret = cipher.decrypt_bytes(draw.secret_ciphertext, _secret_context(draw.id))
    result = algorithm.draw_committee(
        draw.id,
        secret,
        fields.public_entropy,
        [
            algorithm.SeatSpec(str(s["specialty"]), int(s["seats"]), int(s["backups"]))
            for s in project.committee_spec
        ],
        candidates,
        exclusions,
    )
    now = clock.now()
    _record_run(db, project, draw, fields, result, now, member_rank=0, backup_rank={})
    project.updated_at = now
    change_status(db, caller, clock, project, ProjectAction.DRAW)
    change_draw_status(
        db,
        caller,
        clock,
        draw,
        DrawAction.RUN,
        {
            "project_id": project.id,
            "public_entropy": fields.public_entropy,
            "committee_size": len(result.committee),
            "excluded": len(exclusions),
            "operator_exclusions": {item.expert_id: item.reason for item in fields.exclusions},
        },
    )
    outbox.draw_completed(db, now, project, draw)
    return draw


def _with_operator_exclusions(
    candidates: list[algorithm.Candidate],
    exclusions: list[algorithm.Exclusion],
    fields: RunDraw,
) -> list[algorithm.Exclusion]:
    known = {c.expert_id for c in candidates}
    taken = {e.expert_id for e in exclusions}
    for item in fields.exclusions:
        if item.expert_id in known and item.expert_id not in taken:
            exclusions.append(algorithm.Exclusion(item.expert_id, "excluded-by-operator"))
            taken.add(item.expert_id)
    return exclusions


def _record_run(
    db: Session,
    project: Project,
    draw: Draw,
    fields: RunDraw,
    result: algorithm.DrawResult,
    now: datetime,
    *,
    member_rank: int,
    backup_rank: dict[str, int],
) -> None:
    """The draw's proof, a seat per member (called up at once) and the ordered backups;
    ranks continue from ``member_rank`` and, per specialty, ``backup_rank``. The draw's
    status is the caller's to change, with its audit entry."""
    draw.public_entropy = fields.public_entropy
    draw.proof = result.proof
    draw.ran_at = now
    places = [
        ("member", AssignmentStatus.INVITED, member_rank + rank, specialty, expert_id)
        for rank, (specialty, expert_id) in enumerate(result.committee)
    ]
    places += [
        (
            "backup",
            AssignmentStatus.STANDBY,
            backup_rank.get(specialty, 0) + rank,
            specialty,
            expert_id,
        )
        for specialty, backups in result.backups.items()
        for rank, expert_id in enumerate(backups)
    ]
    for role, state, rank, specialty, expert_id in places:
        seat = Assignment(
            center_id=project.center_id,
            project_id=project.id,
            draw_id=draw.id,
            expert_id=expert_id,
            specialty=specialty,
            role=role,
            rank=rank,
            status=state.value,
            created_at=now,
        )
        db.add(seat)
        if state is AssignmentStatus.INVITED:
            db.flush()  # the seat's id, for its call-up
            call_ups.enqueue(db, seat, now)


# Supplementary draws -----------------------------------------------------------------------


def draw_chain(db: Session, project: Project) -> list[Draw]:
    """The project's draws in chain order: the first draw, then each supplementary draw
    after the one it names (the last may still be committed, not run)."""
    rows = db.scalars(select(Draw).where(Draw.project_id == project.id)).all()
    following = {d.previous_draw_id: d for d in rows if d.previous_draw_id is not None}
    first = [d for d in rows if d.previous_draw_id is None and d.status == DrawStatus.COMPLETED]
    chain = first[:1]
    while chain and chain[-1].id in following:
        chain.append(following[chain[-1].id])
    return chain


def proof_chain(db: Session, project: Project) -> list[dict[str, object]]:
    """The proofs of every draw that has run, in chain order: `draw-proof.json`."""
    return [dict(d.proof) for d in draw_chain(db, project) if d.proof is not None]


def vacancies(db: Session, project: Project) -> dict[str, int]:
    """Per specialty of the committee spec, how many seats nobody holds (their members
    declined, were replaced or did not answer, with no backup left)."""
    held = dict(
        db.execute(
            select(Assignment.specialty, func.count())
            .where(
                Assignment.project_id == project.id,
                Assignment.role == "member",
                Assignment.status.in_(_SEATED),
            )
            .group_by(Assignment.specialty)
        ).all()
    )
    return {
        str(s["specialty"]): max(0, int(s["seats"]) - int(held.get(s["specialty"], 0)))
        for s in project.committee_spec
    }


def _refuse_if_final(project: Project) -> None:
    if project.status not in _OPEN or project.results is not None:
        raise InvalidTransition(
            f"project {project.code} is {project.status}"
            + ("" if project.results is None else " and its results are aggregated")
            + "; its committee no longer changes",
            current_status=project.status,
        )


def commit_supplementary(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    project_id: str,
    fields: SupplementaryDraw,
) -> Draw:
    """Commit to a supplementary draw for vacant seats: the commitment binds a fresh
    secret to the proof before it, everyone already drawn or excluded, and the seats."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    _refuse_if_final(project)
    chain = draw_chain(db, project)
    if not chain or chain[-1].status != DrawStatus.COMPLETED:
        raise SupplementaryDrawPending(
            f"draw {chain[-1].id if chain else '?'} of project {project.code} has not run yet",
            draw_id=chain[-1].id if chain else None,
        )
    vacant = vacancies(db, project)
    wanted = fields.specialties or [s for s, n in vacant.items() if n > 0]
    unknown = [s for s in wanted if s not in vacant]
    if unknown:
        raise UnknownSpecialty(
            f"not in the committee spec of project {project.code}: {', '.join(unknown)}",
            specialties=unknown,
        )
    full = [s for s in wanted if vacant[s] == 0]
    if full or not wanted:
        raise NoVacantSeat(
            f"no vacant seat in {', '.join(full)}" if full else "no seat is vacant",
            vacancies=vacant,
        )
    spec = [
        algorithm.SeatSpec(specialty, vacant[specialty], fields.backups)
        for specialty in vacant  # the committee spec's order
        if specialty in wanted
    ]
    proofs = [d.proof for d in chain if d.proof is not None]
    secret = algorithm.new_server_secret()
    draw_id = new_id()
    previous_hash = algorithm.proof_hash(proofs[-1])
    draw = Draw(
        id=draw_id,
        center_id=caller.center_id,
        project_id=project.id,
        commitment=algorithm.supplementary_commitment(
            secret,
            draw_id=draw_id,
            previous_proof_hash=previous_hash,
            prior=algorithm.prior_experts(proofs),
            spec=spec,
        ),
        secret_ciphertext=cipher.encrypt_bytes(secret, _secret_context(draw_id)),
        status=DrawStatus.COMMITTED.value,
        created_at=clock.now(),
        previous_draw_id=chain[-1].id,
        spec=[{"specialty": s.specialty, "seats": s.seats, "backups": s.backups} for s in spec],
    )
    db.add(draw)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.DRAW_SUPPLEMENTARY_COMMITTED,
        "draw",
        draw.id,
        {
            "project_id": project.id,
            "commitment": draw.commitment,
            "previous_draw_id": draw.previous_draw_id,
            "previous_proof_hash": previous_hash,
            "spec": draw.spec,
        },
    )
    return draw


def _run_supplementary(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    policy: DrawPolicy,
    project: Project,
    draw: Draw,
    fields: RunDraw,
) -> Draw:
    """Fill the committed vacant seats from the pool minus everyone the chain drew or
    excluded; the drawn members are called up as a backup moving up would be."""
    _refuse_if_final(project)
    assert draw.spec is not None
    spec = [
        algorithm.SeatSpec(str(s["specialty"]), int(s["seats"]), int(s["backups"]))
        for s in draw.spec
    ]
    vacant = vacancies(db, project)
    short = [s.specialty for s in spec if vacant.get(s.specialty, 0) < s.seats]
    if short:
        raise NoVacantSeat(
            f"fewer seats are vacant in {', '.join(short)} than draw {draw.id} was committed "
            "to fill",
            vacancies=vacant,
        )
    chain = draw_chain(db, project)
    proofs = [d.proof for d in chain if d.proof is not None]
    candidates, exclusions = _pool(db, project, policy, clock)
    wanted = {s.specialty for s in spec}
    out = set(algorithm.prior_experts(proofs))
    candidates = [c for c in candidates if c.specialties & wanted and c.expert_id not in out]
    pooled = {c.expert_id for c in candidates}
    exclusions = [e for e in exclusions if e.expert_id in pooled]
    exclusions = _with_operator_exclusions(candidates, exclusions, fields)
    secret = cipher.decrypt_bytes(draw.secret_ciphertext, _secret_context(draw.id))
    result = algorithm.draw_supplementary(
        draw.id, secret, fields.public_entropy, spec, candidates, exclusions, chain=proofs
    )
    if result.proof["commitment"] != draw.commitment:
        # The proofs before it changed since the commitment: nothing to run on.
        raise RuntimeError(f"draw {draw.id} no longer matches its commitment")
    # Ranks go on after the earlier draws' (a promoted backup keeps its backup rank).
    seats = db.scalars(select(Assignment).where(Assignment.project_id == project.id)).all()
    member_rank = 1 + max((a.rank for a in seats), default=-1)
    backup_rank: dict[str, int] = {}
    for a in seats:
        backup_rank[a.specialty] = max(backup_rank.get(a.specialty, 0), a.rank + 1)
    now = clock.now()
    _record_run(
        db, project, draw, fields, result, now, member_rank=member_rank, backup_rank=backup_rank
    )
    project.updated_at = now
    change_draw_status(
        db,
        caller,
        clock,
        draw,
        DrawAction.RUN,
        {
            "project_id": project.id,
            "public_entropy": fields.public_entropy,
            "previous_draw_id": draw.previous_draw_id,
            "seats_filled": {s.specialty: s.seats for s in spec},
            "excluded": len(result.proof["excluded"]),
            "operator_exclusions": {item.expert_id: item.reason for item in fields.exclusions},
        },
    )
    outbox.draw_completed(db, now, project, draw)
    return draw


def get_draw(db: Session, project: Project, draw_id: str) -> Draw:
    draw = db.get(Draw, draw_id)
    if draw is None or draw.project_id != project.id:
        raise NotFound(f"no draw {draw_id} for project {project.id}")
    return draw


def proof_is_sealed(project: Project, role: str, clock: Clock) -> bool:
    """The proof names the drawn experts, so it is sealed like the committee list: admins
    see it at once, everyone else once the evaluation starts."""
    return role != "admin" and clock.now() < project.evaluation_start


def refuse_if_sealed(project: Project, role: str, clock: Clock) -> None:
    """403 for what names the drawn experts (committee, proof, sign-ins, evidence) while
    the committee is sealed for this reader."""
    if proof_is_sealed(project, role, clock):
        raise CommitteeSealed(
            f"the committee of project {project.code} is sealed until "
            f"{project.evaluation_start.isoformat()}",
            unsealed_at=project.evaluation_start.isoformat(),
        )


def published_proof(draw: Draw, *, sealed: bool) -> dict[str, object]:
    """Before the run, the commitment; after it, the whole proof (the secret revealed),
    unless the committee is still sealed for this reader. A supplementary draw's also says
    which draw it follows and the seats it fills (the experts it rules out stay sealed)."""
    if draw.proof is None or sealed:
        if draw.previous_draw_id is None:
            return {
                "algorithm": algorithm.ALGORITHM,
                "draw_id": draw.id,
                "commitment": draw.commitment,
                "public_entropy": draw.public_entropy,
            }
        return {
            "algorithm": algorithm.SUPPLEMENTARY,
            "draw_id": draw.id,
            "previous_draw_id": draw.previous_draw_id,
            "spec": draw.spec,
            "commitment": draw.commitment,
            "public_entropy": draw.public_entropy,
        }
    return dict(draw.proof)


def committee(
    db: Session, center_id: str, project_id: str, role: str, clock: Clock
) -> list[tuple[Assignment, Expert]]:
    """The drawn committee and backups with names: sealed until the evaluation starts,
    except for admins (separation of duties: operators run the draw without seeing it)."""
    project = get_project(db, center_id, project_id)
    refuse_if_sealed(project, role, clock)
    rows = db.execute(
        select(Assignment, Expert)
        .join(Expert, Expert.id == Assignment.expert_id)
        .where(Assignment.project_id == project.id)
        .order_by(Assignment.role.desc(), Assignment.specialty, Assignment.rank)
    ).all()
    return [(assignment, expert) for assignment, expert in rows]


class NoBackupLeft(DomainError):
    status = 409
    code = "no-backup-left"
    title = "No backup of this specialty is left; a supplementary draw is needed"


def get_assignment(db: Session, project: Project, assignment_id: str) -> Assignment:
    assignment = db.get(Assignment, assignment_id)
    if assignment is None or assignment.project_id != project.id:
        raise NotFound(f"no assignment {assignment_id} in project {project.id}")
    return assignment


def promote_backup(
    db: Session, caller: audit.Caller, clock: Clock, *, leaving: Assignment, now: datetime
) -> Assignment:
    """The specialty's next backup in the proofs' order (the first draw's, then each
    supplementary draw's; skipping anyone unavailable) takes the seat a member leaves;
    NoBackupLeft when none is left."""
    project = db.get(Project, leaving.project_id)
    assert project is not None
    rows = db.scalars(select(Assignment).where(Assignment.project_id == project.id)).all()
    unavailable = {
        a.expert_id for a in rows if a.role == "member" or a.status != AssignmentStatus.STANDBY
    }
    for draw in draw_chain(db, project):
        drawn_for = {str(e["specialty"]) for e in (draw.proof or {}).get("specialties", [])}
        if draw.proof is None or leaving.specialty not in drawn_for:
            continue
        chosen = algorithm.next_backup(draw.proof, leaving.specialty, unavailable)
        if chosen is not None:
            promoted = next(a for a in rows if a.expert_id == chosen and a.draw_id == draw.id)
            promoted.role = "member"
            change_assignment_status(db, caller, clock, promoted, AssignmentAction.PROMOTE)
            call_ups.enqueue(db, promoted, now)
            return promoted
    raise NoBackupLeft(
        f"specialty {leaving.specialty} has no backup left in project {project.code}",
        specialty=leaving.specialty,
    )


def respond(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    project_id: str,
    assignment_id: str,
    accept: bool,
    reason: str | None,
    *,
    vacant_ok: bool = False,
) -> tuple[Assignment, Assignment | None]:
    """Record a member's acceptance or decline; a decline promotes the specialty's next
    backup in the proof's order (skipping anyone unavailable), and calls them up. Returns
    the answered assignment and the promoted one, if any. With no backup left a decline is
    refused (NoBackupLeft), unless ``vacant_ok``: then it stands and the seat waits for a
    supplementary draw (a deadline passed; nobody to ask)."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    assignment = get_assignment(db, project, assignment_id)
    action = AssignmentAction.ACCEPT if accept else AssignmentAction.DECLINE
    answer = ASSIGNMENT_TRANSITIONS.get((AssignmentStatus(assignment.status), action))
    if assignment.role != "member" or answer is None:
        raise InvalidTransition(
            f"assignment {assignment_id} is a {assignment.role} that is {assignment.status}; "
            "only an invited member answers",
            current_status=assignment.status,
        )
    now = clock.now()
    assignment.reason = reason
    assignment.responded_at = now
    call_ups.close(db, assignment, answer.value, now)
    promoted = None
    if not accept:
        try:
            promoted = promote_backup(db, caller, clock, leaving=assignment, now=now)
        except NoBackupLeft:
            if not vacant_ok:
                raise
    if not accept and project.chair_assignment_id == assignment.id:
        project.chair_assignment_id = None  # the committee chooses again
        project.chair_chosen_by = None
    change_assignment_status(
        db,
        caller,
        clock,
        assignment,
        action,
        {
            "project_id": project.id,
            "expert_id": assignment.expert_id,
            "reason": reason,
            "promoted_expert_id": promoted.expert_id if promoted else None,
        },
    )
    return assignment, promoted
