"""Calling drawn members up: every member invited to a seat (by the draw, or a backup
moving up) is sent a message with the evaluation's time, whether it is remote, an answer
link and a deadline. A message the provider does not take is tried again, later each time,
then marked failed for the operator, never silently dropped. The deadline runs from the
moment the provider took the message.

The message names nothing but the time, the mode, the deadline and the link: never the
project, its tenderer or bidders (the committee is sealed until the evaluation starts).

The answer link's token is made when the message is composed and stored hashed; a message
sent again (the provider took it but the service died before noting it) carries a new
token, and only the newest works.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.kernel.messaging import Message
from evaluation.kernel.tokens import hash_token
from evaluation.registry.experts import phone_context
from models.clock import Clock
from models.settings import Settings
from models.tables import Assignment, CallUp, Center, Expert, Project
from signing.field_cipher import FieldCipher

PURPOSE = "call-up"


@dataclass(frozen=True)
class CallUpPolicy:
    public_url: str
    zone: ZoneInfo
    answer_window: timedelta = timedelta(hours=2)
    least_window: timedelta = timedelta(minutes=30)
    max_attempts: int = 5
    retry_after: timedelta = timedelta(seconds=30)  # doubled after each failed attempt

    @classmethod
    def from_settings(cls, settings: Settings) -> CallUpPolicy:
        return cls(
            public_url=settings.public_url,
            zone=settings.display_zone,
            answer_window=timedelta(seconds=settings.call_up_answer_window_s),
            max_attempts=settings.call_up_max_attempts,
            retry_after=timedelta(seconds=settings.call_up_retry_s),
        )


class CallUpExpired(DomainError):
    status = 410
    code = "call-up-expired"
    title = "The answer deadline of this call-up has passed, or it was answered already"


def enqueue(db: Session, assignment: Assignment, now: datetime) -> CallUp:
    """Queue the call-up of a member just invited to a seat; the job sends it."""
    call_up = CallUp(
        center_id=assignment.center_id,
        project_id=assignment.project_id,
        assignment_id=assignment.id,
        expert_id=assignment.expert_id,
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.add(call_up)
    return call_up


def close(db: Session, assignment: Assignment, answer: str, now: datetime) -> None:
    """The member answered (by the link, on the phone to the operator, or by letting the
    deadline pass): the open call-up of this seat is settled and nothing more is sent."""
    for call_up in db.scalars(
        select(CallUp).where(CallUp.assignment_id == assignment.id, CallUp.answer.is_(None))
    ):
        if call_up.answer is not None:  # settled in this transaction, not yet flushed
            continue
        call_up.answer = answer
        call_up.answered_at = now
        if call_up.status == "queued":
            call_up.status = "cancelled"
            call_up.next_attempt_at = None


def due(db: Session, now: datetime, limit: int = 100) -> list[str]:
    """The call-ups whose next attempt is due, oldest first."""
    return list(
        db.scalars(
            select(CallUp.id)
            .where(CallUp.status == "queued", CallUp.next_attempt_at <= now)
            .order_by(CallUp.next_attempt_at)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Outgoing:
    call_up_id: str
    message: Message
    deadline: datetime


def compose(
    db: Session, cipher: FieldCipher, policy: CallUpPolicy, call_up_id: str, now: datetime
) -> Outgoing | None:
    """The message for a due call-up, with a new answer token (stored hashed); None when
    the call-up is no longer due (answered, or sent by another worker meanwhile)."""
    call_up = db.get(CallUp, call_up_id, with_for_update=True)
    if call_up is None or call_up.status != "queued" or call_up.answer is not None:
        return None
    project, expert, center = (
        db.get(Project, call_up.project_id),
        db.get(Expert, call_up.expert_id),
        db.get(Center, call_up.center_id),
    )
    assert project is not None and expert is not None and center is not None
    token = secrets.token_urlsafe(24)
    call_up.token_hash = hash_token(token)
    # Answered before the evaluation starts, but never in less than the least window (a
    # draw run at the start, or a backup moving up during it, still gives time to answer).
    least = now + min(policy.answer_window, policy.least_window)
    deadline = max(least, min(now + policy.answer_window, project.evaluation_start))
    start = project.evaluation_start.astimezone(policy.zone)
    until = deadline.astimezone(policy.zone)
    mode = "远程评标" if project.mode == "remote" else "到交易中心现场评标"
    link = f"{policy.public_url.rstrip('/')}/m/call/{token}"
    params = {
        "time": f"{start:%m月%d日 %H:%M}",
        "mode": mode,
        "deadline": f"{until:%m月%d日 %H:%M}",
        "link": link,
    }
    text = (
        f"【{center.name}】您被随机抽取为评标专家：{params['time']}，{mode}。"
        f"请于{params['deadline']}前打开链接答复是否参加：{link}（逾期视为不参加）"
    )
    number = cipher.decrypt(expert.phone_ciphertext, phone_context(expert.id))
    return Outgoing(
        call_up.id, Message(to=number, text=text, purpose=PURPOSE, params=params), deadline
    )


def delivered(
    db: Session,
    clock: Clock,
    call_up_id: str,
    channel: str,
    provider_message_id: str,
    deadline: datetime,
) -> None:
    call_up = db.get(CallUp, call_up_id, with_for_update=True)
    assert call_up is not None
    now = clock.now()
    call_up.status = "sent"
    call_up.attempts += 1
    call_up.sent_at = now
    call_up.deadline_at = deadline
    call_up.next_attempt_at = None
    call_up.channel = channel
    call_up.provider_message_id = provider_message_id[:200]
    call_up.last_error = None
    db.flush()
    audit.record(
        db,
        _system(call_up),
        clock,
        Action.CALL_UP_SENT,
        "assignment",
        call_up.assignment_id,
        {
            "project_id": call_up.project_id,
            "expert_id": call_up.expert_id,
            "call_up_id": call_up.id,
            "channel": channel,
            "deadline": deadline.isoformat(),
        },
    )


def not_delivered(
    db: Session,
    clock: Clock,
    policy: CallUpPolicy,
    call_up_id: str,
    error: str,
    *,
    final: bool = False,
) -> None:
    """The provider did not take the message: try again later, or, after the last
    attempt (or at once when trying again cannot help: ``final``), mark it failed so the
    operator calls the member instead."""
    call_up = db.get(CallUp, call_up_id, with_for_update=True)
    assert call_up is not None
    now = clock.now()
    call_up.attempts += 1
    call_up.last_error = error[:1000]
    if call_up.attempts < policy.max_attempts and not final:
        call_up.next_attempt_at = now + policy.retry_after * 2 ** (call_up.attempts - 1)
        return
    call_up.status = "failed"
    call_up.next_attempt_at = None
    db.flush()
    audit.record(
        db,
        _system(call_up),
        clock,
        Action.CALL_UP_FAILED,
        "assignment",
        call_up.assignment_id,
        {
            "project_id": call_up.project_id,
            "expert_id": call_up.expert_id,
            "call_up_id": call_up.id,
            "attempts": call_up.attempts,
            "error": call_up.last_error,
        },
    )


def by_token(db: Session, token: str) -> CallUp:
    call_up = db.scalar(select(CallUp).where(CallUp.token_hash == hash_token(token)))
    if call_up is None:
        raise NotFound("no call-up has this link")
    return call_up


def overdue(db: Session, now: datetime) -> list[CallUp]:
    """Sent call-ups nobody answered by their deadline."""
    return list(
        db.scalars(
            select(CallUp).where(
                CallUp.status == "sent", CallUp.answer.is_(None), CallUp.deadline_at < now
            )
        )
    )


def of_project(db: Session, project_id: str) -> list[tuple[CallUp, Assignment, Expert]]:
    rows = db.execute(
        select(CallUp, Assignment, Expert)
        .join(Assignment, Assignment.id == CallUp.assignment_id)
        .join(Expert, Expert.id == CallUp.expert_id)
        .where(CallUp.project_id == project_id)
        .order_by(CallUp.created_at, Assignment.specialty, Assignment.rank)
    ).all()
    return [(call_up, assignment, expert) for call_up, assignment, expert in rows]


def _system(call_up: CallUp) -> audit.Caller:
    return audit.Caller(call_up.center_id, "job:call-up")
