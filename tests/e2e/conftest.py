"""Fixtures for the phone pages' end-to-end tests: Debian's headless Chromium driven by
Playwright, with a fake camera playing a Y4M file the test writes (tests/e2e/camera.py).

    def test_check(launch_browser, camera_file, phone, liveness_scene):
        liveness_video(liveness_scene("yaoming-0"), ["blink"], lead_in_ms=1500).write(
            camera_file
        )
        page = phone(launch_browser(), "Pixel 7")
        page.goto(f"{base_url}/check")

Camera modes of `launch_browser` (what the page's getUserMedia then gives):

- ``"granted"``: the camera plays ``camera_file``, permission granted without a prompt.
- ``"ask"``: the same camera, but no automatic grant: a context made with
  ``permissions=["camera"]`` gets it, any other context gets ``NotAllowedError``
  (headless Chromium denies the prompt at once), so one browser serves both cases.
- ``"denied"``: ``"ask"``, for contexts that do not grant the camera: ``NotAllowedError``.
- ``"absent"``: no camera at all: ``NotFoundError``, and enumerateDevices lists no
  videoinput. (The fake device points at a file that never exists, so this holds on a
  machine with a real webcam too.)

A page is a secure context (getUserMedia exists) on http://localhost and
http://127.0.0.1, so the app can be served by uvicorn on a free local port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from face import synthetic
from face.engine import FaceEngine
from face.samples import sample_portraits
from tests.e2e.camera import solid_frames, write_y4m

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "e2e-screenshots"
PHONES = ("Pixel 7", "iPhone 13")
# What this closed network needs (see the machine notes): no background connections,
# no first-run work, no GPU; and, as root in a container, no sandbox.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CameraMode = Literal["granted", "ask", "denied", "absent"]
LaunchBrowser = Callable[..., Browser]
PhonePage = Callable[..., Page]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so teardown can screenshot a failed test."""
    report = yield
    setattr(item, f"_e2e_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium (Playwright's own browser download is unreachable here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): e2e tests skipped")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def playwright(chromium_path: str) -> Iterator[Playwright]:
    # Per module, not per session: while Playwright's sync API is open it keeps an asyncio
    # loop running in this thread, and the tests that follow in other packages (pyHanko's
    # signing calls asyncio.run) must find none.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def camera_file(tmp_path: Path) -> Path:
    """Where this test's fake camera reads its video: not yet written. Write it (with
    `camera.write_y4m` or `CameraVideo.write`) any time before the page calls
    getUserMedia; rewrite it between captures (see tests/e2e/camera.py)."""
    return tmp_path / "camera.y4m"


@pytest.fixture
def idle_camera(camera_file: Path) -> Path:
    """A grey picture until a test writes the video a challenge needs: without the file,
    the page's camera lookup would find no camera at all."""
    return write_y4m(camera_file, solid_frames([(128, 128, 128)], repeat=15), fps=15)


def chromium_args(camera: CameraMode, camera_file: Path) -> list[str]:
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
    if camera == "absent":
        args.append(f"--use-file-for-fake-video-capture={camera_file.with_name('no-camera.y4m')}")
    else:
        args.append(f"--use-file-for-fake-video-capture={camera_file}")
    if camera == "granted":
        args.append("--use-fake-ui-for-media-stream")
    return args


@pytest.fixture
def launch_browser(
    request: pytest.FixtureRequest,
    playwright: Playwright,
    chromium_path: str,
    camera_file: Path,
    screenshots: Path,
) -> Iterator[LaunchBrowser]:
    """``launch_browser(camera="granted", *, camera_file=None, args=()) -> Browser``:
    a headless Chromium whose camera plays ``camera_file`` (the test's, by default).
    Every browser is closed after the test; if the test failed, every open page is
    first saved to var/e2e-screenshots/<test>-<n>.png."""
    browsers: list[Browser] = []

    def launch(
        camera: CameraMode = "granted",
        *,
        camera_file: Path = camera_file,
        args: Sequence[str] = (),
    ) -> Browser:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[*chromium_args(camera, camera_file), *args],
        )
        browsers.append(browser)
        return browser

    yield launch
    failed = any(
        getattr(getattr(request.node, f"_e2e_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    for browser in browsers:
        if failed:
            _screenshot_pages(browser, screenshots / _safe(request.node.name))
        browser.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _screenshot_pages(browser: Browser, stem: Path) -> None:
    pages = [page for context in browser.contexts for page in context.pages]
    for index, page in enumerate(pages):
        try:
            page.screenshot(path=f"{stem}-{index}.png", full_page=True, timeout=5000)
        except Exception:  # a crashed page must not hide the test's own failure
            continue


@pytest.fixture(scope="module")
def devices(playwright: Playwright) -> dict[str, dict[str, Any]]:
    """Playwright's descriptors of the phones the experts use, as new_context() keyword
    arguments. ``default_browser_type`` is dropped: the iPhone is emulated in Chromium
    (its size, touch, pixel ratio and Safari's user agent; not WebKit's behaviour)."""
    return {
        name: {k: v for k, v in playwright.devices[name].items() if k != "default_browser_type"}
        for name in PHONES
    }


@pytest.fixture
def phone(devices: dict[str, dict[str, Any]]) -> PhonePage:
    """``phone(browser, device="Pixel 7", **context_options) -> Page``: a new page in a
    new context emulating that phone (options override the descriptor's, e.g.
    ``permissions=["camera"]`` or ``locale="zh-CN"``)."""

    def open_page(browser: Browser, device: str = "Pixel 7", **options: Any) -> Page:
        context = browser.new_context(**{**devices[device], **options})
        return context.new_page()

    return open_page


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """var/e2e-screenshots/ (git ignores var/): where tests and failures save pictures."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def liveness_scene(face_engine: FaceEngine) -> Callable[[str], synthetic.Scene]:
    """``liveness_scene(name="yaoming-0") -> Scene``: a shipped portrait in a phone frame,
    for `camera.liveness_video`. "yaoming-0", "gdp-2" and "players-0" animate reliably."""

    @cache
    def portraits() -> dict[str, Any]:
        return sample_portraits(face_engine, limit=10)

    @cache
    def scene(name: str = "yaoming-0") -> synthetic.Scene:
        return synthetic.make_scene(face_engine, portraits()[name])

    return scene
