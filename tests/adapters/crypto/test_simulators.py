"""The three crypto adapters against the real simulators over loopback HTTP.

Each exchange's simulator runs in a thread for the module; every test gets its own account (fresh
keys), so ledgers are read per account. Faults are injected through ``/_sim/faults`` and cleared
after each test. The ledger (``/_sim/ledger``) is the ground truth for "sent once, never twice".
"""

from __future__ import annotations

import datetime as dt
import importlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests

from brokers import (
    BrokerOrder,
    Credentials,
    CryptoAdapter,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    make_http_session,
)
from crypto_exchanges._http import RetryPolicy
from web_server.errors import (
    BrokerAuthFailed,
    BrokerRateLimited,
    BrokerTimeout,
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderStateUnknown,
)

TIMEOUT = 0.5  # adapter timeout; latency faults are longer
QUICK_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.5)


@dataclass(frozen=True)
class Venue:
    """How to drive one exchange's simulator and adapter."""

    name: str
    simulator: str
    adapter_path: str
    symbol: str
    price: Decimal  # pinned
    passive_price: Decimal  # a limit buy that rests
    quantity: Decimal
    quote_amount: Decimal
    order_path: str
    account: Callable[[str, str], dict[str, Any]]
    off_tick: Decimal
    off_lot: Decimal
    tiny: Decimal  # notional too small at passive_price
    sim_options: dict[str, Any]


def _krw_account(key: str, secret: str) -> dict[str, Any]:
    return {"access_key": key, "secret_key": secret, "balances": {"KRW": "10000000", "BTC": "0.01"}}


VENUES = [
    Venue(
        "UPBIT",
        "simulators.upbit",
        "crypto_exchanges.upbit:UpbitAdapter",
        "KRW-BTC",
        Decimal("140000000"),
        Decimal("112000000"),
        Decimal("0.0001"),
        Decimal("10000"),
        "/v1/orders",
        _krw_account,
        Decimal("112000500"),
        Decimal("0.000000001"),
        Decimal("0.00001"),
        {"order_rate": 1000, "exchange_rate": 1000, "quotation_rate": 1000},
    ),
    Venue(
        "BITHUMB",
        "simulators.bithumb",
        "crypto_exchanges.bithumb:BithumbAdapter",
        "KRW-BTC",
        Decimal("140000000"),
        Decimal("112000000"),
        Decimal("0.0001"),
        Decimal("10000"),
        "/v2/orders",
        _krw_account,
        Decimal("112000500"),
        Decimal("0.000000001"),
        Decimal("0.00001"),
        {"public_rate": 1000, "private_rate": 1000},
    ),
    Venue(
        "BINANCE",
        "simulators.binance",
        "crypto_exchanges.binance:BinanceAdapter",
        "BTCUSDT",
        Decimal("95000"),
        Decimal("76000"),
        Decimal("0.001"),
        Decimal("30"),
        "/api/v3/order",
        lambda key, secret: {
            "api_key": key,
            "secret_key": secret,
            "balances": {"USDT": "10000", "BTC": "0.1"},
        },
        Decimal("76000.005"),
        Decimal("0.000001"),
        Decimal("0.00005"),
        {},
    ),
]


