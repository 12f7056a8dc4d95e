"""Documents: upload with signer slots (operator), status changes, signing from the signer's
phone (verified face session), downloads of any revision, and validation of any PDF."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import AnyStaff, Db, Operator, ServicesDep, transaction
from api.errors import RequestTooLarge, ValidationFailed
from api.routers.csc import Phone, as_signer, signer_caller
from api.routers.faces import BINARY, UploadMissing, multipart_body, read_multipart
from api.schemas.documents import (
    ApprovalIn,
    DocumentOut,
    RevisionOut,
    SignedOut,
    SignIn,
    SlotOut,
    StatusChangeIn,
    ValidationOut,
)
from api.schemas.identity import SigningChallengeOut, SmsCodeSentOut
from api.schemas.inputs import Count, Token
from api.services import Services, revocation_check_for
from evaluation.documents import documents
from evaluation.documents.documents import NewDocument
from evaluation.documents.store import Received, UploadTooLarge
from evaluation.trust import pki
from models.tables import Document, VerifiedSession
from signing import pades

router = APIRouter(tags=["documents"])

M = TypeVar("M", bound=BaseModel)

PDF = "application/pdf"


def document_out(db: Db, document: Document) -> DocumentOut:
    out = DocumentOut.model_validate(document)
    out.slots = [SlotOut.model_validate(s) for s in documents.slots_of(db, document.id)]
    out.revisions = [RevisionOut.model_validate(r) for r in documents.revisions_of(db, document.id)]
    return out


async def read_pdf_form(
    request: Request, services: Services, file_field: str, model: type[M], what: str
) -> tuple[Received, str, M]:
    """A PDF (python-multipart spools it; we copy it to the store in chunks) and the
    `metadata` JSON beside it, validated before anything is kept."""
    form = await read_multipart(request, max_files=1)
    upload = form.get(file_field)
    if not isinstance(upload, UploadFile):
        raise UploadMissing(f"attach the PDF as `{file_field}`")
    raw = form.get("metadata")
    if not isinstance(raw, str):
        raise UploadMissing(f"send {what} as JSON in `metadata`")
    try:
        fields = model.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"metadata is not JSON: {exc}") from exc
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "type": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        raise ValidationFailed(f"{len(errors)} metadata field(s) invalid", errors=errors) from exc
    store = services.documents.store
    try:
        received = await run_in_threadpool(
            store.receive, upload.file, services.settings.document_max_bytes
        )
    except UploadTooLarge as exc:
        raise RequestTooLarge(str(exc), limit_bytes=exc.limit) from exc
    return received, upload.filename or f"{file_field}.pdf", fields


async def read_upload(
    request: Request, services: ServicesDep
) -> AsyncIterator[tuple[Received, str, NewDocument]]:
    upload = await read_pdf_form(
        request, services, "file", NewDocument, "the title, purpose and slots"
    )
    async with discarded_unless_kept(services, upload[0]):
        yield upload


@asynccontextmanager
async def discarded_unless_kept(services: Services, received: Received) -> AsyncIterator[None]:
    """Whatever ends the request (a refusal of any kind, an error, a kept document), the
    temporary upload is gone after it: a kept one was moved away, the rest are deleted."""
    try:
        yield
    finally:
        services.documents.store.discard(received)


@router.post(
    "/api/v1/documents",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=multipart_body(
        {
            "file": BINARY,
            "metadata": {
                "type": "string",
                "description": 'JSON: {"title", "purpose", "slots": [{"expert_id", "role", '
                '"order_group", "page", "box": [x1, y1, x2, y2]}]}',
            },
        }
    ),
)
def upload_document(
    upload: Annotated[tuple[Received, str, NewDocument], Depends(read_upload, scope="function")],
    staff: Operator,
    db: Db,
    services: ServicesDep,
) -> DocumentOut:
    """Upload a PDF with its signer slots; it starts as a draft."""
    received, file_name, fields = upload
    document = documents.create_document(
        db, staff.caller, services.clock, services.documents.store, received, file_name, fields
    )
    return document_out(db, document)


@router.get("/api/v1/documents", response_model=list[DocumentOut])
def list_documents(staff: AnyStaff, db: Db) -> list[DocumentOut]:
    """The center's documents to sign, newest first."""
    return [document_out(db, d) for d in documents.list_documents(db, staff.center_id)]


