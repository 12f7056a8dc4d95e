"""Videos for Chromium's fake camera: a Y4M writer, and the liveness fixture videos of
face/synthetic.py rendered as raw BGR frames at the camera's frame rate.

Chromium plays the file named by ``--use-file-for-fake-video-capture`` (with
``--use-fake-device-for-media-stream``) as its only camera. Measured with Debian's
Chromium 156, headless; tests/e2e/test_harness.py re-checks all of this but the two
points marked (by hand):

- Nothing is read at launch. enumerateDevices looks for the file each time it is called
  (a "videoinput" labelled with the file's path when it exists, none when not), and
  getUserMedia opens, parses and memory-maps it when it starts a capture: a missing
  file gives ``NotFoundError``. So a test may launch the browser and load the page first
  and write the file at any time before the page calls getUserMedia.
- A capture lasts while any track of it is live, in any page or context of the browser.
  A getUserMedia meanwhile joins it (same frames, same position, same file even if
  rewritten). Once every track is stopped (track.stop(), or the page reloaded or
  navigated away), the next getUserMedia starts a new capture: it reads the file as it
  is then, from its frame 0. So rewrite the file between captures, not during one.
  `write_y4m` replaces the file atomically (a new inode): a running capture keeps the
  old copy it mapped, even if the file is deleted (by hand). Never rewrite it in
  place.
- Playback loops: after the last frame comes frame 0 again at the same pace, with no
  gap and no end of track.
- Frame i is delivered about i/fps after the capture started (within a frame or two;
  up to ~0.5 s late, dropping frames to catch up, when the machine is overloaded). The
  rate is the header's: an ``F8:1``, ``F15:1`` or ``F30:1`` file gives 8, 15 or 30 fps,
  and ``track.getSettings()`` reports that frameRate and the file's width and height.
  getUserMedia plus video.play() take ~100-200 ms, so the page's first frame is about
  frame 1-3 (at 30 fps).
- The camera has one mode: ``ideal`` constraints are met as well as it can (asking
  1280 wide still gives 640; a smaller exact or ideal width is scaled down), ``exact``
  constraints it cannot meet (``facingMode: {exact: "user"}``, a larger width) give
  ``OverconstrainedError``; ``facingMode: "user"`` (ideal) is fine.
- Colours survive: OpenCV's I420 is BT.601 limited range, as Chromium reads it; a
  canvas drawImage of the <video> gives back the BGR values within a few levels.
- Permission: ``--use-fake-ui-for-media-stream`` grants every getUserMedia without a
  prompt. Without it, headless Chromium denies at once (``NotAllowedError``, message
  "Permission denied", permissions.query says "denied") unless the page's context was
  made with ``permissions=["camera"]``. ``--deny-permission-prompts`` adds nothing to
  that, and cannot override the fake-UI flag (by hand). Without the fake-device flag Chromium
  looks for real cameras: none here gives ``NotFoundError`` ("Requested device not
  found"); so does the fake device pointed at a file that does not exist, on any machine.
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from playwright.sync_api import Page

from face import synthetic
from face.samples import BGR, encode

CAMERA_FPS = 30
FRAME_W, FRAME_H = synthetic.FRAME_W, synthetic.FRAME_H

Kind = Literal["genuine", "still_photo", "planar_motion"]


def write_y4m(path: Path, frames: Sequence[BGR], fps: int = CAMERA_FPS) -> Path:
    """Write BGR frames (all the same even width and height) as a YUV4MPEG2 4:2:0 file.

    The file is written beside ``path`` and renamed over it, so a browser never maps a
    half-written file and a capture already running keeps its old copy."""
    if not frames:
        raise ValueError("a video needs at least one frame")
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"4:2:0 needs an even frame size, not {width}x{height}")
    header = f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(header)
            for index, frame in enumerate(frames):
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise ValueError(
                        f"frame {index} is {frame.shape} {frame.dtype}, "
                        f"not ({height}, {width}, 3) uint8"
                    )
                out.write(b"FRAME\n")
                out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_y4m(path: Path) -> tuple[list[BGR], int]:
    """The BGR frames and frame rate of a file `write_y4m` wrote (for checks)."""
    data = path.read_bytes()
    end = data.index(b"\n")
    tags = {tag[0]: tag[1:] for tag in data[:end].decode().split()[1:]}
    width, height = int(tags["W"]), int(tags["H"])
    numerator, denominator = (int(part) for part in tags["F"].split(":"))
    size = width * height * 3 // 2
    frames: list[BGR] = []
    offset = end + 1
    while offset < len(data):
        start = data.index(b"\n", offset) + 1
        plane = np.frombuffer(data, np.uint8, size, start).reshape(height * 3 // 2, width)
        frames.append(np.asarray(cv2.cvtColor(plane, cv2.COLOR_YUV2BGR_I420), np.uint8))
        offset = start + size
    return frames, round(numerator / denominator)


def solid_frames(colours: Sequence[tuple[int, int, int]], repeat: int = 1) -> list[BGR]:
    """Plain 640x480 frames, one per BGR colour, each repeated ``repeat`` times."""
    frames = []
    for colour in colours:
        frame = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
        frame[:] = colour
        frames.extend([frame] * repeat)
    return frames


@dataclass(frozen=True)
class CameraVideo:
    """What the fake camera plays: frames at ``fps``, with the time (ms from the video's
    first frame, lead-in included) at which each action's prompt should have appeared."""

    frames: list[BGR]
    fps: int
    prompts_ms: list[int]
    actions: tuple[str, ...]
    lead_in_ms: int
    poses: list[synthetic.Pose]

    @property
    def duration_ms(self) -> int:
        return round(1000 * len(self.frames) / self.fps)

    def write(self, path: Path) -> Path:
        return write_y4m(path, self.frames, self.fps)


