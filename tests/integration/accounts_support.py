"""A broker simulator with an account in it, and the same account in the gateway.

Most API tests need the same two steps: start a simulator over real HTTP with a funded account
(its secret remembered, so the leak checks look for it), then add that account through
``POST /api/v1/accounts``. These helpers are those steps once; each test says only what differs
(cash, positions, simulator options). The multi-venue tests on one simulated clock use
``venues_support`` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret
from web_server.extensions import db
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.stocks_sync import run_sync

TIMEOUT = 5
KIS_ACCOUNT = {"account_number": "50123456", "product_code": "01"}


@dataclasses.dataclass
class SimAccount:
    """A running simulator (``handle``), the keys of the account opened in it, and the gateway's
    id for that account once :func:`add_account` has added it."""

    exchange: str
    handle: Any
    key: str
    secret: str
    account_id: int = 0

    @property
    def url(self) -> str:
        return str(self.handle.url)

    def price(self, symbol: str) -> Decimal:
        r = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=TIMEOUT)
        return Decimal(r.json()["prices"][symbol])

    def resting_price(self, symbol: str = "005930") -> str:
        """A KRX limit price 20 % under the market (inside the ±30 % band): the order rests.

        Whole thousands are a valid tick at every price up to 500,000 won.
        """
        return str((self.price(symbol) * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)

    def placed(self) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/_sim/ledger", params={"kind": "order_placed"}, timeout=5)
        return list(r.json()["entries"])

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.url}/_sim/faults", json=fault, timeout=TIMEOUT).raise_for_status()

    def account_body(self, name: str | None = None) -> dict[str, Any]:
        """The ``POST /api/v1/accounts`` body for this account."""
        body = {
            "name": name or self.exchange.lower(),
            "exchange": self.exchange,
            "api_key": self.key,
            "api_secret": self.secret,
            "base_url": self.url,
        }
        if self.exchange == "KIS":
            body["securities_config"] = dict(KIS_ACCOUNT)
        return body

    def stop(self) -> None:
        self.handle.stop()


def start_kis(
    app: Any,
    database_url: str,
    *,
    cash: str = "1000000000",
    positions: Mapping[str, int] | None = None,
    **options: Any,
) -> SimAccount:
    """A KIS simulator without a rate limit, its stocks master synced, a funded account in it."""
    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0, **options))
    key, secret = random_key(36), remember_secret(random_key(180))
    body: dict[str, Any] = {"app_key": key, "app_secret": secret, **KIS_ACCOUNT, "cash": cash}
    if positions is not None:
        body["positions"] = dict(positions)
    requests.post(f"{handle.url}/_sim/accounts", json=body, timeout=TIMEOUT).raise_for_status()
    run_sync(database_url, f"{handle.url}/common/master")
    app.extensions["gateway.symbols"].invalidate()
    return SimAccount("KIS", handle, key, secret)


def start_upbit(balances: Mapping[str, str], **options: Any) -> SimAccount:
    """An Upbit simulator with an account holding ``balances``."""
    handle = serve_in_thread(create_simulator("upbit", **options))
    key, secret = random_key(40), remember_secret(random_key(40))
    body = {"access_key": key, "secret_key": secret, "balances": dict(balances)}
    requests.post(f"{handle.url}/_sim/accounts", json=body, timeout=TIMEOUT).raise_for_status()
    return SimAccount("UPBIT", handle, key, secret)


def add_account(client: Any, api_headers: Any, sim: SimAccount, name: str | None = None) -> int:
    """Add ``sim``'s account to the gateway (crypto: and sync its markets); return its id."""
    created = client.post("/api/v1/accounts", headers=api_headers, json=sim.account_body(name))
    assert created.status_code == 201, created.get_json()
    if sim.exchange not in ("KIS", "KIWOOM"):
        with client.application.app_context():
            sync_all_markets((sim.exchange,))
            db.session.commit()
    sim.account_id = int(created.get_json()["id"])
    return sim.account_id
