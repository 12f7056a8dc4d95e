"""The supervisors' console under /console/: a desktop front end over the read API
(flags, the verification log with each check's signals plotted against its thresholds, a
project's timeline, the audit chain check, the evidence package). Login takes a staff
token of a supervisor or an admin and opens a server-side console session whose own secret
sits in an HttpOnly cookie; the pages change
nothing but a flag's status, as the API allows the role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import Db, ServicesDep, transaction
from api.logs import request_id_var
from api.web.pages import render
from api.web.session import STAFF_COOKIE, clear_cookie, set_cookie
from evaluation.kernel import audit
from evaluation.kernel.errors import InvalidCredentials
from evaluation.registry import console_sessions
from evaluation.registry import staff as staff_tokens
from evaluation.registry.staff import Role
from models.tables import StaffToken

router = APIRouter(include_in_schema=False)
CONSOLE_ROLES = (Role.SUPERVISOR.value, Role.ADMIN.value)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _signed_in(request: Request, db: Db, services: ServicesDep) -> StaffToken | None:
    token = console_sessions.console_token(
        db, services.clock, request.cookies.get(STAFF_COOKIE, "")
    )
    return token if token is not None and token.role in CONSOLE_ROLES else None


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep) -> Response:
    return render(request, services, "console/login.html", {"failed": False})


@router.post("/console/login", response_class=HTMLResponse)
def login(request: Request, services: ServicesDep, token: Annotated[str, Form()] = "") -> Response:
    """A supervisor's or an admin's token opens a console session (logged); others are
    refused. The cookie holds the session's secret, never the token."""
    with transaction(services) as db:
        try:
            found = staff_tokens.authenticate(db, token.strip())
        except InvalidCredentials:
            found = None
        if found is None or found.role not in CONSOLE_ROLES:
            return render(
                request, services, "console/login.html", {"failed": True}, status_code=401
            )
        opened = console_sessions.open_console_session(
            db,
            _caller(found),
            services.clock,
            found,
            request.client.host if request.client else None,
        )
    response = _redirect("/console/")
    set_cookie(request, response, STAFF_COOKIE, opened.secret, opened.expires_in)
    return response


@router.post("/console/logout")
def logout(request: Request, services: ServicesDep) -> Response:
    """Ends the session on the server, so the cookie is worthless even if it was copied."""
    secret = request.cookies.get(STAFF_COOKIE, "")
    with transaction(services) as db:
        token = console_sessions.console_token(db, services.clock, secret)
        # No CSRF token asked: the cookie is SameSite=Strict, and a forced logout harms no one.
        if token is not None:
            console_sessions.end_console_session(db, _caller(token), services.clock, secret)
    response = _redirect("/console/login")
    clear_cookie(request, response, STAFF_COOKIE)
    return response


def _caller(token: StaffToken) -> audit.Caller:
    return audit.Caller(token.center_id, f"staff:{token.id}", token.role, request_id_var.get())


def _page(
    request: Request, db: Db, services: ServicesDep, name: str, **context: object
) -> Response:
    token = _signed_in(request, db, services)
    if token is None:
        return _redirect("/console/login")
    policy = services.liveness.policy
    return render(
        request,
        services,
        f"console/{name}.html",
        {
            "role": token.role,
            "label": token.label or token.role,
            "display_timezone": services.settings.display_timezone,
            "thresholds": {
                "match": policy.match_threshold,
                "turn_degrees": policy.actions.turn_degrees,
                "nod_degrees": policy.actions.nod_degrees,
                "blink_closed": policy.actions.blink_closed,
                "mouth_open": policy.actions.mouth_open,
            },
            **context,
        },
    )


@router.get("/console/", response_class=HTMLResponse)
def flags(request: Request, db: Db, services: ServicesDep) -> Response:
    return _page(request, db, services, "flags")


@router.get("/console/verifications", response_class=HTMLResponse)
def verifications(request: Request, db: Db, services: ServicesDep) -> Response:
    return _page(request, db, services, "verifications")


@router.get("/console/verifications/{verification_id}", response_class=HTMLResponse)
def verification(verification_id: str, request: Request, db: Db, services: ServicesDep) -> Response:
    return _page(request, db, services, "verification", verification_id=verification_id)


@router.get("/console/projects", response_class=HTMLResponse)
def projects(request: Request, db: Db, services: ServicesDep, q: str = "") -> Response:
    return _page(request, db, services, "projects", query=q[:100])


@router.get("/console/projects/{project_id}", response_class=HTMLResponse)
def project(project_id: str, request: Request, db: Db, services: ServicesDep) -> Response:
    return _page(request, db, services, "project", project_id=project_id)


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(request: Request, db: Db, services: ServicesDep) -> Response:
    return _page(request, db, services, "audit")