def _neutral_poses(count: int, rng: np.random.Generator) -> list[synthetic.Pose]:
    """A person holding still in front of the phone: the jitter `synthetic.poses` adds."""
    return [
        synthetic.Pose(
            yaw=float(rng.normal(0, 0.8)),
            pitch=float(rng.normal(0, 0.8)),
            shift=(float(rng.normal(0, 1.5)), float(rng.normal(0, 1.5))),
            roll=float(rng.normal(0, 0.7)),
        )
        for _ in range(count)
    ]


def liveness_video(
    scene: synthetic.Scene,
    actions: Sequence[str],
    *,
    kind: Kind = "genuine",
    fps: int = CAMERA_FPS,
    lead_in_ms: int = 0,
    tail_ms: int = 0,
    seed: int = 0,
) -> CameraVideo:
    """The liveness fixture video of face/synthetic.py as camera frames.

    ``genuine`` performs the actions, each ``synthetic.ACTION_S`` after the previous
    prompt; ``still_photo`` shows the still scene throughout; ``planar_motion`` is a
    printed photo moved and tilted. ``lead_in_ms`` of neutral frames (the person or the
    photo holding still) come before synthetic's own 0.6 s lead, so the actions land
    after prompts a page shows late; ``tail_ms`` of neutral frames come after, so the
    camera's loop back to frame 0 does not look like a new action at once.

    Rendering costs about 50 ms a frame on two cores (a head turn is a remap per frame),
    so keep the videos of quick tests short.
    """
    rng = np.random.default_rng(seed + 1)
    lead = math.ceil(lead_in_ms * fps / 1000)
    tail = math.ceil(tail_ms * fps / 1000)
    action_poses, prompts = synthetic.poses(actions, fps, seed)
    shown_ms = round(1000 * lead / fps)
    prompts_ms = [shown_ms + prompt for prompt in prompts]
    if kind == "genuine":
        poses = _neutral_poses(lead, rng) + action_poses + _neutral_poses(tail, rng)
        frames = [synthetic.render(scene, pose, rng) for pose in poses]
    elif kind == "still_photo":
        poses = [synthetic.Pose()] * (lead + len(action_poses) + tail)
        frames = [scene.frame] * len(poses)
    elif kind == "planar_motion":
        video = synthetic.planar_motion(scene, actions, seed=seed, fps=fps)
        moving = [_decode(jpeg) for jpeg in video.frames]
        poses = [synthetic.Pose()] * (lead + len(moving) + tail)
        frames = [moving[0]] * lead + moving + [moving[-1]] * tail
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return CameraVideo(frames, fps, prompts_ms, tuple(actions), shown_ms, poses)


def _decode(encoded: bytes) -> BGR:
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return np.asarray(image, dtype=np.uint8)


# For page.evaluate(GRAB_FRAME_JS, "video"): the current frame of a <video> (by CSS
# selector) at its own size, as a JPEG data URL; `decode_data_url` makes it BGR again.
GRAB_FRAME_JS = """(selector) => {
  const video = document.querySelector(selector);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return canvas.toDataURL('image/jpeg', 0.92);
}"""


def decode_data_url(url: str) -> BGR:
    """The image of a ``data:image/...;base64,`` URL (a canvas's toDataURL) as BGR."""
    _, _, payload = url.partition(";base64,")
    if not payload:
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    return _decode(base64.b64decode(payload))


