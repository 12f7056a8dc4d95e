"""Interactive API docs served from the installed Swagger UI package: a trading center's
closed network cannot reach the CDN FastAPI's default page loads its scripts from."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.schemas.problems import Problem

ASSETS = "/docs/assets"


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ERROR_STATUSES = {
    "400": "Malformed request (JSON, cursor, If-Match)",
    "401": "Missing, unknown or revoked staff token",
    "403": "Your role may not do this",
    "404": "Not found in your center",
    "409": "Conflicts with the current state",
    "412": "If-Match names an old version",
    "413": "Body too large",
    "415": "Unsupported content type",
    "422": "Invalid fields or rows",
}


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error response described as what we really send:
    application/problem+json (FastAPI would document its own 422 shape instead)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(
        Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
    )
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components["Problem"].pop("$defs", None)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = ERROR_STATUSES if path.startswith("/api/") else {}
            for status, description in statuses.items():
                responses[status] = {
                    "description": description,
                    "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                }
    app.openapi_schema = schema
    return schema


def install_docs(app: FastAPI) -> None:
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
        return with_docs_headers(bytes(page.body))


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def with_docs_headers(body: bytes) -> HTMLResponse:
    """The page with the consoles' headers: no framing, no third-party origin; its one
    inline script (Swagger UI's start-up) is admitted by its hash, no other."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}".strip(),
            # Swagger UI sets style attributes as it renders.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
