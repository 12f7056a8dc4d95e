"""Face checks with liveness: challenges, frame submissions, verification records, the
verified session, and unlocking an expert after repeated failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Header,
    Query,
    Request,
    Response,
    status,
)
from starlette.datastructures import UploadFile

from api.csv_export import csv_text
from api.deps import AnyStaff, Db, FaceEngineDep, FaceSession, Operator, ServicesDep, transaction
from api.errors import NotReady
from api.identity_provider import ask_identity_provider
from api.logs import request_id_var
from api.rate_limits import phone_limits
from api.routers.faces import BINARY, UploadMissing, multipart_body, read_multipart
from api.schemas.identity import (
    CaptureOut,
    ChallengeCreate,
    ChallengeOut,
    LockoutOut,
    SessionOut,
    StepOut,
    StreamAck,
    SubmissionOut,
    UnlockIn,
    VerificationOut,
    VerificationPage,
    VerificationSummaryOut,
)
from api.schemas.inputs import Token
from api.web import session as web
from evaluation.identity import capture_stream, face_checks
from evaluation.identity.capture_stream import FramesInvalid
from evaluation.identity.faces import image_error
from evaluation.kernel.errors import NotFound
from evaluation.kernel.identifiers import check_characters
from evaluation.supervision import searches
from face.antispoof import AntiSpoofModelError, PassiveAntiSpoof
from face.capture import analyze_capture, light_samples
from face.intake import DecodedImage, ImageRejected, IntakeLimits, decode_image
from face.liveness import REASON_MESSAGES, FrameAnalysis

router = APIRouter(tags=["liveness"])


@router.post(
    "/api/v1/face/challenges",
    response_model=ChallengeOut,
    status_code=status.HTTP_201_CREATED,
)
def issue_challenge(
    body: ChallengeCreate,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
) -> ChallengeOut:
    """A single-use liveness challenge for one expert (1:1) or a set (1:few)."""
    issued = face_checks.issue_challenge(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        engine,
        services.liveness,
        body.expert_ids,
    )
    challenge = issued.challenge
    return ChallengeOut(
        id=challenge.id,
        nonce=issued.nonce,
        mode=challenge.mode,
        expert_ids=challenge.expert_ids,
        actions=[],
        issued_at=challenge.issued_at,
        expires_at=challenge.expires_at,
        capture=CaptureOut.model_validate(challenge.capture),
        step=StepOut.model_validate(capture_stream.step_view(challenge, 0)),
        submit_url=f"/api/v1/face/challenges/{challenge.id}/frames",
    )


def _int_list(form: Any, name: str) -> list[int]:
    raw = form.get(name)
    if not isinstance(raw, str):
        raise FramesInvalid(f"send `{name}` as a JSON array of integers")
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise FramesInvalid(f"`{name}` is not JSON") from exc
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**9 for v in values
    ):
        raise FramesInvalid(f"`{name}` must be an array of non-negative integers (ms)")
    return values


def _device(form: Any) -> dict[str, Any]:
    raw = form.get("device")
    try:
        device = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        device = None
    if not isinstance(device, dict) or not isinstance(device.get("id"), str):
        raise FramesInvalid('send `device` as JSON with at least {"id": "..."}')
    if not 8 <= len(device["id"]) <= 100 or len(raw or "") > 2000:
        raise FramesInvalid("the device id must be 8-100 characters, the JSON < 2 kB")
    kept = {key: str(value)[:200] for key, value in device.items()}
    try:
        for key, value in kept.items():
            check_characters(key)
            check_characters(value)
    except ValueError as exc:
        raise FramesInvalid(f"`device`: {exc}") from exc
    return kept


# Frames of one step: a step lasts at most 500 ms, filmed at up to 30 fps.
MAX_STEP_FRAMES = 16


@dataclass(frozen=True)
class SubmittedFrames:
    """One step's parsed form, before the challenge is looked up."""

    nonce: str
    step: int
    frames: list[bytes]
    timestamps_ms: list[int]
    device: dict[str, Any]
    carried: int = 0


