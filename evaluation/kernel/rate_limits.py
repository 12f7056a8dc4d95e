"""Rate limits as the domain sees them: a counter it is handed and the refusal it raises.
The counter itself (the `limits` library over Redis or memory) is built in api/rate_limits.py."""

from __future__ import annotations

from typing import Any, Protocol

from evaluation.kernel.errors import DomainError


class RateLimited(DomainError):
    status = 429
    code = "rate-limited"
    title = "Too many requests; wait and try again"

    def __init__(self, detail: str, *, retry_after_s: int = 1, **extensions: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extensions)
        self.retry_after_s = retry_after_s


class Counter(Protocol):
    """Counts one request against a limit ("10/10 minutes") for one key of one kind
    (an address, a device, a center, an expert); raises RateLimited when over it."""

    def hit(self, scope: str, limit: str, kind: str, key: str) -> None: ...


class Uncounted:
    """A counter that never refuses: for callers no limit applies to (staff, the CLI)."""

    def hit(self, scope: str, limit: str, kind: str, key: str) -> None:
        return None
