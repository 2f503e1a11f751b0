"""The shared outbound rate limiter: one GCRA per broker budget, kept in Redis or PostgreSQL.

Every process on every host spends the same broker budgets (``brokers.limits``), so their state
lives outside the process: in one Redis Lua script when ``GATEWAY_REDIS_URL`` is set
(:mod:`~web_server.services.rate_limits_lua`), else in ``system.rate_limit_buckets``, one row per
budget locked for the length of a reservation. Both read the time from the store itself
(Redis ``TIME``, PostgreSQL ``clock_timestamp()``), never from a host.

**GCRA.** A budget of ``rate`` per ``period`` is paced at ``SAFETY`` (0.95) of the broker's limit:
the emission interval is ``T = period / (rate × SAFETY)`` and the burst tolerance
``τ = period × (1 − SAFETY)``, less ``T`` where that leaves it positive. Each budget keeps its
theoretical arrival time (TAT); a request of ``cost`` units may be sent at
``max(now, TAT + cost·T − (τ + T))``, after which ``TAT = max(TAT, sent) + cost·T``. Any window
of one ``period`` then holds at most ``(period + τ) / T + 1`` send slots: never more than ``rate``
whole requests (``rate·SAFETY·(2 − SAFETY) + 1``, e.g. 20 of KIS's 20 a second), and where ``T``
could be taken off the tolerance, under it by one (``rate·SAFETY·(2 − SAFETY)``: 49 of Binance's
50 orders per 10 s). The broker counts arrivals, not slots: that spare request absorbs one that
left late and arrives with the next (with the full tolerance a burst test saw 51 Binance orders
in 10 s). Short windows keep the full tolerance, so a slot missed by a moment is caught up.

**Priorities.** An order (``priority="order"``) *reserves* the earliest slot on all its budgets at
once (all or nothing), if that slot is no further than its deadline (default 5 s), and sleeps until
then; otherwise :class:`~brokers.errors.RateLimited` (429, ``Retry-After``) and nothing is sent.
A read (status polling, holdings) takes only a slot that is free *now*, and otherwise tries again
shortly until its own deadline: while orders are waiting their reservations hold the TAT ahead, so
reads pass only in the gaps; orders go ahead of polling.

**Bans.** When the broker refused for rate (418, 429 with ``Retry-After``, EGW00201, 1700…), the
adapter bans the request's budgets for the time the broker asked; until then every acquire on them
fails at once with ``RateLimited(banned=True)`` and its ``Retry-After``. ``observe`` follows the
broker's own counters (Upbit ``Remaining-Req``, Binance ``X-MBX-USED-WEIGHT-1M``): the TAT is
raised to what that count implies, so traffic the gateway did not see still slows it down.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import Engine

from brokers.errors import BrokerUnavailable, RateLimited
from brokers.limits import Budget, Priority
from web_server import metrics
from web_server.services.rate_limits_lua import OBSERVE_SCRIPT, RESERVE_SCRIPT

__all__ = [
    "SAFETY",
    "PostgresBuckets",
    "RedisBuckets",
    "Reservation",
    "SharedRateLimiter",
    "rate_limiter",
]

log = logging.getLogger(__name__)

#: The share of each broker limit the gateway uses.
SAFETY = 0.95
#: How often a read looks for a free slot again while it waits.
READ_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Spec:
    """One budget as the store sees it: its key and its GCRA numbers (seconds)."""

    key: str
    increment: float  # cost × T
    capacity: float  # τ + T (at least the increment: an oversized request needs an idle budget)
    period: float
    interval: float  # T


def spec_of(budget: Budget, safety: float) -> Spec:
    """Return the GCRA numbers of ``budget`` paced at ``safety`` of its limit."""
    interval = budget.period / (budget.rate * safety)
    tolerance = budget.period * (1 - safety)
    if tolerance > interval:  # a spare request for arrivals bunched by the way (module docstring)
        tolerance -= interval
    increment = budget.cost * interval
    capacity = max(tolerance + interval, increment)
    return Spec(budget.key, increment, capacity, budget.period, interval)


@dataclass(frozen=True)
class Reservation:
    """What the store answered: ``ok`` (send after ``wait``), ``later`` or ``banned``."""

    status: str
    wait: float
    banned_key: str | None = None


class Buckets(Protocol):
    """A shared store of GCRA state (Redis or PostgreSQL)."""

    def reserve(self, specs: Sequence[Spec], max_wait: float) -> Reservation:
        """Reserve a slot on every budget, at most ``max_wait`` s away, or nothing."""
        ...

    def observe(self, spec: Spec, used: float) -> None:
        """Raise the budget's TAT to what ``used`` units in its window imply."""
        ...

    def ban(self, key: str, seconds: float, reason: str) -> None:
        """Refuse the budget for ``seconds``."""
        ...


