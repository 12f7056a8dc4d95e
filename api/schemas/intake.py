"""Intake at the edge (evaluation/intake/): the keys a trading platform signs its requests
with."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class PlatformKeyOut(BaseModel):
    id: str
    platform: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedPlatformKey(PlatformKeyOut):
    secret: str
