"""The non-face path over HTTP: the operator sets a person's signing PIN and records the
in-person ID check for a project; the person's phone then enters the PIN where it would
have taken a face check (before signing in, and before signing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from api.deps import AnyStaff, Db, Operator, ServicesDep
from api.logs import request_id_var
from api.rate_limits import phone_limits
from api.routers.anomalies import raise_for
from api.routers.evaluation import Me
from api.routers.tasks import ScanSessionDep
from api.schemas.committee.in_person import (
    InPersonCheckIn,
    InPersonCheckOut,
    PinCheckOut,
    PinIn,
    PinSetOut,
    ScanPinIn,
    SessionPinIn,
    VoidIn,
)
from api.schemas.identity import SessionOut
from api.web import session as web
from evaluation.committee import in_person, projects
from evaluation.kernel import audit

router = APIRouter(tags=["in-person path"])


@router.put("/api/v1/experts/{expert_id}/signing-pin", response_model=PinSetOut)
def set_signing_pin(
    expert_id: str, body: PinIn, staff: Operator, db: Db, services: ServicesDep
) -> PinSetOut:
    """The person chooses their signing PIN at the desk, after the operator read their ID
    card (the number must match the registration). Replaces an earlier PIN."""
    expert = in_person.set_signing_pin(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        in_person.PinPolicy.from_settings(services.settings),
        expert_id,
        body.id_number,
        body.pin,
    )
    assert expert.pin_set_at is not None
    return PinSetOut(expert_id=expert.id, pin_set_at=expert.pin_set_at)


@router.post(
    "/api/v1/projects/{project_id}/in-person-checks",
    response_model=InPersonCheckOut,
    status_code=status.HTTP_201_CREATED,
)
def check_in_person(
    project_id: str, body: InPersonCheckIn, staff: Operator, db: Db, services: ServicesDep
) -> InPersonCheckOut:
    """The operator saw the committee member and their ID document at the center. Until
    it expires (EVALSIGN_IN_PERSON_CHECK_TTL_S) their PIN stands in for a face check on
    this project, at the lower in-person-pin assurance that supervisors always see."""
    check = in_person.check_in_person(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        in_person.PinPolicy.from_settings(services.settings),
        project_id,
        body.expert_id,
        body.id_number,
        body.document,
        body.note.strip() if body.note else None,
    )
    return InPersonCheckOut.model_validate(check)


@router.get("/api/v1/projects/{project_id}/in-person-checks", response_model=list[InPersonCheckOut])
def list_in_person_checks(project_id: str, staff: AnyStaff, db: Db) -> list[InPersonCheckOut]:
    """The project's in-person ID checks, open, expired and voided."""
    projects.get_project(db, staff.center_id, project_id)
    return [
        InPersonCheckOut.model_validate(check)
        for check in in_person.checks_of(db, staff.center_id, project_id)
    ]


@router.post("/api/v1/in-person-checks/{check_id}/void", response_model=InPersonCheckOut)
def void_in_person_check(
    check_id: str, body: VoidIn, staff: Operator, db: Db, services: ServicesDep
) -> InPersonCheckOut:
    """End an in-person check early (the person left, or it was recorded in error)."""
    check = in_person.void_check(db, staff.caller, services.clock, check_id, body.reason)
    return InPersonCheckOut.model_validate(check)


def _device(request: Request, device_id: str, user_agent: str | None) -> in_person.Device:
    return in_person.Device(
        device_id=device_id,
        client_ip=request.client.host if request.client else None,
        user_agent=(user_agent or "")[:400] or None,
        request_id=request_id_var.get(),
    )


def _outcome(
    request: Request,
    response: Response,
    db: Db,
    services: ServicesDep,
    project_id: str,
    outcome: in_person.PinOutcome,
) -> PinCheckOut:
    session = None
    if outcome.session is not None and outcome.session_token is not None:
        session = SessionOut.model_validate(outcome.session, from_attributes=True)
        session.token = outcome.session_token
        if request.cookies.get(web.DEVICE_COOKIE) == outcome.session.device_id:
            ttl = (outcome.session.expires_at - outcome.session.verified_at).total_seconds()
            web.set_token_cookie(request, response, outcome.session_token, int(ttl))
            session.token = None
        caller = audit.Caller(
            outcome.session.center_id,
            f"expert:{outcome.session.expert_id}",
            None,
            request_id_var.get(),
        )
        raise_for(db, services, caller, project_id)  # the in-person-path flag, at once
    return PinCheckOut(
        passed=outcome.verification.passed,
        verification_id=outcome.verification.id,
        session=session,
        attempts_remaining=outcome.attempts_remaining,
        voided=outcome.voided,
    )


@router.post(
    "/api/v1/scan/pin",
    response_model=PinCheckOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def scan_pin(
    body: ScanPinIn,
    scan: ScanSessionDep,
    request: Request,
    response: Response,
    db: Db,
    services: ServicesDep,
    user_agent: Annotated[str | None, Header()] = None,
) -> PinCheckOut:
    """Instead of this scan's face check: the signing PIN, under an open in-person check.
    A wrong PIN is a stored outcome (passed=false), as a failed face check is."""
    outcome = in_person.verify_pin_for_scan(
        db,
        services.clock,
        services.cipher,
        in_person.PinPolicy.from_settings(services.settings),
        scan,
        body.id_number,
        body.pin,
        _device(request, scan.device_id, user_agent),
    )
    return _outcome(request, response, db, services, scan.project_id, outcome)


@router.post(
    "/api/v1/evaluation/pin", response_model=PinCheckOut, status_code=status.HTTP_201_CREATED
)
def evaluation_pin(
    body: SessionPinIn,
    me: Me,
    request: Request,
    response: Response,
    db: Db,
    services: ServicesDep,
    user_agent: Annotated[str | None, Header()] = None,
) -> PinCheckOut:
    """A signed-in member's fresh check by PIN (e.g. before signing the report), in place
    of `POST /api/v1/evaluation/challenge`."""
    outcome = in_person.verify_pin_for_session(
        db,
        services.clock,
        in_person.PinPolicy.from_settings(services.settings),
        me,
        body.pin,
        _device(request, me.device_id, user_agent),
    )
    return _outcome(request, response, db, services, me.project_id, outcome)
