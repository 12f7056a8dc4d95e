"""Task QR codes and signing in from a phone: the room QR (rotating) and personal QRs an
operator shows, the scan that exchanges one for a scan session, the face check of that
scan, and the sign-in that yields the expert's evaluation session."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

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
from api.rate_limits import ChallengeLimit, PhoneLimit, count_center, phone_limits
from api.routers.anomalies import raise_for
from api.routers.faces import BINARY, UploadMissing, multipart_body, read_multipart
from api.schemas.committee.tasks import (
    AssignmentBrief,
    ConsentIn,
    ConsentOut,
    ConsentTextOut,
    EvaluationSessionOut,
    IdCardEnrollmentOut,
    PasskeyOptionsIn,
    ProjectBrief,
    ScanChallengeOut,
    ScanIn,
    ScanOut,
    SignInIn,
    TaskQrOut,
)
from api.schemas.identity import CaptureOut, SmsCodeSentOut, StepOut
from api.schemas.inputs import Prose
from api.web import session as web
from evaluation.committee import draws, projects, sign_in, tasks
from evaluation.contracts import contracts
from evaluation.identity import capture_stream, consent, face_checks, faces, one_time_codes
from evaluation.kernel import audit
from evaluation.registry import centers, unit_authority
from models.tables import Project, ScanSession

router = APIRouter(tags=["tasks"])


def _qr_response(qr: tasks.TaskQr, form: str) -> TaskQrOut | Response:
    if form == "png":
        return Response(qr.png, media_type="image/png", headers={"Cache-Control": "no-store"})
    if form == "svg":
        return Response(qr.svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
    return TaskQrOut(
        kind=qr.kind,
        url=qr.url,
        token=qr.token,
        expires_at=qr.expires_at,
        rotates_at=qr.rotates_at,
        png_base64=base64.b64encode(qr.png).decode(),
        svg=qr.svg,
    )


QrFormat = Annotated[Literal["json", "png", "svg"], Query(alias="format")]


@router.post(
    "/api/v1/projects/{project_id}/qr",
    response_model=TaskQrOut,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def room_qr(
    project_id: str, staff: Operator, db: Db, services: ServicesDep, form: QrFormat = "json"
) -> TaskQrOut | Response:
    """The room QR for the evaluation room's screen: it rotates every 30 s (fetch again at
    `rotates_at`) and each code is accepted for 60 s."""
    qr = tasks.room_qr(
        db,
        staff.center_id,
        services.clock,
        services.room_tokens,
        project_id,
        services.settings.public_url,
    )
    return _qr_response(qr, form)


@router.post(
    "/api/v1/projects/{project_id}/assignments/{assignment_id}/qr",
    response_model=TaskQrOut,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def personal_qr(
    project_id: str,
    assignment_id: str,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    form: QrFormat = "json",
) -> TaskQrOut | Response:
    """A single-use QR for one member (sent to their phone); an earlier unused one of
    theirs stops working."""
    qr = tasks.personal_qr(
        db, staff.caller, services.clock, project_id, assignment_id, services.settings.public_url
    )
    response = _qr_response(qr, form)
    if isinstance(response, Response):
        response.status_code = status.HTTP_201_CREATED
    return response


def _brief(db: Db, project: Project) -> ProjectBrief:
    return ProjectBrief(
        id=project.id,
        code=project.code,
        name=project.name,
        center_name=centers.get_center(db, project.center_id).name,
        tenderer_name=project.tenderer_name,
        evaluation_start=project.evaluation_start,
        evaluation_end=project.evaluation_end,
        mode=project.mode,
    )


@router.post("/api/v1/scan", response_model=ScanOut, status_code=status.HTTP_201_CREATED)
def scan(
    body: ScanIn, request: Request, limits: PhoneLimit, db: Db, services: ServicesDep
) -> ScanOut:
    """Exchange a task code for a scan session. No staff token: the code is the credential,
    and the face check that follows decides who is scanning. Refusals are logged."""
    where = tasks.ScanContext(
        device_id=body.device_id,
        client_ip=request.client.host if request.client else None,
        request_id=request_id_var.get(),
    )
    limits.device(body.device_id)
    ttl = services.settings.scan_session_ttl_s
    if body.token.strip().startswith(contracts.LINK_PREFIX):
        return _scan_contract_link(body, where, db, services)
    scanned = tasks.scan(db, services.clock, services.room_tokens, body.token, where, _seconds(ttl))
    project = scanned.project
    return ScanOut(
        scan_token=scanned.token,
        kind=scanned.session.kind,
        expires_at=scanned.session.expires_at,
        project=_brief(db, project),
        challenge_url="/api/v1/scan/challenge",
        sign_in_url="/api/v1/scan/sign-in",
    )


def _scan_contract_link(
    body: ScanIn, where: tasks.ScanContext, db: Db, services: ServicesDep
) -> ScanOut:
    session, secret, contract = contracts.scan_link(
        db,
        services.clock,
        body.token,
        where.device_id,
        where.client_ip,
        where.request_id,
        _seconds(services.settings.scan_session_ttl_s),
    )
    project = projects.get_project(db, contract.center_id, contract.project_id)
    return ScanOut(
        scan_token=secret,
        kind=session.kind,
        expires_at=session.expires_at,
        project=_brief(db, project),
        challenge_url="/api/v1/scan/challenge",
        sign_in_url=f"/api/v1/contracts/{contract.id}/signatures",
        contract_id=contract.id,
    )


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def scan_session(
    request: Request,
    db: Db,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header()] = None,
) -> ScanSession:
    sent = phone_token(request, services, tasks.SCAN_PREFIX, authorization, x_device_id)
    if sent.token is None:
        raise tasks.ScanSessionInvalid("send Authorization: Bearer evs_... and X-Device-Id")
    scan = tasks.authenticate_scan(db, sent.token, sent.device_id, services.clock.now())
    count_center(services.limiter, services.settings, scan.center_id)
    return scan


ScanSessionDep = Annotated[ScanSession, Depends(scan_session)]


@router.get("/api/v1/consent/face", response_model=ConsentTextOut)
def face_consent_text(lang: Literal["zh", "en"] = "zh") -> ConsentTextOut:
    """The face recognition consent a phone must show before a face check."""
    text = consent.consent_text(lang)
    return ConsentTextOut(
        version=text.version,
        language=lang,
        title=text.title,
        paragraphs=list(text.paragraphs),
        sha256=text.sha256,
    )


@router.post(
    "/api/v1/scan/consent", response_model=ConsentOut, dependencies=[Depends(phone_limits)]
)
def answer_consent(
    body: ConsentIn, scan: ScanSessionDep, db: Db, services: ServicesDep
) -> ConsentOut:
    """The person's answer to the face recognition consent. No face check without a yes;
    a no is recorded too, and the phone shows the in-person alternative."""
    consent.answer_consent(
        db, services.clock, scan, body.version, body.accepted, body.language, request_id_var.get()
    )
    return ConsentOut(
        version=body.version,
        accepted=body.accepted,
        consented_at=scan.consented_at,
        alternative="an in-person ID check at the center by an operator, then signing "
        "with a signing PIN",
    )


def challenge_out(issued: face_checks.IssuedChallenge) -> ScanChallengeOut:
    challenge = issued.challenge
    return ScanChallengeOut(
        id=challenge.id,
        nonce=issued.nonce,
        mode=challenge.mode,
        actions=[],
        issued_at=challenge.issued_at,
        expires_at=challenge.expires_at,
        capture=CaptureOut.model_validate(challenge.capture),
        step=StepOut.model_validate(capture_stream.step_view(challenge, 0)),
        submit_url=f"/api/v1/face/challenges/{challenge.id}/frames",
    )


@router.post(
    "/api/v1/scan/challenge", response_model=ScanChallengeOut, status_code=status.HTTP_201_CREATED
)
def scan_challenge(
    limits: ChallengeLimit,
    scan: ScanSessionDep,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
) -> ScanChallengeOut:
    """The face check of this scan: 1:few against the seated committee (room QR) or 1:1
    against the assignee (personal QR). Answer it at `submit_url`, then sign in."""
    issued = sign_in.challenge_for_scan(
        db,
        services.clock,
        services.cipher,
        engine,
        services.liveness,
        scan,
        services.settings.scan_max_challenges,
        request_id_var.get(),
        limits.limiter,
    )
    return challenge_out(issued)


# Kept here, not in api/schemas: the supervisors' search has a SignInOut too, so FastAPI
# names this component by its module (api__routers__tasks__SignInOut) and moving it would
# rename it in the OpenAPI document.
class SignInOut(BaseModel):
    evaluation_token: str | None = Field(
        description="Authorization: Bearer eve_... with X-Device-Id (null for a phone page, "
        "whose HttpOnly cookie holds it)"
    )
    session_id: str
    expires_at: datetime
    flagged: bool = Field(description="True when the expert is also signed in on another device")
    expert_id: str
    assignment: AssignmentBrief
    project_id: str


@router.put(
    "/api/v1/scan/id-card",
    dependencies=[Depends(phone_limits)],
    response_model=IdCardEnrollmentOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=multipart_body({"photo": BINARY}),
)
async def enroll_id_card(
    request: Request,
    scan: ScanSessionDep,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
) -> IdCardEnrollmentOut:
    """Remote enrollment for a contract link's representative who has not enrolled at the
    center: a photo of the portrait side of their ID card becomes their reference (at the
    "id-card" assurance); the liveness check that follows must match it. Needs the face
    recognition consent first."""
    if scan.kind != "contract":
        raise contracts.ContractLinkInvalid("remote enrollment is for contract links only")
    consent.require_consent(scan)
    form = await read_multipart(request, max_files=1)
    upload = form.get("photo")
    if not isinstance(upload, UploadFile):
        raise UploadMissing("attach the ID card photo as `photo`")
    data = await upload.read(services.settings.face_max_image_bytes + 1)
    caller = audit.Caller(scan.center_id, f"scan:{scan.id}", None, request_id_var.get())
    enrollment = await run_in_threadpool(
        faces.enroll_from_id_card,
        db,
        caller,
        services.clock,
        services.cipher,
        engine,
        services.face_policy,
        unit_authority.link_person(db, scan),
        data,
        consent.FACE_CONSENT_VERSION,  # require_consent: what the scan agreed to
    )
    return IdCardEnrollmentOut(
        person_id=enrollment.expert_id,
        reference="id-card",
        model_id=enrollment.model_id,
        enrolled_at=enrollment.enrolled_at,
        replaced=enrollment.replaced,
        quality=enrollment.photos,
    )


@router.post(
    "/api/v1/scan/passkey",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def scan_passkey_options(
    body: PasskeyOptionsIn,
    scan: ScanSessionDep,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """After this scan's passed face check: PublicKeyCredentialRequestOptions (JSON) for
    the phone bound to the person it found. Answer them with the sign-in."""
    face, _ = face_session_named(request, db, services, body.face_session, x_device_id)
    return sign_in.passkey_options(db, services.clock, services.passkeys, scan, face)


@router.post(
    "/api/v1/scan/sms-code",
    response_model=SmsCodeSentOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def scan_sms_code(
    body: PasskeyOptionsIn,
    scan: ScanSessionDep,
    request: Request,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> SmsCodeSentOut:
    """Where the center allows it, after this scan's passed face check: an SMS code to
    the registered mobile of the person it found, answered with the sign-in in place of
    the passkey (a lower assurance, always shown to supervisors). 403 where not allowed."""
    face, _ = face_session_named(request, db, services, body.face_session, x_device_id)
    if services.sms is None:
        raise one_time_codes.SmsCodeNotAllowed("sign in with the passkey of your bound phone")
    sent = sign_in.sms_code(db, services.clock, services.sms, services.cipher, scan, face)
    return SmsCodeSentOut.of(sent)


@router.post(
    "/api/v1/scan/sign-in",
    response_model=SignInOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
)
def scan_sign_in(
    body: SignInIn,
    scan: ScanSessionDep,
    request: Request,
    response: Response,
    db: Db,
    services: ServicesDep,
    x_device_id: Annotated[str | None, Header()] = None,
) -> SignInOut:
    """Sign in with the face session of this scan's passed check."""
    now = services.clock.now()
    face, page = face_session_named(request, db, services, body.face_session, x_device_id)
    signed = sign_in.sign_in(
        db,
        services.clock,
        scan,
        face,
        ttl=_seconds(services.settings.evaluation_session_ttl_s),
        policy=services.passkeys,
        passkey=body.passkey,
        request_id=request_id_var.get(),
        sms=None if body.sms is None else sign_in.SmsAnswer(body.sms.nonce, body.sms.code.strip()),
    )
    caller = audit.Caller(
        scan.center_id, f"expert:{face.expert_id}", "expert", request_id_var.get()
    )
    raise_for(db, services, caller, signed.project.id)
    if page:
        ttl = (signed.session.expires_at - now).total_seconds()
        web.set_token_cookie(request, response, signed.token, int(ttl))
        web.clear_token_cookie(request, response, tasks.SCAN_PREFIX)
        web.clear_token_cookie(request, response, face_checks.SESSION_PREFIX)
    return SignInOut(
        evaluation_token=None if page else signed.token,
        session_id=signed.session.id,
        expires_at=signed.session.expires_at,
        flagged=signed.session.flagged,
        expert_id=signed.session.expert_id,
        assignment=AssignmentBrief(
            id=signed.assignment.id,
            specialty=signed.assignment.specialty,
            status=signed.assignment.status,
        ),
        project_id=signed.project.id,
    )