@router.get("/api/v1/documents/{document_id}", response_model=DocumentOut)
def get_document(document_id: str, staff: AnyStaff, db: Db) -> DocumentOut:
    """One document: its status, signer slots and revisions."""
    return document_out(db, documents.get_document(db, staff.center_id, document_id))


@router.get(
    "/api/v1/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {PDF: {}}}},
)
def download_document(
    document_id: str,
    staff: AnyStaff,
    db: Db,
    services: ServicesDep,
    revision: Annotated[Count | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """The latest revision, or any earlier one (`?revision=N`), streamed."""
    document = documents.get_document(db, staff.center_id, document_id)
    chosen = documents.revision_of(db, document, revision)
    chunks = services.documents.store.read(documents.stored_revision(db, document, chosen.number))
    return StreamingResponse(
        chunks,
        media_type=PDF,
        headers={
            "Content-Length": str(chosen.size),
            "ETag": f'"{chosen.sha256}"',
            "Content-Disposition": f'attachment; filename="{document.id}-r{chosen.number}.pdf"',
        },
    )


@router.post("/api/v1/documents/{document_id}/start", response_model=DocumentOut)
def start_signing(document_id: str, staff: Operator, db: Db, services: ServicesDep) -> DocumentOut:
    """Open a draft for signing: slots and file are fixed from now on."""
    document = documents.change_status(db, staff.caller, services.clock, document_id, "start", None)
    return document_out(db, document)


@router.post("/api/v1/documents/{document_id}/cancel", response_model=DocumentOut)
def cancel_document(
    document_id: str, body: StatusChangeIn, staff: Operator, db: Db, services: ServicesDep
) -> DocumentOut:
    """Cancel a document that is not completed, with the reason (audited)."""
    document = documents.change_status(
        db, staff.caller, services.clock, document_id, "cancel", body.reason
    )
    return document_out(db, document)


@router.post(
    "/api/v1/documents/{document_id}/signatures",
    response_model=SignedOut,
    status_code=status.HTTP_201_CREATED,
)
async def sign_document(
    document_id: str, body: SignIn, phone: Phone, services: ServicesDep
) -> SignedOut:
    """Sign your slot with your cloud credential: needs a face check at most
    EVALSIGN_SIGNING_FRESHNESS_S old (the same SAD rules as the CSC API)."""
    return await run_in_threadpool(_sign, document_id, body, phone, services)


def _sign(document_id: str, body: SignIn, phone: Any, services: Services) -> SignedOut:
    def sign(db: Session, session: VerifiedSession) -> SignedOut:
        signed = documents.sign_document(
            db,
            signer_caller(session),
            services.clock,
            services.documents,
            session,
            document_id,
            body.slot_id,
            approval=body.approval(),
        )
        return SignedOut(
            document=document_out(db, signed.document),
            slot=SlotOut.model_validate(signed.slot),
            revision=RevisionOut.model_validate(signed.revision),
        )

    return as_signer(services, phone, "document.sign", {"document_id": document_id}, sign)


@router.post(
    "/api/v1/documents/{document_id}/approval",
    response_model=SigningChallengeOut,
    status_code=status.HTTP_201_CREATED,
)
async def approval_challenge(
    document_id: str, body: ApprovalIn, phone: Phone, services: ServicesDep
) -> SigningChallengeOut:
    """Prepare your signature on this document as it stands and get the challenge your
    bound phone's passkey answers to approve exactly it (the SHA-256 of its signed
    attributes); send the answer with the signature. 409 `document-moved-on` there means a
    colleague's signature landed first: ask for a new approval."""

    def challenge(db: Session, session: VerifiedSession) -> SigningChallengeOut:
        approval = documents.approval_options(
            db, services.clock, services.documents, session, document_id, body.slot_id
        )
        return SigningChallengeOut.of(approval)

    return await run_in_threadpool(
        as_signer, services, phone, "document.approve", {"document_id": document_id}, challenge
    )


@router.post(
    "/api/v1/documents/{document_id}/approval/sms",
    response_model=SmsCodeSentOut,
    status_code=status.HTTP_201_CREATED,
)
async def sms_approval(
    document_id: str, body: ApprovalIn, phone: Phone, services: ServicesDep
) -> SmsCodeSentOut:
    """Where the center allows it (EVALSIGN_SMS_FALLBACK): your signature prepared as for
    a passkey, and an SMS code to your registered mobile that approves exactly it; send
    the code with the signature. A lower assurance, always shown to supervisors."""

    def send(db: Session, session: VerifiedSession) -> SmsCodeSentOut:
        sent = documents.sms_approval(
            db, services.clock, services.documents, session, document_id, body.slot_id
        )
        return SmsCodeSentOut.of(sent)

    return await run_in_threadpool(
        as_signer, services, phone, "document.approve", {"document_id": document_id}, send
    )


@router.post(
    "/api/v1/validate",
    response_model=ValidationOut,
    openapi_extra=multipart_body({"file": BINARY}),
    responses={200: {"content": {"text/html": {}}}},
)
async def validate_pdf(
    request: Request,
    staff: AnyStaff,
    services: ServicesDep,
    format: Annotated[Token, Query(pattern="^(json|html)$")] = "json",
) -> Any:
    """Validate every signature of an uploaded PDF against this center's trust list;
    `?format=html` gives a report a person can read and print."""
    form = await read_multipart(request, max_files=1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise UploadMissing("attach the PDF as `file`")
    report = await run_in_threadpool(_validate, upload, staff.center_id, services)
    if format == "html":
        return HTMLResponse(render_report(report, upload.filename or "document.pdf"))
    return report


def _validate(upload: UploadFile, center_id: str, services: Services) -> ValidationOut:
    store = services.documents.store
    try:
        received = store.receive(upload.file, services.settings.document_max_bytes)
    except UploadTooLarge as exc:
        raise RequestTooLarge(str(exc), limit_bytes=exc.limit) from exc
    try:
        with transaction(services, read_only=True) as db:
            roots = pki.trust_roots(db, center_id)
            online = revocation_check_for(
                services.settings, pki.external_trust_roots(db, center_id)
            )
        try:
            report = pades.validate(received.path, roots, now=services.clock.now(), online=online)
        except pades.PdfRejected as exc:
            raise documents.PdfRejected(str(exc), **documents.budget_limit(exc)) from exc
    finally:
        store.discard(received)
    return validation_out(report)


def validation_out(report: pades.ValidationReport) -> ValidationOut:
    return ValidationOut(
        verdict=report.verdict,
        summary=report.summary,
        signatures=[_jsonable(dataclasses.asdict(s)) for s in report.signatures],
        document_timestamps=[_jsonable(dataclasses.asdict(t)) for t in report.document_timestamps],
    )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return plain


_LABELS = {
    "field_name": "签名域 Field",
    "signer_subject": "签署人 Signer",
    "signer_serial": "证书序列号 Certificate serial",
    "signing_time": "签署时间 Signing time",
    "timestamp_time": "时间戳 Time-stamp",
    "intact": "文件未被篡改 Intact",
    "valid": "签名有效 Signature valid",
    "trusted": "证书可信 Chain trusted",
    "revocation_checked": "已查吊销状态 Revocation checked",
    "revoked": "证书已吊销 Revoked",
    "revocation_source": "吊销状态来源 Revocation data from",
    "coverage": "覆盖范围 Coverage",
    "modification_level": "之后的修改 Changes after",
    "pades_level": "PAdES 级别 Level",
    "problems": "问题 Problems",
}


def render_report(report: ValidationOut, file_name: str) -> str:
    """A plain, printable HTML report of a validation (no scripts, no external assets)."""
    verdicts = {"valid": "有效 VALID", "invalid": "无效 INVALID"}
    verdict = verdicts.get(report.verdict, "无法确定 INDETERMINATE")
    sections = []
    groups = (
        ("签名 Signatures", report.signatures),
        ("文档时间戳 Document time-stamps", report.document_timestamps),
    )
    for title, items in groups:
        for item in items:
            rows = "".join(
                f"<tr><th>{escape(label)}</th><td>{escape(_cell(item.get(key)))}</td></tr>"
                for key, label in _LABELS.items()
                if key in item
            )
            sections.append(
                f"<h2>{escape(title)}: {escape(str(item.get('field_name')))}</h2>"
                f"<table>{rows}</table>"
            )
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<title>签名验证报告 Signature validation report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "th{text-align:left;padding-right:1em;vertical-align:top}"
        ".verdict{font-size:1.4em}</style></head><body>"
        "<h1>签名验证报告 Signature validation report</h1>"
        f"<p>文件 File: {escape(file_name)}</p>"
        f"<p class='verdict'>结论 Verdict: <strong>{escape(verdict)}</strong></p>"
        f"<p>{escape(report.summary)}</p>{''.join(sections)}</body></html>"
    )


def _cell(value: Any) -> str:
    if value is True:
        return "是 yes"
    if value is False:
        return "否 no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "—"
    return "—" if value is None else str(value)
