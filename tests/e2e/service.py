"""EvalSign itself for the browser tests: a fresh instance served by uvicorn on a free
local port named localhost (a secure context for the camera, and a host name passkeys
accept as their RP id), on its own SQLite
file or PostgreSQL database, with a drawn project staged through the API as `evalsign
demo` does (api/demo.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route

from api.demo import CENTER, Client, Server, Staged, on_local_port, stage_project
from api.instance import initialize
from api.services import load_stamp_font
from face import synthetic
from face.engine import FaceEngine
from models.clock import SystemClock
from models.settings import Settings
from tests.conftest import isolated_database
from tests.e2e.camera import Kind, LiveCamera, liveness_video

FILMS = itertools.count(1)


@dataclass(frozen=True)
class Service:
    base: str
    tokens: dict[str, str]
    settings: Settings


@contextmanager
def running_service(directory: Path, **overrides: Any) -> Iterator[Service]:
    with isolated_database(directory) as url:
        # Checkpoints on a timer would only add noise to these tests.
        settings = on_local_port(
            Settings(
                data_dir=directory / "var",
                database_url=url,
                audit_checkpoint_every_s=0,
                face_retention_every_s=0,
                **overrides,
            )
        )
        init = initialize(settings, SystemClock(), CENTER)
        load_stamp_font()
        with Server(settings) as base:
            yield Service(base, init.tokens, settings)


def stage(service: Service) -> Staged:
    return stage_project(Client(service.base), service.tokens, lambda _: None, None)


def film_each_challenge(
    page: Page,
    pattern: str,
    camera_file: Path,
    scene: Callable[[], synthetic.Scene],
    kind: Kind = "genuine",
    seen: list[dict[str, object]] | None = None,
    rendering_s: list[float] | None = None,
) -> None:
    """A ``genuine`` person: the page's camera renders the face live, following each
    prompt and colour the page shows (tests/e2e/camera.py, LiveCamera). Any other kind is a
    video made before the challenge: whenever the page asks for a challenge, the camera's
    file is written before the page gets the answer (and so before it opens the camera).
    The page's own capture, encoding and upload run unchanged either way."""
    if kind == "genuine" and not getattr(page, "_evalsign_live_camera", None):
        camera = LiveCamera(scene, spent_s=rendering_s)
        camera.install(page)
        setattr(page, "_evalsign_live_camera", camera)  # noqa: B010

    def answer(route: Route) -> None:
        response = route.fetch()
        if response.ok:
            challenge = response.json()
            if seen is not None:
                seen.append(challenge)
            if kind == "genuine":
                route.fulfill(response=response)
                return
            # 300 ms of stillness first: the page starts filming a moment after the camera
            # starts playing, and an action must come after its prompt.
            started = time.perf_counter()
            # A new seed for every check: a person never films the same frames twice, and
            # the server refuses frames it has seen before (replayed-frames).
            liveness_video(
                scene(),
                challenge["actions"],
                kind=kind,
                fps=15,
                lead_in_ms=300,
                tail_ms=1500,
                seed=next(FILMS),
            ).write(camera_file)
            if rendering_s is not None:  # the test's own work, for benchmarks to leave out
                rendering_s.append(time.perf_counter() - started)
        route.fulfill(response=response)

    page.route(pattern, answer)


def scene_of(engine: FaceEngine, staged: Staged, expert_id: str) -> Callable[[], synthetic.Scene]:
    made: list[synthetic.Scene] = []

    def scene() -> synthetic.Scene:
        if not made:
            made.append(synthetic.make_scene(engine, staged.phones[expert_id].portrait))
        return made[0]

    return scene


def passkey_phone(page: Page) -> str:
    """Give the page's phone a platform authenticator with user verification (Chromium's
    virtual authenticator, through the DevTools protocol): the phone's secure hardware."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return str(added["authenticatorId"])


def bind_at_desk(
    page: Page,
    staged: Staged,
    member: dict[str, Any],
    camera_file: Path,
    scene: Callable[[], synthetic.Scene],
) -> dict[str, Any]:
    """The operator reads the member's ID card and shows the binding QR; the page's phone
    opens it, passes the face check and makes its passkey. Returns the enrollment."""
    person = staged.phones[member["expert_id"]]
    started: dict[str, Any] = staged.api.call(
        "POST",
        f"/api/v1/experts/{member['expert_id']}/passkeys/enrollments",
        201,
        headers=staged.operator,
        json={"id_number": person.id_number},
    )
    film_each_challenge(page, "**/api/v1/passkey-enrollment/challenge", camera_file, scene)
    page.goto(started["url"])
    return started