class RedisBuckets:
    """GCRA state in Redis, one Lua script per operation (atomic across every process)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._reserve = self._redis.register_script(RESERVE_SCRIPT)
        self._observe = self._redis.register_script(OBSERVE_SCRIPT)

    def _keys(self, key: str) -> tuple[str, str]:
        return f"{self._prefix}tat:{key}", f"{self._prefix}ban:{key}"

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            # Without the shared state no process can know what the others spent: nothing is
            # sent rather than risking the broker's ban.
            log.warning("rate limiter: Redis unavailable (%s)", type(exc).__name__)
            raise BrokerUnavailable(
                "The shared rate limiter (Redis) is unavailable; nothing was sent.", retry_after=1
            ) from exc

    def reserve(self, specs: Sequence[Spec], max_wait: float) -> Reservation:
        """See :class:`Buckets`."""
        tats = [self._keys(s.key)[0] for s in specs]
        bans = [self._keys(s.key)[1] for s in specs]
        args: list[Any] = [len(specs), repr(max_wait)]
        for s in specs:
            args += [repr(s.increment), repr(s.capacity), repr(s.period)]
        status, wait, index = self._run(self._reserve, tats + bans, args)
        status = status.decode() if isinstance(status, bytes) else str(status)
        banned = specs[int(index) - 1].key if status == "banned" else None
        return Reservation(status, float(wait), banned)

    def observe(self, spec: Spec, used: float) -> None:
        """See :class:`Buckets`."""
        args = ["used", repr(used * spec.interval), repr(spec.period)]
        self._run(self._observe, list(self._keys(spec.key)), args)

    def ban(self, key: str, seconds: float, reason: str) -> None:
        """See :class:`Buckets`."""
        self._run(self._observe, list(self._keys(key)), ["ban", repr(seconds)])


class PostgresBuckets:
    """GCRA state in ``system.rate_limit_buckets``; each reservation one short transaction.

    The rows of a reservation are locked in key order (no deadlock between two reservations of
    overlapping budgets); times are epoch seconds of the database's ``clock_timestamp()``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def reserve(self, specs: Sequence[Spec], max_wait: float) -> Reservation:
        """See :class:`Buckets`."""
        keys = sorted({s.key for s in specs})
        with self._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO system.rate_limit_buckets (key)"
                    " SELECT unnest(CAST(:keys AS text[])) ON CONFLICT (key) DO NOTHING"
                ),
                {"keys": keys},
            )
            rows = conn.execute(
                text(
                    "SELECT key, tat, extract(epoch FROM banned_until) AS banned_until,"
                    " extract(epoch FROM clock_timestamp()) AS now"
                    " FROM system.rate_limit_buckets WHERE key = ANY(CAST(:keys AS text[]))"
                    " ORDER BY key FOR UPDATE"
                ),
                {"keys": keys},
            ).all()
            state = {row.key: row for row in rows}
            now = float(rows[0].now)
            for s in specs:
                until = state[s.key].banned_until
                if until is not None and float(until) > now:
                    return Reservation("banned", float(until) - now, s.key)
            send_at = now
            tats: dict[str, float] = {}
            for s in specs:
                tat = max(float(state[s.key].tat or 0.0), now)
                tats[s.key] = tat
                send_at = max(send_at, tat + s.increment - s.capacity)
            wait = send_at - now
            if wait > max_wait:
                return Reservation("later", wait)
            for s in specs:
                conn.execute(
                    text("UPDATE system.rate_limit_buckets SET tat = :tat WHERE key = :key"),
                    {"tat": max(tats[s.key], send_at) + s.increment, "key": s.key},
                )
                tats[s.key] = max(tats[s.key], send_at) + s.increment
            return Reservation("ok", wait)

    def observe(self, spec: Spec, used: float) -> None:
        """See :class:`Buckets`."""
        with self._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO system.rate_limit_buckets AS b (key, tat)"
                    " VALUES (:key, extract(epoch FROM clock_timestamp()) - :period + :spent)"
                    " ON CONFLICT (key) DO UPDATE SET tat = greatest(b.tat, EXCLUDED.tat)"
                ),
                {"key": spec.key, "period": spec.period, "spent": used * spec.interval},
            )

    def ban(self, key: str, seconds: float, reason: str) -> None:
        """See :class:`Buckets`."""
        with self._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO system.rate_limit_buckets AS b (key, banned_until, ban_reason)"
                    " VALUES (:key, clock_timestamp() + make_interval(secs => :seconds), :reason)"
                    " ON CONFLICT (key) DO UPDATE SET"
                    " banned_until = greatest(b.banned_until, EXCLUDED.banned_until),"
                    " ban_reason = EXCLUDED.ban_reason"
                ),
                {"key": key, "seconds": seconds, "reason": reason[:200]},
            )


