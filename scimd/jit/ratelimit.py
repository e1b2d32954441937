"""Per-caller and per-IdP rate limits of the JIT hook: token buckets.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; each
request takes one. An empty bucket answers how long until the next token, which becomes the
``Retry-After`` of the 429. The clock is injectable (tests drive it without sleeping); it is
wall-clock time so that processes sharing buckets agree on it.

The buckets live in the state store when it implements ``RateLimitStore`` (the SQLite state
store does: every worker and every process on the file share them, so together they allow
the configured rate); otherwise :class:`RateLimiter` keeps them in this process, and with
``server.workers`` > 1 the effective limit is ``workers`` times the configured one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

__all__ = ["RateLimiter"]

_MAX_KEYS = 10_000
"""Buckets kept at most; full buckets (idle keys) are dropped first when it is reached."""


class RateLimiter:
    """Token buckets by key (``("caller", id)``, ``("idp", id)``)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.time) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        """key -> (tokens, time of the last update)."""

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: Hashable) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds to wait (> 0)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_KEYS:
                self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def refund(self, key: Hashable) -> None:
        """Give back the token of a request that another bucket refused (so a caller is not
        charged for a request the IdP's limit stopped)."""
        if key in self._buckets:
            tokens, last = self._buckets[key]
            self._buckets[key] = (min(float(self.burst), tokens + 1.0), last)

    def _prune(self, now: float) -> None:
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` in whole seconds (at least 1)."""
        return str(max(1, math.ceil(wait)))
