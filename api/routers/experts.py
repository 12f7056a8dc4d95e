"""/api/v1/experts: the expert registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from api.deps import AnyStaff, Db, ExpectedVersion, Operator, ServicesDep, Staff
from api.errors import UnsupportedMediaType
from api.schemas.inputs import Token
from api.schemas.registry import (
    ExpertCreate,
    ExpertOut,
    ExpertPageOut,
    ExpertUpdate,
    ImportOut,
    ReactivateRequest,
    SuspendRequest,
)
from evaluation.identity import session_ends
from evaluation.registry import expert_import, experts
from evaluation.registry.experts import ExpertFilters, ExpertStatus, StatusAction
from evaluation.registry.staff import Role
from evaluation.trust import credentials

router = APIRouter(prefix="/api/v1/experts", tags=["experts"])


def _out(record: experts.ExpertRecord, staff: Staff) -> ExpertOut:
    # Supervisors review, they do not phone experts: they see the number masked.
    return ExpertOut.of(record, reveal_phone=staff.role is not Role.SUPERVISOR)


def _etag(response: Response, record: experts.ExpertRecord) -> None:
    response.headers["ETag"] = f'"{record.version}"'


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExpertOut)
def register_expert(
    body: ExpertCreate, staff: Operator, db: Db, services: ServicesDep, response: Response
) -> ExpertOut:
    """Register an expert (ID number and phone stored encrypted); 409 when the ID number is
    already registered."""
    record = experts.register_expert(db, staff.caller, services.clock, services.cipher, body)
    response.headers["Location"] = f"{router.prefix}/{record.id}"
    _etag(response, record)
    return _out(record, staff)


@router.get("", response_model=ExpertPageOut)
def list_experts(
    staff: AnyStaff,
    db: Db,
    services: ServicesDep,
    specialty: Annotated[Token | None, Query(max_length=16, description="code prefix")] = None,
    region: Annotated[Token | None, Query(pattern=r"^\d{1,6}$", description="prefix")] = None,
    employer: Annotated[Token | None, Query(max_length=200, description="part of name")] = None,
    employer_credit_code: Annotated[Token | None, Query(max_length=18)] = None,
    status: ExpertStatus | None = None,
    name: Annotated[Token | None, Query(max_length=100, description="part of name")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: Annotated[Token | None, Query(max_length=500)] = None,
) -> ExpertPageOut:
    """The center's experts, filtered by specialty, region, employer, status or name, paged
    with cursor."""
    settings = services.settings
    page = experts.list_experts(
        db,
        staff.center_id,
        services.cipher,
        ExpertFilters(specialty, region, employer, employer_credit_code, status, name),
        limit=min(limit or settings.page_size_default, settings.page_size_max),
        cursor=cursor,
    )
    return ExpertPageOut(
        items=[_out(record, staff) for record in page.items],
        total=page.total,
        next_cursor=page.next_cursor,
    )


@router.get("/import/template", response_class=PlainTextResponse)
def import_template(staff: Operator) -> PlainTextResponse:
    """The CSV heading the import expects (Chinese headings are accepted too)."""
    return PlainTextResponse(
        expert_import.TEMPLATE,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="experts-template.csv"'},
    )


async def read_csv_upload(request: Request) -> bytes:
    """The CSV bytes from a `text/csv` body or a multipart form's `file` field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in {"text/csv", "application/csv", "text/plain"}:
        return await request.body()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UnsupportedMediaType("the multipart form needs a `file` field with the CSV")
        return await upload.read()
    raise UnsupportedMediaType(
        "send the CSV as text/csv or as multipart/form-data with a `file` field"
    )


CsvUpload = Annotated[bytes, Depends(read_csv_upload)]


@router.post(
    "/import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
def import_experts(
    data: CsvUpload, staff: Operator, db: Db, services: ServicesDep, dry_run: bool = False
) -> ImportOut:
    """Register many experts from CSV. All rows valid: all stored; any invalid: none."""
    result = expert_import.import_experts(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        data,
        max_rows=services.settings.max_import_rows,
        dry_run=dry_run,
    )
    return ImportOut(created=result.created, dry_run=result.dry_run, expert_ids=result.expert_ids)


@router.get("/{expert_id}", response_model=ExpertOut)
def get_expert(
    expert_id: str, staff: AnyStaff, db: Db, services: ServicesDep, response: Response
) -> ExpertOut:
    """One expert, with the ID number and phone masked."""
    record = experts.get_expert(db, staff.center_id, services.cipher, expert_id)
    _etag(response, record)
    return _out(record, staff)


@router.patch("/{expert_id}", response_model=ExpertOut)
def update_expert(
    expert_id: str,
    body: ExpertUpdate,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    version: ExpectedVersion,
    response: Response,
) -> ExpertOut:
    """Change an expert's registered details (audited); If-Match guards against lost updates."""
    record = experts.update_expert(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        expert_id,
        body,
        expected_version=version,
    )
    _etag(response, record)
    return _out(record, staff)


def _change_status(
    action: StatusAction,
    reason: str | None,
    expert_id: str,
    staff: Staff,
    db: Db,
    services: ServicesDep,
    version: int | None,
    response: Response,
) -> ExpertOut:
    record = experts.change_expert_status(
        db,
        staff.caller,
        services.clock,
        services.cipher,
        expert_id,
        action,
        reason,
        expected_version=version,
    )
    # A suspended expert's credential is on hold (certificateHold) until reactivation.
    credentials.hold_for_expert(
        db,
        staff.caller,
        services.clock,
        services.vault,
        services.pki,
        expert_id,
        suspended=action is StatusAction.SUSPEND,
    )
    if action is StatusAction.SUSPEND:
        # Nothing proved before the suspension signs after a reactivation.
        session_ends.end_face_sessions(db, services.clock.now(), expert_id=expert_id)
    _etag(response, record)
    return _out(record, staff)


@router.post("/{expert_id}/suspend", response_model=ExpertOut)
def suspend_expert(
    expert_id: str,
    body: SuspendRequest,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    version: ExpectedVersion,
    response: Response,
) -> ExpertOut:
    """Take an expert out of draws; the reason is kept and audited."""
    return _change_status(
        StatusAction.SUSPEND, body.reason, expert_id, staff, db, services, version, response
    )


@router.post("/{expert_id}/reactivate", response_model=ExpertOut)
def reactivate_expert(
    expert_id: str,
    body: ReactivateRequest,
    staff: Operator,
    db: Db,
    services: ServicesDep,
    version: ExpectedVersion,
    response: Response,
) -> ExpertOut:
    """Let a suspended expert be drawn again, with the reason (audited)."""
    return _change_status(
        StatusAction.REACTIVATE, body.reason, expert_id, staff, db, services, version, response
    )
