"""pyupbit (pinned 0.2.34) against the Upbit simulator, its hard-coded host rewritten."""

from __future__ import annotations

import pytest

from tests.fidelity.crypto.conftest import ledger_placed, sim_price

pyupbit = pytest.importorskip("pyupbit")

ACCESS, SECRET = "UPBIT-ACCESS", "UPBIT-SECRET-0123456789abcdef0123456789"


def test_pyupbit_quotation(pyupbit_at: str) -> None:
    assert "KRW-BTC" in pyupbit.get_tickers(fiat="KRW")
    price = pyupbit.get_current_price("KRW-BTC")
    assert price == pytest.approx(sim_price(pyupbit_at, "KRW-BTC"), rel=0.01)
    prices = pyupbit.get_current_price(["KRW-BTC", "KRW-ETH"])
    assert set(prices) == {"KRW-BTC", "KRW-ETH"}
    book = pyupbit.get_orderbook("KRW-BTC")
    assert book["orderbook_units"][0]["ask_price"] > book["orderbook_units"][0]["bid_price"]


def test_pyupbit_balance_order_cancel(pyupbit_at: str) -> None:
    upbit = pyupbit.Upbit(ACCESS, SECRET)
    balances, limits = upbit.get_balances(contain_req=True)
    assert limits["group"] == "default" and limits["sec"] >= 0
    assert upbit.get_balance("KRW") > 0
    assert upbit.get_balance("KRW-BTC") > 0
    chance = upbit.get_chance("KRW-BTC")
    assert chance["market"]["id"] == "KRW-BTC"
    price = pyupbit.get_tick_size(sim_price(pyupbit_at, "KRW-BTC") * 0.8)
    placed = upbit.buy_limit_order("KRW-BTC", price, 0.001)
    assert "uuid" in placed, placed
    assert upbit.get_order(placed["uuid"])["state"] == "wait"  # GET with a form body
    assert placed["uuid"] in [o["uuid"] for o in upbit.get_order("KRW-BTC")]  # legacy /v1/orders
    cancelled = upbit.cancel_order(placed["uuid"])  # DELETE with a JSON body
    assert cancelled["uuid"] == placed["uuid"]
    assert upbit.get_individual_order(placed["uuid"])["state"] == "cancel"
    bought = upbit.buy_market_order("KRW-BTC", 10000)
    assert upbit.get_order(bought["uuid"])["executed_volume"] != "0"
    sold = upbit.sell_market_order("KRW-BTC", 0.0001)
    assert upbit.get_order(sold["uuid"])["state"] == "done"
    placed_ids = {e["order_no"] for e in ledger_placed(pyupbit_at)}
    assert {placed["uuid"], bought["uuid"], sold["uuid"]} <= placed_ids


def test_pyupbit_error_classes(pyupbit_at: str) -> None:
    upbit = pyupbit.Upbit(ACCESS, "wrong-secret")
    with pytest.raises(pyupbit.errors.JwtVerification):
        upbit.get_balances()
    poor = pyupbit.Upbit(ACCESS, SECRET)
    assert (
        poor.buy_limit_order("KRW-BTC", 1000, 1) is None
    )  # InsufficientFundsBid caught and printed
