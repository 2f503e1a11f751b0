"""Hooks that record what only the moment of a broker call knows: latencies and rate-limit waits.

Everything else ``/metrics`` shows is read from the database when it is scraped
(``web_server.services.metrics``), so it is true across every process and host. Call these from
the code that makes the call; each is cheap, never raises, and does nothing until the first call.

Multiprocess mode: under gunicorn each worker is its own process. When
``PROMETHEUS_MULTIPROC_DIR`` is set (``gateway serve`` sets it), prometheus-client writes each
observation to a file in that folder and the scrape adds the files up; the folder must be empty
when the server starts and must not be shared by two servers. Without it (the demo, the tests),
observations stay in this process's registry.

Importing this module does nothing: prometheus-client is imported on the first observation, after
the environment is set.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Broker calls take from a few ms (a simulator) to the 10 s timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Rate-limit waits range from nothing to the order deadline (5 s by default).
WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def multiprocess_dir() -> str | None:
    """Return the multiprocess folder when multiprocess mode is on."""
    return os.environ.get(MULTIPROC_ENV) or None


def local_registry() -> Any:
    """The registry of this process's hook metrics (single-process mode)."""
    _ensure()
    return _metrics["registry"]


def _ensure() -> None:
    if _metrics:
        return
    with _lock:
        if _metrics:
            return
        from prometheus_client import CollectorRegistry, Counter, Histogram

        # Multiprocess: the values live in files, not in a registry; register nowhere.
        registry = None if multiprocess_dir() else CollectorRegistry(auto_describe=True)
        _metrics["broker_call"] = Histogram(
            "gateway_broker_call_seconds",
            "Time of one call to a broker, by exchange, operation and outcome.",
            ["exchange", "operation", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        _metrics["rate_limit_wait"] = Histogram(
            "gateway_rate_limit_wait_seconds",
            "Time a broker call waited for its rate-limit slot, by limit unit.",
            ["unit"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        _metrics["rate_limit_refused"] = Counter(
            "gateway_rate_limit_refused",
            "Broker calls that gave up waiting for a rate-limit slot, by limit unit.",
            ["unit"],
            registry=registry,
        )
        _metrics["registry"] = registry


def observe_broker_call(exchange: str, operation: str, seconds: float, outcome: str) -> None:
    """Record one broker call.

    Args:
        exchange: ``KIS``, ``KIWOOM``, ``UPBIT``, ``BITHUMB`` or ``BINANCE``.
        operation: what was called (``place_order``, ``cancel_order``, ``get_order``,
            ``get_holdings``, ``issue_token`` …); a small fixed set, never an id.
        seconds: wall time of the call.
        outcome: ``ok`` or the error's stable code (``broker_timeout``, ``broker_unavailable``…).
    """
    try:
        _ensure()
        _metrics["broker_call"].labels(exchange, operation, outcome).observe(max(seconds, 0.0))
    except Exception:  # metrics must never fail a broker call
        log.debug("metrics: broker call not recorded", exc_info=True)


def observe_rate_limit_wait(unit: str, seconds: float, *, refused: bool = False) -> None:
    """Record the wait for one rate-limit slot (``refused``: the deadline passed first).

    Args:
        unit: the limit's unit without secrets, e.g. ``KIS_REAL:orders`` (never an app key).
        seconds: how long the call waited.
        refused: the call gave up (answered 429 unsent).
    """
    try:
        _ensure()
        _metrics["rate_limit_wait"].labels(unit).observe(max(seconds, 0.0))
        if refused:
            _metrics["rate_limit_refused"].labels(unit).inc()
    except Exception:  # metrics must never fail a broker call
        log.debug("metrics: rate-limit wait not recorded", exc_info=True)
