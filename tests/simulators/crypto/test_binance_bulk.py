"""Binance's cancel-all (``DELETE /api/v3/openOrders``), ``GET /api/v3/myTrades``, a late order
checked at its arrival time, and unknown paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from simulators.binance import create_app
from simulators.server import ServerHandle
from tests.simulators.crypto.conftest import (
    FROZEN_AT,
    TIMEOUT,
    BinanceClient,
    advance,
    binance_signature,
    create_account,
    frozen_clock,
    ledger,
    pin,
)

Serve = Callable[..., ServerHandle]
NOW_MS = int(FROZEN_AT.timestamp() * 1000)


def start(serve: Serve, **options: Any) -> tuple[str, BinanceClient]:
    """A fresh Binance simulator on a frozen clock with pinned prices and one funded account."""
    base = serve(create_app(seed=5, clock=frozen_clock(), **options)).url
    create_account(
        base, {"api_key": "bk", "secret_key": "bsecret", "balances": {"USDT": "100000", "BTC": "1"}}
    )
    pin(base, "BTCUSDT", "95000.00")
    pin(base, "ETHUSDT", "3500.00")
    return base, BinanceClient(base, "bk", "bsecret")


@pytest.fixture
def binance(serve: Serve) -> tuple[str, BinanceClient]:
    """The default simulator (see :func:`start`)."""
    return start(serve)


@pytest.fixture
def slow_refill(serve: Serve) -> tuple[str, BinanceClient]:
    """A simulator whose weight refills 1 a second, so used-weight headers can be compared."""
    return start(serve, weight_limit=60)


def new_order(client: BinanceClient, **params: Any) -> dict[str, Any]:
    resp = client.request("POST", "/api/v3/order", params, in_body=True)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def resting(client: BinanceClient, symbol: str, price: str, cid: str) -> int:
    body = {"symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    placed = new_order(client, **body, quantity="0.01", price=price, newClientOrderId=cid)
    return int(placed["orderId"])


def used_weight(resp: requests.Response) -> int:
    return int(resp.headers["X-MBX-USED-WEIGHT-1M"])


# ---- DELETE /api/v3/openOrders ----------------------------------------------------------------


def test_cancel_all_open_orders_on_a_symbol(slow_refill: tuple[str, BinanceClient]) -> None:
    base, client = slow_refill
    first = resting(client, "BTCUSDT", "90000.00", "o-1")
    second = resting(client, "BTCUSDT", "89000.00", "o-2")
    other = resting(client, "ETHUSDT", "3000.00", "o-3")
    before = used_weight(client.request("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}))
    resp = client.request("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert resp.status_code == 200, resp.text
    assert used_weight(resp) - before == 1 + 1  # the signer reads /time (weight 1) first
    reports = resp.json()
    assert [(r["orderId"], r["origClientOrderId"], r["status"]) for r in reports] == [
        (first, "o-1", "CANCELED"),
        (second, "o-2", "CANCELED"),
    ]
    assert len({r["clientOrderId"] for r in reports}) == 1  # one cancel request, one id
    assert reports[0]["transactTime"] == NOW_MS and reports[0]["orderListId"] == -1
    still = client.request("GET", "/api/v3/openOrders", {"symbol": "ETHUSDT"}).json()
    assert [o["orderId"] for o in still] == [other]
    assert len(ledger(base, "order_cancelled")) == 2
    nothing = client.request("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert (nothing.status_code, nothing.json()) == (
        400,
        {"code": -2011, "msg": "Unknown order sent."},
    )
    no_symbol = client.request("DELETE", "/api/v3/openOrders", {})
    assert no_symbol.json()["code"] == -1102


# ---- GET /api/v3/myTrades ---------------------------------------------------------------------


def test_my_trades_lists_fills_with_commission(binance: tuple[str, BinanceClient]) -> None:
    base, client = binance
    buy = new_order(client, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    advance(base, 3600)
    sell = new_order(client, symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.004")
    new_order(client, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.1")
    resp = client.request("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert resp.status_code == 200
    trades = resp.json()
    assert [(t["orderId"], t["isBuyer"]) for t in trades] == [
        (buy["orderId"], True),
        (sell["orderId"], False),
    ]
    bought = trades[0]
    assert set(bought) == {
        "symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty", "commission",
        "commissionAsset", "time", "isBuyer", "isMaker", "isBestMatch",
    }  # fmt: skip
    assert (bought["qty"], bought["commission"], bought["commissionAsset"]) == (
        "0.01000000",
        "0.00001000",  # 0.1 % of the bought BTC
        "BTC",
    )
    assert trades[1]["commissionAsset"] == "USDT" and trades[1]["isMaker"] is False
    assert bought["time"] == NOW_MS and trades[1]["time"] == NOW_MS + 3_600_000
    by_order = client.request(
        "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": sell["orderId"]}
    )
    assert [t["orderId"] for t in by_order.json()] == [sell["orderId"]]
    from_second = client.request(
        "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "fromId": trades[1]["id"]}
    )
    assert [t["id"] for t in from_second.json()] == [trades[1]["id"]]
    window = {"symbol": "BTCUSDT", "startTime": NOW_MS + 1, "endTime": NOW_MS + 3_600_000}
    assert [t["id"] for t in client.request("GET", "/api/v3/myTrades", window).json()] == [
        trades[1]["id"]
    ]
    newest = client.request("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "limit": 1}).json()
    assert [t["id"] for t in newest] == [trades[1]["id"]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"startTime": NOW_MS, "endTime": NOW_MS + 24 * 3_600_000 + 1}, -1127),
        ({"orderId": 1, "startTime": NOW_MS}, -1128),
        ({"fromId": 1, "endTime": NOW_MS}, -1128),
        ({}, -1102),  # no symbol
    ],
)
def test_my_trades_refuses_what_binance_refuses(
    binance: tuple[str, BinanceClient], params: dict[str, Any], code: int
) -> None:
    _, client = binance
    sent = params if code == -1102 else {"symbol": "BTCUSDT", **params}
    resp = client.request("GET", "/api/v3/myTrades", sent)
    assert (resp.status_code, resp.json()["code"]) == (400, code)


def test_my_trades_weight_is_5_with_order_id_else_20(
    slow_refill: tuple[str, BinanceClient],
) -> None:
    _, client = slow_refill
    first = used_weight(client.request("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}))
    second = used_weight(
        client.request("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": 7})
    )
    assert first == 20 + 1 and second - first == 5 + 1  # each request also reads /time (weight 1)


# ---- late: the timestamp is checked when the request arrived ----------------------------------


def test_late_order_is_checked_at_arrival_and_placed_later(
    binance: tuple[str, BinanceClient],
) -> None:
    base, client = binance
    requests.post(
        f"{base}/_sim/faults",
        json={"kind": "late", "sim_seconds": 120, "target": "order"},
        timeout=TIMEOUT,
    )
    params = {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "90000.00", "newClientOrderId": "late-1",
        "timestamp": NOW_MS,
    }  # fmt: skip
    payload = urlencode(params)
    signed = f"{payload}&signature={binance_signature('bsecret', payload)}"
    headers = {"X-MBX-APIKEY": "bk", "Content-Type": "application/x-www-form-urlencoded"}
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{base}/api/v3/order", data=signed, headers=headers, timeout=0.2)
    assert ledger(base, "order_placed") == []
    advance(base, 120)  # far past recvWindow (5 s): still valid, it was fresh on arrival
    placed = ledger(base, "order_placed")
    assert [e["client_order_id"] for e in placed] == ["late-1"]
    assert placed[0]["time"] == "2026-09-01T01:02:00+00:00"
    acted = [e for e in ledger(base, "fault_applied") if e["stage"] == "acted"]
    assert acted[0]["status"] == 200 and acted[0]["target"] == "order"


def test_unknown_path_answers_binances_json_error(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock())).url
    resp = requests.get(f"{base}/api/v3/rateLimit/order", timeout=TIMEOUT)
    assert resp.status_code == 404
    assert resp.json() == {"code": -1020, "msg": "This operation is not supported."}
    assert "X-MBX-USED-WEIGHT-1M" in resp.headers
    html = serve(create_app(clock=frozen_clock(), unknown_path="html")).url
    page = requests.get(f"{html}/sapi/v1/capital/config/getall", timeout=TIMEOUT)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
