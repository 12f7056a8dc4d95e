"""Synthetic face videos for the liveness check, made from the real photos the model wheels
ship (no face videos exist on this machine).

A genuine sequence puts a portrait in a 640x480 phone frame and performs actions on it:
head turns and nods by a depth-map projection (a paraboloid head with a nose, so the
nose moves more than the cheeks: a non-planar motion, unlike a photo being tilted), blinks
by rendering closed eyelids over the landmark eye regions, and mouth opening by warping
the lower lip and chin down over a dark mouth interior. Every frame gets small natural
jitter. The attacks are built from the same parts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from face.engine import FaceEngine
from face.samples import BGR, encode

FRAME_W, FRAME_H = 640, 480
FPS = 8
LEAD_S = 0.6  # neutral frames before the first prompt
ACTION_S = 1.5  # time given to each action after its prompt
RIGHT_EYE = [33, 34, 35, 36, 37, 39, 40, 41, 42]  # image-left eye, without its centre
LEFT_EYE = [87, 89, 90, 91, 92, 93, 94, 95, 96]
UPPER_LIP_INNER, LOWER_LIP_INNER, MOUTH_CORNERS = 62, 60, (52, 61)


@dataclass(frozen=True)
class Pose:
    """What one frame shows: head rotation (degrees), eyelid closure and mouth opening
    (0..1), plus camera jitter."""

    yaw: float = 0.0
    pitch: float = 0.0
    eyes_closed: float = 0.0
    mouth_open: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    roll: float = 0.0


@dataclass
class Video:
    frames: list[bytes]
    timestamps_ms: list[int]
    prompts_ms: list[int]
    poses: list[Pose] = field(default_factory=list)

    def form(self) -> dict[str, object]:
        """The submission's form fields (frames go separately as files)."""
        return {"timestamps_ms": self.timestamps_ms, "prompts_ms": self.prompts_ms}


@dataclass(frozen=True)
class Scene:
    """A portrait placed in a phone frame, with the geometry the renderers need."""

    frame: BGR
    landmarks: NDArray[np.float32]
    keypoints: NDArray[np.float32]
    bbox: tuple[float, float, float, float]


def _background(portrait: BGR) -> BGR:
    """A room-like backdrop with no face in it: the portrait's top and bottom colours as a
    gradient, with soft texture."""
    top = portrait[:8].reshape(-1, 3).mean(axis=0)
    bottom = portrait[-8:].reshape(-1, 3).mean(axis=0)
    ramp = np.linspace(0, 1, FRAME_H, dtype=np.float32)[:, None, None]
    frame = top * (1 - ramp) + bottom * ramp + np.zeros((FRAME_H, FRAME_W, 3), np.float32)
    texture = cv2.GaussianBlur(np.random.default_rng(7).normal(0, 25, frame.shape), (0, 0), 6)
    return np.asarray(np.clip(frame + texture, 0, 255), dtype=np.uint8)


