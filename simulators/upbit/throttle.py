"""Request-rate groups with 429-then-418 escalation, on real time (Upbit, Bithumb, Binance).

Each group (Upbit ``default``, ``order``, ``ticker`` …; Binance request weight) is a
:class:`~simulators.control.RateLimiter` token bucket per key (account or client IP). A request
over the limit is refused (429); a client that keeps sending while refused collects strikes, and
``ban_after`` strikes within ``strike_window`` seconds ban the key (418) for ``ban_seconds``,
doubled on every further ban up to ``max_ban_seconds`` (Binance: "from 2 minutes to 3 days").

Like RateLimiter, this ignores the SimClock on purpose: exchanges count real seconds, and a test
that jumps the clock a day ahead must not refill every bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulators.control import RateLimiter

__all__ = ["BanBook", "GroupThrottle", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What the throttle decided for one request.

    Attributes:
        allowed: the request may proceed.
        banned: the key is banned (answer 418).
        remaining: whole requests left in the group's bucket after this one.
        retry_after: seconds until the request would be allowed (0 when allowed).
    """

    allowed: bool
    banned: bool
    remaining: int
    retry_after: float


class BanBook:
    """Strikes and bans per key; thread-safe.

    Args:
        ban_after: strikes (refused requests) within ``strike_window`` that trigger a ban.
        strike_window: seconds over which strikes count.
        ban_seconds: first ban length; each further ban doubles it.
        max_ban_seconds: cap on a ban's length.
        time_source: monotonic seconds.
    """

    def __init__(
        self,
        *,
        ban_after: int = 10,
        strike_window: float = 60.0,
        ban_seconds: float = 120.0,
        max_ban_seconds: float = 3 * 86_400.0,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ban_after = ban_after
        self.strike_window = strike_window
        self.ban_seconds = ban_seconds
        self.max_ban_seconds = max_ban_seconds
        self._now = time_source
        self._strikes: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}
        self._bans: dict[str, int] = {}
        self._lock = threading.Lock()

    def banned_for(self, key: str) -> float:
        """Seconds the key stays banned (0 when not banned)."""
        with self._lock:
            return max(0.0, self._banned_until.get(key, 0.0) - self._now())

    def banned_until_epoch(self, key: str) -> float:
        """Wall-clock (epoch seconds) end of the key's ban, for messages."""
        return time.time() + self.banned_for(key)

    def strike(self, key: str) -> bool:
        """Record a refused request; return True if it started a ban."""
        with self._lock:
            now = self._now()
            strikes = self._strikes.setdefault(key, deque())
            strikes.append(now)
            while strikes and strikes[0] < now - self.strike_window:
                strikes.popleft()
            if len(strikes) < self.ban_after:
                return False
            strikes.clear()
            count = self._bans.get(key, 0)
            self._bans[key] = count + 1
            length = min(self.max_ban_seconds, self.ban_seconds * (2**count))
            self._banned_until[key] = now + length
            return True


class GroupThrottle:
    """Token buckets per (group, key) plus a shared :class:`BanBook`.

    Args:
        rates: requests per second for each group; a callable lets a limit depend on the date
            (Upbit's order group went from 8/s to 12/s on 2026-08-21).
        bans: the ban book (bans apply to the key across groups).
        per_seconds: bucket window per group (default 1 s).
        time_source: monotonic seconds for the buckets.
    """

    def __init__(
        self,
        rates: Mapping[str, float | Callable[[], float]],
        bans: BanBook,
        *,
        per_seconds: Mapping[str, float] | None = None,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = dict(rates)
        self._per = dict(per_seconds or {})
        self.bans = bans
        self._time = time_source
        self._limiters: dict[tuple[str, float], RateLimiter] = {}
        self._lock = threading.Lock()

    def rate(self, group: str) -> float:
        """Requests allowed per window in ``group`` now."""
        rate = self._rates[group]
        return float(rate() if callable(rate) else rate)

    def _limiter(self, group: str) -> tuple[RateLimiter, float, float]:
        rate, per = self.rate(group), self._per.get(group, 1.0)
        with self._lock:
            limiter = self._limiters.get((group, rate))
            if limiter is None:
                limiter = RateLimiter(rate, per, time_source=self._time)
                self._limiters[(group, rate)] = limiter
        return limiter, rate, per

    def remaining(self, group: str, key: str) -> int:
        """Whole requests left in the bucket (without taking one)."""
        limiter, rate, per = self._limiter(group)
        # RateLimiter exposes only retry_after; the level follows from it for cost == burst.
        level = rate - limiter.retry_after(key, rate) * (rate / per)
        return max(0, math.floor(level + 1e-9))

    def check(self, group: str, key: str, cost: float = 1.0) -> Verdict:
        """Take ``cost`` from the bucket, or refuse (and strike, maybe ban) the key."""
        banned = self.bans.banned_for(key)
        if banned > 0:
            return Verdict(False, True, 0, banned)
        limiter, _rate, _per = self._limiter(group)
        if limiter.try_acquire(key, cost):
            return Verdict(True, False, self.remaining(group, key), 0.0)
        wait = limiter.retry_after(key, cost)
        if self.bans.strike(key):
            return Verdict(False, True, 0, self.bans.banned_for(key))
        return Verdict(False, False, 0, wait)
