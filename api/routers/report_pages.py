"""The evaluation report as a member's phone shows it: who has signed, page images of the
PDF (phones do not all show a PDF inline), and the signed file to keep, all from the
member's evaluation session, which binds the project.

The JSON hands out page URLs pinned to the current revision: a pinned revision's bytes
never change (revisions only append), so its images may be cached for a day, and a new
signature yields new URLs. Without `revision` a route serves the latest revision and the
phone revalidates every time (ETag, 304)."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.deps import Db, ServicesDep
from api.routers.evaluation import Me
from api.schemas.committee.reports import ReportPagesOut, SignerOut
from api.schemas.inputs import Count, Int32
from api.services import Services
from evaluation.committee import deliberation, projects
from evaluation.documents import documents
from evaluation.kernel.errors import NotFound
from models.tables import Document, DocumentRevision, EvaluationSession, Expert
from signing import pdf_pages

router = APIRouter(tags=["evaluation"])

PDF = "application/pdf"
PNG = "image/png"
DEFAULT_WIDTH = 960
PINNED_CACHE = "private, max-age=86400, immutable"
LATEST_CACHE = "private, max-age=0, must-revalidate"
# The URLs are the same for every member; the session tells whose report it is, so a
# phone holding two sessions must not answer one from the other's cached copy.
VARY = "Authorization, Cookie"
BASE = "/api/v1/evaluation/report"


class ReportNotGenerated(NotFound):
    code = "report-not-generated"
    title = "The evaluation report has not been generated yet"


class NoSuchPage(NotFound):
    code = "no-such-page"
    title = "The document has no page with that number"


def _my_report(db: Session, me: EvaluationSession) -> Document:
    """The report of the session's project, for a member still seated on its committee."""
    deliberation.my_seat(db, me)
    project = projects.get_project(db, me.center_id, me.project_id)
    if project.report_document_id is None:
        raise ReportNotGenerated("the chair has not generated the report yet")
    return documents.get_document(db, me.center_id, project.report_document_id)


def cache_headers(etag: str, pinned: bool) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": PINNED_CACHE if pinned else LATEST_CACHE, "Vary": VARY}


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


@router.get(BASE, response_model=ReportPagesOut)
def report_overview(me: Me, db: Db, services: ServicesDep) -> ReportPagesOut:
    """The report as my phone shows it: its pages, who has signed, and my part."""
    document = _my_report(db, me)
    slots = documents.slots_of(db, document.id)
    signers = []
    for slot in slots:
        expert = db.get(Expert, slot.expert_id) if slot.expert_id else None
        signers.append(
            SignerOut(
                slot_id=slot.id,
                name=expert.name if expert else slot.party_name,
                role=slot.role,
                status=slot.status,
                signed_at=slot.signed_at,
                is_me=slot.expert_id == me.expert_id,
            )
        )
    mine = next((s for s in signers if s.is_me), None)
    pinned = f"?revision={document.revision}"
    return ReportPagesOut(
        document_id=document.id,
        title=document.title,
        status=document.status,
        page_count=document.page_count,
        revision=document.revision,
        sha256=document.sha256,
        signature_count=sum(s.status == "signed" for s in signers),
        slot_count=len(signers),
        signers=signers,
        my_status=mine.status if mine else None,
        signed_by_me=mine is not None and mine.status == "signed",
        refused_by_me=mine is not None and mine.status == "refused",
        can_sign=document.status == "signing" and mine is not None and mine.status == "pending",
        signing_freshness_s=services.settings.signing_freshness_s,
        page_urls=[f"{BASE}/pages/{n}.png{pinned}" for n in range(1, document.page_count + 1)],
        file_url=f"{BASE}/file{pinned}",
        sign_url=f"/api/v1/documents/{document.id}/signatures",
        face_check_url="/api/v1/evaluation/challenge",
    )


@router.get(
    BASE + "/pages/{page}.png",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, 304: {"description": "Not modified"}},
)
def report_page(
    page: Int32,
    me: Me,
    db: Db,
    services: ServicesDep,
    width: Annotated[
        int, Query(ge=pdf_pages.MIN_WIDTH, le=pdf_pages.MAX_WIDTH, description="Pixels")
    ] = DEFAULT_WIDTH,
    revision: Annotated[Count | None, Query(ge=0, description="Default: the latest")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Page `page` (from 1) of the report as a PNG `width` pixels wide, signature stamps
    included."""
    return page_response(services, db, _my_report(db, me), page, width, revision, if_none_match)


def page_response(
    services: Services,
    db: Session,
    document: Document,
    page: int,
    width: int,
    revision: int | None,
    if_none_match: str | None,
) -> Response:
    """Page `page` of a document's revision as a PNG, with its cache headers (a pinned
    revision never changes)."""
    if not 1 <= page <= document.page_count:
        raise NoSuchPage(
            f"the document has pages 1 to {document.page_count}", page_count=document.page_count
        )
    chosen = documents.revision_of(db, document, revision)
    etag = f'W/"r{chosen.number}-{chosen.sha256[:16]}-p{page}-w{width}"'
    headers = cache_headers(etag, pinned=revision is not None)
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    stored = documents.stored_revision(db, document, chosen.number)
    pdf = b"".join(services.documents.store.read(stored))
    # A stored revision pdfium cannot draw is our fault, not the phone's: PdfUnreadable
    # goes on to the logged 500 (internal-error) with the request id.
    image = pdf_pages.render_page(pdf, page, width)
    return Response(image.png, media_type=PNG, headers=headers)


# Runs of anything but letters, digits, dots and underscores become one dash.
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def content_disposition(file_name: str) -> str:
    """`attachment` with an ASCII `filename` for old clients and the real (Chinese) name
    as RFC 5987 `filename*`."""
    stem, dot, suffix = file_name.rpartition(".")
    if not dot:
        stem, suffix = file_name, ""
    fallback = _UNSAFE.sub("-", stem).strip("-.") or "download"
    if suffix := _UNSAFE.sub("", suffix):
        fallback = f"{fallback}.{suffix}"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def download_name(document: Document, revision: DocumentRevision) -> str:
    stem, dot, suffix = document.file_name.rpartition(".")
    if not dot or suffix.lower() != "pdf":
        stem = document.file_name
    return f"{stem}-r{revision.number}.pdf"


@router.get(
    BASE + "/file",
    response_class=StreamingResponse,
    responses={200: {"content": {PDF: {}}}, 304: {"description": "Not modified"}},
)
def report_file(
    me: Me,
    db: Db,
    services: ServicesDep,
    revision: Annotated[Count | None, Query(ge=0, description="Default: the latest")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The report's PDF with every signature so far, to keep."""
    return file_response(services, db, _my_report(db, me), revision, if_none_match)


def file_response(
    services: Services,
    db: Session,
    document: Document,
    revision: int | None,
    if_none_match: str | None,
) -> Response:
    """A document's revision as a download, with its cache headers."""
    chosen = documents.revision_of(db, document, revision)
    headers = cache_headers(f'"{chosen.sha256}"', pinned=revision is not None)
    if etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    chunks = services.documents.store.read(documents.stored_revision(db, document, chosen.number))
    headers["Content-Length"] = str(chosen.size)
    headers["Content-Disposition"] = content_disposition(download_name(document, chosen))
    return StreamingResponse(chunks, media_type=PDF, headers=headers)