async def read_frames_form(request: Request) -> SubmittedFrames:
    too_many = FramesInvalid(
        f"send a step's frames, at most {MAX_STEP_FRAMES}", max_frames=MAX_STEP_FRAMES
    )
    form = await read_multipart(request, MAX_STEP_FRAMES + 1, too_many)
    nonce = form.get("nonce")
    if not isinstance(nonce, str) or not nonce.strip():
        raise UploadMissing("send the challenge's `nonce`")
    step = form.get("step")
    if not isinstance(step, str) or not step.isdigit() or int(step) > 1000:
        raise FramesInvalid("send `step`: the index of the step these frames were filmed under")
    uploads = [u for u in form.getlist("frames") if isinstance(u, UploadFile)]
    if len(uploads) > MAX_STEP_FRAMES:
        raise too_many
    frames = [await upload.read() for upload in uploads]
    timestamps = _int_list(form, "timestamps_ms")
    if len(timestamps) != len(frames):
        raise FramesInvalid(
            f"{len(timestamps)} timestamps for {len(frames)} frames; send one per frame"
        )
    carried = form.get("carried", "0")
    if not isinstance(carried, str) or not carried.isdigit() or int(carried) > len(frames):
        raise FramesInvalid(
            "`carried` counts the first frames filmed under the previous step; at most all"
        )
    return SubmittedFrames(
        nonce.strip(), int(step), frames, timestamps, _device(form), int(carried)
    )


def _decode_frames(frames: list[bytes], max_bytes: int, max_side: int) -> list[DecodedImage]:
    limits = IntakeLimits(max_bytes=max_bytes, max_pixels=max_side * max_side)
    decoded = []
    for index, data in enumerate(frames):
        label = f"frame {index}"
        try:
            image = decode_image(data, limits)
        except ImageRejected as error:
            raise image_error(error, label) from error
        if max(image.width, image.height) > max_side:
            raise FramesInvalid(
                f"{label} is {image.width}x{image.height}; downscale to at most {max_side} px "
                "a side before sending",
                frame=index,
            )
        decoded.append(image)
    return decoded


def _passive(services: ServicesDep) -> PassiveAntiSpoof | None:
    try:
        return services.anti_spoof()
    except AntiSpoofModelError as exc:
        raise NotReady(f"the anti-spoof model cannot be loaded: {exc}") from exc


