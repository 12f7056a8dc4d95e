"""The ASGI application of one worker process of `evalsign serve --workers N`.

Each worker builds its own services (database pool, vaults, face models) from the
`EVALSIGN_*` settings; the parent has already checked the schema (or migrated it) and the
vault key. Nothing that matters lives in a worker's memory (see DESIGN: nonces, SADs, locks and
lockouts are in the database), so workers, like replicas, need no coordination.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.logs import configure_logging
from api.services import build_services, load_stamp_font
from models.clock import SystemClock
from models.settings import Settings


def create() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level)
    services = build_services(settings, clock=SystemClock())
    services.face_engine()  # a bad model file stops the worker at start, not on a request
    services.anti_spoof()
    load_stamp_font()
    return create_app(services)