@dataclass
class Sim:
    """A running simulator and a helper to talk to its control surface."""

    venue: Venue
    url: str

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = requests.request(method, f"{self.url}/_sim{path}", timeout=5, **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def fault(self, kind: str, **fields: Any) -> None:
        self.control("POST", "/faults", json={"kind": kind, "count": 1, **fields})

    def orders_seen(self, account_id: str) -> list[dict[str, Any]]:
        entries = self.control(
            "GET",
            "/ledger",
            params={"kind": "order_placed,order_rejected", "account_id": account_id},
        )["entries"]
        return list(entries)


@pytest.fixture(scope="module", params=VENUES, ids=lambda v: v.name)
def sim(request: pytest.FixtureRequest) -> Iterator[Sim]:
    """One simulator per exchange for the module, served on a free loopback port."""
    venue: Venue = request.param
    try:
        module = importlib.import_module(venue.simulator)
    except ImportError as exc:  # pragma: no cover - only while the simulator is being written
        pytest.skip(f"{venue.simulator} is not available: {exc}")
    from simulators.server import serve_in_thread

    handle = serve_in_thread(module.create_app(seed=0, **venue.sim_options))
    simulator = Sim(venue, handle.url)
    simulator.control("POST", "/prices", json={"symbol": venue.symbol, "price": str(venue.price)})
    yield simulator
    handle.stop()


_SECRETS: dict[str, str] = {}  # account key → secret, for building adapters in tests


@pytest.fixture
def account(sim: Sim) -> Iterator[str]:
    """A fresh account; its key is also the simulator's account id."""
    key, secret = f"key-{uuid.uuid4().hex[:16]}", f"secret-{uuid.uuid4().hex}"
    created = sim.control("POST", "/accounts", json=sim.venue.account(key, secret))
    assert created.get("account_id", key) == key
    _SECRETS[key] = secret
    yield key
    sim.control("DELETE", "/faults")


@pytest.fixture
def adapter(sim: Sim, account: str) -> CryptoAdapter:
    """The venue's adapter for the fresh account."""
    return _adapter(sim, account)


def _adapter(
    sim: Sim, account: str, *, secret: str | None = None, base_url: str | None = None
) -> CryptoAdapter:
    module_name, _, class_name = sim.venue.adapter_path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    credentials = Credentials(api_key=account, api_secret=secret or _SECRETS[account])
    return cls(
        credentials,
        base_url=base_url or sim.url,  # type: ignore[no-any-return]
        session=make_http_session(),
        timeout=TIMEOUT,
        retry_policy=QUICK_RETRY,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cid() -> str:
    return f"gw-{uuid.uuid4().hex[:20]}"


def _limit(venue: Venue, cid: str, **kw: Any) -> OrderRequest:
    fields: dict[str, Any] = dict(
        symbol=venue.symbol,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=venue.quantity,
        client_order_id=cid,
        limit_price=venue.passive_price,
    )
    fields.update(kw)
    return OrderRequest(**fields)


def _find(adapter: CryptoAdapter, venue: Venue, cid: str, *, wait: float = 0.0) -> BrokerOrder:
    """Look an order up by client id, polling up to ``wait`` s while the simulator catches up."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return adapter.get_order(client_order_id=cid, symbol=venue.symbol)
        except OrderNotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _placed(sim: Sim, account: str, cid: str) -> list[dict[str, Any]]:
    return [
        e
        for e in sim.orders_seen(account)
        if e["kind"] == "order_placed" and e.get("client_order_id") == cid
    ]


# -- every interface method -------------------------------------------------------------------


def test_list_markets(adapter: CryptoAdapter, sim: Sim) -> None:
    markets = {m.symbol: m for m in adapter.list_markets()}
    rule = markets[sim.venue.symbol]
    assert rule.is_tradable and rule.lot_size and rule.min_notional
    assert rule.base_asset == "BTC"


def test_balance_and_holdings(adapter: CryptoAdapter, sim: Sim) -> None:
    [cash] = adapter.get_balance()
    assert cash.currency in {"KRW", "USDT"} and cash.available == cash.total > 0
    [btc] = adapter.get_holdings()
    assert btc.asset == "BTC" and btc.quantity > 0


def test_limit_order_lifecycle(adapter: CryptoAdapter, sim: Sim, account: str) -> None:
    venue = sim.venue
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    cid = _cid()
    placed = adapter.place_order(_limit(venue, cid))
    assert placed.status is OrderStatus.SUBMITTED and placed.broker_order_id
    by_id = adapter.get_order(placed.broker_order_id, symbol=venue.symbol)
    by_cid = adapter.get_order(client_order_id=cid, symbol=venue.symbol)
    assert by_id.broker_order_id == by_cid.broker_order_id == placed.broker_order_id
    assert by_cid.client_order_id == cid and by_cid.limit_price == venue.passive_price
    assert by_cid.quantity == venue.quantity and by_cid.status is OrderStatus.SUBMITTED
    listed = adapter.list_orders(since)
    assert placed.broker_order_id in {o.broker_order_id for o in listed}
    [cash] = adapter.get_balance()
    assert cash.locked > 0
    cancelled = adapter.cancel_order(placed.broker_order_id, symbol=venue.symbol)
    assert cancelled.status in {OrderStatus.CANCELLED, OrderStatus.CANCEL_PENDING}
    final = adapter.get_order(placed.broker_order_id, symbol=venue.symbol)
    assert final.status is OrderStatus.CANCELLED
    assert len(_placed(sim, account, cid)) == 1
    with pytest.raises(OrderNotFound):
        adapter.cancel_order(placed.broker_order_id, symbol=venue.symbol)


def test_market_buy_by_amount_and_sell(adapter: CryptoAdapter, sim: Sim) -> None:
    venue = sim.venue
    buy = OrderRequest(
        symbol=venue.symbol,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(0),
        client_order_id=_cid(),
        quote_amount=venue.quote_amount,
    )
    placed = adapter.place_order(buy)
    order = _find(adapter, venue, buy.client_order_id)
    assert order.broker_order_id == placed.broker_order_id
    assert order.status is OrderStatus.FILLED and order.filled_quantity > 0
    assert order.average_fill_price is not None
    sell = OrderRequest(
        symbol=venue.symbol,
        side=Side.SELL,
        order_type=OrderType.MARKET,
        quantity=venue.quantity,
        client_order_id=_cid(),
    )
    adapter.place_order(sell)
    assert _find(adapter, venue, sell.client_order_id).status is OrderStatus.FILLED


# -- rule checks happen before sending ---------------------------------------------------------


@pytest.mark.parametrize("rule", ["TICK", "LOT", "MIN_NOTIONAL"])
def test_rule_violations_are_refused_before_sending(
    adapter: CryptoAdapter, sim: Sim, account: str, rule: str
) -> None:
    venue = sim.venue
    bad = {
        "TICK": {"limit_price": venue.off_tick},
        "LOT": {"quantity": venue.off_lot},
        "MIN_NOTIONAL": {"quantity": venue.tiny},
    }[rule]
    with pytest.raises(InvalidOrder) as info:
        adapter.place_order(_limit(venue, _cid(), **bad))
    assert info.value.broker_code == f"RULE_{rule}" and info.value.broker == venue.name
    assert sim.orders_seen(account) == []


# -- lost answers: found again by client id, never sent twice --------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "acted"),
    [
        ("drop", {}, True),  # the exchange placed it; the answer never came
        ("latency", {"seconds": TIMEOUT + 1.0}, True),  # read timeout; placed after the delay
        ("reset", {}, False),  # RST before handling
        ("http_status", {"status": 500}, False),  # 5xx without handling
        ("http_status", {"status": 503, "body": "Service Unavailable"}, False),
    ],
    ids=["drop", "timeout", "reset", "http500", "http503"],
)
def test_lost_order_answer_is_reconciled_by_client_id(
    adapter: CryptoAdapter,
    sim: Sim,
    account: str,
    kind: str,
    fields: dict[str, Any],
    acted: bool,
) -> None:
    venue = sim.venue
    adapter.list_markets()  # fill the cache so the fault hits the order POST
    sim.fault(kind, path_prefix=venue.order_path, **fields)
    cid = _cid()
    with pytest.raises(OrderStateUnknown) as info:
        adapter.place_order(_limit(venue, cid))
    assert info.value.broker == venue.name
    if acted:
        found = _find(adapter, venue, cid, wait=3.0)
        assert found.client_order_id == cid and found.status is OrderStatus.SUBMITTED
    else:
        with pytest.raises(OrderNotFound):
            _find(adapter, venue, cid)
    time.sleep(fields.get("seconds", 0) * 0.5)  # let a delayed request land before counting
    assert len(_placed(sim, account, cid)) == (1 if acted else 0)


def test_lost_cancel_answer_is_unknown_then_settles(adapter: CryptoAdapter, sim: Sim) -> None:
    venue = sim.venue
    cid = _cid()
    placed = adapter.place_order(_limit(venue, cid))
    cancel_path = {"UPBIT": "/v1/order", "BITHUMB": "/v2/order", "BINANCE": "/api/v3/order"}
    sim.fault("drop", path_prefix=cancel_path[venue.name])
    with pytest.raises(OrderStateUnknown):
        adapter.cancel_order(placed.broker_order_id, symbol=venue.symbol)
    assert _find(adapter, venue, cid).status is OrderStatus.CANCELLED


# -- reads: retried, or a defined transient error -----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("latency", {"seconds": TIMEOUT + 0.5}),
        ("reset", {}),
        ("http_status", {"status": 500}),
        ("drop", {}),
    ],
    ids=["timeout", "reset", "http500", "drop"],
)
def test_read_faults_are_retried(
    adapter: CryptoAdapter, sim: Sim, kind: str, fields: dict[str, Any]
) -> None:
    sim.fault(kind, **fields)
    assert adapter.get_balance()


def test_unreachable_exchange_is_a_timeout_and_nothing_is_sent(sim: Sim, account: str) -> None:
    adapter = _adapter(sim, account, base_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(BrokerTimeout):
        adapter.get_balance()


def test_rate_limit_carries_retry_after(adapter: CryptoAdapter, sim: Sim, account: str) -> None:
    adapter.list_markets()
    sim.fault(
        "http_status",
        status=429,
        path_prefix=sim.venue.order_path,
        body={"error": {"name": "too_many_requests", "message": "Too many API requests."}},
        headers={"Retry-After": "7"},
    )
    with pytest.raises(BrokerRateLimited) as info:
        adapter.place_order(_limit(sim.venue, _cid()))
    assert info.value.retry_after == 7.0
    assert sim.orders_seen(account) == []


# -- exchange refusals ---------------------------------------------------------------------------


def test_wrong_secret_is_an_auth_failure(sim: Sim, account: str) -> None:
    adapter = _adapter(sim, account, secret="not-the-secret")
    with pytest.raises(BrokerAuthFailed) as info:
        adapter.get_balance()
    assert "not-the-secret" not in str(info.value)


def test_duplicate_client_order_id(adapter: CryptoAdapter, sim: Sim, account: str) -> None:
    cid = _cid()
    adapter.place_order(_limit(sim.venue, cid))
    with pytest.raises(DuplicateOrder):
        adapter.place_order(_limit(sim.venue, cid))
    assert len(_placed(sim, account, cid)) == 1


def test_insufficient_funds(adapter: CryptoAdapter, sim: Sim) -> None:
    with pytest.raises(InsufficientFunds):
        adapter.place_order(_limit(sim.venue, _cid(), quantity=sim.venue.quantity * 1000))
