"""Panic actions against all five simulators: afterwards the brokers show no open orders and,
after a flatten, no positions.

Each venue gets resting orders from two sides: through the gateway's API (orders it knows) and
straight through the adapter (orders the gateway never recorded, as a hand-placed order would
be). The simulators' own engines are the ground truth of what is open and what is held; the
gateway's answers are only what is checked against them.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import requests

from brokers import OrderRequest, OrderType, Side
from simulators.control.state import get_state
from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret, run_cli
from web_server.extensions import db
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.orders import poll_open_orders
from web_server.services.stocks_sync import run_sync

#: The crypto venues: market, pinned price, a resting buy, a resting sell, the order quantity,
#: and the account's cash and asset.
CRYPTO = {
    "UPBIT": ("KRW-BTC", "140000000", "112000000", "175000000", "0.0001", "KRW", "BTC"),
    "BITHUMB": ("KRW-BTC", "140000000", "112000000", "175000000", "0.0001", "KRW", "BTC"),
    "BINANCE": ("BTCUSDT", "95000", "76000", "118750", "0.001", "USDT", "BTC"),
}
SIM_OPTIONS = {
    "UPBIT": {"order_rate": 1000, "exchange_rate": 1000, "quotation_rate": 1000},
    "BITHUMB": {"public_rate": 1000, "private_rate": 1000},
    "BINANCE": {},
}
STOCKS = {"005930": 10, "000660": 5}


class Venue:
    """One simulator, its account there and in the gateway, and direct reads of its engine."""

    def __init__(self, exchange: str, sim_app, handle, sim_account: str, account_id: int):
        self.exchange = exchange
        self.sim_app = sim_app
        self.handle = handle
        self.url = handle.url
        self.sim_account = sim_account
        self.account_id = account_id

    @property
    def securities(self) -> bool:
        return self.exchange in ("KIS", "KIWOOM")

    def open_orders(self) -> list:
        """The orders the broker's engine holds open for the account."""
        return get_state(self.sim_app).engine.orders(self.sim_account, open_only=True)

    def holdings(self) -> dict[str, Decimal]:
        """Non-cash balances as the simulator's control API reports them."""
        answer = requests.get(f"{self.url}/_sim/accounts/{self.sim_account}", timeout=5)
        answer.raise_for_status()
        cash = {"KRW", "USDT"}
        return {
            asset: Decimal(b["total"])
            for asset, b in answer.json()["balances"].items()
            if asset not in cash and Decimal(b["total"]) > 0
        }

    def price(self, symbol: str) -> Decimal:
        prices = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=5)
        return Decimal(prices.json()["prices"][symbol])


def _krx_prices(venue: Venue, symbol: str) -> tuple[str, str]:
    """A resting buy and a resting sell inside the ±30 % band, on the tick (multiples of 1000)."""
    market = venue.price(symbol)
    buy = (market * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000
    sell = (market * Decimal("1.2") / 1000).quantize(Decimal(1)) * 1000
    return str(buy), str(sell)


@pytest.fixture(params=["KIS", "KIWOOM", "UPBIT", "BITHUMB", "BINANCE"])
def venue(request, app, client, api_headers, database_url):
    """One simulator with a funded account holding positions, known to the gateway."""
    exchange = request.param
    handles = []
    gateway_body: dict = {}
    if exchange in ("KIS", "KIWOOM"):
        # The stocks master comes from KIS's simulator (Kiwoom's orders need it too).
        master_app = create_simulator("kis", rate_limit_per_second=0)
        master = serve_in_thread(master_app)
        handles.append(master)
        run_sync(database_url, f"{master.url}/common/master")
        app.extensions["gateway.symbols"].invalidate()
        if exchange == "KIS":
            sim_app, handle = master_app, master
        else:
            sim_app = create_simulator("kiwoom", rate_limit_per_second=0)
            handle = serve_in_thread(sim_app)
            handles.append(handle)
        app_key, secret = random_key(36), remember_secret(random_key(180))
        body = {
            "app_key": app_key,
            "account_number": "50123456",
            "cash": "100000000",
            "positions": STOCKS,
        }
        body.update(
            {"app_secret": secret, "product_code": "01"}
            if exchange == "KIS"
            else {"secret_key": secret}
        )
        gateway_body = {"securities_config": {"account_number": "50123456", "product_code": "01"}}
    else:
        symbol, price, *_rest, quote, asset = CRYPTO[exchange]
        sim_app = create_simulator(exchange.lower(), **SIM_OPTIONS[exchange])
        handle = serve_in_thread(sim_app)
        handles.append(handle)
        requests.post(
            f"{handle.url}/_sim/prices", json={"symbol": symbol, "price": price}, timeout=5
        ).raise_for_status()
        app_key, secret = random_key(40), remember_secret(random_key(40))
        funded = {quote: "100000000" if quote == "KRW" else "10000", asset: "0.5"}
        key_field = "api_key" if exchange == "BINANCE" else "access_key"
        body = {key_field: app_key, "secret_key": secret, "balances": funded}
    created = requests.post(f"{handle.url}/_sim/accounts", json=body, timeout=5)
    assert created.status_code == 201, created.text
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": exchange.lower(),
            "exchange": exchange,
            "api_key": app_key,
            "api_secret": secret,
            "base_url": handle.url,
            **gateway_body,
        },
    )
    assert account.status_code == 201, account.get_json()
    if exchange not in ("KIS", "KIWOOM"):
        with app.app_context():
            sync_all_markets((exchange,))
            db.session.commit()
    yield Venue(exchange, sim_app, handle, created.json()["account_id"], account.get_json()["id"])
    for running in handles:
        running.stop()


