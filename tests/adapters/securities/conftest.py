"""Fixtures for the securities adapters: real simulators over loopback, a simple TokenProvider."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from brokers import make_http_session
from simulators.server import ServerHandle, serve_in_thread

_numbers = itertools.count(1)


class Sim:
    """A running simulator and its ``/_sim`` control surface."""

    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self.url = handle.url
        self._http = requests.Session()

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, self.url + path, timeout=10, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def fault(self, kind: str, **spec: Any) -> None:
        self.control("POST", "/_sim/faults", json={"kind": kind, **spec})

    def advance(self, seconds: float) -> None:
        self.control("POST", "/_sim/clock", json={"advance_seconds": seconds})

    def ledger(self, *kinds: str, account_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {}
        if kinds:
            params["kind"] = ",".join(kinds)
        if account_id:
            params["account_id"] = account_id
        return list(self.control("GET", "/_sim/ledger", params=params)["entries"])

    def price(self, symbol: str) -> str:
        return str(self.control("GET", "/_sim/prices", params={"symbol": symbol})["prices"][symbol])

    def pin(self, symbol: str, price: str | None) -> None:
        self.control("POST", "/_sim/prices", json={"symbol": symbol, "price": price})

    def stop(self) -> None:
        self._http.close()
        self.handle.stop()


class AdapterTokens:
    """A TokenProvider that asks the adapter itself; counts issuances and invalidations."""

    def __init__(self) -> None:
        self.adapter: Any = None
        self.token: str | None = None
        self.issued = 0
        self.invalidated = 0

    def get(self) -> str:
        if self.token is None:
            self.token = self.adapter.issue_token().access_token
            self.issued += 1
        return self.token

    def invalidate(self, token: str) -> str:
        self.invalidated += 1
        if token == self.token:
            self.token = None
        return self.get()


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Sim]]:
    """Start simulators (``start_sim(create_app, **options)``); all stopped after the test.

    The simulators run on the wall clock, as the adapters (and the clients they imitate) check
    token expiry and look history up by their own clock; so the KRX sessions are off
    (``market_hours="always"``: any hour is a trading hour, orders lapse at midnight KST).
    """
    started: list[Sim] = []

    def start(create_app: Callable[..., Any], **options: Any) -> Sim:
        options.setdefault("market_hours", "always")
        sim = Sim(serve_in_thread(create_app(**options)))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    """The gateway's pooled session, as production builds it."""
    session = make_http_session()
    yield session
    session.close()


def unique_digits(width: int = 8) -> str:
    """A fresh account number for this test run."""
    return f"{50_000_000 + next(_numbers):0{width}d}"[-width:]


def no_sleep(_seconds: float) -> None:
    """Pinned backoff: tests do not wait."""
