"""Retry policy (exponential backoff with full jitter, ``Retry-After``) and a circuit breaker.

Both are plain objects with an injectable clock and random source so tests drive them
without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = ["RETRY_STATUSES", "CircuitBreaker", "RetryPolicy", "parse_retry_after"]

#: Statuses worth another try of an idempotent request (RFC 9110 15.5.x / 15.6.x).
RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` (RFC 9110 10.2.3): delay-seconds or an HTTP-date, as seconds >= 0;
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


@dataclass(slots=True)
class RetryPolicy:
    """How often and how long to wait between tries.

    ``delay(attempt)`` for attempt 0, 1, 2... is uniform in ``[0, min(max_delay,
    base * 2**attempt)]`` ("full jitter"); a ``Retry-After`` from the upstream replaces it
    when it is not longer than ``max_retry_after`` (otherwise the caller gives up).
    """

    retries: int = 3
    base: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0
    rand: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try ``attempt + 1``; None: do not retry."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        cap = min(self.max_delay, self.base * (2**attempt))
        return float(cap * self.rand())


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; while open every call is refused
    for ``reset_after`` seconds, then one probe call is let through (half-open): its
    success closes the breaker, its failure opens it again."""

    def __init__(
        self,
        threshold: int = 5,
        reset_after: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probe_started: float | None = None

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def retry_after(self) -> int:
        """Whole seconds until a probe is allowed (at least 1)."""
        if self.opened_at is None:
            return 1
        left = self.reset_after - (self.clock() - self.opened_at)
        return max(1, int(left + 0.999))

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        now = self.clock()
        # A probe that never reported back (its caller was cancelled) expires.
        stale = self.probe_started is not None and now - self.probe_started >= self.reset_after
        if state == "half-open" and (self.probe_started is None or stale):
            self.probe_started = now
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probe_started = None

    def failure(self) -> None:
        self.probe_started = None
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = self.clock()
