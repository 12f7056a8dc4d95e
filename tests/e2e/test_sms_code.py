"""In Chromium, at a center that allows the SMS code (EVALSIGN_SMS_FALLBACK): a member whose
browser has no passkeys passes the face check, is offered the code, reads it from the SMS
(the local outbox here), types it and is signed in; supervisors see it flagged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from api.demo import Staged
from face.engine import FaceEngine
from tests.e2e.conftest import LaunchBrowser, PhonePage
from tests.e2e.pages import look
from tests.e2e.service import Service, film_each_challenge, running_service, scene_of, stage
from tests.e2e.test_expert_journey import check_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("evalsign-sms"), sms_fallback=True) as running:
        yield running


def _last_code(service: Service, number: str) -> str:
    outbox = sorted((service.settings.data_dir / "outbox").glob("*.json"))
    texts = [json.loads(p.read_text(encoding="utf-8")) for p in outbox]
    [*_, last] = [t["text"] for t in texts if t["to"] == number]
    found = re.search(r"\b(\d{6})\b", last)
    assert found, last
    return found.group(1)


def test_a_phone_without_passkeys_signs_in_with_the_sms_code(
    service: Service,
    launch_browser: LaunchBrowser,
    phone: PhonePage,
    idle_camera: Path,
    face_engine: FaceEngine,
    screenshots: Path,
) -> None:
    staged: Staged = stage(service)
    member = staged.members[1]
    person = staged.phones[member["expert_id"]]
    browser = launch_browser()
    page = phone(browser, "iPhone 13")
    # An in-app browser without WebAuthn.
    page.add_init_script("delete window.PublicKeyCredential")
    scene = scene_of(face_engine, staged, member["expert_id"])
    film_each_challenge(page, "**/api/v1/scan/challenge", idle_camera, scene)
    page.goto(f"{service.base}/m/t/{staged.personal_token(member)}")
    expect(page).to_have_url(re.compile(r"/m/start$"))
    page.click("#continue")
    page.click("#agree")
    expect(page).to_have_url(re.compile(r"/m/check$"))
    page.wait_for_load_state("networkidle")
    # The face check passes; the passkey cannot be given here; the code is offered.
    check_until(page, lambda: page.locator("#sms:visible").count() > 0)
    expect(page.locator("#sms")).to_be_visible(timeout=90_000)
    expect(page.locator("#sms-explain")).to_contain_text("短信验证码")
    look(page, screenshots, "iphone13-sms-offered")
    page.click("#sms-send")
    expect(page.locator("#sms-sent")).to_contain_text("****")
    page.fill("#sms-code", _last_code(service, person.mobile))
    look(page, screenshots, "iphone13-sms-typed")
    page.click("#sms-confirm")
    expect(page).to_have_url(re.compile(r"/m/evaluation$"), timeout=30_000)

    sessions = staged.api.call(
        "GET", f"/api/v1/projects/{staged.project['id']}/sessions", 200, headers=staged.operator
    )
    assert [s["expert_id"] for s in sessions] == [member["expert_id"]]
    flags = staged.api.call(
        "GET",
        f"/api/v1/anomalies?project_id={staged.project['id']}",
        200,
        headers=staged.supervisor,
    )
    assert [f["rule"] for f in flags if f["rule"] == "sms-code"] == ["sms-code"]
