"""A called-up member answers with the face check and the passkey of their bound phone,
where the center asks for both (EVALSIGN_CALL_UP_ANSWER_VERIFIED): the call-up page's
check drives these routes; an API client may use them the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status
from sqlalchemy.orm import Session

from api.deps import Db, FaceEngineDep, ServicesDep, face_session_named
from api.logs import request_id_var
from api.rate_limits import challenge_limits, phone_limits
from api.routers.tasks import challenge_out
from api.schemas.committee.call_ups import (
    AnsweredOut,
    AnswerOptionsOut,
    CheckedAnswerIn,
)
from api.schemas.committee.tasks import ScanChallengeOut
from api.schemas.identity import FaceSessionIn
from api.services import Services
from api.web.session import CSRF_HEADER, DEVICE_COOKIE, check_csrf
from evaluation.committee import call_up_checks
from models.tables import VerifiedSession

router = APIRouter(prefix="/api/v1/call", tags=["call-ups"])


def _face(
    request: Request, db: Session, services: Services, sent: str | None, device_id: str | None
) -> VerifiedSession:
    face, page = face_session_named(request, db, services, sent, device_id)
    if page:  # the page's cookies: the change must come from our page
        check_csrf(
            services.csrf_key, request.cookies.get(DEVICE_COOKIE), request.headers.get(CSRF_HEADER)
        )
    return face


@router.post(
    "/{token}/challenge",
    response_model=ScanChallengeOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(challenge_limits)],
)
def answer_challenge(
    token: str,
    request: Request,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> ScanChallengeOut:
    """The call-up's face check, 1:1 against the member it was sent to."""
    issued = call_up_checks.answer_challenge(
        db,
        services.clock,
        services.cipher,
        engine,
        services.liveness,
        token,
        device_id=x_device_id or request.cookies.get(DEVICE_COOKIE),
        request_id=request_id_var.get(),
        counter=services.limiter,
    )
    return challenge_out(issued)


@router.post(
    "/{token}/passkey",
    response_model=AnswerOptionsOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def answer_options(
    token: str,
    body: FaceSessionIn,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> AnswerOptionsOut:
    """After the call-up's passed check: the passkey challenge that confirms the answer."""
    face = _face(request, db, services, body.face_session, x_device_id)
    nonce, options = call_up_checks.answer_options(
        db, services.clock, services.passkeys, token, face
    )
    return AnswerOptionsOut(nonce=nonce, publicKey=options)


@router.post("/{token}/answer", response_model=AnsweredOut, dependencies=[Depends(phone_limits)])
def checked_answer(
    token: str,
    body: CheckedAnswerIn,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> AnsweredOut:
    """Take part, or not (with a reason), confirmed by the bound phone's passkey."""
    face = _face(request, db, services, body.face_session, x_device_id)
    answered, _ = call_up_checks.checked_answer(
        db,
        services.clock,
        services.passkeys,
        token,
        face,
        accept=body.decision == "accept",
        reason=body.reason,
        assertion=body.passkey.assertion,
        request_id=request_id_var.get(),
    )
    return AnsweredOut(answer=answered.status)