# A camera made of a canvas, drawn in the page at its own frame rate: at the start of each
# capture the test hands over the head's shapes along each action's curve
# (``__evalsignCameraStart``); the page then draws, frame by frame, the shape the prompt it
# shows (``#prompt[data-action]``) calls for at that moment, shaken a little and with the
# sensor's noise, and tints it by the colour the page lights the screen with (``#light``'s
# background while shown): skin near the screen takes on more of it than the room behind
# (the strength map face/synthetic.py's reflect uses). So the face follows the prompts and
# the colours live, as a person in front of the phone would, knowing nothing in advance,
# and no frame waits on the test's process (a busy machine once slowed a per-frame callback
# to a few frames a second, too few to show a blink).
LIVE_CAMERA_JS = """(() => {
  if (window.__evalsignLiveCamera || !navigator.mediaDevices) return;
  window.__evalsignLiveCamera = true;
  const load = (url) => new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
  const rgb = (css) => (css.match(/[0-9.]+/g) || []).slice(0, 3).map(Number);
  const gauss = () => {
    const u = 1 - Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  };
  navigator.mediaDevices.getUserMedia = async () => {
    const width = %(width)d, height = %(height)d, period = 1000 / %(fps)d;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const stream = canvas.captureStream(%(fps)d);
    const track = stream.getVideoTracks()[0];
    const setup = await window.__evalsignCameraStart();
    const images = await Promise.all(setup.images.map(load));
    const maskImage = await load(setup.mask);
    context.drawImage(maskImage, 0, 0);
    const maskPixels = context.getImageData(0, 0, width, height).data;
    const strength = new Float32Array(width * height);
    for (let i = 0; i < strength.length; i++) strength[i] = (maskPixels[4 * i] / 255) * setup.face;
    // The sensor's noise: one field drawn once, read from a new offset each frame.
    const noise = new Int8Array(width * height + 4096);
    for (let i = 0; i < noise.length; i++) noise[i] = Math.round(2 * gauss());
    const prompted = [];
    let frames = 0;
    let live = true;
    const stop = track.stop.bind(track);
    track.stop = () => {
      if (live) window.__evalsignCameraStop({ frames, prompted });
      live = false;
      stop();
    };
    const started = performance.now();
    const shapeAt = (t) => {
      let shown = setup.neutral;
      for (const [action, at] of prompted) {
        const fraction = (t - at) / setup.action_ms;
        const curve = setup.curves[action];
        if (fraction >= 0 && fraction < 1) shown = curve[Math.round(fraction * (curve.length - 1))];
      }
      return images[shown];
    };
    const draw = () => {
      const t = performance.now() - started;
      const prompt = document.getElementById("prompt");
      const action = (prompt && prompt.dataset.action) || null;
      if (action && (!prompted.length || prompted[prompted.length - 1][0] !== action)) {
        prompted.push([action, t]);
      }
      const image = shapeAt(t);
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.drawImage(image, 0, 0);  // under the shaken copy, so its edges show no gap
      const roll = (0.7 * gauss() * Math.PI) / 180;
      context.translate(width / 2 + 1.5 * gauss(), height / 2 + 1.5 * gauss());
      context.rotate(roll);
      context.drawImage(image, -width / 2, -height / 2);
      context.setTransform(1, 0, 0, 1, 0, 0);
      const frame = context.getImageData(0, 0, width, height);
      const px = frame.data;
      const light = document.getElementById("light");
      const lit = setup.lit && light && !light.hidden;
      // The colour showing now, as the frame is taken.
      const colour = lit ? rgb(getComputedStyle(light).backgroundColor) : [0, 0, 0];
      const [r, g, b] = colour.map((v) => v / 255);
      const mean = (r + g + b) / 3;
      const offset = Math.floor(Math.random() * 4096);
      for (let i = 0; i < strength.length; i++) {
        const k = lit ? strength[i] : 0;
        const keep = 1 + k * mean;
        const n = noise[offset + i];
        px[4 * i] = (px[4 * i] * (1 + k * r)) / keep + n;
        px[4 * i + 1] = (px[4 * i + 1] * (1 + k * g)) / keep + n;
        px[4 * i + 2] = (px[4 * i + 2] * (1 + k * b)) / keep + n;
      }
      context.putImageData(frame, 0, 0);
      frames += 1;
    };
    draw();
    (async () => {
      let next = performance.now();
      while (live) {
        next += period;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
        if (live) draw();
      }
    })();
    return stream;
  };
})();"""

