"""The Binance spot simulator over real HTTP: signatures, timing, client ids, filters, limits."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest
import requests

from simulators.binance import create_app
from simulators.binance.auth import sign
from simulators.server import ServerHandle
from tests.simulators.crypto.conftest import (
    TIMEOUT,
    BinanceClient,
    advance,
    create_account,
    frozen_clock,
    ledger,
    pin,
)

Serve = Callable[..., ServerHandle]


@pytest.fixture
def binance(serve: Serve) -> tuple[str, BinanceClient]:
    """A fresh Binance simulator on a frozen clock, with one funded account."""
    base = serve(create_app(seed=5, clock=frozen_clock())).url
    create_account(
        base, {"api_key": "bk", "secret_key": "bsecret", "balances": {"USDT": "100000", "BTC": "1"}}
    )
    return base, BinanceClient(base, "bk", "bsecret")


def code(resp: requests.Response) -> tuple[int, int]:
    return resp.status_code, resp.json()["code"]


def limit(
    client: BinanceClient, price: str, qty: str, cid: str | None = None, **extra: Any
) -> requests.Response:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": qty,
        "price": price,
        **extra,
    }
    if cid:
        params["newClientOrderId"] = cid
    return client.request("POST", "/api/v3/order", params, in_body=True)


def test_signature_matches_the_documented_test_vector() -> None:
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert (
        sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_signed_account_query_and_body(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    resp = client.request("GET", "/api/v3/account")
    assert resp.status_code == 200
    balances = {b["asset"]: b["free"] for b in resp.json()["balances"]}
    assert balances == {"USDT": "100000.00000000", "BTC": "1.00000000"}
    assert resp.json()["commissionRates"]["taker"] == "0.00100000"


def test_api_key_errors(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    assert code(client.request("GET", "/api/v3/account", api_key=None)) == (401, -2014)
    assert code(client.request("GET", "/api/v3/account", api_key="unknown")) == (401, -2015)


def test_bad_signature_is_1022(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    resp = client.request("GET", "/api/v3/account", secret="wrong")
    assert resp.status_code == 400
    assert resp.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_timestamp_outside_recv_window_is_1021(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    now = client.server_ms()
    stale = client.request("GET", "/api/v3/account", timestamp=now - 5001)
    assert code(stale) == (400, -1021)
    assert stale.json()["msg"] == "Timestamp for this request is outside of the recvWindow."
    assert (
        client.request(
            "GET", "/api/v3/account", {"recvWindow": 10000}, timestamp=now - 5001
        ).status_code
        == 200
    )
    ahead = client.request("GET", "/api/v3/account", timestamp=now + 1000)
    assert ahead.json() == {
        "code": -1021,
        "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
    }
    assert code(client.request("GET", "/api/v3/account", {"recvWindow": 60001})) == (400, -1131)
    no_ts = requests.get(
        f"{client.base}/api/v3/account?signature=00",
        headers={"X-MBX-APIKEY": "bk"},
        timeout=TIMEOUT,
    )
    assert code(no_ts) == (400, -1102)


def test_duplicate_client_id_among_open_orders_is_2010(binance: tuple[str, BinanceClient]) -> None:
    base, client = binance
    pin(base, "BTCUSDT", "95000.00")
    first = limit(client, "90000.00", "0.001", "cid-1")
    assert first.status_code == 200 and first.json()["status"] == "NEW"
    dup = limit(client, "90000.00", "0.001", "cid-1")
    assert dup.json() == {"code": -2010, "msg": "Duplicate order sent."}
    cancel = client.request(
        "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "cid-1"}
    )
    assert cancel.json()["status"] == "CANCELED" and cancel.json()["origClientOrderId"] == "cid-1"
    assert limit(client, "90000.00", "0.001", "cid-1").status_code == 200  # free again once closed
    by_client = client.request(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "cid-1"}
    )
    assert (
        by_client.json()["status"] == "NEW"
        and by_client.json()["orderId"] != first.json()["orderId"]
    )


def test_unknown_orders(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    assert client.request("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 42}).json() == {
        "code": -2013,
        "msg": "Order does not exist.",
    }
    assert client.request(
        "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"}
    ).json() == {"code": -2011, "msg": "Unknown order sent."}
    assert code(client.request("GET", "/api/v3/order", {"symbol": "NOPEUSDT", "orderId": 1})) == (
        400,
        -1121,
    )


@pytest.mark.parametrize(
    ("price", "qty", "failure"),
    [
        ("90000.005", "0.001", "PRICE_FILTER"),  # tick 0.01
        ("90000.00", "0.000015", "LOT_SIZE"),  # step 0.00001
        ("90000.00", "0.00005", "NOTIONAL"),  # 4.5 USDT < 5
    ],
)
def test_filter_failures_are_1013(
    binance: tuple[str, BinanceClient], price: str, qty: str, failure: str
) -> None:
    _base, client = binance
    resp = limit(client, price, qty)
    assert resp.status_code == 400
    assert resp.json() == {"code": -1013, "msg": f"Filter failure: {failure}"}
    test = client.request(
        "POST",
        "/api/v3/order/test",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": qty,
            "price": price,
        },
        in_body=True,
    )
    assert test.json()["msg"] == f"Filter failure: {failure}"


def test_insufficient_balance_is_2010(binance: tuple[str, BinanceClient]) -> None:
    _base, client = binance
    resp = limit(client, "90000.00", "5")
    assert resp.json() == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }


def test_partial_fills_fees_and_status_transitions(binance: tuple[str, BinanceClient]) -> None:
    base, client = binance
    pin(base, "BTCUSDT", "95000.00", liquidity="0.004")
    placed = limit(client, "95000.00", "0.01", "fill-1")
    body = placed.json()
    assert (body["status"], body["executedQty"], body["cummulativeQuoteQty"]) == (
        "PARTIALLY_FILLED",
        "0.00400000",
        "380.00000000",
    )
    assert body["fills"] == [
        {
            "price": "95000.00000000",
            "qty": "0.00400000",
            "commission": "0.00000400",
            "commissionAsset": "BTC",
            "tradeId": 1,
        }
    ]
    advance(base, 1)
    mid = client.request(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "fill-1"}
    ).json()
    assert (mid["status"], mid["executedQty"]) == ("PARTIALLY_FILLED", "0.00800000")
    advance(base, 1)
    done = client.request(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}
    ).json()
    assert (done["status"], done["executedQty"], done["cummulativeQuoteQty"]) == (
        "FILLED",
        "0.01000000",
        "950.00000000",
    )
    account = {b["asset"]: b for b in client.request("GET", "/api/v3/account").json()["balances"]}
    assert D(account["BTC"]["free"]) == D("1") + D("0.01") - D("0.00001")  # fee in BTC on a buy
    assert D(account["USDT"]["free"]) == D("100000") - D("950")
    assert (
        client.request(
            "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}
        ).json()["code"]
        == -2011
    )


def test_market_and_ioc_remainders_expire(binance: tuple[str, BinanceClient]) -> None:
    base, client = binance
    pin(base, "BTCUSDT", "95000.00", liquidity="0.004")
    market = client.request(
        "POST",
        "/api/v3/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"},
        in_body=True,
    ).json()
    assert (market["status"], market["executedQty"]) == ("EXPIRED", "0.00400000")
    assert (
        market["fills"][0]["commissionAsset"] == "USDT"
        and market["fills"][0]["commission"] == "0.38000000"
    )
    advance(base, 1)
    ioc = limit(client, "95000.00", "0.01", timeInForce="IOC").json()
    assert (ioc["status"], ioc["executedQty"]) == ("EXPIRED", "0.00400000")
    quote = client.request(
        "POST",
        "/api/v3/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "95"},
        in_body=True,
    ).json()
    assert quote["status"] in {"FILLED", "EXPIRED"} and quote["origQuoteOrderQty"] == "95.00000000"


def test_limit_maker_that_would_take_is_rejected(binance: tuple[str, BinanceClient]) -> None:
    base, client = binance
    pin(base, "BTCUSDT", "95000.00")
    resp = client.request(
        "POST",
        "/api/v3/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT_MAKER",
            "quantity": "0.001",
            "price": "95000.00",
        },
        in_body=True,
    )
    assert resp.json() == {"code": -2010, "msg": "Order would immediately match and take."}


def test_weight_headers_then_429_then_418_with_retry_after(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock(), weight_limit=60, ban_after=2)).url
    first = requests.get(f"{base}/api/v3/exchangeInfo", timeout=TIMEOUT)
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == "20"
    second = requests.get(f"{base}/api/v3/ticker/price?symbol=BTCUSDT", timeout=TIMEOUT)
    assert second.headers["X-MBX-USED-WEIGHT-1M"] == "22"
    answers = [requests.get(f"{base}/api/v3/exchangeInfo", timeout=TIMEOUT) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 429, 418, 418]  # 42, then 62 > 60
    limited, banned = answers[1], answers[2]
    assert limited.json()["code"] == -1003 and int(limited.headers["Retry-After"]) >= 1
    assert banned.json()["msg"].startswith("Way too much request weight used; IP banned until")
    assert int(banned.headers["Retry-After"]) >= 60


def test_order_count_headers_and_1015(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock(), orders_per_10s=2)).url
    create_account(base, {"api_key": "ok", "secret_key": "os", "balances": {"USDT": "100000"}})
    client = BinanceClient(base, "ok", "os")
    pin(base, "BTCUSDT", "95000.00")
    first = limit(client, "90000.00", "0.001")
    assert (first.headers["X-MBX-ORDER-COUNT-10S"], first.headers["X-MBX-ORDER-COUNT-1D"]) == (
        "1",
        "1",
    )
    assert limit(client, "90000.00", "0.001").headers["X-MBX-ORDER-COUNT-10S"] == "2"
    third = limit(client, "90000.00", "0.001")
    assert (
        third.status_code == 429
        and third.json()["code"] == -1015
        and "Retry-After" in third.headers
    )


def test_dropped_order_executes_once_and_is_found_by_client_id(
    binance: tuple[str, BinanceClient],
) -> None:
    base, client = binance
    pin(base, "BTCUSDT", "95000.00")
    requests.post(
        f"{base}/_sim/faults",
        json={"kind": "drop", "path_prefix": "/api/v3/order"},
        timeout=TIMEOUT,
    )
    with pytest.raises(requests.ConnectionError):
        limit(client, "90000.00", "0.001", "lost-1")
    found = client.request(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "lost-1"}
    )
    assert found.status_code == 200 and found.json()["status"] == "NEW"
    assert len([e for e in ledger(base, "order_placed") if e["client_order_id"] == "lost-1"]) == 1
    assert (
        limit(client, "90000.00", "0.001", "lost-1").json()["code"] == -2010
    )  # still open: no double


def test_exchange_info_filters_and_market_data(binance: tuple[str, BinanceClient]) -> None:
    base, _ = binance
    pin(base, "ETHUSDT", "3500.00")
    info = requests.get(f"{base}/api/v3/exchangeInfo?symbol=ETHUSDT", timeout=TIMEOUT).json()
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert info["symbols"][0]["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]
    assert requests.get(f"{base}/api/v3/ticker/price?symbol=ETHUSDT", timeout=TIMEOUT).json() == {
        "symbol": "ETHUSDT",
        "price": "3500.00000000",
    }
    depth = requests.get(f"{base}/api/v3/depth?symbol=ETHUSDT&limit=5", timeout=TIMEOUT).json()
    assert depth["asks"][0][0] == "3500.00000000" and depth["bids"][0][0] == "3499.99000000"
    assert (
        requests.get(f"{base}/api/v3/ticker/24hr?symbol=ETHUSDT", timeout=TIMEOUT).json()[
            "lastPrice"
        ]
        == "3500.00000000"
    )
