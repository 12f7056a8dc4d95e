"""Face enrollment (/api/v1/experts/{id}/face) and the operator's comparison tool
(/api/v1/face/compare)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from api.deps import AnyStaff, Db, FaceEngineDep, Operator, ServicesDep
from api.errors import UnsupportedMediaType
from evaluation import faces
from evaluation.errors import DomainError

router = APIRouter(tags=["faces"])


class FaceEnrollmentOut(BaseModel):
    expert_id: str
    model_id: str
    photo_count: int
    enrolled_at: datetime
    consent_recorded_at: datetime
    photos: list[dict[str, Any]]


class FaceStatusOut(BaseModel):
    expert_id: str
    model_id: str
    photo_count: int
    enrolled_at: datetime
    consent_recorded_at: datetime
    quality: list[dict[str, Any]]


class CompareOut(BaseModel):
    similarity: float
    threshold: float
    same: bool
    faces: list[dict[str, Any]]


class UploadMissing(DomainError):
    status = 422
    code = "upload-missing"
    title = "A required file is missing from the form"


async def read_multipart(request: Request, max_files: int) -> Any:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the images as multipart/form-data")
    return await request.form(max_files=max_files, max_fields=10)


async def read_enrollment_form(
    request: Request, services: ServicesDep
) -> tuple[list[tuple[str, bytes]], bool]:
    form = await read_multipart(request, services.face_policy.max_photos + 1)
    photos = [
        (upload.filename or f"photo {index + 1}", await upload.read())
        for index, upload in enumerate(form.getlist("photos"))
        if isinstance(upload, UploadFile)
    ]
    if not photos:
        raise UploadMissing("attach 1 or more reference photos as `photos`")
    consent = str(form.get("consent", "")).strip().lower() in {"true", "1", "yes"}
    return photos, consent


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
        }
    ),
)
def enroll_face(
    expert_id: str,
    upload: Annotated[tuple[list[tuple[str, bytes]], bool], Depends(read_enrollment_form)],
    staff: Operator,
    db: Db,
    services: ServicesDep,
    engine: FaceEngineDep,
    response: Response,
) -> FaceEnrollmentOut:
    """Enroll or re-enroll from 1-5 reference photos; all must pass the quality gates."""
    photos, consent = upload
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
    )
    response.status_code = status.HTTP_200_OK if enrollment.replaced else status.HTTP_201_CREATED
    return FaceEnrollmentOut.model_validate(vars(enrollment))


@router.get("/api/v1/experts/{expert_id}/face", response_model=FaceStatusOut)
def face_status(expert_id: str, staff: AnyStaff, db: Db) -> FaceStatusOut:
    template = faces.face_enrollment(db, staff.center_id, expert_id)
    if template is None:
        raise faces.FaceNotEnrolled("the expert has no enrolled face")
    return FaceStatusOut.model_validate(template, from_attributes=True)


@router.delete("/api/v1/experts/{expert_id}/face", status_code=status.HTTP_204_NO_CONTENT)
def remove_face(expert_id: str, staff: Operator, db: Db, services: ServicesDep) -> Response:
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