# The head's shapes along an action's 1.5 s, this many steps apart in time (a blink's
# closing takes about five of them).
CURVE_STEPS = 31


class LiveCamera:
    """The page's camera, rendered live in the page from a photo's shapes: every capture
    starts a new take (new noise, no prompt yet), each prompt the page shows starts its
    action, and (``lit``) the colour lighting the screen tints the face as it is drawn.

    The shapes are made here once (kept by pose: 3 degree, 0.2 eyelid and mouth steps, a
    full render costing ~0.3 s on a loaded machine) and handed to the page as images; the
    page picks, shakes and noises them at its own frame rate. ``takes``, ``frames`` and
    ``prompted`` are what the page reported as each capture stopped."""

    def __init__(
        self,
        scene: Callable[[], synthetic.Scene],
        *,
        lit: bool = True,
        spent_s: list[float] | None = None,
    ) -> None:
        self.scene = scene
        self.lit = lit
        self.spent_s = spent_s  # the seconds spent shaping the face, for benchmarks
        self.takes = 0
        self.frames = 0
        self.prompted: list[list[tuple[str, float]]] = []
        self._setup: dict[str, Any] | None = None

    def install(self, page: Page, fps: int = 15) -> None:
        page.expose_function("__evalsignCameraStart", self.start)
        page.expose_function("__evalsignCameraStop", self.stopped)
        script = LIVE_CAMERA_JS % {"width": FRAME_W, "height": FRAME_H, "fps": fps}
        page.add_init_script(script)
        if page.url.startswith("http"):
            page.evaluate(script)

    def start(self) -> dict[str, Any]:
        self.takes += 1
        if self._setup is None:
            began = time.perf_counter()
            self._setup = self._shapes()
            if self.spent_s is not None:
                self.spent_s.append(time.perf_counter() - began)
        return self._setup

    def stopped(self, report: dict[str, Any]) -> None:
        self.frames += int(report["frames"])
        self.prompted.append([(str(a), float(t) / 1000) for a, t in report["prompted"]])

    def _shapes(self) -> dict[str, Any]:
        """Every shape an action passes through, once, as images, and each action's curve
        as indexes into them."""
        scene = self.scene()
        images: list[str] = []
        known: dict[tuple[float, float, float, float], int] = {}

        def image_of(pose: synthetic.Pose) -> int:
            key = (
                3 * round(pose.yaw / 3),
                3 * round(pose.pitch / 3),
                round(pose.eyes_closed * 5) / 5,
                round(pose.mouth_open * 5) / 5,
            )
            if key not in known:
                still = synthetic.Pose(
                    yaw=key[0], pitch=key[1], eyes_closed=key[2], mouth_open=key[3]
                )
                data = encode(synthetic.shape(scene, still), quality=92)
                images.append("data:image/jpeg;base64," + base64.b64encode(data).decode())
                known[key] = len(images) - 1
            return known[key]

        neutral = image_of(synthetic.Pose())
        curves = {
            action: [
                image_of(
                    synthetic.action_pose(action, held_amount(action, step / (CURVE_STEPS - 1)))
                )
                for step in range(CURVE_STEPS)
            ]
            for action in synthetic.ACTION_PEAKS
        }
        mask = synthetic.screen_strength(scene) / synthetic.SCREEN_ON_FACE
        png = cv2.imencode(".png", np.clip(mask * 255, 0, 255).astype(np.uint8))[1]
        return {
            "images": images,
            "neutral": neutral,
            "curves": curves,
            "action_ms": 1000 * synthetic.ACTION_S,
            "mask": "data:image/png;base64," + base64.b64encode(png.tobytes()).decode(),
            "face": synthetic.SCREEN_ON_FACE,
            "lit": self.lit,
        }


# A person asked to turn, nod or open their mouth holds it a moment before coming back
# (synthetic.py's fixture videos do not, and a page that samples a few frames a second can
# then fall between them): (start, reached, let go, back) as fractions of the action's
# time. A blink is as quick as ever.
HELD_SHAPE = (0.1, 0.3, 0.6, 0.8)
HELD_SHAPES = {"blink": (0.2, 0.3, 0.3, 0.45)}


def held_amount(action: str, fraction: float) -> float:
    """How far into the action (0 to 1) the person is at ``fraction`` of its time."""
    start, reached, let_go, back = HELD_SHAPES.get(action, HELD_SHAPE)
    if fraction <= start or fraction >= back:
        return 0.0
    if fraction < reached:
        return (fraction - start) / (reached - start)
    if fraction <= let_go:
        return 1.0
    return (back - fraction) / (back - let_go)
