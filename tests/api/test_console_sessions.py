"""Console sessions over HTTP (the console in a browser is in tests/e2e/test_console.py): the
cookie holds a session secret, never the staff token; logout, expiry and the token's
revocation end the session on the server, so a copied cookie stops working."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.web.session import STAFF_COOKIE
from evaluation.kernel.actions import Action
from evaluation.registry.console_sessions import LOGIN_HOURS
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, ConsoleSession
from tests.factories import CenterWithStaff


def _login(client: TestClient, token: str) -> str:
    answer = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"
    cookie = answer.cookies.get(STAFF_COOKIE)
    assert cookie
    return cookie


def _opens_console(client: TestClient, cookie: str) -> bool:
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE, cookie)
    answer = client.get("/console/", follow_redirects=False)
    client.cookies.clear()
    if answer.status_code == 303:
        assert answer.headers["location"] == "/console/login"
        return False
    assert answer.status_code == 200
    return True


def _reads_api(client: TestClient, cookie: str) -> int:
    client.cookies.clear()
    client.cookies.set(STAFF_COOKIE, cookie)
    answer = client.get("/api/v1/audit/entries")
    client.cookies.clear()
    return answer.status_code


def test_the_cookie_holds_a_session_not_the_token(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    token = center.tokens[Role.SUPERVISOR]
    cookie = _login(client, token)
    assert cookie.startswith("evl_")
    assert token not in cookie
    assert _opens_console(client, cookie)
    assert _reads_api(client, cookie) == 200
    session = db.execute(select(ConsoleSession)).scalar_one()
    assert session.ended_at is None
    assert token not in session.secret_hash and cookie not in session.secret_hash
    # The raw token in the cookie, as the console kept it before, no longer opens anything.
    assert not _opens_console(client, token)
    assert _reads_api(client, token) == 401


def test_logout_ends_the_session_on_the_server(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    cookie = _login(client, center.tokens[Role.SUPERVISOR])
    client.cookies.set(STAFF_COOKIE, cookie)
    answer = client.post("/console/logout", follow_redirects=False)
    client.cookies.clear()
    assert answer.status_code == 303
    assert re.search(rf"{STAFF_COOKIE}=\"?\"?;", answer.headers["set-cookie"])
    # A copy of the cookie taken before logout is worthless.
    assert not _opens_console(client, cookie)
    assert _reads_api(client, cookie) == 401
    actions = [
        entry.action
        for entry in db.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
        if entry.action.startswith("console.")
    ]
    assert actions == [Action.CONSOLE_LOGIN, Action.CONSOLE_LOGOUT]
    # A second logout with the dead cookie changes nothing and logs nothing.
    client.cookies.set(STAFF_COOKIE, cookie)
    assert client.post("/console/logout", follow_redirects=False).status_code == 303
    client.cookies.clear()
    count = db.execute(select(AuditEntry).where(AuditEntry.action == Action.CONSOLE_LOGOUT))
    assert len(count.scalars().all()) == 1


def test_a_session_expires_after_the_working_day(
    client: TestClient, center: CenterWithStaff, clock: FrozenClock
) -> None:
    cookie = _login(client, center.tokens[Role.ADMIN])
    clock.advance(timedelta(hours=LOGIN_HOURS) - timedelta(minutes=1))
    assert _opens_console(client, cookie)
    clock.advance(timedelta(minutes=2))
    assert not _opens_console(client, cookie)
    assert _reads_api(client, cookie) == 401


def test_revoking_the_token_ends_its_sessions(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    cookie = _login(client, center.tokens[Role.SUPERVISOR])
    session = db.execute(select(ConsoleSession)).scalar_one()
    answer = client.post(
        f"/api/v1/staff/tokens/{session.staff_token_id}/revoke",
        headers=center.headers(Role.ADMIN),
    )
    assert answer.status_code == 200, answer.text
    assert not _opens_console(client, cookie)


def test_only_console_roles_get_a_session(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    for wrong in (center.tokens[Role.OPERATOR], "evs_not-a-token", ""):
        answer = client.post("/console/login", data={"token": wrong}, follow_redirects=False)
        assert answer.status_code == 401
        assert STAFF_COOKIE not in answer.cookies
    assert db.execute(select(ConsoleSession)).first() is None
    # A made-up session secret opens nothing.
    assert not _opens_console(client, "evl_" + "A" * 43)
