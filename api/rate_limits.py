"""The project's one rate limiter: moving windows counted in Redis (so every replica shares
them) or in this process's memory, and the dependencies that put the phone routes under it."""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from api.web.session import DEVICE_COOKIE
from evaluation.kernel.rate_limits import RateLimited
from models.settings import Settings

log = logging.getLogger("evalsign.rate_limits")

# Scopes: each counts its own requests, so a room's challenges do not eat its page loads.
PHONE = "phone"
CHALLENGE = "face-challenge"
REFUSALS = "anonymous-refusals"


@lru_cache(maxsize=64)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)


class RequestLimiter:
    """Counts requests per (scope, kind of key, key) in moving windows; the domain sees it
    as an evaluation.kernel.rate_limits.Counter."""

    def __init__(self, storage: Storage, *, enabled: bool = True) -> None:
        self.storage = storage
        self.enabled = enabled
        self._windows = MovingWindowRateLimiter(storage)

    def hit(self, scope: str, limit: str, kind: str, key: str) -> None:
        """Count one request; RateLimited (with the seconds to wait) when over the limit."""
        if not self.enabled:
            return
        item = _item(limit)
        try:
            if self._windows.hit(item, scope, kind, key):
                return
            reset_at = self._windows.get_window_stats(item, scope, kind, key).reset_time
        except StorageError:
            # A limiter outage must not stop an evaluation room: let the request through.
            log.warning("rate limit storage unavailable; %s not counted", scope, exc_info=True)
            return
        raise self._refusal(scope, kind, reset_at)

    def refuse_if_spent(self, scope: str, limit: str, kind: str, key: str) -> None:
        """RateLimited when the limit is used up, without counting this request."""
        if not self.enabled:
            return
        item = _item(limit)
        try:
            if self._windows.test(item, scope, kind, key):
                return
            reset_at = self._windows.get_window_stats(item, scope, kind, key).reset_time
        except StorageError:
            log.warning("rate limit storage unavailable; %s not checked", scope, exc_info=True)
            return
        raise self._refusal(scope, kind, reset_at)

    @staticmethod
    def _refusal(scope: str, kind: str, reset_at: float) -> RateLimited:
        wait = max(1, math.ceil(reset_at - time.time()))
        return RateLimited(
            f"too many requests ({scope}) from this {kind}; try again in {wait} s",
            retry_after_s=wait,
            limit=scope,
            per=kind,
        )


def build_limiter(settings: Settings) -> RequestLimiter:
    """Redis when EVALSIGN_REDIS_URL names one (shared by the replicas), else memory."""
    storage: Storage
    if settings.redis_url:
        # wrap_exceptions: a Redis outage surfaces as StorageError, which hit() lets through.
        storage = RedisStorage(
            settings.redis_url,
            key_prefix=settings.rate_limit_key_prefix,
            wrap_exceptions=True,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
    else:
        storage = MemoryStorage()
    return RequestLimiter(storage, enabled=settings.rate_limit_enabled)


def client_address(request: Request) -> str:
    """The key of the sender's address. Behind the load balancer uvicorn's proxy headers put
    the phone's address in request.client."""
    return address_key(request.client.host if request.client else "unknown")


def address_key(host: str) -> str:
    """An address as the limits count it: an IPv6 sender by its /64 (one subscriber gets a
    whole /64 and could step through it), anything else as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host


@dataclass(frozen=True)
class PhoneLimits:
    """The limits of one phone request; keys learnt later (a device id in the body, the
    center a token names) are counted when the route knows them."""

    limiter: RequestLimiter
    settings: Settings
    address: str

    def device(self, device_id: str) -> None:
        self.limiter.hit(PHONE, self.settings.rate_limit_phone_per_device, "device", device_id)

    def center(self, center_id: str) -> None:
        count_center(self.limiter, self.settings, center_id)


def count_center(limiter: RequestLimiter, settings: Settings, center_id: str) -> None:
    """A center's phone requests, counted once a credential has named the center (never
    from a claim a forger chooses, or one could spend another center's budget)."""
    limiter.hit(PHONE, settings.rate_limit_phone_per_center, "center", center_id)


def _device_of(request: Request) -> str | None:
    device = request.headers.get("x-device-id") or request.cookies.get(DEVICE_COOKIE)
    return device[:100] if device else None  # device ids are 8-100 characters


def phone_limits(request: Request) -> PhoneLimits:
    """Count a request from a phone (no staff token) per address and per device; refuse
    early an address whose anonymous requests keep being refused (forged codes). Sync: the
    counting talks to Redis, so it runs on the thread pool, not the event loop."""
    services = request.app.state.services  # not api.deps: api.services builds the limiter
    settings: Settings = services.settings
    limits = PhoneLimits(services.limiter, settings, client_address(request))
    services.limiter.refuse_if_spent(
        REFUSALS, settings.rate_limit_refusals_per_address, "address", limits.address
    )
    services.limiter.hit(PHONE, settings.rate_limit_phone_per_address, "address", limits.address)
    if device := _device_of(request):
        limits.device(device)
    return limits


PhoneLimit = Annotated[PhoneLimits, Depends(phone_limits)]


def challenge_limits(request: Request, limits: PhoneLimit) -> PhoneLimits:
    """Face challenges on top: per address and per device across scans (a phone that scans
    the room QR again gets no fresh budget)."""
    settings = limits.settings
    limits.limiter.hit(
        CHALLENGE, settings.rate_limit_challenge_per_address, "address", limits.address
    )
    if device := _device_of(request):
        limits.limiter.hit(CHALLENGE, settings.rate_limit_challenge_per_device, "device", device)
    return limits


ChallengeLimit = Annotated[PhoneLimits, Depends(challenge_limits)]


def count_anonymous_refusal(limiter: RequestLimiter, settings: Settings, source: str) -> None:
    """Spend one of the address's anonymous refusals (phone_limits refuses when spent)."""
    # Already spent: the next request from there gets the 429 in phone_limits.
    with suppress(RateLimited):
        limiter.hit(
            REFUSALS, settings.rate_limit_refusals_per_address, "address", address_key(source)
        )
