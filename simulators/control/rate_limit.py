"""Per-key request limits on real time (brokers count requests per real second)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets per key, on real monotonic time.

    Brokers count requests per real second, and tests that move the SimClock hours ahead must not
    refill every bucket, so this deliberately ignores the SimClock.

    Args:
        rate: requests allowed per ``per_seconds``.
        per_seconds: the window.
        burst: bucket size (default ``rate``).
        time_source: seconds, monotonic (injectable for tests).
    """

    def __init__(
        self,
        rate: float,
        per_seconds: float = 1.0,
        *,
        burst: float | None = None,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or per_seconds <= 0:
            raise ValueError("rate and per_seconds must be positive")
        self._refill = rate / per_seconds
        self._burst = burst if burst is not None else rate
        self._now = time_source
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, level + (now - at) * self._refill)

    def try_acquire(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` from ``key``'s bucket if it holds that much; return whether it did."""
        with self._lock:
            now = self._now()
            level = self._level(key, now)
            if level < cost:
                self._buckets[key] = (level, now)
                return False
            self._buckets[key] = (level - cost, now)
            return True

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``cost`` would be available to ``key``."""
        with self._lock:
            level = self._level(key, self._now())
        return max(0.0, (cost - level) / self._refill)
