"""Pure mapping of sample payloads (crypto.md shapes) to value objects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from brokers import OrderRequest, OrderStatus, OrderType, Side
from crypto_exchanges._upbit_like import parse_time
from crypto_exchanges.binance import mapping as binance
from crypto_exchanges.bithumb import mapping as bithumb
from crypto_exchanges.upbit import mapping as upbit

UPBIT_ORDER = {
    "uuid": "cdd92199-2897-4e14-9448-f923320408ad",
    "side": "bid",
    "ord_type": "limit",
    "price": "100.0",
    "state": "wait",
    "market": "KRW-BTC",
    "created_at": "2018-04-10T15:42:23+09:00",
    "volume": "0.01",
    "remaining_volume": "0.01",
    "reserved_fee": "0.0015",
    "remaining_fee": "0.0015",
    "paid_fee": "0.0",
    "locked": "1.0015",
    "executed_volume": "0.0",
    "trades_count": 0,
    "identifier": "gw-1",
}


def test_upbit_order() -> None:
    order = upbit.parse_upbit_order(UPBIT_ORDER)
    assert order.status is OrderStatus.SUBMITTED and order.side is Side.BUY
    assert order.quantity == Decimal("0.01") and order.limit_price == Decimal("100.0")
    assert order.client_order_id == "gw-1"
    assert order.created_at == dt.datetime(2018, 4, 10, 6, 42, 23, tzinfo=dt.UTC)
    assert upbit.cancel_result(UPBIT_ORDER).status is OrderStatus.CANCEL_PENDING


def test_upbit_market_buy_by_amount_ending_in_cancel_is_filled() -> None:
    raw = {
        **UPBIT_ORDER,
        "ord_type": "price",
        "price": "10000",
        "volume": None,
        "state": "cancel",
        "executed_volume": "0.0001",
        "trades": [{"funds": "9990", "volume": "0.0001"}],
    }
    order = upbit.parse_upbit_order(raw)
    assert order.status is OrderStatus.FILLED and order.order_type is OrderType.MARKET
    assert order.limit_price is None and order.quantity == Decimal("0.0001")
    assert order.average_fill_price == Decimal("99900000")


def test_upbit_accounts() -> None:
    rows = [
        {
            "currency": "KRW",
            "balance": "1000000.0",
            "locked": "5000",
            "avg_buy_price": "0",
            "unit_currency": "KRW",
        },
        {
            "currency": "BTC",
            "balance": "0.5",
            "locked": "0.1",
            "avg_buy_price": "95000000",
            "unit_currency": "KRW",
        },
        {"currency": "ETH", "balance": "0", "locked": "0", "unit_currency": "KRW"},
    ]
    [krw] = upbit.parse_balances(rows)
    assert (krw.total, krw.available, krw.locked) == (
        Decimal("1005000.0"),
        Decimal("1000000.0"),
        Decimal("5000"),
    )
    [btc] = upbit.parse_positions(rows)
    assert btc.asset == "BTC" and btc.quantity == Decimal("0.6")
    assert btc.avg_price == Decimal("95000000") and btc.symbol == "KRW-BTC"


def test_upbit_markets_and_bodies() -> None:
    markets = upbit.parse_markets(
        [
            {
                "market": "KRW-BTC",
                "korean_name": "비트코인",
                "english_name": "Bitcoin",
                "market_warning": "NONE",
            },
            {"market": "XYZ-ABC"},
        ]
    )
    assert [m.symbol for m in markets] == ["KRW-BTC"]
    assert markets[0].min_notional == Decimal("5000") and markets[0].tick_size is None
    buy = OrderRequest(
        symbol="KRW-BTC",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(0),
        client_order_id="c",
        quote_amount=Decimal("1E+4"),
    )
    assert upbit.order_body(buy) == {
        "market": "KRW-BTC",
        "side": "bid",
        "price": "10000",
        "ord_type": "price",
        "identifier": "c",
    }
    sell = OrderRequest(
        symbol="KRW-BTC",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.00010"),
        client_order_id="c",
    )
    assert upbit.order_body(sell)["ord_type"] == "market"
    assert upbit.order_body(sell)["volume"] == "0.0001"
    assert bithumb.order_body(buy)["order_type"] == "price"
    assert bithumb.order_body(buy)["client_order_id"] == "c"


def test_bithumb_short_create_answer() -> None:
    request = OrderRequest(
        symbol="KRW-BTC",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.001"),
        client_order_id="gw-9",
        limit_price=Decimal("140000000"),
    )
    order = bithumb.placed_order(
        {
            "order_id": "C0101000003152350309",
            "market": "KRW-BTC",
            "side": "bid",
            "order_type": "limit",
            "created_at": "2026-03-12T10:00:00+09:00",
        },
        request,
    )
    assert order.status is OrderStatus.SUBMITTED and order.client_order_id == "gw-9"
    assert order.broker_order_id == "C0101000003152350309"


def test_binance_order_full_and_cancel() -> None:
    raw = {
        "symbol": "BTCUSDT",
        "orderId": 28,
        "clientOrderId": "gw-1",
        "transactTime": 1507725176595,
        "price": "0.00000000",
        "origQty": "0.002",
        "executedQty": "0.002",
        "cummulativeQuoteQty": "190.00",
        "status": "FILLED",
        "type": "MARKET",
        "side": "BUY",
        "fills": [
            {"price": "95000", "qty": "0.001", "commission": "0.1", "commissionAsset": "USDT"},
            {"price": "95000", "qty": "0.001", "commission": "0.1", "commissionAsset": "USDT"},
        ],
    }
    order = binance.parse_order(raw)
    assert order.status is OrderStatus.FILLED and order.average_fill_price == Decimal("95000")
    assert order.fee == Decimal("0.2") and order.limit_price is None
    cancel = binance.parse_order(
        {
            "symbol": "BTCUSDT",
            "orderId": 3,
            "origClientOrderId": "gw-3",
            "clientOrderId": "cancel-x",
            "status": "CANCELED",
            "origQty": "1",
            "executedQty": "0",
            "type": "LIMIT",
            "side": "SELL",
            "price": "1.5",
        },
        cancel=True,
    )
    assert cancel.client_order_id == "gw-3" and cancel.status is OrderStatus.CANCELLED


def test_binance_exchange_info_and_account() -> None:
    [rule] = binance.parse_exchange_info(
        {
            "symbols": [
                {
                    "symbol": "BTCUSDT",
                    "status": "TRADING",
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                    "filters": [
                        {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                        {"filterType": "LOT_SIZE", "stepSize": "0.00001000"},
                        {"filterType": "MIN_NOTIONAL", "minNotional": "5.00000000"},
                    ],
                }
            ]
        }
    )
    assert (rule.tick_size, rule.lot_size, rule.min_notional) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("5"),
    )
    account = {
        "balances": [
            {"asset": "BTC", "free": "0.5", "locked": "0.1"},
            {"asset": "USDT", "free": "1000", "locked": "0"},
        ]
    }
    assert binance.parse_account_balances(account)[0].currency == "USDT"
    assert binance.parse_account_positions(account)[0].quantity == Decimal("0.6")
    params = binance.order_params(
        OrderRequest(
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity=Decimal(0),
            client_order_id="gw-4",
            quote_amount=Decimal("30"),
        )
    )
    assert params["quoteOrderQty"] == "30" and "quantity" not in params


def test_times_are_aware_utc() -> None:
    assert parse_time("2026-03-02T09:30:00+09:00") == dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)
    assert parse_time(1_700_000_000_000).tzinfo is dt.UTC
