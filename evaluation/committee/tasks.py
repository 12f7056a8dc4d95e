"""Task QR codes and scanning them: the rotating room QR of a project, the single-use
personal QR of an assignment, and the scan session a phone gets in exchange.

Every refused scan (forged, expired, reused, another center's) is written to the audit log
of the center it names, so a supervisor sees attempts, not only successes. The caller
commits that entry even though the request fails (see api/routers/tasks.py).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.committee.draws import AssignmentStatus, get_assignment
from evaluation.committee.projects import ProjectStatus, get_project
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition
from evaluation.kernel.tokens import hash_token, new_secret
from models.clock import Clock
from models.tables import Assignment, Project, ScanSession, TaskToken
from signing.task_qr import RoomTokens, qr_png, qr_svg

log = logging.getLogger("evalsign.tasks")

PERSONAL_PREFIX = "p1."
SCAN_PREFIX = "evs_"
# A project's experts can scan only while it is between the draw and the report's last
# signature.
OPEN_STATUSES = (ProjectStatus.DRAWN, ProjectStatus.EVALUATING)
SEATED = (AssignmentStatus.INVITED, AssignmentStatus.ACCEPTED)
# Room tokens a phone shows slightly early (its clock, the screen's) are still accepted.
CLOCK_SKEW = timedelta(seconds=5)
PERSONAL_LATE_VALIDITY = timedelta(hours=12)


class ScanRefused(DomainError):
    """A task QR that does not let the phone in. Logged in the audit."""


class QrTokenInvalid(ScanRefused):
    status = 401
    code = "qr-token-invalid"
    title = "This is not a valid EvalSign task code"


class QrTokenExpired(ScanRefused):
    status = 410
    code = "qr-token-expired"
    title = "The task code expired; scan the code on the screen again"


class QrTokenUsed(ScanRefused):
    status = 409
    code = "qr-token-used"
    title = "This personal task code was already used; ask the operator for a new one"


class QrTokenForeign(ScanRefused):
    status = 403
    code = "qr-token-foreign"
    title = "The task code belongs to another trading center"


class ProjectNotOpen(ScanRefused):
    status = 409
    code = "project-not-open"
    title = "The project is not open for evaluation (not drawn yet, completed or cancelled)"


class ScanSessionInvalid(DomainError):
    status = 401
    code = "scan-session-invalid"
    title = "The scan session is unknown, expired, used or for another device; scan again"


@dataclass(frozen=True)
class TaskQr:
    kind: str
    url: str
    token: str
    expires_at: datetime
    rotates_at: datetime | None
    png: bytes
    svg: str


def seated_members(db: Session, project_id: str) -> list[Assignment]:
    """The project's members who hold a seat (invited or accepted), by specialty and rank."""
    return list(
        db.execute(
            select(Assignment)
            .where(
                Assignment.project_id == project_id,
                Assignment.role == "member",
                Assignment.status.in_(SEATED),
            )
            .order_by(Assignment.specialty, Assignment.rank)
        ).scalars()
    )


def task_url(public_url: str, token: str) -> str:
    """The URL a QR encodes: the phone's landing page, which exchanges the token."""
    return f"{public_url.rstrip('/')}/m/t/{token}"


def _qr(
    kind: str, public_url: str, token: str, expires: datetime, rotates: datetime | None
) -> TaskQr:
    url = task_url(public_url, token)
    return TaskQr(kind, url, token, expires, rotates, qr_png(url), qr_svg(url))


def _open_project(db: Session, center_id: str, project_id: str) -> Project:
    project = get_project(db, center_id, project_id)
    if project.status not in OPEN_STATUSES:
        raise InvalidTransition(
            f"project {project.code} is {project.status}; task codes exist between the draw "
            "and completion",
            current_status=project.status,
        )
    return project


def room_qr(
    db: Session, center_id: str, clock: Clock, tokens: RoomTokens, project_id: str, base: str
) -> TaskQr:
    """The room QR for now. Stateless, so the screen may ask for it every period."""
    project = _open_project(db, center_id, project_id)
    minted = tokens.mint(project.center_id, project.id, clock.now())
    return _qr("room", base, minted.token, minted.expires_at, minted.rotates_at)


