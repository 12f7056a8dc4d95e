"""Binding a phone to a person: the operator's one-time QR at the desk, the phone's face
check and passkey registration, the list of bound phones and revoking a lost one."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    AnyStaff,
    Db,
    FaceEngineDep,
    Operator,
    ServicesDep,
    face_session_named,
    phone_token,
)
from api.logs import request_id_var
from api.rate_limits import challenge_limits, phone_limits
from api.routers.tasks import challenge_out
from api.schemas.committee.tasks import ScanChallengeOut
from api.schemas.identity import (
    CompleteIn,
    EnrollmentIn,
    EnrollmentOut,
    FaceSessionIn,
    OpenedOut,
    PasskeyOut,
)
from api.schemas.inputs import Prose
from evaluation.identity import phone_binding
from models.tables import Passkey, PasskeyEnrollment
from signing.task_qr import qr_png, qr_svg

router = APIRouter(tags=["passkeys"])


# Kept here, not in api/schemas: three request models are called RevokeIn, so FastAPI names
# this one's component by its module (api__routers__passkeys__RevokeIn); moving it would
# rename the component in the OpenAPI document.
class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose = Field(min_length=1, max_length=200, examples=["phone lost"])


@router.post(
    "/api/v1/experts/{expert_id}/passkeys/enrollments",
    response_model=EnrollmentOut,
    status_code=status.HTTP_201_CREATED,
)
def start_enrollment(
    expert_id: str, body: EnrollmentIn, staff: Operator, db: Db, services: ServicesDep
) -> EnrollmentOut:
    """Bind a phone: after checking the ID card, show this QR to the person. Their phone
    opens it, passes a face check against their enrolled face and registers a passkey."""
    enrollment, token = phone_binding.start_enrollment(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        services.passkeys,
        expert_id=expert_id,
        id_number=body.id_number,
    )
    url = f"{services.settings.public_url.rstrip('/')}/m/b/{token}"
    return EnrollmentOut(
        id=enrollment.id,
        expert_id=enrollment.expert_id,
        expires_at=enrollment.expires_at,
        url=url,
        token=token,
        png_base64=base64.b64encode(qr_png(url)).decode(),
        svg=qr_svg(url),
    )


@router.get("/api/v1/experts/{expert_id}/passkeys", response_model=list[PasskeyOut])
def list_passkeys(expert_id: str, staff: AnyStaff, db: Db) -> list[PasskeyOut]:
    """Every phone bound to the person, revoked ones included, oldest first."""
    rows = phone_binding.passkeys_of(db, staff.center_id, expert_id)
    return [PasskeyOut.model_validate(row) for row in rows]


@router.post("/api/v1/experts/{expert_id}/passkeys/{passkey_id}/revoke", response_model=PasskeyOut)
def revoke_passkey(
    expert_id: str,
    passkey_id: str,
    body: RevokeIn,
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> PasskeyOut:
    """A lost or replaced phone: its passkey approves nothing from now on."""
    row = phone_binding.revoke_passkey(
        db,
        staff.caller,
        services.clock,
        expert_id=expert_id,
        passkey_id=passkey_id,
        reason=body.reason,
    )
    return PasskeyOut.model_validate(row)


def enrollment_of_phone(
    request: Request,
    db: Db,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header()] = None,
) -> PasskeyEnrollment:
    sent = phone_token(
        request, services, phone_binding.ENROLLMENT_PREFIX, authorization, x_device_id
    )
    if sent.token is None or not sent.device_id:
        raise phone_binding.EnrollmentInvalid("send Authorization: Bearer evb_... and X-Device-Id")
    return phone_binding.open_enrollment(db, services.clock, sent.token, sent.device_id)


PhoneEnrollment = Annotated[PasskeyEnrollment, Depends(enrollment_of_phone)]


@router.post(
    "/api/v1/passkey-enrollment/open",
    response_model=OpenedOut,
    dependencies=[Depends(phone_limits)],
)
def open_enrollment(enrollment: PhoneEnrollment, db: Db) -> OpenedOut:
    """The phone opens its binding QR: from now on only this phone may continue."""
    return OpenedOut(
        id=enrollment.id,
        name=phone_binding.person_name(db, enrollment),
        expires_at=enrollment.expires_at,
    )


@router.post(
    "/api/v1/passkey-enrollment/challenge",
    response_model=ScanChallengeOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(challenge_limits)],
)
def enrollment_challenge(
    enrollment: PhoneEnrollment, db: Db, services: ServicesDep, engine: FaceEngineDep
) -> ScanChallengeOut:
    """The binding's face check, 1:1 against the person's enrolled face."""
    issued = phone_binding.enrollment_challenge(
        db,
        services.clock,
        services.cipher,
        engine,
        services.liveness,
        enrollment,
        request_id_var.get(),
        services.limiter,
    )
    return challenge_out(issued)


@router.post(
    "/api/v1/passkey-enrollment/options",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def registration_options(
    body: FaceSessionIn,
    enrollment: PhoneEnrollment,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """After the binding's passed face check: PublicKeyCredentialCreationOptions (JSON,
    binary fields base64url) for navigator.credentials.create()."""
    face, _ = face_session_named(request, db, services, body.face_session, x_device_id)
    return phone_binding.registration_options(
        db, services.clock, services.passkeys, enrollment, face
    )


@router.post(
    "/api/v1/passkey-enrollment/complete",
    response_model=PasskeyOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def complete_enrollment(
    body: CompleteIn,
    enrollment: PhoneEnrollment,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> PasskeyOut:
    """Bind the phone's new passkey to the person; the binding QR is spent."""
    face, _ = face_session_named(request, db, services, body.face_session, x_device_id)
    passkey: Passkey = phone_binding.complete_enrollment(
        db,
        services.clock,
        services.passkeys,
        enrollment,
        face,
        body.credential,
        label=body.label,
        request_id=request_id_var.get(),
    )
    return PasskeyOut.model_validate(passkey)
