"""A second face-video generator, written apart from face/synthetic.py so that the
detectors are not only tested on the renderer they were tuned with (STYLE.md, 14).

Technique, chosen to differ from face/synthetic.py at every step:
- motion is a piecewise-affine warp over a Delaunay mesh of the 106 landmarks plus
  forehead, hair and background anchor points (synthetic.py remaps a dense depth map);
- depth is an ellipsoid head sized from the face's own contour plus a nose ridge that grows
  towards the tip (not a paraboloid with a Gaussian nose, and not the estimator's mean face);
- a blink moves the upper-eyelid landmarks down onto the lower lid, so the lid's own skin
  and lashes cover the eye (synthetic.py paints a flat skin-coloured patch);
- an open mouth moves the lower lip and the chin down and shows a shaded interior inside the
  inner-lip polygon, with the upper teeth's edge;
- nod angles, turn angles, durations and timing vary per sequence; every frame carries head
  sway, a small scale and position change, light drift, sensor noise and JPEG coding;
- the phone screen's light, when it shows a colour, is added inside the landmark outline
  and scaled back by exposure (synthetic.py weights an ellipse and divides by the mean).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import Delaunay

from face.engine import FaceEngine
from face.samples import BGR, encode

FRAME_W, FRAME_H = 640, 480
FPS = 10
Points = NDArray[np.float64]

EYE_POINTS = (list(range(33, 43)), list(range(87, 97)))
EYE_CORNERS = ((35, 39), (89, 93))
EYE_CENTRES = (38, 88)
INNER_UPPER_LIP = [65, 66, 62, 70, 69]
INNER_LOWER_LIP = [54, 60, 57]
OUTER_LOWER_LIP = [55, 56, 53, 59, 58]
MOUTH_CORNERS = (52, 61)
NOSE_BRIDGE_TOP, NOSE_TIP = 72, 86


@dataclass(frozen=True)
class Look:
    """One frame's face: rotation in degrees (yaw > 0 shows the nose towards the image's
    right, pitch > 0 the chin down), eyelid closure and jaw drop (0..1)."""

    yaw: float = 0.0
    pitch: float = 0.0
    closed: float = 0.0
    jaw: float = 0.0


@dataclass
class Sequence_:
    frames: list[bytes]
    timestamps_ms: list[int]
    prompts_ms: list[int]
    looks: list[Look] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A portrait on a phone-sized frame, with the landmarks and mesh that move it."""

    frame: BGR
    points: Points  # 106 landmarks + added anchors, image pixels
    depth: NDArray[np.float64]  # towards the camera, pixels
    centre: tuple[float, float]
    triangles: NDArray[np.int32]
    eye_distance: float


def _place(portrait: BGR, face_box: tuple[float, float, float, float], face_px: float) -> BGR:
    """The portrait scaled so the face is ``face_px`` wide and centred a little above the
    middle of a 640x480 frame, the rest filled by stretching the portrait's edge pixels
    and blurring them (mirroring would put copies of the face in the frame)."""
    x1, y1, x2, y2 = face_box
    scale = face_px / max(x2 - x1, 1.0)
    big = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = (x1 + x2) / 2 * scale, (y1 + y2) / 2 * scale
    pad = max(FRAME_W, FRAME_H)
    padded = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    soft = cv2.GaussianBlur(padded, (0, 0), 12)
    inside = np.zeros(padded.shape[:2], np.float32)
    inside[pad : pad + big.shape[0], pad : pad + big.shape[1]] = 1.0
    inside = cv2.GaussianBlur(inside, (0, 0), 6)[:, :, None]
    padded = (padded * inside + soft * (1 - inside)).astype(np.uint8)
    left = round(cx + pad - FRAME_W / 2)
    top = round(cy + pad - FRAME_H * 0.45)
    return np.ascontiguousarray(padded[top : top + FRAME_H, left : left + FRAME_W])