def make_scene(engine: FaceEngine, portrait: BGR, face_px: int = 190) -> Scene:
    """The portrait scaled so the face is ``face_px`` wide, centred on a 640x480 frame whose
    surroundings are a blurred copy of the portrait (a plausible, textured background)."""
    face = engine.detect(portrait)[0]
    scale = face_px / face.width
    resized = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    frame = _background(portrait)
    h, w = resized.shape[:2]
    cx, cy = (face.bbox[0] + face.bbox[2]) / 2 * scale, (face.bbox[1] + face.bbox[3]) / 2 * scale
    left, top = int(FRAME_W / 2 - cx), int(FRAME_H / 2 - cy - 10)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(FRAME_W, left + w), min(FRAME_H, top + h)
    patch = resized[y0 - top : y1 - top, x0 - left : x1 - left]
    hard = np.zeros(patch.shape[:2], np.float32)
    hard[8:-8, 8:-8] = 1.0
    mask = cv2.GaussianBlur(hard, (0, 0), 5)[:, :, None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (patch * mask + region * (1 - mask)).astype(np.uint8)
    found = engine.detect(frame)[0]
    return Scene(frame, engine.landmarks(frame, found), found.keypoints, found.bbox)


def _head_displacement(scene: Scene, yaw: float, pitch: float) -> tuple[BGR, BGR]:
    """Per-pixel displacement (dx, dy) of a head rotated by yaw/pitch under orthographic
    projection. Depth: a paraboloid over the head ellipse plus a Gaussian nose, so points
    nearer the camera move further, as on a real head."""
    x1, y1, x2, y2 = scene.bbox
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = 0.62 * (x2 - x1), 0.68 * (y2 - y1)
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    u, v = (xs - cx) / a, (ys - cy) / b
    r2 = u * u + v * v
    depth = 0.8 * a * np.clip(1 - r2, 0, None)
    nx, ny = scene.keypoints[2]
    sigma = 0.12 * a
    depth += 0.3 * a * np.exp(-((xs - nx) ** 2 + (ys - ny) ** 2) / (2 * sigma * sigma))
    # The head moves; the background beyond it stays, with a smooth seam between.
    weight = np.clip((1.5 - np.sqrt(r2)) / 0.5, 0, 1)
    yr, pr = math.radians(yaw), math.radians(pitch)
    dx = ((xs - cx) * (math.cos(yr) - 1) + depth * math.sin(yr)) * weight
    dy = ((ys - cy) * (math.cos(pr) - 1) + depth * math.sin(pr)) * weight
    return dx.astype(np.float32), dy.astype(np.float32)


def _rotate_head(image: BGR, scene: Scene, yaw: float, pitch: float) -> BGR:
    if abs(yaw) < 1e-3 and abs(pitch) < 1e-3:
        return image
    dx, dy = _head_displacement(scene, yaw, pitch)
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    # remap needs, for each output pixel, its source: invert x' = x + d(x) by iteration.
    src_x, src_y = xs.copy(), ys.copy()
    for _ in range(12):
        sample_dx = cv2.remap(dx, src_x, src_y, cv2.INTER_LINEAR)
        sample_dy = cv2.remap(dy, src_x, src_y, cv2.INTER_LINEAR)
        src_x, src_y = xs - sample_dx, ys - sample_dy
    warped = np.asarray(
        cv2.remap(image, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
        dtype=np.uint8,
    )
    return warped


def _close_eyes(image: BGR, scene: Scene, amount: float) -> BGR:
    """Closed eyelids: the eye region filled with the skin just above it, a dark lash line
    along its lower edge, feathered in."""
    if amount <= 0:
        return image
    out = image.astype(np.float32)
    for indices in (RIGHT_EYE, LEFT_EYE):
        points = scene.landmarks[indices]
        hull = cv2.convexHull(points.astype(np.int32))
        x, y, w, h = cv2.boundingRect(hull)
        skin_band = image[max(0, y - h - 4) : max(1, y - 2), x : x + w].reshape(-1, 3)
        skin = np.median(skin_band, axis=0)
        outline = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(outline, hull, 255)
        mask = cv2.dilate(outline, np.ones((5, 5), np.uint8))
        lid = np.zeros_like(out)
        lid[:] = skin
        # A lid is a little darker towards its lower edge, where it folds.
        rows = lid[max(0, y - 4) : y + h + 4]
        rows *= np.linspace(1.0, 0.9, rows.shape[0])[:, None, None]
        lash = np.zeros(image.shape[:2], np.uint8)
        corners = points[np.argsort(points[:, 0])]
        left, right = corners[0], corners[-1]
        middle = np.array([(left[0] + right[0]) / 2, y + 0.7 * h])
        curve = np.array([left, middle, right], np.int32)
        cv2.polylines(lash, [curve], False, 255, 2)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 1.5) * amount
        out = out * (1 - alpha[:, :, None]) + lid * alpha[:, :, None]
        lash_alpha = cv2.GaussianBlur(lash.astype(np.float32) / 255, (0, 0), 0.8) * amount
        out = out * (1 - 0.6 * lash_alpha[:, :, None]) + 40 * 0.6 * lash_alpha[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _open_mouth(image: BGR, scene: Scene, amount: float) -> BGR:
    """The lower lip and chin pulled down, showing a dark mouth interior."""
    if amount <= 0:
        return image
    lm = scene.landmarks
    left, right = lm[MOUTH_CORNERS[0]], lm[MOUTH_CORNERS[1]]
    width = float(np.linalg.norm(right - left))
    centre = (lm[UPPER_LIP_INNER] + lm[LOWER_LIP_INNER]) / 2
    drop = 0.55 * width * amount
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    # Below the lip line everything moves down by `drop`, fading out sideways and at the
    # jaw's end, so the chin follows the lip.
    side = np.exp(-(((xs - centre[0]) / (0.8 * width)) ** 2))
    below = np.clip((ys - centre[1]) / (0.1 * width) + 1, 0, 1)
    fade = np.clip(1 - (ys - centre[1]) / (2.2 * width), 0, 1)
    dy = drop * side * below * fade
    warped = cv2.remap(image, xs, ys - dy.astype(np.float32), cv2.INTER_LINEAR)
    mask = np.zeros(image.shape[:2], np.uint8)
    axes = (int(0.42 * width), max(1, int(drop / 2)))
    cv2.ellipse(mask, (int(centre[0]), int(centre[1] + drop / 2)), axes, 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), 2)[:, :, None]
    interior = np.array([35, 30, 70], np.float32)
    out = warped.astype(np.float32) * (1 - alpha) + interior * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def _jitter(image: BGR, pose: Pose, rng: np.random.Generator) -> BGR:
    matrix = cv2.getRotationMatrix2D((FRAME_W / 2, FRAME_H / 2), pose.roll, 1.0)
    matrix[:, 2] += np.asarray(pose.shift, dtype=np.float64)
    moved = cv2.warpAffine(image, matrix, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REFLECT)
    noise = rng.normal(0, 2.0, moved.shape)
    return np.asarray(np.clip(moved.astype(np.float32) + noise, 0, 255), dtype=np.uint8)


# How much of the screen's light the face takes on, and the room behind it (a phone held
# ~30 cm from the face, the wall a few metres away: light falls with distance squared).
SCREEN_ON_FACE = 0.35
SCREEN_ON_ROOM = 0.03


def screen_strength(scene: Scene) -> NDArray[np.float32]:
    """Per pixel, how much of the screen's light reaches it: the face most, fading over
    the head's edge to the room's faint share."""
    x1, y1, x2, y2 = scene.bbox
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    u = (xs - (x1 + x2) / 2) / (0.75 * (x2 - x1))
    v = (ys - (y1 + y2) / 2) / (0.8 * (y2 - y1))
    near = np.clip(1.5 - np.sqrt(u * u + v * v), 0, 1)
    return np.asarray(SCREEN_ON_ROOM + (SCREEN_ON_FACE - SCREEN_ON_ROOM) * near, np.float32)


def reflect(
    image: BGR,
    scene: Scene,
    screen: tuple[int, int, int],
    strength: NDArray[np.float32] | None = None,
) -> BGR:
    """The frame lit by the phone's screen showing ``screen`` (RGB) as well as the room:
    each pixel reflects the added light in proportion to its own colour (its albedo), the
    face strongly, the background faintly; brightness is kept, as auto-exposure would."""
    share = (screen_strength(scene) if strength is None else strength)[:, :, None]
    light = np.asarray(screen[::-1], np.float32) / 255.0  # BGR, like the frame
    gain = (1 + share * light) / (1 + share * float(light.mean()))
    return np.asarray(np.clip(image.astype(np.float32) * gain, 0, 255), dtype=np.uint8)


def shape(scene: Scene, pose: Pose) -> BGR:
    """The scene in this pose before the camera's own shake and noise (eyes and mouth
    first, then the head turns)."""
    image = _close_eyes(scene.frame, scene, pose.eyes_closed)
    image = _open_mouth(image, scene, pose.mouth_open)
    return _rotate_head(image, scene, pose.yaw, pose.pitch)


def shake(image: BGR, pose: Pose, rng: np.random.Generator) -> BGR:
    """The hand's small shift and roll, and the sensor's noise."""
    return _jitter(image, pose, rng)


def render(
    scene: Scene,
    pose: Pose,
    rng: np.random.Generator,
    screen: tuple[int, int, int] | None = None,
) -> BGR:
    """One frame of the scene in this pose (eyes and mouth first, then the head turns),
    lit by the phone's screen when it shows a colour (RGB)."""
    image = shape(scene, pose)
    if screen is not None:
        image = reflect(image, scene, screen)
    return _jitter(image, pose, rng)


# Each action as a curve over its 1.5 s: (start, peak, end) fractions and the peak pose.
TURN_DEGREES = 28.0
NOD_DEGREES = 22.0
ACTION_PEAKS: dict[str, Pose] = {
    # A turn to the person's own left shows their nose towards the image's right (yaw > 0)
    # in the unmirrored frame a phone uploads.
    "turn_left": Pose(yaw=TURN_DEGREES),
    "turn_right": Pose(yaw=-TURN_DEGREES),
    "nod": Pose(pitch=NOD_DEGREES),
    "blink": Pose(eyes_closed=1.0),
    "open_mouth": Pose(mouth_open=1.0),
}
ACTION_SHAPE: dict[str, tuple[float, float, float]] = {
    "blink": (0.2, 0.3, 0.45),  # fast, like a real blink (~250 ms)
}
DEFAULT_SHAPE = (0.1, 0.4, 0.75)


def _action_amount(action: str, fraction: float) -> float:
    start, peak, end = ACTION_SHAPE.get(action, DEFAULT_SHAPE)
    if fraction <= start or fraction >= end:
        return 0.0
    if fraction <= peak:
        return (fraction - start) / (peak - start)
    return (end - fraction) / (end - peak)


def action_pose(action: str, amount: float) -> Pose:
    """The head's shape ``amount`` (0 to 1) of the way to the action's peak."""
    peak = ACTION_PEAKS[action]
    return Pose(
        yaw=peak.yaw * amount,
        pitch=peak.pitch * amount,
        eyes_closed=min(1.0, peak.eyes_closed * amount * 1.5),
        mouth_open=peak.mouth_open * amount,
    )


def poses(actions: Sequence[str], fps: int = FPS, seed: int = 0) -> tuple[list[Pose], list[int]]:
    """The pose of every frame and the time each action's prompt appeared (ms)."""
    rng = np.random.default_rng(seed)
    total = LEAD_S + ACTION_S * len(actions) + 0.3
    count = int(total * fps)
    prompts = [int(1000 * (LEAD_S + ACTION_S * index)) for index in range(len(actions))]
    result = []
    for frame in range(count):
        t = frame / fps
        pose = Pose()
        index = int((t - LEAD_S) // ACTION_S) if t >= LEAD_S else -1
        if 0 <= index < len(actions):
            fraction = (t - LEAD_S - ACTION_S * index) / ACTION_S
            pose = action_pose(actions[index], _action_amount(actions[index], fraction))
        shift = (float(rng.normal(0, 1.5)), float(rng.normal(0, 1.5)))
        result.append(
            Pose(
                pose.yaw + float(rng.normal(0, 0.8)),
                pose.pitch + float(rng.normal(0, 0.8)),
                pose.eyes_closed,
                pose.mouth_open,
                shift,
                float(rng.normal(0, 0.7)),
            )
        )
    return result, prompts


def live_pose(prompted: Sequence[tuple[str, float]], t: float, rng: np.random.Generator) -> Pose:
    """The pose ``t`` seconds into filming of a person who starts each action when its
    prompt appears (``prompted``: the actions shown so far, with the second each was
    shown): what a renderer that follows the prompts live draws, knowing no later prompt."""
    pose = Pose()
    for action, shown in prompted:
        fraction = (t - shown) / ACTION_S
        if 0 <= fraction < 1:
            pose = action_pose(action, _action_amount(action, fraction))
    return Pose(
        pose.yaw + float(rng.normal(0, 0.8)),
        pose.pitch + float(rng.normal(0, 0.8)),
        pose.eyes_closed,
        pose.mouth_open,
        (float(rng.normal(0, 1.5)), float(rng.normal(0, 1.5))),
        float(rng.normal(0, 0.7)),
    )


def timestamps(count: int, fps: int = FPS, start_ms: int = 0) -> list[int]:
    return [start_ms + round(1000 * frame / fps) for frame in range(count)]


def genuine(scene: Scene, actions: Sequence[str], seed: int = 0, fps: int = FPS) -> Video:
    """A live person performing the actions in order, each after its prompt."""
    rng = np.random.default_rng(seed + 1)
    frame_poses, prompts = poses(actions, fps, seed)
    frames = [encode(render(scene, pose, rng), quality=85) for pose in frame_poses]
    return Video(frames, timestamps(len(frames), fps), prompts, frame_poses)


def still_photo(scene: Scene, actions: Sequence[str], fps: int = FPS) -> Video:
    """The same photo in every frame."""
    _poses, prompts = poses(actions, fps)
    frame = encode(scene.frame, quality=85)
    return Video([frame] * len(_poses), timestamps(len(_poses), fps), prompts)


def planar_motion(scene: Scene, actions: Sequence[str], seed: int = 0, fps: int = FPS) -> Video:
    """A printed photo held up and moved: shifted, scaled, rotated and tilted in
    perspective (one homography per frame, up to about 35°), tilting hardest where a turn
    is asked for. Past about 40° the landmark model stops placing the jaw consistently with
    the nose, and a tilted photo can then show as much "depth" as a head (see the note)."""
    rng = np.random.default_rng(seed)
    frame_poses, prompts = poses(actions, fps, seed)
    frames = []
    for index, pose in enumerate(frame_poses):
        t = index / len(frame_poses)
        tilt_x = math.radians(pose.yaw)  # what a turn would be if a photo could turn
        tilt_y = math.radians(pose.pitch)
        homography = _photo_homography(
            shift=(25 * math.sin(2 * math.pi * t), 15 * math.cos(2 * math.pi * t)),
            scale=1.0 + 0.12 * math.sin(math.pi * t),
            roll=8 * math.sin(3 * math.pi * t),
            tilt=(tilt_x + 0.1 * math.sin(4 * math.pi * t), tilt_y),
        )
        warped = cv2.warpPerspective(
            scene.frame, homography, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REFLECT
        )
        noise = rng.normal(0, 2.0, warped.shape)
        frame = np.clip(warped.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        frames.append(encode(frame, quality=85))
    return Video(frames, timestamps(len(frames), fps), prompts)


def _photo_homography(
    shift: tuple[float, float], scale: float, roll: float, tilt: tuple[float, float]
) -> NDArray[np.float64]:
    """Where a flat photo's corners land when it is rotated in 3D (tilt about its vertical
    and horizontal axes, in radians), rolled, moved and brought closer, as a pinhole camera
    sees it: a homography by construction."""
    focal = 700.0
    cx, cy = FRAME_W / 2, FRAME_H / 2
    corners = np.array([[0, 0], [FRAME_W, 0], [FRAME_W, FRAME_H], [0, FRAME_H]], np.float64)
    plane = np.column_stack([corners[:, 0] - cx, corners[:, 1] - cy, np.zeros(4)])
    rotation, _ = cv2.Rodrigues(np.array([tilt[1], tilt[0], math.radians(roll)]))
    placed = plane @ rotation.T + np.array([shift[0], shift[1], focal / scale])
    projected = focal * placed[:, :2] / placed[:, 2:3] + np.array([cx, cy])
    transform = cv2.getPerspectiveTransform(
        corners.astype(np.float32), projected.astype(np.float32)
    )
    return np.asarray(transform, dtype=np.float64)


def splice(first: Video, second: Video) -> Video:
    """The first half of one person's video followed by the second half of another's."""
    half = len(first.frames) // 2
    frames = first.frames[:half] + second.frames[half:]
    return Video(frames, first.timestamps_ms[: len(frames)], first.prompts_ms)


class LiveRenderer:
    """A face rendered live from a photo, following a streamed challenge step by step: the
    person starts each action when its prompt appears and the screen's colour lights their
    face. What the demo's phones and the tests film; it knows no step before it is shown."""

    def __init__(self, scene: Scene, *, fps: int = FPS, seed: int = 0, lit: bool = True) -> None:
        self.scene = scene
        self.fps = fps
        self.lit = lit
        self.rng = np.random.default_rng(seed)
        self.prompted: list[tuple[str, float]] = []
        self.elapsed_ms = 0.0

    def frame_at(self, t_ms: float, screen: tuple[int, int, int] | None) -> BGR:
        """The frame ``t_ms`` into filming under the prompts seen so far."""
        pose = live_pose(self.prompted, t_ms / 1000, self.rng)
        return render(self.scene, pose, self.rng, screen if self.lit else None)

    def film(
        self, screen: tuple[int, int, int], ms: int, prompt: str | None
    ) -> list[tuple[bytes, int]]:
        """The JPEG frames (and their ms since filming began) of one step."""
        if prompt:
            self.prompted.append((prompt, self.elapsed_ms / 1000))
        count = max(1, round(ms * self.fps / 1000))
        shot = []
        for index in range(count):
            t = self.elapsed_ms + index * 1000 / self.fps
            shot.append((encode(self.frame_at(t, screen), quality=85), round(t)))
        self.elapsed_ms += ms
        return shot


def hex_colour(value: str) -> tuple[int, int, int]:
    """``#rrggbb`` as RGB."""
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
