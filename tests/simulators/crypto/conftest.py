"""Fixtures for the crypto simulators over real HTTP: servers, accounts, and tiny request signers.

The signers are written here from the exchanges' documentation (not taken from any client), so a
test that passes proves the simulator checks what the documentation says.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import requests
from flask import Flask

from simulators.engine import SimClock
from simulators.server import ServerHandle, serve_in_thread

TIMEOUT = 5
#: A fixed simulated time (a KST Tuesday morning, after Upbit's 2026-08-21 order-rate change).
FROZEN_AT = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], ServerHandle]]:
    """Start apps on free loopback ports; stop them after the test."""
    handles: list[ServerHandle] = []

    def start(app: Flask) -> ServerHandle:
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def frozen_clock() -> SimClock:
    """A clock that moves only when a test advances it."""
    return SimClock.frozen(FROZEN_AT)


def upbit_token(
    access_key: str,
    secret_key: str,
    query: str | None = None,
    *,
    algorithm: str = "HS256",
    nonce: str | None = None,
    timestamp: int | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """An Upbit/Bithumb bearer JWT over ``query`` (the parameter string the server will see)."""
    payload: dict[str, Any] = {"access_key": access_key, "nonce": nonce or str(uuid.uuid4())}
    if query:
        payload["query_hash"] = hashlib.sha512(query.encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    if timestamp is not None:
        payload["timestamp"] = timestamp
    payload.update(extra or {})
    return "Bearer " + jwt.encode(payload, secret_key, algorithm=algorithm)


class UpbitClient:
    """A minimal signed client for the Upbit-style simulators (query or JSON body)."""

    def __init__(
        self, base: str, access_key: str, secret_key: str, *, with_timestamp: bool = False
    ) -> None:
        self.base, self.access_key, self.secret_key = base, access_key, secret_key
        self.with_timestamp = with_timestamp
        self.server_ms: Callable[[], int] | None = None

    def _timestamp(self) -> int | None:
        if not self.with_timestamp:
            return None
        return self.server_ms() if self.server_ms else int(time.time() * 1000)

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        """A signed GET with parameters in the query."""
        query = urlencode(params or {}, doseq=True)
        headers = {
            "Authorization": upbit_token(
                self.access_key, self.secret_key, query, timestamp=self._timestamp(), **kw
            )
        }
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        return requests.get(url, headers=headers, timeout=TIMEOUT)

    def delete(self, path: str, params: dict[str, Any]) -> requests.Response:
        """A signed DELETE with parameters in the query."""
        query = urlencode(params)
        headers = {
            "Authorization": upbit_token(
                self.access_key, self.secret_key, query, timestamp=self._timestamp()
            )
        }
        return requests.delete(f"{self.base}{path}?{query}", headers=headers, timeout=TIMEOUT)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        """A signed POST with a JSON body (hash over ``urlencode(body)``)."""
        headers = {
            "Authorization": upbit_token(
                self.access_key, self.secret_key, urlencode(body), timestamp=self._timestamp()
            )
        }
        return requests.post(f"{self.base}{path}", json=body, headers=headers, timeout=TIMEOUT)


def create_account(base: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_sim/accounts`` and return the answer (asserting 201)."""
    resp = requests.post(f"{base}/_sim/accounts", json=body, timeout=TIMEOUT)
    assert resp.status_code == 201, resp.text
    return resp.json()


def pin(base: str, symbol: str, price: str | None, liquidity: str | None = "unset") -> None:
    """Pin a price (and optionally the per-step liquidity) through ``/_sim/prices``."""
    body: dict[str, Any] = {"symbol": symbol, "price": price}
    if liquidity != "unset":
        body["liquidity"] = liquidity
    resp = requests.post(f"{base}/_sim/prices", json=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text


def advance(base: str, seconds: float) -> None:
    """Move the simulator clock."""
    resp = requests.post(f"{base}/_sim/clock", json={"advance_seconds": seconds}, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text


def ledger(base: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The simulator's ledger entries (optionally of one kind)."""
    url = f"{base}/_sim/ledger" + (f"?kind={kind}" if kind else "")
    return requests.get(url, timeout=TIMEOUT).json()["entries"]


def binance_signature(secret: str, payload: str) -> str:
    """Binance SIGNED payload: hex HMAC-SHA256."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class BinanceClient:
    """A minimal signed Binance client; timestamps come from the simulator's clock by default."""

    def __init__(self, base: str, api_key: str, secret_key: str) -> None:
        self.base, self.api_key, self.secret_key = base, api_key, secret_key

    def server_ms(self) -> int:
        """The simulator's ``serverTime``."""
        return int(requests.get(f"{self.base}/api/v3/time", timeout=TIMEOUT).json()["serverTime"])

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        in_body: bool = False,
        timestamp: int | None = None,
        secret: str | None = None,
        api_key: str | None = "default",
        **kw: Any,
    ) -> requests.Response:
        """Send a signed request (query, or form body with ``in_body``)."""
        merged = dict(params or {})
        merged["timestamp"] = timestamp if timestamp is not None else self.server_ms()
        payload = urlencode(merged)
        signed = f"{payload}&signature={binance_signature(secret or self.secret_key, payload)}"
        headers = (
            {}
            if api_key is None
            else {"X-MBX-APIKEY": self.api_key if api_key == "default" else api_key}
        )
        url = f"{self.base}{path}"
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return requests.request(
                method, url, data=signed, headers=headers, timeout=TIMEOUT, **kw
            )
        return requests.request(method, f"{url}?{signed}", headers=headers, timeout=TIMEOUT, **kw)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Short literal test secrets are fine here; silence PyJWT's key-length advice."""
    for item in items:
        if "tests/simulators/crypto" in str(item.fspath) or "tests/fidelity/crypto" in str(
            item.fspath
        ):
            item.add_marker(
                pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
            )
