"""Tick, lot and notional checks, decimal formatting and the market cache (no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers import MarketRule, OrderRequest, OrderType, Side
from crypto_exchanges._rules import MarketCache, check_order, format_decimal
from crypto_exchanges.upbit.mapping import tick_for
from web_server.errors import InvalidOrder

BTCUSDT = MarketRule(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.00001"),
    min_notional=Decimal("5"),
)


def _req(**kw: object) -> OrderRequest:
    base: dict[str, object] = dict(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.001"),
        client_order_id="c1",
        limit_price=Decimal("76000.00"),
    )
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.00100"), "0.001"),
        (Decimal("1E-8"), "0.00000001"),
        (Decimal("140000000"), "140000000"),
        (Decimal("-0"), "0"),
        (Decimal("5.50"), "5.5"),
    ],
)
def test_format_decimal_has_no_exponent(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


def test_a_valid_order_passes() -> None:
    check_order(_req(), BTCUSDT, broker="BINANCE")


@pytest.mark.parametrize(
    ("request_kw", "code", "words"),
    [
        ({"limit_price": Decimal("76000.005")}, "RULE_TICK", "tick size"),
        ({"quantity": Decimal("0.000001")}, "RULE_LOT", "lot size"),
        ({"quantity": Decimal("0.00005")}, "RULE_MIN_NOTIONAL", "minimum notional"),
        ({"limit_price": None}, "RULE_SHAPE", "limit_price"),
        ({"quantity": Decimal("0")}, "RULE_SHAPE", "quantity"),
        (
            {"order_type": OrderType.MARKET, "quote_amount": Decimal("4")},
            "RULE_MIN_NOTIONAL",
            "minimum notional",
        ),
        (
            {"order_type": OrderType.LIMIT, "quote_amount": Decimal("10")},
            "RULE_SHAPE",
            "quote_amount",
        ),
    ],
)
def test_broken_rules_are_named(request_kw: dict, code: str, words: str) -> None:
    kw = dict(request_kw)
    if kw.get("order_type") is OrderType.MARKET:
        kw.setdefault("limit_price", None)
    with pytest.raises(InvalidOrder) as info:
        check_order(_req(**kw), BTCUSDT, broker="BINANCE")
    assert info.value.broker_code == code and words in info.value.detail
    assert info.value.broker == "BINANCE"


def test_untradable_market_is_refused() -> None:
    halted = MarketRule(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", is_tradable=False)
    with pytest.raises(InvalidOrder, match="not tradable"):
        check_order(_req(), halted, broker="BINANCE")


def test_price_dependent_tick_rule() -> None:
    krw = MarketRule(
        symbol="KRW-BTC",
        base_asset="BTC",
        quote_asset="KRW",
        lot_size=Decimal("0.00000001"),
        min_notional=Decimal("5000"),
    )
    rule = lambda price: tick_for("KRW", price)  # noqa: E731
    ok = _req(symbol="KRW-BTC", limit_price=Decimal("112000000"), quantity=Decimal("0.0001"))
    check_order(ok, krw, broker="UPBIT", tick_rule=rule)
    with pytest.raises(InvalidOrder, match="tick size 1000"):
        check_order(
            _req(symbol="KRW-BTC", limit_price=Decimal("112000500"), quantity=Decimal("0.0001")),
            krw,
            broker="UPBIT",
            tick_rule=rule,
        )
    # 3,005 KRW is on the 1-won grid of the 1,000–5,000 band.
    check_order(
        _req(symbol="KRW-BTC", limit_price=Decimal("3005"), quantity=Decimal("2")),
        krw,
        broker="UPBIT",
        tick_rule=rule,
    )


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("2500000", "1000"),
        ("1500000", "1000"),
        ("700000", "500"),
        ("150000", "100"),
        ("70000", "50"),
        ("20000", "10"),
        ("7000", "5"),
        ("3000", "1"),
        ("500", "1"),
        ("50", "0.01"),
        ("5", "0.001"),
        ("0.5", "0.0001"),
    ],
)
def test_upbit_krw_table(price: str, tick: str) -> None:
    assert tick_for("KRW", Decimal(price)) == Decimal(tick)


def test_market_cache_reuses_within_ttl_and_refetches_after() -> None:
    now = [0.0]
    fetches: list[int] = []

    def fetch() -> list[MarketRule]:
        fetches.append(1)
        return [BTCUSDT]

    cache = MarketCache(fetch, ttl=60, monotonic=lambda: now[0])
    assert cache.get("BTCUSDT") is BTCUSDT
    assert cache.get("ETHUSDT") is None
    now[0] = 59.0
    cache.markets()
    assert len(fetches) == 1
    now[0] = 60.0
    cache.markets()
    assert len(fetches) == 2
    cache.invalidate()
    cache.markets()
    assert len(fetches) == 3
