"""Cancel-all, my trades, cancel-and-new and bulk cancel, driven by ccxt and pyupbit unchanged.

Each test gets simulators of its own (``fresh_server``): these calls change every open order, and
Upbit's bulk cancel allows one request per 2 seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from simulators.server import ServerHandle
from tests.fidelity.crypto.conftest import ACCOUNTS, ledger_placed, sim_price
from tests.fidelity.crypto.test_ccxt import CONFIG, below_market, make_exchange

ccxt = pytest.importorskip("ccxt")
pyupbit = pytest.importorskip("pyupbit")

Fresh = Callable[[str], ServerHandle]


def exchange_at(fresh_server: Fresh, name: str) -> tuple[str, Any]:
    base = fresh_server(name).url
    exchange = make_exchange(name, base)
    exchange.load_markets()
    return base, exchange


def resting_buys(name: str, base: str, exchange: Any, count: int) -> list[str]:
    """``count`` limit buys below the market (a tick apart), as ccxt places them."""
    price = below_market(name, base)
    step = 1000.0 if CONFIG[name]["quote"] == "KRW" else 0.01
    return [
        exchange.create_order(CONFIG[name]["symbol"], "limit", "buy", 0.001, price - i * step)["id"]
        for i in range(count)
    ]


# ---- Binance ------------------------------------------------------------------------------------


def test_ccxt_binance_cancel_all_orders(fresh_server: Fresh) -> None:
    base, exchange = exchange_at(fresh_server, "binance")
    ids = resting_buys("binance", base, exchange, 2)
    cancelled = exchange.cancel_all_orders("BTC/USDT")
    assert sorted(o["id"] for o in cancelled) == sorted(ids)
    assert {o["status"] for o in cancelled} == {"canceled"}
    assert exchange.fetch_open_orders("BTC/USDT") == []
    with pytest.raises(ccxt.OrderNotFound):  # -2011: nothing left to cancel
        exchange.cancel_all_orders("BTC/USDT")


def test_ccxt_binance_fetch_my_trades(fresh_server: Fresh) -> None:
    base, exchange = exchange_at(fresh_server, "binance")
    buy = exchange.create_order("BTC/USDT", "market", "buy", 0.001, sim_price(base, "BTCUSDT"))
    sell = exchange.create_order("BTC/USDT", "market", "sell", 0.0005)
    trades = exchange.fetch_my_trades("BTC/USDT")
    assert [(t["order"], t["side"]) for t in trades] == [(buy["id"], "buy"), (sell["id"], "sell")]
    bought = trades[0]
    assert bought["symbol"] == "BTC/USDT" and bought["takerOrMaker"] == "taker"
    assert bought["fee"]["currency"] == "BTC" and bought["fee"]["cost"] == pytest.approx(
        bought["amount"] * 0.001
    )
    assert bought["cost"] == pytest.approx(bought["amount"] * bought["price"])
    since = exchange.fetch_my_trades("BTC/USDT", since=trades[0]["timestamp"])  # startTime
    assert [t["id"] for t in since] == [t["id"] for t in trades]
    assert exchange.fetch_my_trades("BTC/USDT", since=trades[1]["timestamp"] + 1) == []
    assert [t["id"] for t in exchange.fetch_my_trades("BTC/USDT", limit=1)] == [trades[1]["id"]]


# ---- Upbit --------------------------------------------------------------------------------------


def test_ccxt_upbit_edit_order_is_cancel_and_new(fresh_server: Fresh) -> None:
    base, exchange = exchange_at(fresh_server, "upbit")
    (old,) = resting_buys("upbit", base, exchange, 1)
    new_price = below_market("upbit", base) - 5000
    edited = exchange.edit_order(old, "BTC/KRW", "limit", "buy", 0.002, new_price)
    assert edited["id"] and edited["id"] != old
    new = exchange.fetch_order(edited["id"])
    assert (new["status"], new["price"], new["amount"]) == ("open", new_price, 0.002)
    assert exchange.fetch_order(old)["status"] == "canceled"
    assert [e["order_no"] for e in ledger_placed(base)] == [old, edited["id"]]


def test_ccxt_upbit_bulk_cancel_through_the_implicit_api(fresh_server: Fresh) -> None:
    base, exchange = exchange_at(fresh_server, "upbit")
    ids = resting_buys("upbit", base, exchange, 2)
    answer = exchange.private_delete_orders_open({"cancel_side": "bid", "pairs": "KRW-BTC"})
    assert answer["success"]["count"] == 2 and answer["failed"]["count"] == 0
    assert {o["uuid"] for o in answer["success"]["orders"]} == set(ids)
    assert exchange.fetch_open_orders("BTC/KRW") == []


def test_pyupbit_signs_and_parses_bulk_cancel_and_cancel_and_new(
    fresh_server: Fresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyupbit has neither call; its own signer and request helpers drive them unchanged."""
    from pyupbit.request_api import _send_delete_request, _send_post_request

    server = fresh_server("upbit")
    host = "https://api.upbit.com"
    _redirect(monkeypatch, host, server.url)
    keys = ACCOUNTS["upbit"]
    upbit = pyupbit.Upbit(keys["access_key"], keys["secret_key"])
    price = below_market("upbit", server.url)
    first = upbit.buy_limit_order("KRW-BTC", price, 0.001)
    second = upbit.buy_limit_order("KRW-BTC", price - 1000, 0.001)
    replace = {
        "prev_order_uuid": first["uuid"],
        "new_ord_type": "limit",
        "new_price": str(int(price - 2000)),
        "new_volume": "remain_only",
    }
    replaced, limits = _send_post_request(
        f"{host}/v1/orders/cancel_and_new", headers=upbit._request_headers(replace), data=replace
    )
    assert limits["group"] == "order" and replaced["uuid"] == first["uuid"]
    bulk = {"cancel_side": "bid"}
    cancelled, limits = _send_delete_request(
        f"{host}/v1/orders/open", headers=upbit._request_headers(bulk), data=bulk
    )
    assert limits == {"group": "order-cancel-all", "min": 1800, "sec": 0}
    assert {o["uuid"] for o in cancelled["success"]["orders"]} == {
        second["uuid"],
        replaced["new_order_uuid"],
    }
    assert upbit.get_order("KRW-BTC") == []


def _redirect(monkeypatch: pytest.MonkeyPatch, host: str, base: str) -> None:
    import requests

    original = requests.sessions.Session.request

    def request(self: requests.Session, method: str, url: str, *a: Any, **kw: Any) -> Any:
        if isinstance(url, str) and url.startswith(host):
            url = base + url[len(host) :]
        return original(self, method, url, *a, **kw)

    monkeypatch.setattr(requests.sessions.Session, "request", request)


# ---- Bithumb ------------------------------------------------------------------------------------


def test_ccxt_bithumb_cancel_orders_is_the_bulk_cancel(fresh_server: Fresh) -> None:
    base, exchange = exchange_at(fresh_server, "bithumb")
    ids = resting_buys("bithumb", base, exchange, 2)
    cancelled = exchange.cancel_orders(ids, "BTC/KRW")
    assert [o["id"] for o in cancelled] == ids
    assert {exchange.fetch_order(i, "BTC/KRW")["status"] for i in ids} == {"canceled"}
