"""The pieces the crypto adapters share: account reads, order look-up, dialects, list selection."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from brokers import BrokerOrder, Credentials, OrderRequest, OrderStatus, OrderType, Side
from crypto_exchanges._adapter import orders_since
from crypto_exchanges._upbit_like import UPBIT_LIKE_SUBSTRINGS, UpbitLikeAdapter
from crypto_exchanges.binance import BinanceAdapter
from crypto_exchanges.bithumb import BithumbAdapter
from crypto_exchanges.bithumb import mapping as bithumb
from crypto_exchanges.bithumb.errors import BITHUMB_ERRORS
from crypto_exchanges.upbit import UpbitAdapter
from crypto_exchanges.upbit import mapping as upbit
from crypto_exchanges.upbit.errors import UPBIT_ERRORS
from tests.adapters.crypto._fakes import API_KEY, SECRET, FakeSession, fixed_clock, response
from web_server.errors import BrokerAuthFailed, BrokerMaintenance, InvalidOrder

CREDS = Credentials(api_key=API_KEY, api_secret=SECRET)
ACCOUNTS = [
    {"currency": "KRW", "balance": "1000", "locked": "500", "unit_currency": "KRW"},
    {"currency": "BTC", "balance": "0.5", "locked": "0.1", "avg_buy_price": "90000000"},
    {"currency": "XRP", "balance": "0", "locked": "0"},
]
ORDER = {
    "uuid": "u-1",
    "side": "bid",
    "ord_type": "limit",
    "price": "100",
    "state": "wait",
    "market": "KRW-BTC",
    "volume": "1",
    "executed_volume": "0",
    "identifier": "gw-u",
    "client_order_id": "gw-b",
}


def _adapter(cls: type[UpbitLikeAdapter] | type[BinanceAdapter], session: FakeSession):
    return cls(CREDS, base_url="http://sim", session=session, clock=fixed_clock, timeout=1.0)


def _query(call: dict) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call["url"]).query)


def _order(number: str, created: dt.datetime | None) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=number,
        symbol="KRW-BTC",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=OrderStatus.SUBMITTED,
        quantity=Decimal(1),
        created_at=created,
    )


def test_orders_since_keeps_undated_orders_and_sorts_oldest_first() -> None:
    since = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    old = _order("old", since - dt.timedelta(seconds=1))
    later = _order("later", since + dt.timedelta(hours=2))
    early = _order("early", since + dt.timedelta(hours=1))
    undated = _order("undated", None)
    exact = _order("exact", since)
    picked = orders_since([later, old, undated, early, exact], since)
    assert [o.broker_order_id for o in picked] == ["undated", "exact", "early", "later"]


@pytest.mark.parametrize("cls", [UpbitAdapter, BithumbAdapter])
def test_upbit_like_holdings_and_balance_read_the_accounts(cls: type) -> None:
    session = FakeSession(response(200, ACCOUNTS), response(200, ACCOUNTS))
    adapter = _adapter(cls, session)
    [btc] = adapter.get_holdings()
    [krw] = adapter.get_balance()
    assert (btc.asset, btc.quantity, btc.available_quantity) == (
        "BTC",
        Decimal("0.6"),
        Decimal("0.5"),
    )
    assert (krw.currency, krw.total, krw.locked) == ("KRW", Decimal(1500), Decimal(500))
    sent = [(c["method"], urlsplit(c["url"]).path) for c in session.calls]
    assert sent == [("GET", "/v1/accounts")] * 2
    assert all(urlsplit(c["url"]).query == "" for c in session.calls)


def test_binance_holdings_and_balance_read_the_account_without_zero_rows() -> None:
    account = {
        "balances": [
            {"asset": "USDT", "free": "10", "locked": "2"},
            {"asset": "BTC", "free": "0.5", "locked": "0"},
        ]
    }
    session = FakeSession(response(200, account), response(200, account))
    adapter = _adapter(BinanceAdapter, session)
    assert [p.asset for p in adapter.get_holdings()] == ["BTC"]
    assert [(b.currency, b.total) for b in adapter.get_balance()] == [("USDT", Decimal(12))]
    for call in session.calls:
        assert urlsplit(call["url"]).path == "/api/v3/account"
        assert _query(call)["omitZeroBalances"] == ["true"]


@pytest.mark.parametrize(
    ("cls", "field", "client_id"),
    [(UpbitAdapter, "identifier", "gw-u"), (BithumbAdapter, "client_order_id", "gw-b")],
)
def test_get_order_by_client_id_uses_the_exchange_field(
    cls: type, field: str, client_id: str
) -> None:
    session = FakeSession(response(200, ORDER), response(200, ORDER))
    adapter = _adapter(cls, session)
    by_cid = adapter.get_order(client_order_id=client_id)
    by_id = adapter.get_order("u-1")
    assert by_cid.client_order_id == client_id == by_id.client_order_id
    assert _query(session.calls[0]) == {field: [client_id]}
    assert _query(session.calls[1]) == {"uuid": ["u-1"]}
    with pytest.raises(ValueError, match="broker_order_id or client_order_id"):
        adapter.get_order()


@pytest.mark.parametrize(
    ("cls", "param"), [(UpbitAdapter, "is_details"), (BithumbAdapter, "isDetails")]
)
def test_market_list_asks_for_details_in_the_exchange_spelling(cls: type, param: str) -> None:
    markets = [{"market": "KRW-BTC", "market_warning": "NONE"}]
    session = FakeSession(response(200, markets))
    [rule] = _adapter(cls, session).list_markets()
    assert rule.symbol == "KRW-BTC" and rule.min_notional == Decimal(5000)
    assert _query(session.calls[0]) == {param: ["true"]}
    assert "Authorization" not in session.calls[0]["headers"]  # a public endpoint


def test_dialect_ticks_tables_then_fixed_ticks_then_none() -> None:
    assert upbit.UPBIT.tick_for("KRW", Decimal(75000)) == Decimal(50)
    assert upbit.UPBIT.tick_for("USDT", Decimal(5)) == Decimal("0.001")
    assert upbit.UPBIT.tick_for("BTC", Decimal("0.03")) == Decimal("0.00000001")
    assert upbit.UPBIT.tick_for("ETH", Decimal(1)) is None
    assert bithumb.BITHUMB.tick_for("KRW", Decimal(75000)) == Decimal(50)
    assert bithumb.BITHUMB.tick_for("BTC", Decimal("0.03")) is None  # KRW markets only


def test_dialect_order_body_names_the_type_and_client_id_per_exchange() -> None:
    sell = OrderRequest(
        symbol="KRW-BTC",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.01"),
        client_order_id="c",
    )
    assert upbit.UPBIT.order_body(sell) == {
        "market": "KRW-BTC",
        "side": "ask",
        "volume": "0.01",
        "ord_type": "market",
        "identifier": "c",
    }
    assert bithumb.BITHUMB.order_body(sell)["order_type"] == "market"
    assert bithumb.BITHUMB.order_body(sell)["client_order_id"] == "c"
    buy = OrderRequest(
        symbol="KRW-BTC",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.01"),
        client_order_id="c",
    )
    with pytest.raises(InvalidOrder) as info:
        bithumb.BITHUMB.order_body(buy)
    assert info.value.broker == "BITHUMB"


def test_both_error_tables_end_with_the_shared_message_rules() -> None:
    for table in (UPBIT_ERRORS, BITHUMB_ERRORS):
        assert tuple(table.substrings[-len(UPBIT_LIKE_SUBSTRINGS) :]) == UPBIT_LIKE_SUBSTRINGS
        assert table.classify(None, "JWT signature invalid") is BrokerAuthFailed
        assert table.classify(None, "서버 점검 중입니다") is BrokerMaintenance
    # Upbit's own rules still come first.
    assert UPBIT_ERRORS.classify(None, "invalid_price under maintenance") is InvalidOrder
