"""The simulators by name, for ``gateway simulate`` and ``gateway demo``."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

# Default loopback ports of the demo (and of `gateway simulate` when --port is not given).
DEFAULT_PORTS = {"kis": 18001, "kiwoom": 18002, "upbit": 18003, "bithumb": 18004, "binance": 18005}
NAMES = tuple(DEFAULT_PORTS)


#: The securities simulators whose sessions follow the KRX calendar by default.
_KRX_SIMULATORS = frozenset({"kis", "kiwoom"})


def create_simulator(name: str, **options: Any) -> Flask:
    """Build the simulator app of one broker; options go to its ``create_app``.

    KIS and Kiwoom built here run on the wall clock, which nobody can move into trading hours,
    so they default to ``market_hours="always"`` (every day a trading day, every session all
    day; orders lapse at midnight): ``gateway demo`` and ``gateway simulate`` take orders at any
    hour. Pass ``market_hours="krx"`` for the KRX calendar and sessions (their ``create_app``
    default), with a ``clock`` inside trading hours if orders should be taken at once (e.g.
    :func:`simulators.krx_calendar.trading_hours_clock`).

    Raises:
        KeyError: no simulator of that name.
    """
    if name not in DEFAULT_PORTS:
        raise KeyError(name)
    if name in _KRX_SIMULATORS and "state" not in options:
        options.setdefault("market_hours", "always")
    # Each simulator package is imported only when asked for: the demo needs all five, a
    # `gateway simulate kis` only one.
    module = importlib.import_module(f"simulators.{name}")
    return module.create_app(**options)  # type: ignore[no-any-return]