@router.post(
    "/api/v1/face/challenges/{challenge_id}/frames",
    response_model=SubmissionOut | StreamAck,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(phone_limits)],
    responses={
        202: {"model": StreamAck, "description": "The step was stored; film the next one"},
        201: {"model": SubmissionOut, "description": "The last step closed the stream"},
    },
    openapi_extra=multipart_body(
        {
            "nonce": {"type": "string"},
            "step": {"type": "integer", "description": "The step filmed under (from 0)"},
            "frames": {"type": "array", "items": BINARY, "description": "JPEG, in order"},
            "timestamps_ms": {
                "type": "string",
                "description": "JSON array, one per frame, ms since filming began (advisory)",
            },
            "device": {"type": "string", "description": 'JSON object, {"id": ...}'},
            "carried": {
                "type": "integer",
                "description": "How many of the first frames were filmed while the previous "
                "step still showed (filmed on while it uploaded); 0 by default",
            },
        }
    ),
)
def submit_frames(
    challenge_id: str,
    form: Annotated[SubmittedFrames, Depends(read_frames_form)],
    request: Request,
    response: Response,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
    background: BackgroundTasks,
    user_agent: Annotated[str | None, Header()] = None,
) -> SubmissionOut | StreamAck:
    """Answer a challenge step by step, as the phone films: the frames of the step now
    shown (its colour on the screen, its prompt if any), in order. The answer reveals the
    next step (202); the last step's answer is the judgement (201). The nonce is the
    credential: no staff token is needed. A failed check is a stored outcome
    (passed=false), not an error; a stream that breaks the protocol (a step not yet shown,
    sent twice or too fast, a stall, too many frames, times out of order) is refused and
    the challenge is spent."""
    config = services.liveness
    received_at = services.clock.now()
    meta = {
        "ip": request.client.host if request.client else None,
        "device_id": form.device["id"],
        "rid": request_id_var.get(),
    }
    with transaction(services) as tx:
        challenge = face_checks.open_challenge(tx, challenge_id, form.nonce, received_at, meta)
        received = capture_stream.receive_chunk(
            tx,
            services.cipher,
            challenge,
            capture_stream.Chunk(
                form.step, form.frames, form.timestamps_ms, form.device["id"], form.carried
            ),
            received_at,
            meta,
            max_frames=config.max_frames,
            stall=config.stall,
            check_frames=lambda frames: _decode_frames(
                frames, config.frame_max_bytes, config.frame_max_side
            ),
        )
        if received.closed:
            collected = capture_stream.collect(tx, services.cipher, challenge)
    if not received.closed:
        assert received.next_step is not None
        response.status_code = status.HTTP_202_ACCEPTED
        return StreamAck(
            received_frames=received.frames_so_far,
            next_step=StepOut.model_validate(received.next_step),
        )
    images = _decode_frames(collected.frames, config.frame_max_bytes, config.frame_max_side)
    passive = _passive(services)
    # Detect on a few frames, track between them, embed only what identity reads.
    analyses: list[FrameAnalysis] = analyze_capture(
        engine, images, config.policy, challenge.actions, passive=passive
    )
    # The light is sampled on every frame (no model needed): a frame the models skipped
    # takes the face box of the nearest frame they read.
    light = capture_stream.light_check(collected, light_samples(images, analyses))
    probabilities = None
    if passive is not None:
        probabilities = passive.live_probabilities(
            [a.spoof_crop for a in analyses if a.usable and a.spoof_crop is not None]
        )
    outcome = face_checks.record_verification(
        db,
        face_checks.FaceCheckTools(services.clock, services.cipher, engine, config),
        face_checks.Capture(
            challenge_id=challenge_id,
            nonce=form.nonce,
            received_at=received_at,
            frames=analyses,
            raw_frames=collected.frames,
            upload=face_checks.FrameUpload(
                timestamps_ms=collected.timestamps_ms,
                prompts_ms=collected.prompts_ms,
                device=form.device,
                device_id=form.device["id"],
                client_ip=meta["ip"],
                user_agent=(user_agent or "")[:400] or None,
                request_id=meta["rid"],
            ),
            live_probabilities=probabilities,
            extra_checks=[light],
        ),
    )
    if outcome.review_id is not None and services.identity_verifier is not None:
        # After the commit: the provider may take seconds, and no lock waits on it.
        background.add_task(
            ask_identity_provider,
            services,
            services.identity_verifier,
            outcome.review_id,
            meta["rid"],
        )
    session = None
    if outcome.session is not None:
        session = SessionOut.model_validate(outcome.session, from_attributes=True)
        session.token = outcome.session_token
        if outcome.session_token and request.cookies.get(web.DEVICE_COOKIE) == form.device["id"]:
            # A phone page: the session goes into an HttpOnly cookie, not to script.
            ttl = (outcome.session.expires_at - received_at).total_seconds()
            web.set_token_cookie(request, response, outcome.session_token, int(ttl))
            session.token = None
    reasons = outcome.phone_reasons
    return SubmissionOut(
        passed=outcome.judgement.passed,
        reasons=reasons,
        messages_zh=[REASON_MESSAGES.get(r, (r, r))[1] for r in dict.fromkeys(reasons)],
        verification=None
        if challenge.scan_session_id
        else VerificationOut.model_validate(outcome.verification, from_attributes=True),
        session=session,
        attempts_remaining=outcome.attempts_remaining,
        locked=outcome.locked,
        frame_issues=[
            issue
            for check in outcome.judgement.checks
            for issue in check.values.get("common_issues", [])
        ],
    )