class SharedRateLimiter:
    """The :class:`brokers.limits.RateLimiter` of the gateway, over a shared store.

    Args:
        buckets: the store (:class:`RedisBuckets` or :class:`PostgresBuckets`).
        limits: configured numbers by name (``GATEWAY_RATE_LIMITS__<NAME>``).
        safety: the share of each limit used.
        order_deadline: seconds an order may wait for its slot.
        read_deadline: seconds a read may look for a free slot.
        sleep: how to wait (tests may record).
        monotonic: the local timer of the deadlines (only durations; never compared across hosts).
    """

    def __init__(
        self,
        buckets: Buckets,
        limits: Mapping[str, float] | None = None,
        *,
        safety: float = SAFETY,
        order_deadline: float = 5.0,
        read_deadline: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = buckets
        self._limits = {str(k).upper(): float(v) for k, v in (limits or {}).items()}
        self.safety = safety
        self.order_deadline = order_deadline
        self.read_deadline = read_deadline
        self._sleep = sleep
        self._monotonic = monotonic

    def limit(self, name: str, default: float) -> float:
        """Return the configured number ``name``, or ``default``."""
        return self._limits.get(name.upper(), float(default))

    def acquire(
        self,
        budgets: Sequence[Budget],
        *,
        priority: Priority,
        deadline_s: float | None = None,
    ) -> None:
        """Wait for a slot on every budget (see the module docstring).

        Raises:
            RateLimited: no slot before the deadline, or a budget is banned; nothing was spent.
            BrokerUnavailable: the shared store cannot be reached.
        """
        specs = [spec_of(b, self.safety) for b in budgets if b.rate > 0]
        if not specs:
            return
        default = self.order_deadline if priority == "order" else self.read_deadline
        deadline = default if deadline_s is None else deadline_s
        started = self._monotonic()
        ends = started + deadline
        unit = metric_unit(specs[0].key)
        while True:
            left = max(0.0, ends - self._monotonic())
            answer = self.buckets.reserve(specs, left if priority == "order" else 0.0)
            if answer.status == "ok":
                if answer.wait > 0:
                    self._sleep(answer.wait)
                metrics.observe_rate_limit_wait(unit, self._monotonic() - started)
                return
            if answer.status == "banned" or priority == "order" or answer.wait > left:
                metrics.observe_rate_limit_wait(unit, self._monotonic() - started, refused=True)
            if answer.status == "banned":
                raise RateLimited(
                    f"The broker has refused requests on {answer.banned_key} for rate; nothing "
                    f"is sent for {answer.wait:.1f} s more.",
                    retry_after=answer.wait,
                    scope=answer.banned_key,
                    banned=True,
                )
            if priority == "order" or answer.wait > left:
                raise RateLimited(
                    f"No slot on the broker's budget within {deadline:g} s (next in "
                    f"{answer.wait:.2f} s); the request was not sent.",
                    retry_after=answer.wait,
                    scope=",".join(s.key for s in specs),
                )
            self._sleep(min(READ_POLL_SECONDS, max(answer.wait, 0.005), left))

    def observe(self, budget: Budget, *, used: float) -> None:
        """Follow the broker's own count of ``used`` units in the budget's current window."""
        if budget.rate > 0 and used > 0:
            self.buckets.observe(spec_of(budget, self.safety), used)

    def ban(self, budgets: Sequence[Budget], *, seconds: float, reason: str) -> None:
        """Send nothing on ``budgets`` for ``seconds``."""
        seconds = max(0.0, float(seconds))
        if not math.isfinite(seconds) or seconds <= 0:
            return
        for budget in budgets:
            log.warning("rate limiter: %s banned for %.1f s (%s)", budget.key, seconds, reason)
            self.buckets.ban(budget.key, seconds, reason)


def metric_unit(key: str) -> str:
    """Return a budget key without its per-account or per-app-key part, as a metrics label.

    Keys name a broker, a counting unit and whose budget it is (``kis:app:<hash>:…``); the label
    keeps the broker and unit only, so ``/metrics`` never lists app keys or grows per account.
    """
    return ":".join(part for part in key.split(":")[:3] if not _HASHED.fullmatch(part))


_HASHED = re.compile(r"[0-9a-f]{12,}|\d+")


def rate_limiter() -> SharedRateLimiter:
    """Return the app's limiter (built once per app: Redis if configured, else PostgreSQL)."""
    app = current_app
    limiter: SharedRateLimiter | None = app.extensions.get("gateway.rate_limiter")
    if limiter is None:
        from web_server.extensions import db

        config = app.config
        url = config.get("REDIS_URL")
        buckets: Buckets = (
            RedisBuckets(str(url), str(config.get("RATE_LIMIT_PREFIX") or "gateway:rl:"))
            if url
            else PostgresBuckets(db.engine)
        )
        limiter = SharedRateLimiter(
            buckets,
            config.get("RATE_LIMITS") or {},
            safety=float(config.get("RATE_LIMIT_SAFETY", SAFETY)),
            order_deadline=float(config.get("RATE_LIMIT_ORDER_DEADLINE_SECONDS", 5.0)),
            read_deadline=float(config.get("RATE_LIMIT_READ_DEADLINE_SECONDS", 5.0)),
        )
        app.extensions["gateway.rate_limiter"] = limiter
    return limiter
