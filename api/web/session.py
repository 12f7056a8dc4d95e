"""How the phone pages hold their credentials: HttpOnly cookies instead of bearer headers.

The API's phone routes take `Authorization: Bearer evs_/eve_/evf_...` plus `X-Device-Id`.
A page cannot keep a token where script can read it, so after the landing redirect the
same tokens live in HttpOnly, SameSite=Strict cookies (Secure under TLS), and every
state-changing request authenticated by a cookie must carry the page's CSRF token, an
HMAC of the device id: a form or script from elsewhere cannot know it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from evaluation.kernel.errors import DomainError

DEVICE_COOKIE = "evalsign_device"
STAFF_COOKIE = "evalsign_staff"  # the supervisors' console (api/web/console.py)
LANG_COOKIE = "evalsign_lang"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Which cookie holds which kind of token, by the token's prefix.
TOKEN_COOKIES = {
    "evs_": "evalsign_scan",
    "eve_": "evalsign_eval",
    "evf_": "evalsign_face",
    "evb_": "evalsign_bind",
}
DEVICE_MAX_AGE = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days


class CsrfInvalid(DomainError):
    status = 403
    code = "csrf-invalid"
    title = "The page's security token is missing or wrong; reload the page and try again"


@dataclass(frozen=True)
class PhoneCredentials:
    token: str | None
    device_id: str | None
    from_cookie: bool


def csrf_token(key: bytes, device_id: str) -> str:
    mac = hmac.new(key, f"csrf/v1/{device_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def staff_binding(token: str) -> str:
    """What the console's CSRF token is bound to: the login, never the token itself."""
    return "staff:" + hashlib.sha256(token.encode()).hexdigest()


def check_csrf(key: bytes, device_id: str | None, sent: str | None) -> None:
    if not device_id or not sent or not hmac.compare_digest(csrf_token(key, device_id), sent):
        raise CsrfInvalid("send the page's CSRF token (X-CSRF-Token header or csrf field)")


def phone_credentials(
    request: Request,
    prefix: str,
    authorization: str | None,
    device_header: str | None,
    csrf_key: bytes,
) -> PhoneCredentials:
    """The token of `prefix` and the device id, from the headers (API clients) or from the
    page's cookies; a cookie-authenticated state change must prove it came from our page."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith(prefix):
        return PhoneCredentials(token, device_header, from_cookie=False)
    if authorization:
        return PhoneCredentials(None, device_header, from_cookie=False)
    cookie = request.cookies.get(TOKEN_COOKIES[prefix], "")
    if not cookie.startswith(prefix):
        return PhoneCredentials(None, device_header, from_cookie=False)
    device_id = request.cookies.get(DEVICE_COOKIE)
    if request.method not in SAFE_METHODS:
        check_csrf(csrf_key, device_id, request.headers.get(CSRF_HEADER))
    return PhoneCredentials(cookie, device_id, from_cookie=True)


def is_page_request(request: Request) -> bool:
    """A request from one of our pages: the browser carries the device cookie."""
    return DEVICE_COOKIE in request.cookies


def new_device_id() -> str:
    return "web-" + secrets.token_urlsafe(18)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


def set_token_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    prefix = token[:4]
    set_cookie(request, response, TOKEN_COOKIES[prefix], token, max(1, max_age))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path="/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


def clear_token_cookie(request: Request, response: Response, prefix: str) -> None:
    clear_cookie(request, response, TOKEN_COOKIES[prefix])