def personal_qr(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    project_id: str,
    assignment_id: str,
    base: str,
) -> TaskQr:
    """A single-use QR for one seated member; earlier unused ones of theirs stop working."""
    project = _open_project(db, caller.center_id, project_id)
    assignment = get_assignment(db, project, assignment_id)
    if assignment.role != "member" or assignment.status not in SEATED:
        raise InvalidTransition(
            f"assignment {assignment_id} is a {assignment.role} that is {assignment.status}; "
            "personal codes are for seated members",
            current_status=assignment.status,
        )
    now = clock.now()
    db.execute(
        update(TaskToken)
        .where(
            TaskToken.assignment_id == assignment.id,
            TaskToken.used_at.is_(None),
            TaskToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = new_secret(PERSONAL_PREFIX)
    row = TaskToken(
        center_id=project.center_id,
        project_id=project.id,
        assignment_id=assignment.id,
        token_hash=hash_token(token),
        created_by=caller.actor,
        created_at=now,
        # Valid through the window, and a working day past it when issued late (the
        # report is often signed after the window closes).
        expires_at=max(project.evaluation_end, now + PERSONAL_LATE_VALIDITY),
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.TASK_PERSONAL_QR_ISSUED,
        "assignment",
        assignment.id,
        {
            "project_id": project.id,
            "task_token_id": row.id,
            "expires_at": row.expires_at.isoformat(),
        },
    )
    return _qr("personal", base, token, row.expires_at, None)


@dataclass(frozen=True)
class ScanContext:
    """Where a scan came from, for the log."""

    device_id: str
    client_ip: str | None
    request_id: str | None


@dataclass(frozen=True)
class Scanned:
    session: ScanSession
    token: str
    project: Project


def _refuse(
    center_id: str,
    error: ScanRefused,
    where: ScanContext,
    details: dict[str, Any],
) -> ScanRefused:
    """The refusal, with the entry the log keeps of it once the scan is rolled back (so a
    claimed personal code stays unused)."""
    caller = audit.Caller(center_id, f"device:{where.device_id}", None, where.request_id)
    event = audit.AuditEvent(
        Action.TASK_SCAN_REFUSED,
        "project",
        details.get("project_id"),
        {
            "reason": error.code,
            "device_id": where.device_id,
            "client_ip": where.client_ip,
            **details,
        },
    )
    # Nobody is signed in yet: counted per address and minute, not chained.
    return audit.refused(error, caller, event, anonymous_from=where.client_ip or caller.actor)


def _room(
    db: Session, clock: Clock, tokens: RoomTokens, token: str, where: ScanContext
) -> tuple[Project, Assignment | None, TaskToken | None]:
    claim = tokens.parse(token)
    project = db.get(Project, claim.project_id) if claim else None
    if claim is None or project is None:
        log.info("unreadable room token from device %s", where.device_id)
        raise QrTokenInvalid("the code is not one of this service's task codes")
    details = {"project_id": project.id, "kind": "room", "claimed_center_id": claim.center_id}
    if claim.center_id != project.center_id:
        error: ScanRefused
        if tokens.authentic(claim):
            error = QrTokenForeign("the code was issued by another trading center")
        else:
            error = QrTokenInvalid("the code's signature does not verify")
        raise _refuse(project.center_id, error, where, details)
    if not tokens.authentic(claim):
        raise _refuse(
            project.center_id,
            QrTokenInvalid("the code's signature does not verify"),
            where,
            details,
        )
    now = clock.now()
    if now >= tokens.expires_at(claim):
        expired = QrTokenExpired(
            f"the code expired at {tokens.expires_at(claim).isoformat()}; scan the screen again"
        )
        raise _refuse(project.center_id, expired, where, details)
    if now + CLOCK_SKEW < tokens.valid_from(claim):
        future = QrTokenInvalid("the code is not valid yet")
        raise _refuse(project.center_id, future, where, details)
    return project, None, None


def _personal(
    db: Session, clock: Clock, token: str, where: ScanContext
) -> tuple[Project, Assignment | None, TaskToken | None]:
    row = db.execute(
        select(TaskToken).where(TaskToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None:
        log.info("unknown personal token from device %s", where.device_id)
        raise QrTokenInvalid("the code is not one of this service's task codes")
    details = {"project_id": row.project_id, "kind": "personal", "task_token_id": row.id}
    now = clock.now()
    if row.revoked_at is not None:
        replaced = QrTokenExpired("a newer personal code replaced this one")
        raise _refuse(row.center_id, replaced, where, details)
    if now >= row.expires_at:
        expired = QrTokenExpired(f"the code expired at {row.expires_at.isoformat()}")
        raise _refuse(row.center_id, expired, where, details)
    # Atomic: of two phones scanning the same code at once, one gets in.
    claimed = db.execute(
        update(TaskToken)
        .where(TaskToken.id == row.id, TaskToken.used_at.is_(None))
        .values(used_at=now)
        .returning(TaskToken.id)
    ).first()
    if claimed is None:
        used = QrTokenUsed("this personal code was already used")
        raise _refuse(row.center_id, used, where, details)
    project = db.get(Project, row.project_id)
    assignment = db.get(Assignment, row.assignment_id)
    assert project is not None and assignment is not None
    return project, assignment, row


def scan(
    db: Session, clock: Clock, tokens: RoomTokens, token: str, where: ScanContext, ttl: timedelta
) -> Scanned:
    """Exchange a task code for a scan session bound to this device."""
    token = token.strip()
    if token.startswith(PERSONAL_PREFIX):
        project, assignment, row = _personal(db, clock, token, where)
    else:
        project, assignment, row = _room(db, clock, tokens, token, where)
    details: dict[str, Any] = {"project_id": project.id, "kind": "personal" if row else "room"}
    if project.status not in OPEN_STATUSES:
        closed = ProjectNotOpen(f"project {project.code} is {project.status}")
        raise _refuse(project.center_id, closed, where, details)
    if assignment is not None and (assignment.role != "member" or assignment.status not in SEATED):
        gone = ProjectNotOpen(
            f"your place on the committee is {assignment.status}; ask the operator"
        )
        raise _refuse(project.center_id, gone, where, details)
    session, secret = open_scan_session(
        db,
        clock,
        ScanSession(
            center_id=project.center_id,
            project_id=project.id,
            kind="personal" if row else "room",
            assignment_id=assignment.id if assignment else None,
            task_token_id=row.id if row else None,
        ),
        where,
        ttl,
        {**details, "assignment_id": assignment.id if assignment else None},
    )
    return Scanned(session, secret, project)


def open_scan_session(
    db: Session,
    clock: Clock,
    session: ScanSession,
    where: ScanContext,
    ttl: timedelta,
    details: dict[str, Any],
) -> tuple[ScanSession, str]:
    """Give a scan (of a task code, or a contract's link) its session: `session` says for
    what, this adds the secret, the device, the expiry and the `task.scanned` entry. The
    session and the secret, which only the phone gets."""
    now = clock.now()
    secret = new_secret(SCAN_PREFIX)
    session.token_hash = hash_token(secret)
    session.device_id = where.device_id
    session.client_ip = where.client_ip
    session.created_at = now
    session.expires_at = now + ttl
    db.add(session)
    db.flush()
    caller = audit.Caller(session.center_id, f"scan:{session.id}", None, where.request_id)
    audit.record(
        db,
        caller,
        clock,
        Action.TASK_SCANNED,
        "scan_session",
        session.id,
        {**details, "device_id": where.device_id, "client_ip": where.client_ip},
    )
    return session, secret


def authenticate_scan(db: Session, token: str, device_id: str | None, now: datetime) -> ScanSession:
    """The live scan session a token names, used from the device that scanned."""
    session = db.execute(
        select(ScanSession).where(ScanSession.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if session is None or now >= session.expires_at or session.signed_in_at is not None:
        raise ScanSessionInvalid("the scan session is unknown, expired or already used")
    if device_id is None or not secrets.compare_digest(session.device_id, device_id):
        raise ScanSessionInvalid("the scan session belongs to another device")
    return session