def _resting_orders(app, client, headers, venue: Venue) -> None:
    """Rest a buy and a sell through the API, and a buy straight at the broker (unknown)."""
    if venue.securities:
        symbol, quantity = "005930", "1"
        buy, sell = _krx_prices(venue, symbol)
    else:
        symbol, _price, buy, sell, quantity, _quote, _asset = CRYPTO[venue.exchange]
    for side, price in (("BUY", buy), ("SELL", sell)):
        placed = client.post(
            "/api/v1/orders",
            headers={**headers, "Idempotency-Key": f"rest-{uuid.uuid4()}"},
            json={
                "account_id": venue.account_id,
                "symbol": symbol,
                "side": side,
                "type": "LIMIT",
                "quantity": quantity,
                "limit_price": price,
            },
        )
        assert placed.status_code == 201, placed.get_json()
        assert placed.get_json()["status"] == "SUBMITTED", placed.get_json()
    with app.app_context():
        adapter = adapter_for(get_account(venue.account_id))
        unknown = adapter.place_order(
            OrderRequest(
                symbol=symbol,
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=Decimal(quantity),
                client_order_id="hand" + uuid.uuid4().hex[:20],
                limit_price=Decimal(buy),
            )
        )
        db.session.commit()
    assert unknown.broker_order_id
    assert len(venue.open_orders()) == 3


def _panic(client, headers, venue: Venue, kind: str, key: str):
    return client.post(
        f"/api/v1/accounts/{venue.account_id}/panic/{kind}",
        headers={**headers, "Idempotency-Key": key},
    )


