"""Fixtures for the KIS and Kiwoom simulators over real HTTP (loopback, a server per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask import Flask

from simulators import kis, kiwoom
from simulators.engine import SimClock
from simulators.server import ServerHandle, serve_in_thread

#: 2026-03-03 10:00 KST, a Tuesday in trading hours.
START = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
TIMEOUT = 5
KIS_KEY = "PS" + "K" * 34
KIS_SECRET = "S" * 180
KIS_ACCOUNT = "50012345"
KIWOOM_KEY = "kiwoom-app-key-0001"
KIWOOM_SECRET = "kiwoom-secret-key-0001"
KIWOOM_ACCOUNT = "5001234511"


@dataclass
class Sim:
    """A running simulator and a requests session to it."""

    app: Flask
    handle: ServerHandle
    http: requests.Session

    @property
    def url(self) -> str:
        return self.handle.url

    def advance(self, seconds: float) -> None:
        r = self.http.post(f"{self.url}/_sim/clock", json={"advance_seconds": seconds})
        assert r.status_code == 200, r.text

    def ledger(self, kind: str | None = None) -> list[dict[str, Any]]:
        params = {"kind": kind} if kind else {}
        return self.http.get(f"{self.url}/_sim/ledger", params=params, timeout=TIMEOUT).json()[
            "entries"
        ]

    def fault(self, **body: Any) -> None:
        r = self.http.post(f"{self.url}/_sim/faults", json=body, timeout=TIMEOUT)
        assert r.status_code == 201, r.text

    def pin(self, symbol: str, price: int | None) -> None:
        r = self.http.post(f"{self.url}/_sim/prices", json={"symbol": symbol, "price": price})
        assert r.status_code == 200, r.text


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Sim]]:
    """Start a simulator app (``kis`` or ``kiwoom``) with a frozen clock; stopped after the test."""
    started: list[Sim] = []

    def start(broker: str, **kwargs: Any) -> Sim:
        factory = kis.create_app if broker == "kis" else kiwoom.create_app
        kwargs.setdefault("clock", SimClock.frozen(START))
        kwargs.setdefault("rate_limit_per_second", 0)
        app = factory(**kwargs)
        sim = Sim(app, serve_in_thread(app), requests.Session())
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.http.close()
        sim.handle.stop()