def _anchors(landmarks: Points, eye_distance: float) -> Points:
    """Points beyond the landmarks: two forehead rows above the brows, a ring through the
    hair, ears and neck well outside the face, and fixed points on the frame's border."""
    brows = landmarks[[*range(43, 52), *range(97, 106)]]
    eyes_mid = (landmarks[EYE_CENTRES[0]] + landmarks[EYE_CENTRES[1]]) / 2
    chin = landmarks[0]
    up = eyes_mid - chin
    up /= np.linalg.norm(up)
    forehead = [brows[::3] + up * eye_distance * k for k in (0.45, 0.9)]
    cx = float(landmarks[0:33, 0].mean())
    half_w = float(np.ptp(landmarks[0:33, 0])) / 2
    top = float(brows[:, 1].min()) - 1.6 * eye_distance  # above the hairline
    bottom = float(chin[1]) + 0.5 * eye_distance
    cy, half_h = (top + bottom) / 2, (bottom - top) / 2
    ring = [
        (cx + 1.45 * half_w * math.cos(t), cy + half_h * math.sin(t))
        for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)
    ]
    xs, ys = np.linspace(0, FRAME_W - 1, 6), np.linspace(0, FRAME_H - 1, 5)
    border = [(x, y) for x in xs for y in (ys[0], ys[-1])]
    border += [(x, y) for x in (xs[0], xs[-1]) for y in ys[1:-1]]
    return np.vstack([*forehead, np.array(ring), np.array(border)])


def _depth(points: Points, landmarks: Points, eye_distance: float) -> NDArray[np.float64]:
    """An ellipsoid head as wide as the jaw contour and deeper than wide (as a head is
    longer front to back than across), deepest at the nose ridge."""
    contour = landmarks[0:33]
    cx = float(contour[:, 0].mean())
    half_w = float(np.ptp(contour[:, 0])) / 2 * 1.05
    eyes_mid = (landmarks[EYE_CENTRES[0]] + landmarks[EYE_CENTRES[1]]) / 2
    # The skull reaches as far above the eyes as the chin is below them: centred a little
    # below the eyes, so the forehead turns with the face instead of folding over it.
    eyes_to_chin = float(landmarks[0, 1] - eyes_mid[1])
    cy = float(eyes_mid[1]) + 0.2 * eyes_to_chin
    half_h = 1.3 * eyes_to_chin
    u = (points[:, 0] - cx) / half_w
    v = (points[:, 1] - cy) / half_h
    depth = 1.15 * half_w * np.sqrt(np.clip(1 - u * u - v * v, 0.0, 1.0))
    # The nose ridge rises from the bridge to the tip, and the nostrils with it.
    top, tip = landmarks[NOSE_BRIDGE_TOP], landmarks[NOSE_TIP]
    along = (points - top) @ (tip - top) / max(float(np.sum((tip - top) ** 2)), 1.0)
    across = np.linalg.norm(points - (top + np.outer(along, tip - top)), axis=1)
    ridge = np.clip(along, 0, 1.15) * np.exp(-((across / (0.35 * eye_distance)) ** 2))
    depth += 0.45 * eye_distance * ridge
    return np.asarray(depth, dtype=np.float64)


def make_stage(engine: FaceEngine, portrait: BGR, face_px: float = 200.0) -> Stage:
    faces = engine.detect(portrait)
    frame = _place(portrait, faces[0].bbox, face_px)
    face = engine.detect(frame)[0]
    landmarks = engine.landmarks(frame, face).astype(np.float64)
    eye_distance = float(np.linalg.norm(landmarks[88] - landmarks[38]))
    points = np.vstack([landmarks, _anchors(landmarks, eye_distance)])
    depth = _depth(points, landmarks, eye_distance)
    # The landmarks and the forehead rows turn with the head; the ring through the hair
    # and the frame's border stay, and the mesh stretches between them.
    depth[len(landmarks) + 12 :] = 0.0
    inside = np.clip(points, [0, 0], [FRAME_W - 1, FRAME_H - 1])
    triangles = _triangulate(inside)
    centre = (float(landmarks[0:33, 0].mean()), float(landmarks[[38, 88, 0], 1].mean()))
    return Stage(frame, inside, depth, centre, triangles, eye_distance)


