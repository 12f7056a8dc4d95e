"""What supervisors read besides the verification log: sign-ins, signature events and, once
the evaluation has closed, the score sheets. Read-only (admin and supervisor), newest first,
paged with `cursor=next_cursor`, `format=csv` exporting a page; each record links to the
records behind it (the face check, the document, the project)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.csv_export import csv_text
from api.deps import AuditReader, Db, ServicesDep
from api.schemas.inputs import Token
from api.schemas.supervision import (
    DrawPage,
    DrawRowOut,
    Links,
    ProjectRowOut,
    ScoreSheetOut,
    SignatureOut,
    SignaturePage,
)
from evaluation.committee import draws
from evaluation.supervision import at_a_glance, searches
from evaluation.supervision.searches import RecordFilter

router = APIRouter(prefix="/api/v1/supervision", tags=["supervision"])

Cursor = Annotated[Token | None, Query(max_length=120)]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]


# SignInOut and SeatOut, with the pages that hold them, stay here, not in api/schemas: other
# routers have classes of the same names, so FastAPI names these components by their module
# (api__routers__supervision__SignInOut) and moving them would rename them in the OpenAPI
# document.
class SignInOut(BaseModel):
    id: str
    created_at: datetime
    project_id: str
    assignment_id: str
    expert_id: str
    device_id: str
    verification_id: str
    assurance: str = Field(description="face, or in-person-pin (the lower, non-face path)")
    flagged: bool
    flag_reason: str | None
    revoked_at: datetime | None
    links: Links


class SignInPage(BaseModel):
    items: list[SignInOut]
    next_cursor: str | None


SIGN_IN_COLUMNS = [
    "id",
    "created_at",
    "project_id",
    "expert_id",
    "device_id",
    "verification_id",
    "assurance",
    "flagged",
    "flag_reason",
    "revoked_at",
]
DRAW_COLUMNS = [
    "id",
    "project_id",
    "project_code",
    "status",
    "commitment",
    "public_entropy",
    "created_at",
    "ran_at",
]
SIGNATURE_COLUMNS = [
    "slot_id",
    "signed_at",
    "document_id",
    "purpose",
    "project_id",
    "role",
    "mark",
    "signer_id",
    "unit_id",
    "credential_id",
    "sad_id",
    "verification_id",
    "assurance",
    "revision",
]


def _csv(name: str, columns: Sequence[str], items: Sequence[BaseModel]) -> Response:
    rows = ([item.model_dump(mode="json")[c] for c in columns] for item in items)
    return Response(
        csv_text(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/sign-ins", response_model=SignInPage, responses={200: {"content": {"text/csv": {}}}})
def sign_ins(
    staff: AuditReader,
    db: Db,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    expert_id: Annotated[Token | None, Query(max_length=64)] = None,
    device_id: Annotated[Token | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    form: Format = "json",
) -> Any:
    """Who signed in to which project, from which device, after which face check."""
    where = RecordFilter(project_id, expert_id, device_id, since, until)
    position = searches.decode_cursor(cursor) if cursor else None
    rows = searches.search_sign_ins(db, staff.center_id, where, position, limit)
    methods = searches.methods_of(db, (row.verification_id for row in rows))
    items = [
        SignInOut(
            id=row.id,
            created_at=row.created_at,
            project_id=row.project_id,
            assignment_id=row.assignment_id,
            expert_id=row.expert_id,
            device_id=row.device_id,
            verification_id=row.verification_id,
            assurance=methods.get(row.verification_id, "face"),
            flagged=row.flagged,
            flag_reason=row.flag_reason,
            revoked_at=row.revoked_at,
            links=Links(
                verification=f"/api/v1/face/verifications/{row.verification_id}",
                project=f"/api/v1/projects/{row.project_id}",
            ),
        )
        for row in rows
    ]
    if form == "csv":
        return _csv("sign-ins", SIGN_IN_COLUMNS, items)
    full = len(items) == limit
    return SignInPage(
        items=items,
        next_cursor=searches.cursor_of(rows[-1].created_at, rows[-1].id) if full else None,
    )


@router.get(
    "/signatures", response_model=SignaturePage, responses={200: {"content": {"text/csv": {}}}}
)
def signatures(
    staff: AuditReader,
    db: Db,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    signer_id: Annotated[Token | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    form: Format = "json",
) -> Any:
    """Every signature in a document slot (reports and contracts): the signer, the
    credential, the single-use SAD and the face check that unlocked it."""
    where = RecordFilter(project_id, signer_id, None, since, until)
    position = searches.decode_cursor(cursor) if cursor else None
    events = searches.search_signatures(db, staff.center_id, where, position, limit)
    methods = searches.methods_of(db, (event.slot.verification_id for event in events))
    items = []
    for event in events:
        slot, document = event.slot, event.document
        assert slot.signed_at is not None
        items.append(
            SignatureOut(
                slot_id=slot.id,
                signed_at=slot.signed_at,
                document_id=document.id,
                document_title=document.title,
                purpose=document.purpose,
                project_id=event.project_id,
                role=slot.role,
                mark=slot.mark,
                signer_id=slot.signed_by or slot.expert_id,
                unit_id=slot.unit_id,
                credential_id=slot.credential_id,
                sad_id=slot.sad_id,
                verification_id=slot.verification_id,
                assurance=methods.get(slot.verification_id or ""),
                revision=slot.revision,
                links=Links(
                    verification=f"/api/v1/face/verifications/{slot.verification_id}"
                    if slot.verification_id
                    else None,
                    project=f"/api/v1/projects/{event.project_id}" if event.project_id else None,
                    document=f"/api/v1/documents/{document.id}",
                ),
            )
        )
    if form == "csv":
        return _csv("signatures", SIGNATURE_COLUMNS, items)
    full = len(items) == limit
    last = events[-1].slot if events else None
    return SignaturePage(
        items=items,
        next_cursor=searches.cursor_of(last.signed_at, last.id)
        if full and last and last.signed_at
        else None,
    )


@router.get("/projects/{project_id}/scores", response_model=list[ScoreSheetOut])
def scores(project_id: str, staff: AuditReader, db: Db) -> list[ScoreSheetOut]:
    """Every member's score sheet, void ones included, once the evaluation has closed
    (409 evaluation-not-closed before)."""
    return [
        ScoreSheetOut(
            id=sheet.id,
            assignment_id=sheet.assignment_id,
            expert_id=sheet.expert_id,
            status=sheet.status,
            points=sheet.points,
            submitted_at=sheet.submitted_at,
            void_reason=sheet.void_reason,
        )
        for sheet in searches.scores_after_close(db, staff.center_id, project_id)
    ]


@router.get("/draws", response_model=DrawPage, responses={200: {"content": {"text/csv": {}}}})
def draws_list(
    staff: AuditReader,
    db: Db,
    services: ServicesDep,
    project_id: Annotated[Token | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    form: Format = "json",
) -> Any:
    """Every committee draw in the center, newest first: the commitment published before
    the run, the public entropy, and the proof (`evalsign draw verify` replays it)."""
    where = RecordFilter(project_id, None, None, since, until)
    position = searches.decode_cursor(cursor) if cursor else None
    rows = searches.search_draws(db, staff.center_id, where, position, limit)
    items = [
        DrawRowOut(
            id=draw.id,
            project_id=project.id,
            project_code=project.code,
            status=draw.status,
            commitment=draw.commitment,
            public_entropy=draw.public_entropy,
            created_at=draw.created_at,
            ran_at=draw.ran_at,
            previous_draw_id=draw.previous_draw_id,
            proof=draws.published_proof(
                draw, sealed=draws.proof_is_sealed(project, staff.role.value, services.clock)
            ),
            links=Links(
                verification=None,
                project=f"/api/v1/projects/{project.id}",
                document=f"/api/v1/projects/{project.id}/draws/{draw.id}",
            ),
        )
        for draw, project in rows
    ]
    if form == "csv":
        return _csv("draws", DRAW_COLUMNS, items)
    full = len(items) == limit
    last = rows[-1][0] if rows else None
    return DrawPage(
        items=items,
        next_cursor=searches.cursor_of(last.created_at, last.id) if full and last else None,
    )


# --- the console's dashboard and project search -------------------------------------------


# Kept here with GlanceOut for its component name, as SignInOut above.
class SeatOut(BaseModel):
    assignment_id: str
    name: str | None = Field(description="None while the committee is sealed")
    chair: bool
    signed_in_at: datetime | None
    method: str | None = Field(description="passkey, sms or in-person: the second factor")


class GlanceOut(BaseModel):
    project_id: str
    code: str
    name: str
    status: str
    mode: str
    evaluation_start: datetime
    evaluation_end: datetime
    sealed: bool = Field(description="Names are withheld until the evaluation starts")
    seats: list[SeatOut]
    signed_in: int
    open_flags: int
    signatures_missing: int | None = Field(description="Report signatures not yet made")


@router.get("/overview", response_model=list[GlanceOut])
def overview(staff: AuditReader, db: Db, services: ServicesDep) -> list[GlanceOut]:
    """Today's evaluations in the center's time zone, those still running and those of the
    next seven days: sign-in progress, open flags and signatures still missing."""
    zone = services.settings.display_zone
    return [
        GlanceOut(
            project_id=glance.project.id,
            code=glance.project.code,
            name=glance.project.name,
            status=glance.project.status,
            mode=glance.project.mode,
            evaluation_start=glance.project.evaluation_start,
            evaluation_end=glance.project.evaluation_end,
            sealed=glance.sealed,
            seats=[SeatOut.model_validate(seat, from_attributes=True) for seat in glance.seats],
            signed_in=glance.signed_in,
            open_flags=glance.open_flags,
            signatures_missing=glance.signatures_missing,
        )
        for glance in at_a_glance.evaluations_at_a_glance(
            db, staff.center_id, staff.role.value, services.clock, zone
        )
    ]


@router.get("/projects", response_model=list[ProjectRowOut])
def find_projects(
    staff: AuditReader,
    db: Db,
    q: Annotated[str | None, Query(max_length=100, description="part of a code or name")] = None,
    status: Annotated[
        Literal["draft", "drawn", "evaluating", "completed", "cancelled"] | None, Query()
    ] = None,
) -> list[ProjectRowOut]:
    """Projects whose code or name contains `q`, newest evaluation first (at most 100)."""
    found = at_a_glance.search_projects(db, staff.center_id, (q or "").strip() or None, status)
    return [ProjectRowOut.model_validate(project, from_attributes=True) for project in found]
