"""The FastAPI application factory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.docs import install_docs
from api.errors import install_error_handlers
from api.idempotency import IdempotencyMiddleware
from api.job_runner import JobRunner
from api.middleware import RequestContextMiddleware
from api.routers import (
    admin,
    alternative,
    anomalies,
    call_up_answers,
    contract_pages,
    contracts,
    csc,
    documents,
    evaluation,
    experts,
    faces,
    health,
    intake,
    liveness,
    passkeys,
    pki,
    projects,
    report_pages,
    supervision,
    tasks,
    units,
    webhooks,
)
from api.services import Services
from api.web import console, pages
from api.web.headers import PageHeaders

IMPORT_PATH = "/api/v1/experts/import"
COMPARE_PATH = "/api/v1/face/compare"
ID_CARD_PATH = "/api/v1/scan/id-card"
FACE_PATH = re.compile(r"^/api/v1/experts/[^/]+/face$")
FRAMES_PATH = re.compile(r"^/api/v1/face/challenges/[^/]+/frames$")
DOCUMENT_PATHS = {"/api/v1/documents", "/api/v1/validate"}
# An authorization letter is a scanned PDF; a seal picture is at most 2 MB.
LETTER_PATH = re.compile(r"^/api/v1/units/[^/]+/representatives$")
SEAL_PATH = re.compile(r"^/api/v1/units/[^/]+/seal/image$")
LETTER_MAX_BYTES = 20 * 1024 * 1024
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and small fields


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The periodic jobs; a lease per job keeps each round to one process of the cluster.
        runner = JobRunner(services) if services.settings.jobs_in_serve else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # served by api.docs from local files, not a CDN
        redoc_url=None,
        title="EvalSign",
        version="0.1.0",
        summary="Remote bid evaluation with face-verified experts and cloud signatures.",
        description=(
            "Staff authenticate with `Authorization: Bearer <token>` (see `evalsign init`). "
            "Every error is RFC 9457 `application/problem+json`."
        ),
    )
    app.state.services = services
    settings = services.settings

    photo_bytes = settings.face_max_image_bytes
    enrollment_bytes = photo_bytes * settings.face_max_enrollment_photos + FORM_OVERHEAD
    frames_bytes = settings.liveness_frame_max_bytes * settings.liveness_max_frames + FORM_OVERHEAD

    def body_limit(path: str) -> int:
        if path == IMPORT_PATH:
            return settings.max_import_bytes
        if path == COMPARE_PATH:
            return 2 * photo_bytes + FORM_OVERHEAD
        if FACE_PATH.match(path):
            return enrollment_bytes
        if FRAMES_PATH.match(path):
            return frames_bytes
        if path == ID_CARD_PATH:
            return photo_bytes + FORM_OVERHEAD
        if LETTER_PATH.match(path):
            return min(LETTER_MAX_BYTES, settings.document_max_bytes) + FORM_OVERHEAD
        if SEAL_PATH.match(path):
            return 2 * 1024 * 1024 + FORM_OVERHEAD
        if path in DOCUMENT_PATHS:
            return settings.document_max_bytes + FORM_OVERHEAD
        return settings.max_request_bytes

    app.add_middleware(PageHeaders)
    app.add_middleware(IdempotencyMiddleware)  # inside the body limit and the request id
    app.add_middleware(RequestContextMiddleware, body_limit=body_limit)
    install_error_handlers(app)
    install_docs(app)
    # The signing API first: every request is matched against the routes in order, and
    # authorize + signHash are the hot path. The routers' own route objects are added as
    # they are: FastAPI's include_router would re-derive every route's dependencies for
    # each new app on its first request (150 ms; the tests build an app per test).
    for router in (
        health.router,
        csc.router,
        experts.router,
        admin.router,
        faces.router,
        liveness.router,
        pki.router,
        documents.router,
        projects.router,
        call_up_answers.router,
        intake.router,
        units.router,
        contracts.router,
        contract_pages.router,
        tasks.router,
        passkeys.router,
        evaluation.router,
        alternative.router,
        report_pages.router,
        anomalies.router,
        supervision.router,
        webhooks.router,
        pages.router,
        console.router,
    ):
        app.router.routes.extend(router.routes)
    app.mount("/m/static", StaticFiles(directory=pages.STATIC), name="page-assets")
    return app