def _triangulate(points: Points) -> NDArray[np.int32]:
    return np.asarray(Delaunay(points).simplices, dtype=np.int32)


def _rotate(stage: Stage, points: Points, yaw: float, pitch: float) -> Points:
    """Each point of the head turned about a vertical, then a horizontal axis through the
    head's centre (orthographic: a phone at arm's length)."""
    cx, cy = stage.centre
    x, y, z = points[:, 0] - cx, points[:, 1] - cy, stage.depth
    a, b = math.radians(yaw), math.radians(pitch)
    x1, z1 = x * math.cos(a) + z * math.sin(a), -x * math.sin(a) + z * math.cos(a)
    y1 = y * math.cos(b) + z1 * math.sin(b)
    moved = np.column_stack([x1 + cx, y1 + cy])
    still = stage.depth == 0
    moved[still] = points[still]
    return moved


def _close_eyes(points: Points, amount: float) -> Points:
    """The upper lid's points brought down onto the lower lid; the eye centre with them."""
    out = points.copy()
    for eye, (a, b), centre in zip(EYE_POINTS, EYE_CORNERS, EYE_CENTRES, strict=True):
        left, right = points[a], points[b]
        dx, dy = right - left
        # Which side of the line through the corners each lid point lies on (> 0: below).
        below = {i: dx * (points[i, 1] - left[1]) - dy * (points[i, 0] - left[0]) for i in eye}
        lower = [i for i in eye if i not in (a, b, centre) and below[i] > 0]
        upper = [i for i in eye if i not in (a, b, centre) and below[i] <= 0]
        lid = np.array(sorted([points[a], *points[lower], points[b]], key=lambda p: p[0]))
        for i in upper:
            target_y = float(np.interp(points[i, 0], lid[:, 0], lid[:, 1])) - 0.6
            out[i, 1] = points[i, 1] + amount * (target_y - points[i, 1])
        out[centre, 1] = points[centre, 1] + 0.8 * amount * (
            float(np.interp(points[centre, 0], lid[:, 0], lid[:, 1])) - points[centre, 1]
        )
    return out


def _drop_jaw(points: Points, amount: float, eye_distance: float) -> Points:
    """Lower lip and chin down by up to 0.45 eye distances, the most at the middle."""
    out = points.copy()
    drop = 0.45 * eye_distance * amount
    left, right = points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]]
    mid_x, half = (left[0] + right[0]) / 2, max(abs(right[0] - left[0]) / 2, 1.0)
    for i in [*INNER_LOWER_LIP, *OUTER_LOWER_LIP]:
        out[i, 1] += drop * max(0.0, 1 - ((points[i, 0] - mid_x) / half) ** 2) ** 0.5
    mouth_y = (left[1] + right[1]) / 2
    for i in range(33):  # the jaw: all of it below the mouth, fading out towards the ears
        below = (points[i, 1] - mouth_y) / max(points[0, 1] - mouth_y, 1.0)
        if below > 0:
            out[i, 1] += drop * min(1.0, below) ** 0.7
    return out


def _warp(image: BGR, source: Points, target: Points, triangles: NDArray[np.int32]) -> BGR:
    out = image.copy()
    for tri in triangles:
        src, dst = source[tri].astype(np.float32), target[tri].astype(np.float32)
        if np.allclose(src, dst, atol=0.05):
            continue
        x, y, w, h = cv2.boundingRect(dst)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, FRAME_W), min(y + h, FRAME_H)
        if x1 <= x0 or y1 <= y0:
            continue
        matrix = cv2.getAffineTransform(src, dst - np.float32([x0, y0]))
        patch = cv2.warpAffine(
            image, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(dst - [x0, y0]).astype(np.int32), 1, cv2.LINE_AA)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
    return out


