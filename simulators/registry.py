"""The simulators by name, for ``gateway simulate`` and ``gateway demo``."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

# Default loopback ports of the demo (and of `gateway simulate` when --port is not given).
DEFAULT_PORTS = {"kis": 18001, "kiwoom": 18002, "upbit": 18003, "bithumb": 18004, "binance": 18005}
NAMES = tuple(DEFAULT_PORTS)


def create_simulator(name: str, **options: Any) -> Flask:
    """Build the simulator app of one broker; options go to its ``create_app``.

    Raises:
        KeyError: no simulator of that name.
    """
    if name not in DEFAULT_PORTS:
        raise KeyError(name)
    # Each simulator package is imported only when asked for: the demo needs all five, a
    # `gateway simulate kis` only one.
    module = importlib.import_module(f"simulators.{name}")
    return module.create_app(**options)  # type: ignore[no-any-return]
