"""The supervisors' console in a desktop Chromium: login with a supervisor's token (other
roles and bad tokens refused), the flag dashboard with a real flag to acknowledge, the
verification log and one check's signals plotted, a project's timeline, the audit chain
check, and no write the role may not make."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from api.demo import POOL, Staged, sign_in_by_phone
from tests.e2e.conftest import LaunchBrowser
from tests.e2e.pages import RequestLog
from tests.e2e.service import Service, running_service, stage

pytestmark = pytest.mark.slow
DESKTOP = {"viewport": {"width": 1440, "height": 900}, "locale": "zh-CN"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # A filing threshold this pool nears, so the dashboard shows the holdings warning.
    with running_service(
        tmp_path_factory.mktemp("console"), face_filing_threshold=len(POOL)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def staged(service: Service) -> Staged:
    """Two members signed in from their phones, on ONE device: a shared-device flag."""
    staged = stage(service)
    first, second = staged.members[:2]
    sign_in_by_phone(staged, first, staged.personal_token(first), lambda _: None)
    shared = staged.phones[first["expert_id"]].device_id
    staged.phones[second["expert_id"]].device_id = shared
    sign_in_by_phone(staged, second, staged.personal_token(second), lambda _: None)
    return staged


def _shot(page: Page, folder: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(folder / f"console-{name}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow} px"


def _login(page: Page, service: Service, token: str) -> None:
    page.goto(f"{service.base}/console/login")
    page.fill("#token", token)
    page.click("#login")


def test_the_console_shows_what_a_supervisor_reviews(
    service: Service,
    staged: Staged,
    launch_browser: LaunchBrowser,
    screenshots: Path,
) -> None:
    browser = launch_browser()
    page = browser.new_context(**DESKTOP).new_page()
    requests = RequestLog(page, service.base)
    page.on("dialog", lambda dialog: dialog.accept("已电话核实：两位专家同处一室，借用手机登录"))

    # Only a supervisor's (or an admin's) token opens the console.
    page.goto(f"{service.base}/console/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    _shot(page, screenshots, "1-login")
    for wrong in ("evs_not-a-token", service.tokens["operator"]):
        _login(page, service, wrong)
        expect(page.locator("#login-failed")).to_be_visible()
    _login(page, service, service.tokens["supervisor"])
    expect(page).to_have_url(re.compile(r"/console/$"))

    # Whose face data the center holds, against the regulator's filing threshold.
    holdings = page.locator("#holdings")
    expect(holdings).to_have_attribute("data-warning", "true")
    expect(holdings).to_contain_text(f"{len(POOL)} 人的人脸信息")
    expect(holdings).to_contain_text("备案")

    # The flag the two members' shared phone raised; acknowledged with a note.
    flag = page.locator("tr", has_text="shared-device")
    expect(flag).to_be_visible()
    _shot(page, screenshots, "2-flags")
    flag.get_by_role("button", name="确认").click()
    expect(flag).to_have_count(0)
    # What binding both phones at the desk minutes before raised: the two phones bound
    # just before the evaluation, and the shared one checking two faces that day.
    rows = page.locator("tr[data-flag]")
    rules = sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count()))
    assert rules == ["device-shared-day", "passkey-bound-late", "passkey-bound-late"], rules
    for left in range(len(rules), 0, -1):
        rows.first.get_by_role("button", name="确认").click()
        expect(rows).to_have_count(left - 1)
    expect(page.locator("#no-flags")).to_be_visible()  # no open flag left
    page.select_option("select[name=status]", "acknowledged")
    page.click("#flag-filter button")
    expect(page.locator("tr", has_text="已电话核实")).to_have_count(len(rules) + 1)

    # The verification log, and one check's signals against their thresholds.
    page.click("text=核验记录")
    rows = page.locator(".verification-link")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 2
    _shot(page, screenshots, "3-verifications")
    rows.first.click()
    expect(page.locator("#verdict")).to_be_visible()
    charts = page.locator(".chart svg path.series")
    expect(charts).to_have_count(4)
    assert page.locator(".chart line.threshold").count() >= 6
    expect(page.locator("#checks tr", has_text="all actions seen")).to_be_visible()
    _shot(page, screenshots, "4-verification")

    # The project's timeline: draw, then sign-ins and declarations.
    page.goto(f"{service.base}/console/projects/{staged.project['id']}")
    phases = page.locator("#timeline-list .phase")
    expect(phases.first).to_be_visible()
    seen = [phases.nth(i).get_attribute("data-phase") for i in range(phases.count())]
    assert seen[0] == "draw" and "sign_in" in seen and "recusal" in seen, seen
    assert page.locator("#evidence").get_attribute("href", timeout=1000) == (
        f"/api/v1/projects/{staged.project['id']}/evidence"
    )
    _shot(page, screenshots, "5-timeline")

    # The audit chain, recomputed against the signed checkpoints.
    page.click("text=审计日志")
    page.click("#verify")
    expect(page.locator("#chain-verdict")).to_contain_text("完好")
    _shot(page, screenshots, "6-audit")

    # The console writes nothing the role may not: a forged form is stopped by the CSRF
    # token, and the page's own token does not lend the supervisor an operator's rights.
    refused = page.evaluate(
        """async () => {
          const csrf = document.querySelector('meta[name="csrf-token"]').content;
          const call = (headers) => fetch('/api/v1/projects', {method: 'POST',
            headers: {'Content-Type': 'application/json', ...headers}, body: '{}'})
            .then(async (r) => [r.status, (await r.json()).code]);
          return [await call({}), await call({'X-CSRF-Token': csrf})];
        }"""
    )
    assert refused == [[403, "csrf-invalid"], [403, "role-forbidden"]]
    assert requests.foreign() == []


@pytest.mark.parametrize("width", [1280, 390])
def test_the_dashboard_follows_a_running_evaluation(
    service: Service,
    staged: Staged,
    launch_browser: LaunchBrowser,
    screenshots: Path,
    width: int,
) -> None:
    """Today's evaluation with its sign-in progress, refreshed by itself as another member
    signs in; the timeline in words with people's names; logout ends the session on the
    server. At a desktop's width and at a phone's."""
    browser = launch_browser()
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
    page = context.new_page()
    _login(page, service, service.tokens["supervisor"])
    card = page.locator(f"article.glance[data-project='{staged.project['id']}']")
    expect(card).to_be_visible()
    progress = card.locator(".fact.signed")
    seats = card.locator(".place")
    before = card.locator(".place.in").count()
    assert before >= 2 and seats.count() == len(staged.members)
    expect(progress).to_have_text(f"已签到 {before}/{len(staged.members)}")
    _shot(page, screenshots, f"dashboard-{width}")

    waiting = next(
        m
        for m in staged.members
        if card.locator(f".place.in[data-assignment='{m['assignment_id']}']").count() == 0
    )
    sign_in_by_phone(staged, waiting, staged.personal_token(waiting), lambda _: None)
    # The page asks again every 15 s: the new sign-in appears without a reload.
    expect(progress).to_have_text(f"已签到 {before + 1}/{len(staged.members)}", timeout=25_000)
    expect(
        card.locator(f".place.in[data-assignment='{waiting['assignment_id']}']")
    ).to_contain_text(waiting["name"])

    # The timeline in words, with the people's names, in the center's time.
    card.locator("h2 a").click()
    expect(page.locator("#project-title")).to_have_text(staged.project["name"])
    signed_in = page.locator("#timeline-list li[data-action='evaluation.signed_in']")
    expect(signed_in.first).to_contain_text("签到进入评标")
    expect(signed_in.filter(has_text=waiting["name"])).to_have_count(1)
    expect(page.locator("#proof")).to_be_visible()
    _shot(page, screenshots, f"timeline-{width}")

    # Logout ends the session: the cookie copied before it opens nothing afterwards.
    [cookie] = [c for c in context.cookies() if c["name"] == "evalsign_staff"]
    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(re.compile(r"/console/login$"))
    context.add_cookies([cookie])
    page.goto(f"{service.base}/console/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    context.close()
