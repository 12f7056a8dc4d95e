"""Fixtures for tests of the rate limiter: each test runs on memory and on the real Redis
(127.0.0.1:6379) under a key prefix of its own, removed afterwards. Import them by name."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from models.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings for the limiter's storage: memory, or the real Redis under a key prefix of
    this test's own (removed afterwards)."""
    if request.param == "memory":
        yield {}
        return
    prefix = f"evalsign-test-{secrets.token_hex(6)}"
    yield {"redis_url": REDIS_URL, "rate_limit_key_prefix": prefix}
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(settings: Settings, backend: dict[str, Any], limits: dict[str, Any]) -> Settings:
    return Settings.model_validate({**settings.model_dump(), **backend, **limits})


__all__ = ["REDIS_URL", "backend", "limits", "settings"]
