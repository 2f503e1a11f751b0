"""The five simulators behind the gateway on one simulated clock, for the fills and amend tests.

Each venue is a real simulator over HTTP (``serve_in_thread``), an account in it and in the
gateway; the simulator's :class:`~simulators.engine.SimClock` is the gateway's clock too, frozen
inside a KRX session (Wednesday 2026-12-02 10:00 KST), so prices stand still until a test pins
one and KST days agree on both sides. The simulators' ledgers are the ground truth.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import requests

from simulators.engine import SimClock
from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret, run_cli
from web_server.extensions import db
from web_server.services import clock as gateway_clock
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.stocks_sync import run_sync

KST = dt.timezone(dt.timedelta(hours=9))
DAY1 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=KST)
TIMEOUT = 5
SYMBOLS = {
    "KIS": "005930",
    "KIWOOM": "005930",
    "UPBIT": "KRW-BTC",
    "BITHUMB": "KRW-BTC",
    "BINANCE": "BTCUSDT",
}


class Venue:
    """A simulator, the account in it (``sim_account``) and in the gateway (``account_id``)."""

    def __init__(
        self, exchange: str, url: str, account_id: int, sim_account: str, handle: Any, clock: Any
    ) -> None:
        self.exchange, self.url, self.account_id = exchange, url, account_id
        self.sim_account, self.handle, self.clock = sim_account, handle, clock
        self.symbol = SYMBOLS[exchange]

    def price(self, symbol: str | None = None) -> Decimal:
        symbol = symbol or self.symbol
        r = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=TIMEOUT)
        return Decimal(r.json()["prices"][symbol])

    def pin(self, price: Decimal | str, liquidity: str | None = None) -> None:
        """Pin the symbol's price (and its per-step liquidity: None is unlimited)."""
        body = {"symbol": self.symbol, "price": str(price), "liquidity": liquidity}
        requests.post(f"{self.url}/_sim/prices", json=body, timeout=TIMEOUT).raise_for_status()

    def advance(self, seconds: float) -> None:
        r = requests.post(f"{self.url}/_sim/clock", json={"advance_seconds": seconds}, timeout=30)
        r.raise_for_status()

    def ledger(self, kind: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/_sim/ledger", params={"kind": kind}, timeout=TIMEOUT)
        return list(r.json()["entries"])

    def balance(self, asset: str) -> Decimal:
        r = requests.get(f"{self.url}/_sim/accounts/{self.sim_account}", timeout=TIMEOUT)
        balances = r.json()["balances"]
        return Decimal(balances[asset]["total"]) if asset in balances else Decimal(0)

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.url}/_sim/faults", json=fault, timeout=TIMEOUT).raise_for_status()


def _sim_account(exchange: str, key: str, secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The simulator's account body and the gateway's account fields."""
    if exchange == "KIS":
        sim = {"app_key": key, "app_secret": secret, "account_number": "50123456"}
        sim |= {"product_code": "01", "cash": "1000000000", "positions": {"005930": 10}}
        return sim, {"securities_config": {"account_number": "50123456", "product_code": "01"}}
    if exchange == "KIWOOM":
        sim = {"app_key": key, "secret_key": secret, "account_number": "5012345611"}
        sim |= {"cash": "1000000000", "positions": {"005930": 10}}
        return sim, {"securities_config": {"account_number": "50123456", "product_code": "11"}}
    if exchange == "BINANCE":
        balances = {"USDT": "10000000", "BTC": "10"}
        return {"api_key": key, "secret_key": secret, "balances": balances}, {}
    balances = {"KRW": "100000000000", "BTC": "10"}
    return {"access_key": key, "secret_key": secret, "balances": balances}, {}


def open_venue(app: Any, client: Any, api_headers: Any, database_url: str, exchange: str) -> Venue:
    """Start ``exchange``'s simulator on a frozen clock and open the account on both sides."""
    clock = SimClock.frozen(DAY1.astimezone(dt.UTC))
    name = exchange.lower()
    options: dict[str, Any] = {"clock": clock}
    if exchange in ("KIS", "KIWOOM"):
        options |= {"market_hours": "krx", "rate_limit_per_second": 0}
    handle = serve_in_thread(create_simulator(name, **options))
    key, secret = random_key(36), remember_secret(random_key(64))
    sim, config = _sim_account(exchange, key, secret)
    created = requests.post(f"{handle.url}/_sim/accounts", json=sim, timeout=TIMEOUT)
    created.raise_for_status()
    if exchange in ("KIS", "KIWOOM"):
        master = handle if exchange == "KIS" else serve_in_thread(create_simulator("kis"))
        try:
            run_sync(database_url, f"{master.url}/common/master")
        finally:
            if master is not handle:
                master.stop()
        app.extensions["gateway.symbols"].invalidate()
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": name,
            "exchange": exchange,
            "api_key": key,
            "api_secret": secret,
            "base_url": handle.url,
            **config,
        },
    )
    assert account.status_code == 201, account.get_json()
    if exchange not in ("KIS", "KIWOOM"):
        with app.app_context():
            sync_all_markets((exchange,))
            db.session.commit()
    gateway_clock.install(app, clock.now)
    return Venue(
        exchange, handle.url, account.get_json()["id"], created.json()["account_id"], handle, clock
    )


def close_venue(app: Any, venue: Venue) -> None:
    gateway_clock.install(app, None)
    venue.handle.stop()


def order_body(venue: Venue, side: str, quantity: str, price: Decimal | str) -> dict[str, Any]:
    return {
        "account_id": venue.account_id,
        "symbol": venue.symbol,
        "side": side,
        "type": "LIMIT",
        "quantity": quantity,
        "limit_price": str(price),
    }


def post(client: Any, headers: Any, path: str, body: Any, key: str) -> Any:
    return client.post(path, json=body, headers={**headers, "Idempotency-Key": key})


def run_job(app: Any, job: Any) -> dict[str, int]:
    with app.app_context():
        counts = job()
        db.session.commit()
    return dict(counts)


#: The console's operator in the tests, and the hidden CSRF fields of its forms (name, value).
OPERATOR_PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="((?:[\w-]+-)?csrf_token)" type="hidden" value="([^"]+)"')


def log_in_operator(app: Any, client: Any, username: str = "alice") -> Any:
    """Create an operator with ``gateway users create`` and log ``client`` in as them."""
    result = run_cli(
        app,
        "users",
        "create",
        "--username",
        username,
        "--password-stdin",
        input=OPERATOR_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    token = dict(CSRF_FIELD.findall(client.get("/login").get_data(as_text=True)))["csrf_token"]
    login = {"csrf_token": token, "username": username, "password": OPERATOR_PASSWORD}
    assert client.post("/login", data=login).status_code == 302
    return client
