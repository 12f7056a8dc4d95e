"""Face enrollment (/api/v1/experts/{id}/face) and the operator's comparison tool
(/api/v1/face/compare)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import (
    Admin,
    AnyStaff,
    AuditReader,
    Db,
    FaceEngineDep,
    Operator,
    ServicesDep,
    Staff,
    require,
)
from api.errors import UnsupportedMediaType, ValidationFailed
from api.schemas.identity import (
    CompareOut,
    FaceEnrollmentOut,
    FaceStatusOut,
    HoldingsOut,
    RemoteDecisionIn,
    RemoteReviewOut,
    RetainedOut,
    WithdrawIn,
    WithdrawnOut,
)
from evaluation.identity import face_data, faces, remote_review
from evaluation.kernel.errors import DomainError
from evaluation.kernel.identifiers import check_characters
from evaluation.registry.staff import Role

router = APIRouter(tags=["faces"])


ReviewReader = Annotated[Staff, Depends(require(Role.OPERATOR, Role.SUPERVISOR))]


class UploadMissing(DomainError):
    status = 422
    code = "upload-missing"
    title = "A required file is missing from the form"


async def read_multipart(
    request: Request, max_files: int, too_many: DomainError | None = None
) -> Any:
    """The multipart form, at most `max_files` files; beyond that `too_many` is the answer
    (Starlette's own parser would say 400 "Too many files")."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the images as multipart/form-data")
    try:
        form = await request.form(max_files=max_files, max_fields=10)
    except StarletteHTTPException as exc:
        if too_many is not None and "Too many files" in str(exc.detail):
            raise too_many from exc
        raise
    # Text fields meet the same character rules as JSON bodies (a NUL reaches PostgreSQL).
    errors = []
    for name, value in form.multi_items():
        if isinstance(value, str):
            try:
                check_characters(value, newlines=True)
            except ValueError as exc:
                errors.append({"field": f"body.{name}", "type": "value_error", "message": str(exc)})
    if errors:
        raise ValidationFailed(f"{len(errors)} field(s) invalid", errors=errors)
    return form


async def read_enrollment_form(
    request: Request, services: ServicesDep
) -> tuple[list[tuple[str, bytes]], bool, str | None]:
    form = await read_multipart(request, services.face_policy.max_photos + 1)
    photos = [
        (upload.filename or f"photo {index + 1}", await upload.read())
        for index, upload in enumerate(form.getlist("photos"))
        if isinstance(upload, UploadFile)
    ]
    if not photos:
        raise UploadMissing("attach 1 or more reference photos as `photos`")
    consent = str(form.get("consent", "")).strip().lower() in {"true", "1", "yes"}
    version = str(form.get("consent_version", "")).strip()[:40] or None
    return photos, consent, version


async def read_compare_form(request: Request) -> tuple[bytes, bytes]:
    form = await read_multipart(request, 2)
    images = []
    for name in ("image_a", "image_b"):
        upload = form.get(name)
        if not isinstance(upload, UploadFile):
            raise UploadMissing(f"attach the image `{name}`")
        images.append(await upload.read())
    return images[0], images[1]


def multipart_body(properties: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a multipart form the route reads itself (so FastAPI cannot infer it)."""
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"requestBody": {"content": {"multipart/form-data": {"schema": schema}}}}


BINARY = {"type": "string", "format": "binary"}


@router.put(
    "/api/v1/experts/{expert_id}/face",
    response_model=FaceEnrollmentOut,
    openapi_extra=multipart_body(
        {
            "photos": {"type": "array", "items": BINARY},
            "consent": {"type": "boolean", "description": "the expert's separate consent"},
            "consent_version": {
                "type": "string",
                "description": "the consent text shown (GET /api/v1/consent/face); "
                "default: the current one",
            },
        }
    ),
)
def enroll_face(
    expert_id: str,
    upload: Annotated[
        tuple[list[tuple[str, bytes]], bool, str | None], Depends(read_enrollment_form)
    ],
    staff: Operator,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
    response: Response,
) -> FaceEnrollmentOut:
    """Enroll or re-enroll from 1-5 reference photos; all must pass the quality gates."""
    photos, consent, consent_version = upload
    enrollment = faces.enroll_face(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        engine,
        services.face_policy,
        expert_id,
        photos,
        consent=consent,
        consent_version=consent_version,
    )
    response.status_code = status.HTTP_200_OK if enrollment.replaced else status.HTTP_201_CREATED
    return FaceEnrollmentOut.model_validate(vars(enrollment))


@router.get("/api/v1/experts/{expert_id}/face", response_model=FaceStatusOut)
def face_status(expert_id: str, staff: AnyStaff, db: Db) -> FaceStatusOut:
    """Whether the expert has a face reference, since when, and the consent it rests on."""
    template = faces.face_enrollment(db, staff.center_id, expert_id)
    if template is None:
        raise faces.FaceNotEnrolled("the expert has no enrolled face")
    return FaceStatusOut.model_validate(template, from_attributes=True)


@router.get("/api/v1/experts/{expert_id}/face/remote-enrollment", response_model=RemoteReviewOut)
def remote_enrollment(
    expert_id: str, staff: ReviewReader, db: Db, services: ServicesDep
) -> RemoteReviewOut:
    """A remote enrollment for the operator to decide: the ID card photo beside a frame of
    the live check that matched it (shown only until the decision). Supervisors read who
    decided it: an operator, or the identity provider (with its reference)."""
    view = remote_review.review_of(db, services.cipher, staff.center_id, expert_id)
    if staff.role is not Role.OPERATOR:
        # Supervisors check who decided; the face images are for the one deciding.
        view = replace(view, card_jpeg_base64=None, frame_jpeg_base64=None)
    return RemoteReviewOut.model_validate(vars(view))


@router.post(
    "/api/v1/experts/{expert_id}/face/remote-enrollment/decision", response_model=RemoteReviewOut
)
def decide_remote_enrollment(
    expert_id: str, body: RemoteDecisionIn, staff: Operator, db: Db, services: ServicesDep
) -> RemoteReviewOut:
    """Confirm that the card and the live face are the person the unit authorized (then
    they can seal and sign), or reject (the reference is deleted; they enroll again)."""
    remote_review.decide(
        db,
        staff.caller,
        services.clock,
        expert_id=expert_id,
        confirm=body.decision == "confirm",
        note=body.note,
        seen_verification_id=body.verification_id,
    )
    view = remote_review.review_of(db, services.cipher, staff.center_id, expert_id)
    return RemoteReviewOut.model_validate(vars(view))


@router.delete("/api/v1/experts/{expert_id}/face", status_code=status.HTTP_204_NO_CONTENT)
def remove_face(expert_id: str, staff: Operator, db: Db, services: ServicesDep) -> Response:
    """Delete the expert's face reference and photos (audited); the expert must enroll again."""
    faces.remove_face(db, staff.caller, services.clock, expert_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/face/compare",
    response_model=CompareOut,
    openapi_extra=multipart_body({"image_a": BINARY, "image_b": BINARY}),
)
def compare_faces(
    images: Annotated[tuple[bytes, bytes], Depends(read_compare_form)],
    staff: Operator,
    services: ServicesDep,
    engine: FaceEngineDep,
) -> CompareOut:
    """Diagnostics: how similar are the largest faces of two images? Nothing is stored."""
    result = faces.compare_images(engine, services.face_policy, *images)
    return CompareOut(**result)


@router.post("/api/v1/experts/{expert_id}/face/consent/withdraw", response_model=WithdrawnOut)
def withdraw_face_consent(
    expert_id: str, body: WithdrawIn, staff: Operator, db: Db, services: ServicesDep
) -> WithdrawnOut:
    """Record the person's withdrawal of consent: their face data is deleted at once and
    face checks are refused (409 face-consent-withdrawn) until they enroll again."""
    expert, erased = face_data.withdraw_consent(
        db, staff.caller, services.clock, expert_id, body.note
    )
    assert expert.face_consent_withdrawn_at is not None
    return WithdrawnOut(
        expert_id=expert.id,
        withdrawn_at=expert.face_consent_withdrawn_at,
        templates_deleted=erased.templates,
        photos_deleted=erased.photos,
        frames_deleted=erased.frames,
        sessions_revoked=erased.sessions_revoked,
    )


@router.get("/api/v1/faces/holdings", response_model=HoldingsOut)
def face_holdings(staff: AuditReader, db: Db, services: ServicesDep) -> HoldingsOut:
    """How many people's face data the center holds (the Measures' filing count)."""
    settings = services.settings
    found = face_data.holdings(
        db, staff.center_id, settings.face_filing_threshold, settings.face_filing_warn_ratio
    )
    return HoldingsOut(
        people=found.people,
        photos=found.photos,
        frames=found.frames,
        filing_threshold=found.threshold,
        warning=found.warning,
    )


@router.post("/api/v1/faces/retention", response_model=RetainedOut)
def apply_retention(staff: Admin, db: Db, services: ServicesDep) -> RetainedOut:
    """Apply the retention limits now (the scheduled job does it daily)."""
    done = face_data.apply_retention(
        db,
        staff.caller,
        services.clock,
        face_data.RetentionPolicy.from_settings(services.settings),
        staff.center_id,
    )
    return RetainedOut(**vars(done))
