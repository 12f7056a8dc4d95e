"""Request-scoped dependencies: the transaction, the services, the authenticated staff."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import BadPrecondition, NotReady
from api.logs import request_id_var
from api.rate_limits import count_anonymous_refusal
from api.services import Services
from api.web.session import (
    CSRF_HEADER,
    DEVICE_COOKIE,
    SAFE_METHODS,
    STAFF_COOKIE,
    TOKEN_COOKIES,
    PhoneCredentials,
    check_csrf,
    phone_credentials,
    staff_binding,
)
from evaluation.identity import face_checks
from evaluation.kernel import audit
from evaluation.kernel.audit import Caller
from evaluation.kernel.errors import DomainError, InvalidCredentials, RoleForbidden
from evaluation.registry import console_sessions
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from face.engine import FaceEngine
from face.model_pack import ModelPackError
from models.db import READ_ONLY
from models.tables import VerifiedSession


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain def dependency on the thread pool, a hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@contextmanager
def transaction(services: Services, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: committed at the end of the block, or rolled back. A refusal that
    must be logged (audit.refused) is written after the rollback, in its own commit."""
    session = services.session_factory()
    if read_only:
        # Reads never write, so on SQLite they need not queue for the write lock.
        session.connection(execution_options=READ_ONLY)
    try:
        yield session
        session.commit()
    except DomainError as error:
        session.rollback()
        if error.refusal is not None:
            source = error.refusal.anonymous_source
            _log_refusal(services, session, error, read_only=read_only)
            if source is not None:
                # Spends the address's budget of refusals: past it, phone_limits answers 429.
                count_anonymous_refusal(services.limiter, services.settings, source)
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _log_refusal(
    services: Services, session: Session, error: DomainError, *, read_only: bool
) -> None:
    """Write a refusal's entry in its own commit, once (an outer transaction that sees the
    same error must not write it again). If the log cannot be written, the client still
    gets the refusal, and the failure is logged."""
    try:
        if read_only:
            session.close()
            session = services.session_factory()
        audit.record_refusal(session, services.clock, error)
        session.commit()
    except Exception:
        session.rollback()
        logging.getLogger("evalsign.audit").exception("a refusal could not be logged")
    finally:
        error.refusal = None
        if read_only:
            session.close()


def get_db(request: Request, services: ServicesDep) -> Iterator[Session]:
    """One transaction per request: committed before the response is sent, or rolled back."""
    with transaction(services, read_only=request.method in {"GET", "HEAD"}) as session:
        yield session


# scope="function": commit runs before the response goes out, so a 2xx means "stored".
Db = Annotated[Session, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Staff:
    token_id: str
    center_id: str
    role: Role

    @property
    def caller(self) -> Caller:
        return Caller(
            center_id=self.center_id,
            actor=f"staff:{self.token_id}",
            role=self.role.value,
            request_id=request_id_var.get(),
        )


# Declared as a security scheme so /docs offers "Authorize"; errors stay ours (problem+json).
bearer = HTTPBearer(auto_error=False, description="A staff token from `evalsign init`.")


def authenticate_staff(
    request: Request,
    db: Db,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Staff:
    sent = credentials.credentials.strip() if credentials else ""
    if not sent and not request.headers.get("authorization"):
        # The console's session cookie; a change made with it must come from the console.
        cookie = request.cookies.get(STAFF_COOKIE, "")
        if cookie:
            if request.method not in SAFE_METHODS:
                check_csrf(
                    services.csrf_key, staff_binding(cookie), request.headers.get(CSRF_HEADER)
                )
            token = console_sessions.console_token(db, services.clock, cookie)
            if token is None:
                raise InvalidCredentials("the console session has ended; log in again")
            return Staff(token.id, token.center_id, Role(token.role))
    if not sent:
        raise InvalidCredentials("send Authorization: Bearer <staff token>")
    token = staff_tokens.authenticate(db, sent)
    return Staff(token.id, token.center_id, Role(token.role))


def require(*roles: Role) -> Callable[[Staff], Awaitable[Staff]]:
    allowed = frozenset(roles)

    async def check(staff: Annotated[Staff, Depends(authenticate_staff)]) -> Staff:
        if staff.role not in allowed:
            names = ", ".join(sorted(role.value for role in allowed))
            raise RoleForbidden(f"this needs one of: {names}; you are {staff.role.value}")
        return staff

    return check


AnyStaff = Annotated[Staff, Depends(require(Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR))]
Operator = Annotated[Staff, Depends(require(Role.OPERATOR))]
Admin = Annotated[Staff, Depends(require(Role.ADMIN))]
AuditReader = Annotated[Staff, Depends(require(Role.ADMIN, Role.SUPERVISOR))]


def get_face_engine(services: ServicesDep) -> FaceEngine:
    try:
        return services.face_engine()
    except ModelPackError as exc:
        raise NotReady(f"the face models cannot be loaded: {exc}") from exc


FaceEngineDep = Annotated[FaceEngine, Depends(get_face_engine)]


async def expected_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """The version named by If-Match ("3" or W/"3"), or None when absent."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise BadPrecondition('If-Match must be a version number in quotes, like "3"')
    return int(value)


ExpectedVersion = Annotated[int | None, Depends(expected_version)]


def bearer_token(authorization: str | None, prefix: str) -> str | None:
    """The token of `Authorization: Bearer <prefix>...`, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(prefix):
        return None
    return token


def phone_token(
    request: Request,
    services: Services,
    prefix: str,
    authorization: str | None,
    x_device_id: str | None,
) -> PhoneCredentials:
    """A phone's token of one kind: from `Authorization: Bearer <prefix>...` and
    `X-Device-Id`, or from the phone page's cookies (with its CSRF token on changes)."""
    return phone_credentials(request, prefix, authorization, x_device_id, services.csrf_key)


def face_session(
    request: Request,
    db: Db,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header()] = None,
) -> VerifiedSession:
    """The phone's verified face session: `Authorization: Bearer evf_...` plus the device id
    it was bound to. Staff tokens are not face sessions and are refused here."""
    sent = phone_token(request, services, face_checks.SESSION_PREFIX, authorization, x_device_id)
    if sent.token is None:
        raise face_checks.SessionInvalid("send Authorization: Bearer evf_... and X-Device-Id")
    return face_checks.authenticate_session(db, sent.token, sent.device_id, services.clock.now())


FaceSession = Annotated[VerifiedSession, Depends(face_session)]


def face_session_named(
    request: Request, db: Session, services: Services, sent: str | None, device_id: str | None
) -> tuple[VerifiedSession, bool]:
    """The face session a request body names (its Authorization carries another token, a
    scan's or a binding's), or, from a phone page, the one in its cookie; True for a page."""
    page = sent is None and not request.headers.get("authorization")
    if page:
        sent = request.cookies.get(TOKEN_COOKIES[face_checks.SESSION_PREFIX])
        device_id = request.cookies.get(DEVICE_COOKIE)
    if not sent or not sent.startswith(face_checks.SESSION_PREFIX):
        raise face_checks.SessionInvalid("face_session must be the evf_... token of the check")
    return face_checks.authenticate_session(db, sent, device_id, services.clock.now()), page
