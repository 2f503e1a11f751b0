"""python-binance (pinned 1.0.37) against the Binance simulator via ``Client.API_URL``."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.server import ServerHandle
from tests.fidelity.crypto.conftest import ledger_placed, sim_price

binance_client = pytest.importorskip("binance.client")
binance_exceptions = pytest.importorskip("binance.exceptions")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, binance_server: ServerHandle) -> Any:
    """A python-binance Client whose API_URL is the simulator (construction pings it)."""
    monkeypatch.setattr(binance_client.Client, "API_URL", f"{binance_server.url}/api")
    return binance_client.Client("BINANCE-KEY", "BINANCE-SECRET")


def test_python_binance_market_data(client: Any, binance_server: ServerHandle) -> None:
    assert client.get_server_time()["serverTime"] > 0
    info = client.get_symbol_info("BTCUSDT")
    assert {f["filterType"] for f in info["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}
    assert float(client.get_symbol_ticker(symbol="BTCUSDT")["price"]) == pytest.approx(
        sim_price(binance_server.url, "BTCUSDT"), rel=0.01
    )
    assert client.get_ticker(symbol="BTCUSDT")["symbol"] == "BTCUSDT"
    assert client.get_order_book(symbol="BTCUSDT", limit=5)["asks"]


def test_python_binance_balance_order_cancel(client: Any, binance_server: ServerHandle) -> None:
    assert float(client.get_asset_balance(asset="USDT")["free"]) > 0
    price = f"{sim_price(binance_server.url, 'BTCUSDT') * 0.8:.2f}"
    order = client.order_limit_buy(
        symbol="BTCUSDT", quantity="0.001", price=price, newClientOrderId="pb-1"
    )
    assert order["status"] == "NEW" and order["clientOrderId"] == "pb-1"
    assert client.get_order(symbol="BTCUSDT", orderId=order["orderId"])["status"] == "NEW"
    assert (
        client.get_order(symbol="BTCUSDT", origClientOrderId="pb-1")["orderId"] == order["orderId"]
    )
    assert [o["orderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == [order["orderId"]]
    with pytest.raises(binance_exceptions.BinanceAPIException) as dup:
        client.order_limit_buy(
            symbol="BTCUSDT", quantity="0.001", price=price, newClientOrderId="pb-1"
        )
    assert dup.value.code == -2010
    cancelled = client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])  # DELETE, form body
    assert cancelled["status"] == "CANCELED"
    sold = client.order_market_sell(symbol="BTCUSDT", quantity="0.001")
    assert sold["status"] == "FILLED" and sold["fills"][0]["commissionAsset"] == "USDT"
    assert (
        len([e for e in ledger_placed(binance_server.url) if e["client_order_id"] == "pb-1"]) == 1
    )
    with pytest.raises(binance_exceptions.BinanceAPIException) as filt:
        client.order_limit_buy(symbol="BTCUSDT", quantity="0.001", price="1.001")
    assert (filt.value.code, filt.value.message) == (-1013, "Filter failure: PRICE_FILTER")
