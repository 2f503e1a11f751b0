"""Outbound rate limits: the budgets an adapter spends before each request, and who keeps them.

Brokers count requests in their own units (KIS per app key, Upbit per account and group, Binance
request weight per address…), and every process of the gateway on every host spends the same
budget. So an adapter names, for each request, the :class:`Budget` objects it draws on, and asks a
:class:`RateLimiter` for a slot before sending. The limiter is shared state outside the process
(``web_server.services.rate_limits``: Redis or PostgreSQL); adapters only see this protocol, so
they still import nothing of the web app. :data:`NO_LIMIT` is the default: an adapter built
without a limiter sends at once, as before.

Three calls:

* :meth:`RateLimiter.acquire` before each request: waits for a slot on every budget at once, or
  raises :class:`~brokers.errors.RateLimited` (nothing is sent) when no slot comes before the
  deadline or a budget is banned. ``priority="order"`` may wait for a future slot; ``"read"``
  (polling, holdings) takes only free slots, so orders go first.
* :meth:`RateLimiter.observe` after each answer that reports the broker's own count (Upbit
  ``Remaining-Req``, Binance ``X-MBX-USED-WEIGHT-1M``): the budget never runs ahead of what the
  broker says was used, whoever else used it.
* :meth:`RateLimiter.ban` when the broker refused for rate (418, 429 with ``Retry-After``, KIS
  EGW00201, Kiwoom 1700): nothing more is sent on those budgets until the ban ends.

Every number is a named limit (:meth:`RateLimiter.limit`) with the adapter's default, which the
operator may override (``GATEWAY_RATE_LIMITS__<NAME>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "NO_LIMIT",
    "Budget",
    "NoLimiter",
    "Priority",
    "RateLimiter",
    "scope_id",
]

#: ``order``: places, cancels and amends; may wait for a future slot up to its deadline.
#: ``read``: everything else; takes only free slots.
Priority = Literal["order", "read"]


@dataclass(frozen=True)
class Budget:
    """One broker-side allowance a request draws on.

    Attributes:
        key: what the broker counts by, e.g. ``kis:app:<id>``, ``upbit:order:<id>``,
            ``binance:weight:<address>``; the same key in every process and host.
        rate: what the broker allows per ``period`` (the limiter paces below it).
        period: seconds of the broker's window.
        cost: what this request spends (Binance request weight; 1 elsewhere).
    """

    key: str
    rate: float
    period: float = 1.0
    cost: float = 1.0

    def with_cost(self, cost: float) -> Budget:
        """Return this budget spending ``cost`` instead."""
        return Budget(self.key, self.rate, self.period, cost)


def scope_id(*parts: str) -> str:
    """Return a short stable id for a broker-side scope (an app key, an account, a host).

    A SHA-256 prefix: budget keys end up in Redis and in logs, and an app key must not.
    """
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


class RateLimiter(Protocol):
    """What an adapter asks before and after each request (see the module docstring)."""

    def limit(self, name: str, default: float) -> float:
        """Return the configured number ``name`` (e.g. ``KIS_REAL_PER_SECOND``), or ``default``."""
        ...

    def acquire(
        self,
        budgets: Sequence[Budget],
        *,
        priority: Priority,
        deadline_s: float | None = None,
    ) -> None:
        """Wait for one slot on every budget; return when the request may be sent.

        Raises:
            RateLimited: no slot before the deadline, or a budget is banned; nothing was spent.
        """
        ...

    def observe(self, budget: Budget, *, used: float) -> None:
        """The broker reports ``used`` units spent in its current window of ``budget``."""
        ...

    def ban(self, budgets: Sequence[Budget], *, seconds: float, reason: str) -> None:
        """Send nothing on ``budgets`` for ``seconds`` (the broker refused for rate)."""
        ...


class NoLimiter:
    """The default limiter: sends at once, keeps nothing (a limiter-less adapter, a test)."""

    def __init__(self, limits: Mapping[str, float] | None = None) -> None:
        self._limits = dict(limits or {})

    def limit(self, name: str, default: float) -> float:
        """Return the configured number, or ``default``."""
        return float(self._limits.get(name, default))

    def acquire(
        self,
        budgets: Sequence[Budget],
        *,
        priority: Priority,
        deadline_s: float | None = None,
    ) -> None:
        """Allow at once."""

    def observe(self, budget: Budget, *, used: float) -> None:
        """Ignore."""

    def ban(self, budgets: Sequence[Budget], *, seconds: float, reason: str) -> None:
        """Ignore."""


#: The shared no-op limiter.
NO_LIMIT = NoLimiter()
