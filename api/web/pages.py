"""The phone pages under /m/: server-rendered steps of the expert's journey, each with a
small script of its own (static/js). The pages call the same API as any client; their
credentials are HttpOnly cookies (api/web/session.py), never a token in a URL after the
landing redirect."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from api.deps import Db, ServicesDep, transaction
from api.logs import request_id_var
from api.rate_limits import phone_limits
from api.services import Services
from api.web import i18n
from api.web.session import (
    DEVICE_COOKIE,
    DEVICE_MAX_AGE,
    LANG_COOKIE,
    STAFF_COOKIE,
    TOKEN_COOKIES,
    check_csrf,
    clear_token_cookie,
    csrf_token,
    new_device_id,
    set_cookie,
    set_token_cookie,
    staff_binding,
)
from evaluation.committee import call_up_answers, in_person, projects, sign_in, tasks
from evaluation.contracts import contracts
from evaluation.identity import consent, face_checks, faces, phone_binding
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from evaluation.registry import centers, unit_authority
from models.tables import ContractLink, EvaluationSession, ScanSession, Unit

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


@cache
def asset_version(name: str) -> str:
    """A content hash for cache busting: a new release's script is never served stale."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/m/static/{name}?v={asset_version(name)}"


def render(
    request: Request,
    services: Services,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    language = i18n.language_of(request)
    device_id = request.cookies.get(DEVICE_COOKIE, "")
    staff = request.cookies.get(STAFF_COOKIE, "")
    if request.url.path.startswith("/console"):
        csrf = csrf_token(services.csrf_key, staff_binding(staff)) if staff else ""
    else:
        csrf = csrf_token(services.csrf_key, device_id) if device_id else ""

    def t(key: str, **values: object) -> str:
        return i18n.translate(language, key, **values)

    page: dict[str, Any] = {
        "t": t,
        "lang": language,
        "html_lang": i18n.HTML_LANG[language],
        "other_lang": "en" if language == "zh" else "zh",
        "path": request.url.path,
        "csrf": csrf,
        "device_id": device_id,
        "static": static_url,
        # JSON for a data block, "<" escaped so it cannot close the element.
        "messages": Markup(
            json.dumps(i18n.catalogue(language), ensure_ascii=False).replace("<", "\\u003c")
        ),
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _scan(request: Request, db: Db, services: Services) -> ScanSession | None:
    token = request.cookies.get(TOKEN_COOKIES[tasks.SCAN_PREFIX])
    if not token:
        return None
    try:
        return tasks.authenticate_scan(
            db, token, request.cookies.get(DEVICE_COOKIE), services.clock.now()
        )
    except tasks.ScanSessionInvalid:
        return None


def _signed_in(request: Request, db: Db, services: Services) -> EvaluationSession | None:
    token = request.cookies.get(TOKEN_COOKIES[sign_in.SESSION_PREFIX])
    if not token:
        return None
    try:
        return sign_in.authenticate(
            db, token, request.cookies.get(DEVICE_COOKIE), services.clock.now()
        )
    except sign_in.EvaluationSessionInvalid:
        return None


def _error_page(request: Request, services: Services, error: DomainError) -> HTMLResponse:
    language = i18n.language_of(request)
    key = f"error.{error.code}"
    message = i18n.translate(language, key)
    if message == key:
        message = i18n.translate(language, "error.generic", detail=error.detail)
    return render(
        request, services, "error.html", {"message": message, "code": error.code}, error.status
    )


@router.get("/m/", response_class=HTMLResponse)
def home(request: Request, db: Db, services: ServicesDep) -> Response:
    """Where a phone lands without a fresh code: onward if signed in, else "scan"."""
    if _signed_in(request, db, services) is not None:
        return _redirect("/m/evaluation")
    scan = _scan(request, db, services)
    if scan is not None:
        return _redirect("/m/contract" if scan.kind == "contract" else "/m/start")
    expired = any(request.cookies.get(name) for name in TOKEN_COOKIES.values())
    return render(request, services, "home.html", {"expired": expired})


@router.get("/m/t/{token}", response_class=HTMLResponse, dependencies=[Depends(phone_limits)])
def landing(token: str, request: Request, services: ServicesDep) -> Response:
    """A scanned task code: exchange it for a scan session held in a cookie, then redirect
    so the code leaves the address bar (and the history, and any Referer). A contract link
    arrives by message, and the first phone to use one keeps it: a messaging app's link
    preview fetches it too, so it is used only when the person taps to open it (POST)."""
    if token.startswith(contracts.LINK_PREFIX):
        return render(request, services, "link.html", {"action": f"/m/t/{token}"})
    return _land(token, request, services)


@router.post("/m/t/{token}", response_class=HTMLResponse, dependencies=[Depends(phone_limits)])
def open_link(token: str, request: Request, services: ServicesDep) -> Response:
    """The person tapped to open their contract link on this phone."""
    return _land(token, request, services)


def _land(token: str, request: Request, services: Services) -> Response:
    device_id = request.cookies.get(DEVICE_COOKIE) or new_device_id()
    where = tasks.ScanContext(
        device_id=device_id,
        client_ip=request.client.host if request.client else None,
        request_id=request_id_var.get(),
    )
    ttl = services.settings.scan_session_ttl_s
    # Its own transaction, so a refusal becomes a page: refused scans are still logged.
    try:
        with transaction(services) as db:
            if token.startswith(contracts.LINK_PREFIX):
                _, secret, _ = contracts.scan_link(
                    db,
                    services.clock,
                    token,
                    device_id,
                    where.client_ip,
                    where.request_id,
                    timedelta(seconds=ttl),
                )
            else:
                secret = tasks.scan(
                    db, services.clock, services.room_tokens, token, where, timedelta(seconds=ttl)
                ).token
    except (
        tasks.ScanRefused,
        contracts.ContractLinkInvalid,
        contracts.ContractLinkOtherDevice,
        InvalidTransition,
    ) as error:
        return _error_page(request, services, error)
    response = _redirect("/m/start")
    set_cookie(request, response, DEVICE_COOKIE, device_id, DEVICE_MAX_AGE)
    set_token_cookie(request, response, secret, ttl)
    clear_token_cookie(request, response, sign_in.SESSION_PREFIX)
    clear_token_cookie(request, response, face_checks.SESSION_PREFIX)
    return response


def _window(start: datetime, end: datetime, zone_name: str) -> str:
    """The evaluation window in the center's local time, the date repeated only if it
    changes: "2026-11-24 09:00 – 17:00 (Asia/Shanghai)"."""
    zone = ZoneInfo(zone_name)
    start, end = start.astimezone(zone), end.astimezone(zone)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} – {until} ({zone_name})"


@router.get("/m/call/{token}", response_class=HTMLResponse, dependencies=[Depends(phone_limits)])
def call_up_page(token: str, request: Request, services: ServicesDep) -> Response:
    """A drawn member's call-up, from the link in the message: when and how (remote or at
    the center), the deadline, and the answer. Opening it answers nothing (a messaging
    app's link preview fetches it too); the answer is a POST."""
    try:
        with transaction(services, read_only=True) as db:
            found = call_up_answers.invitation(db, services.clock, token)
            response = _call_up(request, services, db, found, None)
    except NotFound as error:
        return _error_page(request, services, error)
    if services.settings.call_up_answer_verified and not request.cookies.get(DEVICE_COOKIE):
        # The answer's face check is bound to this phone, as every check is.
        set_cookie(request, response, DEVICE_COOKIE, new_device_id(), DEVICE_MAX_AGE)
    return response


@router.post("/m/call/{token}", response_class=HTMLResponse, dependencies=[Depends(phone_limits)])
def answer_call_up(
    token: str,
    request: Request,
    services: ServicesDep,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The member's answer. The link's token is the only credential (no cookie is read),
    so a page elsewhere cannot answer for the member without it: no CSRF token needed."""
    reason = reason.strip()
    try:
        with transaction(services) as db:
            found = call_up_answers.invitation(db, services.clock, token)
            if decision not in ("accept", "decline") or (decision == "decline" and not reason):
                return _call_up(request, services, db, found, "call.reason_needed", 422)
            if services.settings.call_up_answer_verified:
                return _answer_check(request, services, db, found, token, decision, reason)
            call_up_answers.answer(db, services.clock, token, decision == "accept", reason or None)
            db.flush()
            return _call_up(
                request, services, db, call_up_answers.invitation(db, services.clock, token), None
            )
    except DomainError as error:  # unknown link, too late, answered meanwhile
        return _error_page(request, services, error)


def _answer_check(
    request: Request,
    services: Services,
    db: Db,
    found: call_up_answers.Invitation,
    token: str,
    decision: str,
    reason: str,
) -> Response:
    """The center asks for the face check and the passkey before an answer: the check
    page, carrying the answer the member chose, which its passkey then confirms."""
    if not found.answerable:
        return _call_up(request, services, db, found, None)
    if not request.cookies.get(DEVICE_COOKIE):
        return _redirect(f"/m/call/{token}")  # the page sets this phone's id first
    return render(
        request,
        services,
        "check.html",
        {
            "purpose": "call-up",
            "challenge_url": f"/api/v1/call/{token}/challenge",
            "done_url": f"/m/call/{token}",
            "answer_url": f"/api/v1/call/{token}",
            "decision": decision,
            "reason": reason,
        },
    )


def _call_up(
    request: Request,
    services: Services,
    db: Db,
    found: call_up_answers.Invitation,
    problem: str | None,
    status_code: int = 200,
) -> HTMLResponse:
    project, assignment, call_up = found.project, found.assignment, found.call_up
    zone = services.settings.display_zone
    return render(
        request,
        services,
        "call.html",
        {
            "center": centers.get_center(db, call_up.center_id),
            "remote": project.mode == "remote",
            "window": _window(
                project.evaluation_start,
                project.evaluation_end,
                services.settings.display_timezone,
            ),
            "deadline": f"{call_up.deadline_at.astimezone(zone):%Y-%m-%d %H:%M}"
            if call_up.deadline_at
            else None,
            "answerable": found.answerable,
            "answer": call_up.answer or assignment.status,
            "problem": problem,
            "action": f"/m/call/{request.path_params['token']}",
        },
        status_code,
    )


@router.get("/m/start", response_class=HTMLResponse)
def start(request: Request, db: Db, services: ServicesDep) -> Response:
    """What this is, which project, which center; then the consent."""
    scan = _scan(request, db, services)
    if scan is None:
        return _redirect("/m/")
    project = projects.get_project(db, scan.center_id, scan.project_id)
    center = centers.get_center(db, scan.center_id)
    unit = None
    if scan.kind == "contract":
        unit = db.get(Unit, unit_authority.link_authorization(db, scan).unit_id)
    return render(
        request,
        services,
        "start.html",
        {
            "project": project,
            "center": center,
            "kind": scan.kind,
            "unit": unit,
            "window": _window(
                project.evaluation_start,
                project.evaluation_end,
                services.settings.display_timezone,
            ),
        },
    )


@router.get("/m/consent", response_class=HTMLResponse)
def consent_page(request: Request, db: Db, services: ServicesDep) -> Response:
    scan = _scan(request, db, services)
    if scan is None:
        return _redirect("/m/")
    text = consent.consent_text(i18n.language_of(request))
    return render(request, services, "consent.html", {"text": text})


@router.post("/m/consent", response_class=HTMLResponse, dependencies=[Depends(phone_limits)])
def answer_consent(
    request: Request,
    services: ServicesDep,
    csrf: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(services.csrf_key, request.cookies.get(DEVICE_COOKIE), csrf)
    if decision not in ("accept", "refuse"):
        return _redirect("/m/consent")
    with transaction(services) as db:
        scan = _scan(request, db, services)
        if scan is None:
            return _redirect("/m/")
        consent.answer_consent(
            db,
            services.clock,
            scan,
            version,
            decision == "accept",
            i18n.language_of(request),
            request_id_var.get(),
        )
    if decision != "accept":
        return _redirect("/m/alternative")
    return _redirect("/m/contract/sign" if scan.kind == "contract" else "/m/check")


@router.get("/m/alternative", response_class=HTMLResponse)
def alternative_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """Refused face recognition: what to do instead, and, once staff have checked the ID
    card at the center, the signing PIN that signs this phone in."""
    scan = _scan(request, db, services)
    if scan is None or scan.kind == "contract":
        return render(request, services, "in_person.html")
    return render(
        request,
        services,
        "pin.html",
        {
            "purpose": "sign-in",
            "done_url": "/m/evaluation",
            # A room code does not say who is scanning; the page lists no names.
            "needs_id_number": scan.assignment_id is None,
        },
    )


@router.get("/m/check", response_class=HTMLResponse)
def check_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """The face check that signs the phone in."""
    scan = _scan(request, db, services)
    if scan is None:
        return _redirect("/m/")
    if scan.consented_at is None:
        return _redirect("/m/consent")
    return render(
        request,
        services,
        "check.html",
        {
            "purpose": "sign-in",
            "challenge_url": "/api/v1/scan/challenge",
            "done_url": "/m/evaluation",
            "sms": _sms_allowed(services),
        },
    )


def _sms_allowed(services: Services) -> bool:
    """Whether the page may offer the SMS code where the passkey cannot be used."""
    return services.sms is not None and services.sms.allowed


@router.get("/m/evaluation", response_class=HTMLResponse)
def evaluation_page(request: Request, db: Db, services: ServicesDep) -> Response:
    if _signed_in(request, db, services) is None:
        return _redirect("/m/")
    return render(request, services, "evaluation.html")


@router.get("/m/report", response_class=HTMLResponse)
def report_page(request: Request, db: Db, services: ServicesDep) -> Response:
    if _signed_in(request, db, services) is None:
        return _redirect("/m/")
    return render(
        request,
        services,
        "report.html",
        {"freshness_s": services.settings.signing_freshness_s},
    )


@router.get("/m/sign", response_class=HTMLResponse)
def sign_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """The fresh face check signing needs (or the PIN, for a member on the in-person
    path), then the signature itself."""
    session = _signed_in(request, db, services)
    if session is None:
        return _redirect("/m/")
    if in_person.method_of(db, session.verification_id) == in_person.METHOD:
        return render(request, services, "pin.html", {"purpose": "sign", "done_url": "/m/report"})
    return render(
        request,
        services,
        "check.html",
        {
            "purpose": "sign",
            "challenge_url": "/api/v1/evaluation/challenge",
            "done_url": "/m/report",
            "freshness_s": services.settings.signing_freshness_s,
            "sms": _sms_allowed(services),
        },
    )


def _contract_scan(request: Request, db: Db, services: Services) -> ScanSession | None:
    scan = _scan(request, db, services)
    return scan if scan is not None and scan.kind == "contract" else None


@router.get("/m/contract", response_class=HTMLResponse)
def contract_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """A representative reviews the contract, signs it for their unit, downloads it."""
    if _contract_scan(request, db, services) is None:
        return _redirect("/m/")
    return render(request, services, "contract.html")


@router.get("/m/contract/sign", response_class=HTMLResponse)
def contract_sign_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """The face check that unlocks the unit's seal and the representative's signature."""
    scan = _contract_scan(request, db, services)
    if scan is None:
        return _redirect("/m/")
    if scan.consented_at is None:
        return _redirect("/m/consent")
    link = db.get(ContractLink, scan.contract_link_id)
    assert link is not None
    person_id = unit_authority.link_person(db, scan)
    if faces.face_enrollment(db, scan.center_id, person_id) is None:
        # Not enrolled at the center: the ID card's portrait is the reference.
        return render(request, services, "idcard.html")
    return render(
        request,
        services,
        "check.html",
        {
            "purpose": "contract",
            "challenge_url": "/api/v1/scan/challenge",
            "done_url": "/m/contract",
            "sign_url": f"/api/v1/contracts/{link.contract_id}/signatures",
            "freshness_s": services.settings.signing_freshness_s,
        },
    )


@router.get("/m/b/{token}", response_class=HTMLResponse)
def binding_landing(token: str, request: Request, services: ServicesDep) -> Response:
    """A scanned binding QR from the desk: this phone claims it, the token moves into a
    cookie, and the address bar forgets it."""
    device_id = request.cookies.get(DEVICE_COOKIE) or new_device_id()
    try:
        with transaction(services) as db:
            enrollment = phone_binding.open_enrollment(db, services.clock, token, device_id)
            ttl = int((enrollment.expires_at - services.clock.now()).total_seconds())
    except (phone_binding.EnrollmentInvalid, phone_binding.EnrollmentOtherDevice) as error:
        return _error_page(request, services, error)
    response = _redirect("/m/bind")
    set_cookie(request, response, DEVICE_COOKIE, device_id, DEVICE_MAX_AGE)
    set_token_cookie(request, response, token, max(1, ttl))
    clear_token_cookie(request, response, face_checks.SESSION_PREFIX)
    return response


@router.get("/m/bind", response_class=HTMLResponse)
def bind_page(request: Request, db: Db, services: ServicesDep) -> Response:
    """Binding this phone: a face check against the person's enrolled face, then the
    phone makes its passkey (its screen lock or fingerprint confirms)."""
    token = request.cookies.get(TOKEN_COOKIES[phone_binding.ENROLLMENT_PREFIX], "")
    device_id = request.cookies.get(DEVICE_COOKIE)
    if not token or not device_id:
        return _redirect("/m/")
    try:
        enrollment = phone_binding.open_enrollment(db, services.clock, token, device_id)
    except (phone_binding.EnrollmentInvalid, phone_binding.EnrollmentOtherDevice) as error:
        return _error_page(request, services, error)
    return render(
        request,
        services,
        "check.html",
        {
            "purpose": "bind",
            "challenge_url": "/api/v1/passkey-enrollment/challenge",
            "done_url": "/m/bind/done",
            "person": phone_binding.person_name(db, enrollment),
        },
    )


@router.get("/m/bind/done", response_class=HTMLResponse)
def bind_done_page(request: Request, services: ServicesDep) -> Response:
    response = render(request, services, "bound.html", {})
    clear_token_cookie(request, response, phone_binding.ENROLLMENT_PREFIX)
    clear_token_cookie(request, response, face_checks.SESSION_PREFIX)
    return response


@router.get("/m/lang/{language}")
def switch_language(language: str, request: Request, next: str = "/m/") -> Response:
    # Only our own pages: an open redirect would let a link borrow our address.
    ours = next.startswith(("/m/", "/console/")) and "//" not in next and "\\" not in next
    target = next if ours else "/m/"
    response = _redirect(target)
    if language in i18n.LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, language, DEVICE_MAX_AGE)
    return response