def test_cancel_all_leaves_no_open_order_at_the_broker(app, client, api_headers, venue, psql):
    _resting_orders(app, client, api_headers, venue)
    answer = _panic(client, api_headers, venue, "cancel-all", "panic-1")
    assert answer.status_code == 201, answer.get_json()
    run = answer.get_json()
    assert run["status"] == "DONE", run["result"]
    assert venue.open_orders() == []
    assert run["result"]["open_orders_left"] == 0
    sources = sorted(c["source"] for c in run["result"]["cancelled"])
    assert sources == ["broker", "gateway", "gateway"], run["result"]
    # The same key again: the recorded run, nothing sent twice.
    replay = _panic(client, api_headers, venue, "cancel-all", "panic-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == run["id"]
    conflict = _panic(client, api_headers, venue, "flatten", "panic-1")
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_conflict"
    row = psql.execute(
        "SELECT kind, status, requested_by, finished_ts IS NOT NULL FROM trade.panic_actions"
    ).fetchall()
    assert row == [("CANCEL_ALL", "DONE", run["requested_by"], True)]
    assert run["requested_by"].startswith("api-key:")
    print(f"\n{venue.exchange}: cancel-all cancelled {len(run['result']['cancelled'])} orders")


def test_flatten_leaves_no_open_order_and_no_position(app, client, api_headers, venue, psql):
    _resting_orders(app, client, api_headers, venue)
    before = venue.holdings()
    assert before, "the account starts with positions"
    # A kill switch does not stop a panic action: it reduces risk.
    engaged = client.put(
        f"/api/v1/accounts/{venue.account_id}/kill-switch",
        headers=api_headers,
        json={"reason": "panic drill"},
    )
    assert engaged.status_code == 200, engaged.get_json()
    answer = _panic(client, api_headers, venue, "flatten", "flatten-1")
    assert answer.status_code == 201, answer.get_json()
    run = answer.get_json()
    assert run["status"] == "DONE", run["result"]
    assert venue.open_orders() == []
    left = venue.holdings()
    assert left == {}, (left, run["result"])
    sold = {s["symbol"]: Decimal(s["quantity"]) for s in run["result"]["sold"]}
    if venue.securities:
        assert sold == {symbol: Decimal(n) for symbol, n in STOCKS.items()}
    else:
        assert sold == {CRYPTO[venue.exchange][0]: Decimal("0.5")}
    # Each sale is an order on record, placed through the placement service; the poller then
    # reads the fills as for any order.
    with app.app_context():
        poll_open_orders()
    orders = psql.execute(
        "SELECT side, order_type, status FROM trade.orders WHERE side = 'SELL' AND"
        " order_type = 'MARKET'"
    ).fetchall()
    assert len(orders) == len(sold) and {o[2] for o in orders} == {"FILLED"}, orders
    print(f"\n{venue.exchange}: flatten sold {sold}; left {left}")


@pytest.mark.parametrize("venue", ["KIS", "UPBIT"], indirect=True)
def test_the_cli_runs_cancel_all_and_a_key_scoped_cancel_all(
    app, client, api_headers, make_api_key, venue
):
    # The CLI and the key scope run the same service as above: one venue of each family.
    _resting_orders(app, client, api_headers, venue)
    # A strategy's key cancels its own orders only: the other two stay.
    strategy = make_api_key("orders:write", "orders:read")
    if venue.securities:
        symbol, quantity = "005930", "1"
        price, _ = _krx_prices(venue, symbol)
    else:
        symbol, _p, price, _s, quantity, _q, _a = CRYPTO[venue.exchange]
    mine = client.post(
        "/api/v1/orders",
        headers={**strategy, "Idempotency-Key": "mine-1"},
        json={
            "account_id": venue.account_id,
            "symbol": symbol,
            "side": "BUY",
            "type": "LIMIT",
            "quantity": quantity,
            "limit_price": price,
        },
    ).get_json()
    assert len(venue.open_orders()) == 4
    key_id = _key_id(app, strategy)
    own = client.post(
        f"/api/v1/api-keys/{key_id}/panic/cancel-all",
        headers={**strategy, "Idempotency-Key": "own-1"},
    )
    assert own.status_code == 201, own.get_json()
    assert [c["order_id"] for c in own.get_json()["result"]["cancelled"]] == [mine["id"]]
    assert len(venue.open_orders()) == 3
    result = run_cli(
        app, "panic", "cancel-all", "--account", str(venue.account_id), "--idempotency-key", "c1"
    )
    assert result.exit_code == 0, result.output
    assert '"status": "DONE"' in result.output
    assert venue.open_orders() == []


def _key_id(app, headers) -> int:
    from web_server.services.api_keys import authenticate

    with app.app_context():
        return authenticate(headers["Authorization"]).id


@pytest.mark.parametrize("venue", ["BINANCE"], indirect=True)
def test_flatten_leaves_only_dust_below_the_lot_and_reports_it(app, client, api_headers, venue):
    from sqlalchemy import select

    from web_server.models import CryptoMarket

    with app.app_context():
        lot = db.session.scalar(
            select(CryptoMarket.lot_size).where(
                CryptoMarket.exchange == "BINANCE", CryptoMarket.symbol == "BTCUSDT"
            )
        )
    assert lot and lot < Decimal("0.5")
    # Top the 0.5 BTC up by half a lot: that half can never be sold.
    get_state(venue.sim_app).engine.deposit(venue.sim_account, "BTC", lot / 2)
    answer = _panic(client, api_headers, venue, "flatten", "dusty")
    assert answer.status_code == 201, answer.get_json()
    run = answer.get_json()
    assert run["status"] == "DONE", run["result"]
    assert [Decimal(s["quantity"]) for s in run["result"]["sold"]] == [Decimal("0.5")]
    assert [(d["asset"], Decimal(d["quantity"])) for d in run["result"]["skipped"]] == [
        ("BTC", lot / 2)
    ]
    assert venue.holdings() == {"BTC": lot / 2}
    print(f"\nBINANCE: flatten left {lot / 2} BTC of dust (lot {lot})")


def test_a_run_whose_process_died_is_recorded_abandoned_not_running_for_ever(
    app, client, api_headers, psql
):
    from tests.integration.accounts_support import add_account, start_upbit

    sim = start_upbit({"KRW": "1000000"})
    try:
        add_account(client, api_headers, sim)
        url = f"/api/v1/accounts/{sim.account_id}/panic/cancel-all"
        headers = {**api_headers, "Idempotency-Key": "died-1"}
        assert client.post(url, headers=headers).status_code == 201
        # As a run looks when its worker was killed mid-way: RUNNING, never finished.
        psql.execute(
            "UPDATE trade.panic_actions SET status = 'RUNNING', finished_ts = NULL,"
            " created_ts = now() - interval '1 minute'"
        )
        still = client.post(url, headers=headers)
        assert still.status_code == 409 and still.get_json()["code"] == "panic_in_progress"
        assert still.headers["Retry-After"]
        psql.execute("UPDATE trade.panic_actions SET created_ts = now() - interval '11 minutes'")
        replay = client.post(url, headers=headers)
        assert replay.status_code == 200, replay.get_json()
        run = replay.get_json()
        assert run["status"] == "FAILED" and run["result"]["error"] == "abandoned"
        assert run["finished_at"] is not None
        # Final: the same key keeps answering the abandoned run; a new key runs again.
        assert client.post(url, headers=headers).get_json()["status"] == "FAILED"
        again = client.post(url, headers={**api_headers, "Idempotency-Key": "died-2"})
        assert again.status_code == 201 and again.get_json()["status"] == "DONE"
        audited = psql.execute(
            "SELECT actor FROM trade.risk_events WHERE action = 'panic_cancel_all_failed'"
        ).fetchall()
        assert audited == [("gateway",)]
    finally:
        sim.stop()