def _mouth_interior(image: BGR, points: Points, amount: float) -> BGR:
    if amount < 0.05:
        return image
    ring = np.vstack(
        [
            points[MOUTH_CORNERS[0]],
            *sorted(points[INNER_UPPER_LIP], key=lambda p: p[0]),
            points[MOUTH_CORNERS[1]],
            *sorted(points[INNER_LOWER_LIP], key=lambda p: -p[0]),
        ]
    )
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(ring).astype(np.int32)], 1.0, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.2)
    top = float(points[INNER_UPPER_LIP, 1].mean())
    bottom = float(points[INNER_LOWER_LIP, 1].max())
    ys = np.arange(image.shape[0], dtype=np.float32)[:, None, None]
    # Teeth along the upper lip, then the dark throat, a little redder towards the tongue.
    shade = np.clip((ys - top) / max(bottom - top, 1.0), 0, 1)
    teeth = np.array([200, 205, 210], np.float32)
    throat = np.array([25, 20, 45], np.float32)
    tongue = np.array([60, 55, 120], np.float32)
    colour = np.where(shade < 0.18, teeth, throat * (1 - shade) + tongue * shade)
    alpha = mask[:, :, None] * min(1.0, amount * 1.5)
    out = image.astype(np.float32) * (1 - alpha) + colour * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


# Screen light reaching the skin and the room (written apart from face/synthetic.py's).
SKIN_LIT, ROOM_LIT = 0.3, 0.04


def _screen_light(image: BGR, stage: Stage, points: Points, screen: tuple[int, int, int]) -> BGR:
    """Add the phone screen's light (RGB): skin inside the face's outline reflects it by
    its own colour, the room faintly; the camera's exposure then scales brightness back."""
    hull = cv2.convexHull(points[:106].astype(np.float32)).astype(np.int32)
    inside = np.zeros(image.shape[:2], np.float32)
    cv2.fillConvexPoly(inside, hull, 1.0)
    inside = cv2.GaussianBlur(inside, (0, 0), stage.eye_distance * 0.25)
    lit = ROOM_LIT + (SKIN_LIT - ROOM_LIT) * inside[:, :, None]
    colour = np.array(screen[::-1], np.float32) / 255.0
    added = image.astype(np.float32) * (1 + lit * colour)
    exposure = float(image.mean()) / max(1.0, float(added.mean()))
    return np.clip(added * exposure, 0, 255).astype(np.uint8)


def render(
    stage: Stage,
    look: Look,
    rng: np.random.Generator,
    drift: float = 0.0,
    screen: tuple[int, int, int] | None = None,
) -> BGR:
    landmarks = stage.points
    moved = _close_eyes(landmarks, look.closed) if look.closed > 0 else landmarks
    moved = _drop_jaw(moved, look.jaw, stage.eye_distance) if look.jaw > 0 else moved
    moved = _rotate(stage, moved, look.yaw, look.pitch)
    image = _warp(stage.frame, landmarks, moved, stage.triangles)
    image = _mouth_interior(image, moved, look.jaw)
    if screen is not None:
        image = _screen_light(image, stage, moved, screen)
    # The hand holding the phone: a little shift, scale and roll; light drifts; the sensor
    # adds noise.
    angle, scale = rng.normal(0, 1.0), 1 + rng.normal(0, 0.015)
    matrix = cv2.getRotationMatrix2D((FRAME_W / 2, FRAME_H / 2), angle, scale)
    matrix[:, 2] += rng.normal(0, 2.5, 2)
    image = cv2.warpAffine(image, matrix, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REFLECT_101)
    light = image.astype(np.float32) * (1 + drift) + rng.normal(0, 3.0, image.shape)
    return np.clip(light, 0, 255).astype(np.uint8)


