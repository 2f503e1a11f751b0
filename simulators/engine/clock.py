"""Simulated time: every engine part asks a :class:`SimClock`, so tests can jump hours ahead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = ["SimClock"]


class SimClock:
    """Real UTC time plus an offset that only moves forward.

    Args:
        time_source: returns the "real" aware UTC time; defaults to the system clock. Tests use
            :meth:`frozen` so the clock moves only when they advance it.
    """

    def __init__(self, time_source: Callable[[], datetime] | None = None) -> None:
        self._source = time_source or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    @classmethod
    def frozen(cls, at: datetime) -> SimClock:
        """Return a clock standing still at ``at`` (aware) until advanced."""
        if at.tzinfo is None:
            raise ValueError("the frozen time must be timezone-aware")
        start = at.astimezone(UTC)
        return cls(lambda: start)

    def now(self) -> datetime:
        """Return the simulated time, an aware UTC datetime."""
        with self._lock:
            offset = self._offset
        return self._source().astimezone(UTC) + offset

    def advance(self, seconds: float | int | Decimal) -> datetime:
        """Move the clock ``seconds`` ahead and return the new time.

        Raises:
            ValueError: if ``seconds`` is negative (simulated time never goes back).
        """
        delta = timedelta(seconds=float(seconds))
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()

    @property
    def offset(self) -> timedelta:
        """How far the simulated time is ahead of the time source."""
        with self._lock:
            return self._offset
