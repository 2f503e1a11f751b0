"""Servers and client wiring for the crypto fidelity suite (clients nobody here wrote).

Each client is pointed at its simulator by base URL alone (brokers/crypto.md §1.1, §1.7, §2.6,
§3.7). pyupbit has no base-URL setting (36 hard-coded ``https://api.upbit.com`` literals), so its
host is rewritten at the ``requests`` layer, the one place every pyupbit call passes through.
The simulators run on the real clock here: the clients sign with the wall-clock time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import ServerHandle, serve_in_thread

TIMEOUT = 5
UPBIT_HOST = "https://api.upbit.com"


#: The one account each simulator gets, as ``POST /_sim/accounts`` takes it.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "upbit": {
        "access_key": "UPBIT-ACCESS",
        "secret_key": "UPBIT-SECRET-0123456789abcdef0123456789",
        "balances": {"KRW": "50000000", "BTC": "1"},
    },
    "bithumb": {
        "access_key": "BITHUMB-ACCESS",
        "secret_key": "BITHUMB-SECRET-0123456789abcdef01234567",
        "balances": {"KRW": "50000000", "BTC": "1"},
    },
    "binance": {
        "api_key": "BINANCE-KEY",
        "secret_key": "BINANCE-SECRET",
        "balances": {"USDT": "100000", "BTC": "1"},
    },
}


def _serve(name: str) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_simulator(name, seed=11))
    resp = requests.post(f"{handle.url}/_sim/accounts", json=ACCOUNTS[name], timeout=TIMEOUT)
    assert resp.status_code == 201, resp.text
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def upbit_server() -> Iterator[ServerHandle]:
    """The Upbit simulator with one account (module scope: the clients keep state there)."""
    yield from _serve("upbit")


@pytest.fixture(scope="module")
def bithumb_server() -> Iterator[ServerHandle]:
    """The Bithumb simulator with one account."""
    yield from _serve("bithumb")


@pytest.fixture(scope="module")
def binance_server() -> Iterator[ServerHandle]:
    """The Binance simulator with one account."""
    yield from _serve("binance")


@pytest.fixture
def fresh_server() -> Iterator[Callable[[str], ServerHandle]]:
    """Start a simulator of its own for one test (empty order book, fresh rate limits)."""
    running: list[Iterator[ServerHandle]] = []

    def start(name: str) -> ServerHandle:
        served = _serve(name)
        running.append(served)
        return next(served)

    yield start
    for served in running:
        next(served, None)


@pytest.fixture
def pyupbit_at(monkeypatch: pytest.MonkeyPatch, upbit_server: ServerHandle) -> str:
    """Rewrite pyupbit's hard-coded host to the simulator for this test (requests layer)."""
    original = requests.sessions.Session.request
    base = upbit_server.url

    def request(
        self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if isinstance(url, str) and url.startswith(UPBIT_HOST):
            url = base + url[len(UPBIT_HOST) :]
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.sessions.Session, "request", request)
    return base


def sim_price(base: str, symbol: str) -> float:
    """The simulator's current price of ``symbol`` (control surface, not the client)."""
    return float(
        requests.get(f"{base}/_sim/prices?symbol={symbol}", timeout=TIMEOUT).json()["prices"][
            symbol
        ]
    )


def ledger_placed(base: str) -> list[dict[str, Any]]:
    """Order placements the simulator recorded."""
    return requests.get(f"{base}/_sim/ledger?kind=order_placed", timeout=TIMEOUT).json()["entries"]