@router.get("/api/v1/projects/{project_id}/sessions", response_model=list[EvaluationSessionOut])
def project_sessions(
    project_id: str, staff: AnyStaff, db: Db, services: ServicesDep
) -> list[EvaluationSessionOut]:
    """Who signed in to the project, on which device (sealed like the committee)."""
    project = projects.get_project(db, staff.center_id, project_id)
    draws.refuse_if_sealed(project, staff.role.value, services.clock)
    rows = sign_in.sessions_of(db, staff.center_id, project.id)
    return [EvaluationSessionOut.model_validate(row) for row in rows]


# Kept here, not in api/schemas: three request models are called RevokeIn, so FastAPI names
# this one's component by its module (api__routers__tasks__RevokeIn); moving it would rename
# it in the OpenAPI document.
class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Prose = Field(min_length=2, max_length=500)


@router.post("/api/v1/evaluation-sessions/{session_id}/revoke", response_model=EvaluationSessionOut)
def revoke_session(
    session_id: str, body: RevokeIn, staff: Operator, db: Db, services: ServicesDep
) -> EvaluationSessionOut:
    """End one phone's evaluation session (lost phone, flagged second device); the expert
    keeps the seat and signs in again."""
    row = sign_in.revoke(db, staff.caller, services.clock, session_id, body.reason.strip())
    return EvaluationSessionOut.model_validate(row)
