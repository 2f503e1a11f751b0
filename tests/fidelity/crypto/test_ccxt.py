"""ccxt (pinned 4.5.90) against the Upbit, Bithumb and Binance simulators, base URL changed only."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.server import ServerHandle
from tests.fidelity.crypto.conftest import ledger_placed, sim_price

ccxt = pytest.importorskip("ccxt")

CONFIG: dict[str, dict[str, Any]] = {
    "upbit": {
        "symbol": "BTC/KRW",
        "id": "KRW-BTC",
        "key": "UPBIT-ACCESS",
        "secret": "UPBIT-SECRET-0123456789abcdef0123456789",
        "quote": "KRW",
    },
    "bithumb": {
        "symbol": "BTC/KRW",
        "id": "KRW-BTC",
        "key": "BITHUMB-ACCESS",
        "secret": "BITHUMB-SECRET-0123456789abcdef01234567",
        "quote": "KRW",
    },
    "binance": {
        "symbol": "BTC/USDT",
        "id": "BTCUSDT",
        "key": "BINANCE-KEY",
        "secret": "BINANCE-SECRET",
        "quote": "USDT",
    },
}


def make_exchange(name: str, base: str) -> Any:
    """The ccxt class pointed at ``base`` exactly as brokers/crypto.md §1.7, §2.6, §3.7 say."""
    cfg = CONFIG[name]
    options: dict[str, Any] = {
        "apiKey": cfg["key"],
        "secret": cfg["secret"],
        "enableRateLimit": False,
    }
    if name == "binance":
        options["options"] = {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    exchange = getattr(ccxt, name)(options)
    if name == "binance":
        exchange.urls["api"] = {
            "public": f"{base}/api/v3",
            "private": f"{base}/api/v3",
            "v1": f"{base}/api/v1",
            "sapi": f"{base}/sapi/v1",
        }
    else:
        exchange.urls["api"] = {"public": base, "private": base}
    return exchange


@pytest.fixture(params=["upbit", "bithumb", "binance"])
def venue(request: pytest.FixtureRequest) -> tuple[str, str, Any]:
    """(name, base URL, ccxt exchange) for each simulator."""
    name = request.param
    server: ServerHandle = request.getfixturevalue(f"{name}_server")
    return name, server.url, make_exchange(name, server.url)


def below_market(name: str, base: str) -> float:
    """A limit price 20 % under the market, on the venue's tick (1,000 KRW or 0.01 USDT here)."""
    price = sim_price(base, CONFIG[name]["id"]) * 0.8
    return float(int(price / 1000) * 1000) if CONFIG[name]["quote"] == "KRW" else round(price, 2)


def filled(name: str, order: dict[str, Any]) -> float:
    """The filled amount. ccxt 4.5.90's Bithumb parser sums ``trades`` with its gen-1/public
    trade keys (``units``/``trade_volume``), not the order trades' ``volume``, so it reports 0;
    the order's own ``executed_volume`` is the truth there."""
    if name == "bithumb":
        return float(order["info"]["executed_volume"])
    return float(order["filled"])


def fetch_by_client_id(name: str, exchange: Any, symbol: str, client_id: str) -> dict[str, Any]:
    """Each venue's by-client-id look-up as ccxt exposes it."""
    if name == "upbit":  # ccxt upbit has no unified path; its implicit API does (crypto.md §1.3)
        return exchange.parse_order(exchange.private_get_order({"identifier": client_id}))
    return exchange.fetch_order(None, symbol, {"clientOrderId": client_id})


def test_ccxt_limit_order_lifecycle(venue: tuple[str, str, Any]) -> None:
    name, base, exchange = venue
    cfg = CONFIG[name]
    symbol = cfg["symbol"]
    markets = exchange.load_markets()
    assert symbol in markets and markets[symbol]["id"] == cfg["id"]
    balance = exchange.fetch_balance()
    assert balance["free"]["BTC"] > 0 and balance["free"][cfg["quote"]] > 0
    price = below_market(name, base)
    client_id = f"ccxt-{name}-1"
    order = exchange.create_order(
        symbol, "limit", "buy", 0.001, price, {"clientOrderId": client_id}
    )
    assert order["id"]
    fetched = exchange.fetch_order(order["id"], symbol)
    assert (fetched["status"], fetched["side"], fetched["amount"]) == ("open", "buy", 0.001)
    assert fetched["clientOrderId"] == client_id
    by_client = fetch_by_client_id(name, exchange, symbol, client_id)
    assert by_client["id"] == order["id"]
    assert order["id"] in [o["id"] for o in exchange.fetch_open_orders(symbol)]
    exchange.cancel_order(order["id"], symbol)
    assert exchange.fetch_order(order["id"], symbol)["status"] == "canceled"
    assert order["id"] not in [o["id"] for o in exchange.fetch_open_orders(symbol)]
    assert len([e for e in ledger_placed(base) if e["client_order_id"] == client_id]) == 1


def test_ccxt_market_orders_fill_with_fees(venue: tuple[str, str, Any]) -> None:
    name, base, exchange = venue
    cfg = CONFIG[name]
    symbol = cfg["symbol"]
    exchange.load_markets()
    price = sim_price(base, cfg["id"])
    buy = exchange.create_order(symbol, "market", "buy", 0.001, price)
    got = exchange.fetch_order(buy["id"], symbol)
    assert got["status"] in {"closed", "canceled"}  # Upbit/Bithumb refund KRW dust as "cancel"
    # The price moves between reading it and ordering, so the amount bought varies a little.
    assert filled(name, got) == pytest.approx(0.001, rel=0.05)
    if name == "upbit":
        assert float(got["fee"]["cost"]) > 0 and got["fee"]["currency"] == "KRW"  # paid_fee
    elif name == "binance":  # fees travel in the FULL create response's fills, not GET order
        assert float(buy["fee"]["cost"]) > 0 and buy["fee"]["currency"] == "BTC"
    else:  # ccxt's Bithumb parser reports reserved_fee as the fee
        assert float(got["fee"]["cost"]) > 0
    sell = exchange.create_order(symbol, "market", "sell", 0.001)
    sold = exchange.fetch_order(sell["id"], symbol)
    assert sold["status"] == "closed" and filled(name, sold) == pytest.approx(0.001)


def test_ccxt_maps_errors(venue: tuple[str, str, Any]) -> None:
    name, base, exchange = venue
    cfg = CONFIG[name]
    symbol = cfg["symbol"]
    exchange.load_markets()
    price = below_market(name, base)
    expected = {
        "upbit": ccxt.InsufficientFunds,
        "bithumb": ccxt.ExchangeError,
        "binance": ccxt.InsufficientFunds,
    }[name]
    with pytest.raises(expected):
        exchange.create_order(symbol, "limit", "buy", 50, price)
    wrong = make_exchange(name, base)
    wrong.secret = "not-the-secret"
    with pytest.raises(ccxt.AuthenticationError if name != "bithumb" else ccxt.ExchangeError):
        wrong.fetch_balance()