# Peak of each action: what the person does when asked, drawn per sequence.
TURN_RANGE = (20.0, 35.0)
NOD_RANGE = (10.0, 25.0)


def _peak(action: str, rng: np.random.Generator) -> Look:
    if action in ("turn_left", "turn_right"):
        angle = float(rng.uniform(*TURN_RANGE))
        return Look(yaw=angle if action == "turn_left" else -angle)
    if action == "nod":
        return Look(pitch=float(rng.uniform(*NOD_RANGE)))
    if action == "blink":
        return Look(closed=float(rng.uniform(0.9, 1.0)))
    if action == "open_mouth":
        return Look(jaw=float(rng.uniform(0.55, 1.0)))
    raise ValueError(action)


def _envelope(action: str, t: float, start: float, rng_len: float) -> float:
    """0..1: how far into the action the face is at ``t`` seconds (ramps up, holds, back)."""
    if action == "blink":
        duration = 0.3  # a blink lasts a few hundred ms whatever the prompt allows
        rise, hold = 0.1, 0.1
    else:
        duration = rng_len
        rise, hold = 0.35 * duration, 0.2 * duration
    x = t - start
    if x <= 0 or x >= duration:
        return 0.0
    if x < rise:
        return x / rise
    if x < rise + hold:
        return 1.0
    return max(0.0, 1 - (x - rise - hold) / (duration - rise - hold))


def sequence(
    stage: Stage,
    actions: Sequence[str],
    seed: int,
    *,
    encode_quality: int = 85,
    screen: Callable[[float], tuple[int, int, int]] | None = None,
) -> Sequence_:
    """The person does each action once, after its prompt, with their own timing and size;
    ``screen(t)`` is the colour (RGB) the phone shows ``t`` seconds in, if any."""
    rng = np.random.default_rng(seed)
    lead = float(rng.uniform(0.5, 0.9))
    slot = 1.5  # what the service gives each action
    prompts = [lead + slot * k for k in range(len(actions))]
    starts = [p + float(rng.uniform(0.2, 0.45)) for p in prompts]
    lengths = [float(rng.uniform(0.75, 1.0)) for _ in actions]
    peaks = [_peak(a, rng) for a in actions]
    total = lead + slot * len(actions) + 0.3
    count = int(total * FPS)
    sway = np.cumsum(rng.normal(0, 0.5, (count, 2)), axis=0) * 0.5
    sway -= sway.mean(axis=0)
    looks: list[Look] = []
    frames: list[bytes] = []
    for k in range(count):
        t = k / FPS
        yaw, pitch = float(np.clip(sway[k, 0], -2, 2)), float(np.clip(sway[k, 1], -2, 2))
        closed = jaw = 0.0
        for action, start, length, peak in zip(actions, starts, lengths, peaks, strict=True):
            amount = _envelope(action, t, start, length)
            yaw += peak.yaw * amount
            pitch += peak.pitch * amount
            closed = max(closed, min(1.0, peak.closed * amount * 1.3))
            jaw = max(jaw, peak.jaw * amount)
        look = Look(yaw, pitch, closed, jaw)
        looks.append(look)
        drift = 0.03 * math.sin(2 * math.pi * t / total)
        colour = screen(t) if screen is not None else None
        frames.append(encode(render(stage, look, rng, drift, colour), quality=encode_quality))
    stamps = [round(1000 * k / FPS) for k in range(count)]
    described = {
        a: p.yaw or p.pitch or p.closed or p.jaw for a, p in zip(actions, peaks, strict=True)
    }
    return Sequence_(frames, stamps, [round(1000 * p) for p in prompts], looks, described)


def still(stage: Stage, look: Look, seed: int = 0) -> BGR:
    """One frame of the person in this look, with the same camera noise as a sequence."""
    return render(stage, look, np.random.default_rng(seed))
