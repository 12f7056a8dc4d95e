"""The phone pages over HTTP (the browser journeys are in tests/e2e): the landing
exchanges a code for cookies and drops it from the URL, refusals are explained and logged,
cookie credentials need the page's CSRF token, and every page carries the security
headers and speaks both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.web import i18n
from api.web.session import DEVICE_COOKIE, TOKEN_COOKIES
from evaluation.identity.consent import FACE_CONSENT_VERSION
from models.tables import ScanSession
from tests.api.committee import Committee
from tests.api.helpers import assert_problem, refused_reasons

STATIC = Path(i18n.__file__).parent / "static"


def _room_token(committee: Committee) -> str:
    answer = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/qr", headers=committee.operator
    )
    return str(answer.json()["token"])


def _csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def _land(committee: Committee) -> str:
    """Open the room code as a phone would; returns the landing page's HTML."""
    client = committee.client
    client.cookies.clear()
    landed = client.get(f"/m/t/{_room_token(committee)}", follow_redirects=False)
    assert landed.status_code == 303 and landed.headers["location"] == "/m/start"
    start = client.get("/m/start")
    assert start.status_code == 200
    return start.text


def test_the_landing_moves_the_code_into_cookies(committee: Committee, db: Session) -> None:
    client = committee.client
    client.cookies.clear()
    token = _room_token(committee)
    landed = client.get(f"/m/t/{token}", follow_redirects=False)
    assert landed.status_code == 303
    assert token not in landed.headers["location"]
    cookies = landed.headers.get_list("set-cookie")
    scan_cookie = next(c for c in cookies if c.startswith(TOKEN_COOKIES["evs_"] + "="))
    assert "HttpOnly" in scan_cookie and "SameSite=strict" in scan_cookie
    assert "Secure" not in scan_cookie  # plain http here; Secure under TLS
    start = client.get("/m/start")
    project = client.get(
        f"/api/v1/projects/{committee.project_id}", headers=committee.operator
    ).json()
    assert project["name"] in start.text
    assert token not in start.text
    scan = db.execute(select(ScanSession).order_by(ScanSession.created_at.desc())).scalars().first()
    assert scan is not None and scan.device_id == client.cookies.get(DEVICE_COOKIE)


def test_a_refused_code_is_explained_and_logged(committee: Committee, db: Session) -> None:
    committee.client.cookies.clear()
    real = _room_token(committee)
    forged = real[:-6] + ("AAAAAA" if not real.endswith("AAAAAA") else "BBBBBB")
    answer = committee.client.get(f"/m/t/{forged}", follow_redirects=False)
    assert answer.status_code == 401
    assert "text/html" in answer.headers["content-type"]
    assert 'data-code="qr-token-invalid"' in answer.text
    assert "这不是有效的评标二维码" in answer.text
    # Nobody signed in: tallied per minute, source and reason, not chained.
    assert refused_reasons(db, "task.scan_refused") == {"qr-token-invalid": 1}


def test_pages_carry_the_security_headers(committee: Committee) -> None:
    _land(committee)
    for path in ("/m/", "/m/start", "/m/consent", "/m/alternative", "/m/static/app.css"):
        answer = committee.client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = committee.client.get("/m/consent").text
    # No inline script: every <script> is an external module or a JSON data block.
    for tag in re.findall(r"<script[^>]*>", page):
        assert 'src="/m/static/' in tag or 'type="application/json"' in tag, tag
    assert "http://" not in page and "https://" not in page


