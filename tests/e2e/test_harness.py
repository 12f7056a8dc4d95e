"""The e2e harness itself: Chromium's fake camera plays the Y4M files tests/e2e/camera.py
writes, from frame 0 when a capture starts, at the file's frame rate, in a loop; the
page sees the colours and the synthetic face; permission denied and no camera reach the
page as the errors a phone gives. The probe page is served by the test (page.route on
http://localhost, a secure context), not by the app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, Page

from face import synthetic
from face.engine import FaceEngine
from face.samples import BGR
from tests.e2e.camera import (
    FRAME_H,
    FRAME_W,
    GRAB_FRAME_JS,
    CameraVideo,
    decode_data_url,
    liveness_video,
    read_y4m,
    solid_frames,
    write_y4m,
)
from tests.e2e.conftest import LaunchBrowser, PhonePage

ORIGIN = "http://localhost"
BITS = 10  # the frame index, drawn as 10 black or white bars
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR

PROBE = """<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<style>video { width: 100%; } canvas { display: none; }</style></head>
<body>
<video id="video" autoplay playsinline muted></video>
<canvas id="canvas" width="640" height="480"></canvas>
<script>
window.probe = {
  async start(constraints) {
    const called = performance.now();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia(constraints || {video: true});
    } catch (error) {
      return {error: error.name, message: error.message};
    }
    const video = document.getElementById('video');
    video.srcObject = this.stream;
    await video.play();
    this.t0 = performance.now();
    const track = this.stream.getVideoTracks()[0];
    return {settings: track.getSettings(), label: track.label, opening_ms: this.t0 - called};
  },
  stop() { this.stream.getTracks().forEach((track) => track.stop()); },
  async devices() {
    return (await navigator.mediaDevices.enumerateDevices()).map((d) => d.kind);
  },
  // The frame on screen now: its index bars, the colour of its top band, and, if asked,
  // the whole frame as a JPEG data URL.
  read(jpeg) {
    const video = document.getElementById('video');
    const canvas = document.getElementById('canvas');
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.drawImage(video, 0, 0, 640, 480);
    const pixels = context.getImageData(0, 0, 640, 480).data;
    const at = (x, y) => Array.from(pixels.slice((y * 640 + x) * 4, (y * 640 + x) * 4 + 3));
    let index = 0;
    for (let bit = 0; bit < BITS; bit++) {
      if (at(bit * 64 + 32, 300)[0] > 128) index |= 1 << bit;
    }
    const sample = {t: performance.now() - this.t0, index, band: at(320, 40)};
    if (jpeg) sample.jpeg = canvas.toDataURL('image/jpeg', 0.92);
    return sample;
  },
  // `count` readings every `every` ms (8 fps: 125), and how many frames the <video>
  // presented meanwhile (requestVideoFrameCallback).
  sample(count, every, jpeg) {
    const video = document.getElementById('video');
    let presented = 0;
    let counting = true;
    const onFrame = () => { presented++; if (counting) video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
    const start = performance.now();
    return new Promise((resolve) => {
      const readings = [];
      const tick = () => {
        readings.push(this.read(jpeg));
        if (readings.length < count) {
          setTimeout(tick, Math.max(0, start + readings.length * every - performance.now()));
        } else {
          counting = false;
          resolve({readings, presented, ms: performance.now() - start});
        }
      };
      tick();
    });
  },
};
</script>
</body></html>""".replace("BITS", str(BITS))


def coded_frames(count: int, band: tuple[int, int, int] = RED) -> list[BGR]:
    """Frames that say which they are: the index as white bars, under a coloured band."""
    frames = []
    for index in range(count):
        frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
        frame[:80] = band
        for bit in range(BITS):
            if index >> bit & 1:
                frame[120:, bit * 64 : (bit + 1) * 64] = 255
        frames.append(frame)
    return frames


def open_probe(browser: Browser, **context: Any) -> Page:
    page = browser.new_context(**context).new_page()
    page.route(f"{ORIGIN}/**", lambda route: route.fulfill(content_type="text/html", body=PROBE))
    page.goto(f"{ORIGIN}/probe")
    return page


def start(page: Page, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("(c) => probe.start(c)", constraints)
    return result


def sample(page: Page, count: int, every_ms: int = 125, jpeg: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        "([count, every, jpeg]) => probe.sample(count, every, jpeg)", [count, every_ms, jpeg]
    )
    return result


def assert_on_schedule(
    readings: Sequence[dict[str, Any]],
    indices: Sequence[int],
    fps: int,
    n: int,
    opening_ms: float,
) -> None:
    """Each reading shows the frame due then: frame i of the n-frame file shows from i/fps
    after the capture started, in a loop. The capture started while getUserMedia and
    play() ran (``opening_ms`` before the readings' clock starts), so a frame may be
    ahead of the readings' clock by that much; and it may be behind by the time to
    deliver and draw it: a frame or two, but up to about 500 ms on an overloaded machine
    (Chromium then drops frames to catch up)."""
    ahead = []
    for reading, index in zip(readings, indices, strict=True):
        due = reading["t"] / 1000 * fps
        ahead.append((index - due + n / 2) % n - n / 2)  # in frames, loop-aware
    low = -(0.5 * fps + 1.5)
    high = opening_ms / 1000 * fps + 0.1 * fps + 1.5
    shown = ", ".join(
        f"{reading['t']:.0f}ms:#{index}({lead:+.1f})"
        for reading, index, lead in zip(readings, indices, ahead, strict=True)
    )
    assert all(low <= lead <= high for lead in ahead), f"{shown}; allowed {low:.1f}..{high:.1f}"


def test_y4m_round_trip(tmp_path: Path) -> None:
    frames = [*solid_frames([RED, BLUE, (40, 200, 90)]), *coded_frames(2)]
    path = write_y4m(tmp_path / "video.y4m", frames, fps=15)
    header = path.read_bytes().split(b"\n", 1)[0]
    assert header == b"YUV4MPEG2 W640 H480 F15:1 Ip A1:1 C420jpeg"
    again, fps = read_y4m(path)
    assert fps == 15
    assert len(again) == len(frames)
    for original, decoded in zip(frames, again, strict=True):
        # 4:2:0 halves chroma; only the bars' edges lose more than a few levels.
        assert np.median(np.abs(original.astype(int) - decoded)) <= 3
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(ValueError, match="even"):
        write_y4m(tmp_path / "odd.y4m", [np.zeros((479, 640, 3), np.uint8)])


def test_lead_in_moves_the_prompts(liveness_scene: Callable[[str], synthetic.Scene]) -> None:
    scene = liveness_scene("yaoming-0")
    plain = liveness_video(scene, ["nod", "blink"], kind="still_photo", fps=30)
    led = liveness_video(
        scene, ["nod", "blink"], kind="still_photo", fps=30, lead_in_ms=2000, tail_ms=500
    )
    assert plain.prompts_ms == [600, 2100]
    assert led.prompts_ms == [2600, 4100]
    assert len(led.frames) == len(plain.frames) + 60 + 15
    assert led.duration_ms == plain.duration_ms + 2500


@pytest.mark.parametrize("fps", [8, 15, 30])
def test_camera_plays_the_file_from_frame_zero_at_its_rate_in_a_loop(
    fps: int, launch_browser: LaunchBrowser, camera_file: Path
) -> None:
    n = fps  # 1 s, so 1.1 s of sampling sees the loop
    write_y4m(camera_file, coded_frames(n), fps)
    page = open_probe(launch_browser())
    started = start(page)
    assert started["settings"]["frameRate"] == fps
    assert (started["settings"]["width"], started["settings"]["height"]) == (640, 480)
    assert started["label"] == str(camera_file)

    result = sample(page, count=10, every_ms=125)  # the pages' 8 fps
    readings = result["readings"]
    indices = [reading["index"] for reading in readings]
    assert all(0 <= index < n for index in indices), indices
    assert_on_schedule(readings, indices, fps, n, started["opening_ms"])  # from frame 0
    assert any(b < a for a, b in pairwise(indices)), indices  # and in a loop
    # Frames the <video> presented: at most the file's rate (fewer on a busy machine).
    rate = result["presented"] / (result["ms"] / 1000)
    assert 0.4 * fps <= rate <= 1.25 * fps + 1, rate
    assert all(reading["band"][0] > 240 and max(reading["band"][1:]) < 15 for reading in readings)


def test_camera_file_is_read_when_a_capture_starts(
    launch_browser: LaunchBrowser, camera_file: Path
) -> None:
    browser = launch_browser()  # before the file exists
    page = open_probe(browser)
    assert "videoinput" not in page.evaluate("probe.devices()")
    assert start(page)["error"] == "NotFoundError"

    write_y4m(camera_file, coded_frames(40, RED), fps=8)  # a 5 s loop
    assert "videoinput" in page.evaluate("probe.devices()")
    started = start(page)
    assert started["settings"]["frameRate"] == 8
    first = sample(page, count=4)["readings"]
    assert_on_schedule(first, [r["index"] for r in first], 8, 40, started["opening_ms"])
    assert first[0]["band"][0] > 240

    # Rewritten while the capture runs: the capture goes on with the old file, and so does
    # a second getUserMedia while the first stream is live: it joins the running capture,
    # showing the frame the first page shows (not frame 0 of either file).
    write_y4m(camera_file, coded_frames(40, BLUE), fps=15)
    page.wait_for_timeout(300)
    second = open_probe(browser)
    assert start(second)["settings"]["frameRate"] == 8
    shared = sample(second, count=1)["readings"][0]
    running = sample(page, count=1)["readings"][0]
    assert shared["band"][0] > 240 and running["band"][0] > 240
    assert running["index"] >= 5, running  # well past frame 0 (the loop is 5 s)
    assert (running["index"] - shared["index"]) % 40 <= 2, (running, shared)

    # Every track stopped: the next capture reads the new file, from its frame 0.
    second.evaluate("probe.stop()")
    page.evaluate("probe.stop()")
    restarted = start(page)
    assert restarted["settings"]["frameRate"] == 15
    again = sample(page, count=4)["readings"]
    assert_on_schedule(again, [r["index"] for r in again], 15, 40, restarted["opening_ms"])
    assert all(reading["band"][2] > 240 and reading["band"][0] < 15 for reading in again)

    # Leaving the page stops its tracks too: after a reload, the newest file from frame 0.
    write_y4m(camera_file, coded_frames(40, GREEN), fps=30)
    page.reload()
    reloaded = start(page)
    assert reloaded["settings"]["frameRate"] == 30
    fresh = sample(page, count=2)["readings"]
    assert_on_schedule(fresh, [r["index"] for r in fresh], 30, 40, reloaded["opening_ms"])
    assert fresh[0]["band"][1] > 240 and max(fresh[0]["band"][0], fresh[0]["band"][2]) < 15


@pytest.fixture(scope="module")
def face_video(liveness_scene: Callable[[str], synthetic.Scene]) -> CameraVideo:
    # 15 fps halves the rendering (50 ms a frame); the coded videos prove 30 fps.
    return liveness_video(liveness_scene("yaoming-0"), ["turn_left"], fps=15)


def test_phone_page_sees_the_synthetic_face(
    face_video: CameraVideo,
    face_engine: FaceEngine,
    launch_browser: LaunchBrowser,
    camera_file: Path,
    phone: PhonePage,
    screenshots: Path,
) -> None:
    face_video.write(camera_file)
    page = phone(launch_browser(), "Pixel 7")
    page.route(f"{ORIGIN}/**", lambda route: route.fulfill(content_type="text/html", body=PROBE))
    page.goto(f"{ORIGIN}/check")
    assert page.evaluate("navigator.userAgent").find("Pixel 7") > 0
    assert page.evaluate("window.matchMedia('(pointer: coarse)').matches")
    started = start(page, {"video": {"facingMode": "user", "width": {"ideal": 640}}})
    readings = sample(page, count=10, every_ms=125, jpeg=True)["readings"]
    page.screenshot(path=screenshots / "harness-pixel7.png")

    small = [_small(frame) for frame in face_video.frames]
    indices = []
    for reading in readings:
        frame = decode_data_url(reading["jpeg"])
        assert frame.shape == (480, 640, 3)
        faces = face_engine.detect(frame)
        assert len(faces) == 1 and faces[0].score > 0.6, reading["t"]
        # Which video frame the page saw: the nearest, which must also be the one due.
        errors = [float(np.mean((_small(frame) - other) ** 2)) for other in small]
        best = int(np.argmin(errors))
        assert errors[best] < 0.5 * sorted(errors)[3], "no clear match"
        indices.append(best)
    n = len(face_video.frames)
    assert_on_schedule(readings, indices, face_video.fps, n, started["opening_ms"])
    turned = [face_video.poses[index].yaw for index in indices]
    assert max(turned) > 15  # the page saw the head turn


def _small(frame: BGR) -> np.ndarray[Any, np.dtype[np.float32]]:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(grey, (160, 120), interpolation=cv2.INTER_AREA), np.float32)


def test_iphone_emulation_runs_in_chromium(
    launch_browser: LaunchBrowser, camera_file: Path, phone: PhonePage
) -> None:
    write_y4m(camera_file, solid_frames([(40, 200, 90)]), fps=30)
    page = phone(launch_browser(), "iPhone 13")
    page.route(f"{ORIGIN}/**", lambda route: route.fulfill(content_type="text/html", body=PROBE))
    page.goto(f"{ORIGIN}/check")
    assert "iPhone" in page.evaluate("navigator.userAgent")
    assert page.evaluate("[innerWidth, screen.width, devicePixelRatio]") == [390, 390, 3]
    assert "settings" in start(page)
    page.wait_for_timeout(100)
    grabbed = decode_data_url(page.evaluate(GRAB_FRAME_JS, "video"))
    assert np.abs(grabbed.reshape(-1, 3).mean(axis=0) - (40, 200, 90)).max() < 4


def test_permission_denied_and_granted_per_context(
    launch_browser: LaunchBrowser, camera_file: Path
) -> None:
    write_y4m(camera_file, coded_frames(3), fps=30)
    browser = launch_browser("denied")
    denied = open_probe(browser)
    assert start(denied) == {"error": "NotAllowedError", "message": "Permission denied"}
    assert (
        denied.evaluate(
            "navigator.permissions.query({name: 'camera'}).then((status) => status.state)"
        )
        == "denied"
    )
    # The same browser ("ask" is the same mode): a context that grants the camera gets it.
    granted = open_probe(browser, permissions=["camera"])
    assert start(granted)["settings"]["width"] == 640


def test_no_camera(launch_browser: LaunchBrowser, camera_file: Path) -> None:
    write_y4m(camera_file, coded_frames(3), fps=30)  # exists, but "absent" ignores it
    page = open_probe(launch_browser("absent"))
    assert "videoinput" not in page.evaluate("probe.devices()")
    assert start(page) == {"error": "NotFoundError", "message": "Requested device not found"}


def test_constraints_the_file_camera_cannot_meet(
    launch_browser: LaunchBrowser, camera_file: Path
) -> None:
    """The file is one 640x480 camera with no facing mode: ideal constraints are met as
    well as it can (a smaller size is scaled down), exact ones it cannot meet fail."""
    write_y4m(camera_file, coded_frames(3), fps=30)
    page = open_probe(launch_browser())
    assert start(page, {"video": {"width": {"ideal": 1280}}})["settings"]["width"] == 640
    page.evaluate("probe.stop()")
    assert start(page, {"video": {"width": {"exact": 320}}})["settings"]["width"] == 320
    page.evaluate("probe.stop()")
    exact_user = start(page, {"video": {"facingMode": {"exact": "user"}}})
    assert exact_user["error"] == "OverconstrainedError"
    assert start(page, {"video": {"width": {"exact": 1280}}})["error"] == "OverconstrainedError"