CSV_COLUMNS = (
    "id",
    "created_at",
    "expert_id",
    "mode",
    "passed",
    "reasons",
    "similarity",
    "device_id",
    "client_ip",
    "challenge_id",
    "method",
)


@router.get(
    "/api/v1/face/verifications",
    response_model=VerificationPage,
    responses={200: {"content": {"text/csv": {}}}},
)
def list_verifications(
    staff: AnyStaff,
    db: Db,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    expert_id: Annotated[Token | None, Query(max_length=64)] = None,
    passed: bool | None = None,
    reason: Annotated[Token | None, Query(pattern=r"^[a-z][a-z-]{1,39}$")] = None,
    device_id: Annotated[Token | None, Query(max_length=100)] = None,
    ip: Annotated[
        Token | None, Query(max_length=64, description="An address or CIDR range")
    ] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
    cursor: Annotated[Token | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    form: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> VerificationPage | Response:
    """Face checks of this center, newest first, filtered as a supervisor searches; page on
    with ``cursor=next_cursor``; ``format=csv`` exports the page."""
    where = searches.VerificationFilter(
        project_id=project_id,
        expert_id=expert_id,
        passed=passed,
        reason=reason,
        device_id=device_id,
        address=ip,
        since=since,
        until=until if before is None else before,
    )
    position = searches.decode_cursor(cursor) if cursor else None
    rows = searches.search_verifications(db, staff.center_id, where, position, limit)
    if form == "csv":
        lines = (
            [
                row.id,
                row.created_at.isoformat(),
                row.expert_id or "",
                row.mode,
                row.passed,
                " ".join(row.reasons),
                "" if row.similarity is None else f"{row.similarity:.4f}",
                row.device_id,
                row.client_ip or "",
                row.challenge_id or "",
                row.method,
            ]
            for row in rows
        )
        return Response(
            csv_text(CSV_COLUMNS, lines),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="verifications.csv"'},
        )
    items = [VerificationSummaryOut.model_validate(row, from_attributes=True) for row in rows]
    full = len(items) == limit
    return VerificationPage(
        items=items,
        next_before=items[-1].created_at if full else None,
        next_cursor=searches.encode_cursor(rows[-1]) if full else None,
    )


@router.get("/api/v1/face/verifications/{verification_id}", response_model=VerificationOut)
def get_verification(verification_id: str, staff: AnyStaff, db: Db) -> VerificationOut:
    """One face check with every signal, as a supervisor reviews it."""
    row = face_checks.get_verification(db, staff.center_id, verification_id)
    return VerificationOut.model_validate(row, from_attributes=True)


@router.get("/api/v1/face/session", response_model=SessionOut)
def current_session(session: FaceSession) -> SessionOut:
    """The verified face session this phone holds (token plus the device it was bound to)."""
    return SessionOut.model_validate(session, from_attributes=True)


@router.post("/api/v1/experts/{expert_id}/face/unlock", response_model=LockoutOut)
def unlock_face_check(
    expert_id: str, body: UnlockIn, staff: Operator, db: Db, services: ServicesDep
) -> LockoutOut:
    """Let a locked-out expert try again (after checking who they are), saying why."""
    lock = face_checks.unlock(db, staff.caller, services.clock, expert_id, body.reason)
    return LockoutOut.model_validate(lock, from_attributes=True)


@router.get("/api/v1/experts/{expert_id}/face/lockout", response_model=LockoutOut)
def face_check_lockout(expert_id: str, staff: AnyStaff, db: Db) -> LockoutOut:
    """The expert's open lockout, if any (404 when face checks are not locked)."""
    locks = face_checks.open_locks(db, [expert_id])
    mine = [lock for lock in locks if lock.center_id == staff.center_id]
    if not mine:
        raise NotFound("the expert's face check is not locked")
    return LockoutOut.model_validate(mine[0], from_attributes=True)
