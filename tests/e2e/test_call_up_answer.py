"""In Chromium, at a center that asks for the face check and the passkey before a call-up
is answered (EVALSIGN_CALL_UP_ANSWER_VERIFIED): a drawn member bound their phone at the
desk, reads the call-up from their messages (the local outbox here), opens its link,
chooses to take part, takes the face check and approves with the phone's passkey; the seat
is accepted. The message's link alone answered nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from api.demo import Staged
from face.engine import FaceEngine
from tests.e2e.conftest import LaunchBrowser, PhonePage
from tests.e2e.pages import RequestLog, look
from tests.e2e.service import (
    Service,
    film_each_challenge,
    passkey_phone,
    running_service,
    scene_of,
    stage,
)
from tests.e2e.test_expert_journey import ATTEMPTS, MOTION_REASONS, _bind_in_browser

pytestmark = pytest.mark.slow

LINK = re.compile(r"(https?://\S+/m/call/[A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(
        tmp_path_factory.mktemp("evalsign-call"), call_up_answer_verified=True, call_up_every_s=1
    ) as running:
        yield running


def _call_up_link(service: Service, mobile: str) -> str:
    """The link in the member's call-up message, once the job has sent it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in sorted((service.settings.data_dir / "outbox").glob("*.json")):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message["to"] == mobile and message["purpose"] == "call-up":
                found = LINK.search(message["text"])
                assert found, message["text"]
                return found.group(1)
        time.sleep(0.5)
    raise AssertionError(f"no call-up message to {mobile} within 60 s")


def _seat(staged: Staged, expert_id: str) -> str:
    listing = staged.api.call(
        "GET", f"/api/v1/projects/{staged.project['id']}/committee", 200, headers=staged.admin
    )
    [seat] = [m for m in listing if m["expert_id"] == expert_id]
    return str(seat["status"])


def test_a_member_answers_the_call_up_with_face_and_passkey(
    service: Service,
    launch_browser: LaunchBrowser,
    phone: PhonePage,
    idle_camera: Path,
    face_engine: FaceEngine,
    screenshots: Path,
) -> None:
    staged: Staged = stage(service)
    member = staged.members[0]
    person = staged.phones[member["expert_id"]]
    page = phone(launch_browser(), "Pixel 7")
    requests = RequestLog(page, service.base)
    scene = scene_of(face_engine, staged, member["expert_id"])
    passkey_phone(page)
    _bind_in_browser(page, staged, member, idle_camera, scene)

    link = _call_up_link(service, person.mobile)
    film_each_challenge(page, "**/api/v1/call/*/challenge", idle_camera, scene)
    page.goto(link)
    expect(page.locator("#window")).to_be_visible()
    look(page, screenshots, "pixel7-call-up")
    page.click("#accept")
    # Choosing answers nothing yet: the check page, saying what it will confirm.
    expect(page.locator("#call-answer")).to_contain_text("参加评标")
    assert _seat(staged, member["expert_id"]) == "invited"
    look(page, screenshots, "pixel7-call-up-check")

    answered = page.locator("#answered")
    refused = page.locator("#result.fail:visible")
    for _ in range(ATTEMPTS):
        page.click("#start")
        deadline = time.monotonic() + 90
        while not answered.count() and not refused.count():
            assert time.monotonic() < deadline, "no answer in 90 s"
            page.wait_for_timeout(100)
        if answered.count():
            break
        reasons = set((refused.get_attribute("data-reasons") or "").split())
        assert reasons and reasons <= MOTION_REASONS, reasons
    expect(answered).to_have_attribute("data-answer", "accepted")
    look(page, screenshots, "pixel7-call-up-accepted")
    assert _seat(staged, member["expert_id"]) == "accepted"
    assert requests.foreign() == []
