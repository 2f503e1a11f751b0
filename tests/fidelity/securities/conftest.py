"""Fidelity fixtures: simulators on loopback, on the real clock (clients check expiries by it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from simulators.engine import SimClock
from simulators.server import ServerHandle, serve_in_thread

TIMEOUT = 5


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], ServerHandle]]:
    """Serve an app on a free loopback port for the test."""
    handles: list[ServerHandle] = []

    def start(app: Flask) -> ServerHandle:
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def real_clock() -> SimClock:
    """A clock on real time: clients check token expiry against their own wall clock."""
    return SimClock()


def ledger(url: str, kind: str) -> list[dict[str, Any]]:
    """The simulator's ledger entries of one kind."""
    r = requests.get(f"{url}/_sim/ledger", params={"kind": kind}, timeout=TIMEOUT)
    return list(r.json()["entries"])
