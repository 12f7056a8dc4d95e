"""RFC 9457 problem+json for every error, from one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.logs import request_id_var
from api.web import i18n
from evaluation.kernel.errors import DomainError
from evaluation.kernel.identifiers import error_message
from evaluation.kernel.rate_limits import RateLimited
from evaluation.trust.providers import ProviderUnavailable

PROBLEM_JSON = "application/problem+json"


class RequestTooLarge(DomainError):
    status = 413
    code = "request-too-large"
    title = "The request body is larger than this route accepts"


class MalformedJson(DomainError):
    status = 400
    code = "malformed-json"
    title = "The request body is not valid JSON"


class ValidationFailed(DomainError):
    status = 422
    code = "validation-failed"
    title = "Some fields are missing or invalid"


class BadPrecondition(DomainError):
    status = 400
    code = "bad-precondition"
    title = 'If-Match must name one version, like "3"'


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported-media-type"
    title = "This route does not accept that content type"


class NotReady(DomainError):
    status = 503
    code = "not-ready"
    title = "The service cannot serve requests yet"


# Problems that no DomainError class raises: the framework's own and the last-resort 500.
HTTP_CODES = {404: "no-such-route", 405: "method-not-allowed"}
PLAIN_PROBLEMS: dict[str, tuple[int, str]] = {
    "no-such-route": (404, "No such route"),
    "method-not-allowed": (405, "This method is not allowed on this route"),
    "http-error": (400, "The request could not be served"),
    "internal-error": (500, "Internal error"),
}
PLAIN_CODES = tuple(PLAIN_PROBLEMS)


def problem_type(code: str) -> str:
    # A relative reference (RFC 9457 3.1.1) that GET /problems/{code} documents.
    return f"/problems/{code}"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
    language: str = "en",
) -> JSONResponse:
    """`title` is the English title; `language` picks the title's translation."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": i18n.problem_title(language, code, title),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if request_id := request_id_var.get():
        body["request_id"] = request_id
    # Extension members never replace the standard ones.
    body.update({key: value for key, value in (extensions or {}).items() if key not in body})
    response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
    response.headers["content-language"] = "zh-CN" if language == "zh" else "en"
    response.headers.append("vary", "Accept-Language")
    return response


def domain_problem(error: DomainError, request: Request) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    if isinstance(error, RateLimited | ProviderUnavailable):
        headers = {"Retry-After": str(error.retry_after_s)}
    extensions = dict(error.extensions)
    if request.url.path.startswith("/csc/"):
        # CSC clients read `error` and `error_description`; problem+json readers the rest.
        name = getattr(error, "csc_error", None)
        if name is None:
            name = "invalid_token" if error.status == 401 else "invalid_request"
        extensions.update(error=name, error_description=error.detail)
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.detail,
        instance=request.url.path,
        headers=headers,
        extensions=extensions,
        language=i18n.problem_language(request),
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is left out on purpose: it may be an ID number or a phone.
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "type": error["type"],
            "message": error_message(error["msg"]),
        }
        for error in exc.errors()
    ]


def all_problem_classes() -> list[type[DomainError]]:
    found: list[type[DomainError]] = [DomainError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            return domain_problem(MalformedJson("the body could not be parsed as JSON"), request)
        return domain_problem(
            ValidationFailed(f"{len(errors)} field(s) invalid", errors=errors), request
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http-error")
        return problem_response(
            exc.status_code,
            code,
            str(exc.detail),
            str(exc.detail),
            instance=request.url.path,
            headers=exc.headers,
            language=i18n.problem_language(request),
        )