def test_consent_needs_the_page_csrf_token(committee: Committee, db: Session) -> None:
    html = _land(committee)
    client = committee.client
    forged = client.post(
        "/m/consent",
        data={"csrf": "not-it", "version": FACE_CONSENT_VERSION, "decision": "accept"},
        follow_redirects=False,
    )
    assert_problem(forged, 403, "csrf-invalid")
    scan = db.execute(select(ScanSession).order_by(ScanSession.created_at.desc())).scalars().first()
    assert scan is not None and scan.consented_at is None
    # Refusing leads to the in-person alternative and records the answer.
    refused = client.post(
        "/m/consent",
        data={"csrf": _csrf(html), "version": FACE_CONSENT_VERSION, "decision": "refuse"},
        follow_redirects=False,
    )
    assert refused.status_code == 303 and refused.headers["location"] == "/m/alternative"
    assert client.get("/m/check", follow_redirects=False).headers["location"] == "/m/consent"
    agreed = client.post(
        "/m/consent",
        data={"csrf": _csrf(html), "version": FACE_CONSENT_VERSION, "decision": "accept"},
        follow_redirects=False,
    )
    assert agreed.headers["location"] == "/m/check"
    db.expire_all()
    db.refresh(scan)
    assert scan.consent_version == FACE_CONSENT_VERSION
    check = client.get("/m/check")
    assert check.status_code == 200 and 'data-challenge-url="/api/v1/scan/challenge"' in check.text


def test_cookie_credentials_need_the_csrf_header(committee: Committee) -> None:
    html = _land(committee)
    client = committee.client
    body = {"version": FACE_CONSENT_VERSION, "accepted": True}
    assert_problem(client.post("/api/v1/scan/consent", json=body), 403, "csrf-invalid")
    assert_problem(
        client.post("/api/v1/scan/consent", json=body, headers={"X-CSRF-Token": "x" * 32}),
        403,
        "csrf-invalid",
    )
    ok = client.post("/api/v1/scan/consent", json=body, headers={"X-CSRF-Token": _csrf(html)})
    assert ok.status_code == 200, ok.text
    # The token is bound to the device: another phone's token does not pass.
    scan_cookie = client.cookies.get(TOKEN_COOKIES["evs_"])
    client.cookies.clear()
    client.cookies.set(TOKEN_COOKIES["evs_"], scan_cookie)
    client.cookies.set(DEVICE_COOKIE, "web-another-phone-0001")
    assert_problem(
        client.post("/api/v1/scan/consent", json=body, headers={"X-CSRF-Token": _csrf(html)}),
        403,
        "csrf-invalid",
    )


def test_signed_in_pages_need_a_session(committee: Committee) -> None:
    committee.client.cookies.clear()
    for path in ("/m/start", "/m/consent", "/m/check", "/m/evaluation", "/m/report", "/m/sign"):
        answer = committee.client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/m/", path
    home = committee.client.get("/m/")
    assert home.status_code == 200 and "请用手机扫描" in home.text


def test_the_language_switch_stays_on_our_pages(committee: Committee) -> None:
    client = committee.client
    client.cookies.clear()
    switched = client.get("/m/lang/en?next=/m/", follow_redirects=False)
    assert switched.headers["location"] == "/m/"
    client.cookies.set(i18n.LANG_COOKIE, "en")
    english = client.get("/m/")
    assert 'lang="en"' in english.text and "Scan the QR code" in english.text
    for target in ("https://evil.example/", "//evil.example/m/", "/m/\\evil", "/api/v1/x"):
        answer = client.get("/m/lang/en", params={"next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/m/", target


@pytest.mark.parametrize("name", ["app.css", "js/common.js", "js/check.js", "js/evaluation.js"])
def test_assets_are_served_and_versioned(committee: Committee, name: str) -> None:
    _land(committee)
    page = committee.client.get("/m/start").text
    asset = committee.client.get(f"/m/static/{name}")
    assert asset.status_code == 200 and asset.content == (STATIC / name).read_bytes()
    if name == "app.css":
        assert re.search(r'href="/m/static/app.css\?v=[0-9a-f]{12}"', page)


def test_cookies_are_secure_under_https(committee: Committee) -> None:
    client = committee.client
    client.cookies.clear()
    token = _room_token(committee)
    landed = client.get(f"https://testserver/m/t/{token}", follow_redirects=False)
    assert landed.status_code == 303
    cookies = landed.headers.get_list("set-cookie")
    assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
    assert "max-age=31536000" in client.get("https://testserver/m/").headers.get(
        "strict-transport-security", ""
    )
