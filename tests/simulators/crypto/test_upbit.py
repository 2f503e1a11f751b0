"""The Upbit simulator over real HTTP: JWT, Remaining-Req, limits, identifiers, fills, faults."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest
import requests

from simulators.server import ServerHandle
from simulators.upbit import create_app
from tests.simulators.crypto.conftest import (
    TIMEOUT,
    UpbitClient,
    advance,
    create_account,
    frozen_clock,
    ledger,
    pin,
    upbit_token,
)

REMAINING_REQ = re.compile(r"^group=([a-z\-]+); min=([0-9]+); sec=([0-9]+)$")
Serve = Callable[..., ServerHandle]


@pytest.fixture
def upbit(serve: Serve) -> tuple[str, UpbitClient]:
    """A fresh Upbit simulator on a frozen clock, with one funded account."""
    base = serve(create_app(seed=7, clock=frozen_clock())).url
    create_account(
        base,
        {"access_key": "ak-1", "secret_key": "sk-1", "balances": {"KRW": "10000000", "BTC": "0.5"}},
    )
    return base, UpbitClient(base, "ak-1", "sk-1")


def error_name(resp: requests.Response) -> Any:
    return resp.json()["error"]["name"]


# ---- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_jwt_signed_with_hs256_or_hs512_is_accepted(
    upbit: tuple[str, UpbitClient], algorithm: str
) -> None:
    base, _ = upbit
    headers = {"Authorization": upbit_token("ak-1", "sk-1", algorithm=algorithm)}
    resp = requests.get(f"{base}/v1/accounts", headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert {row["currency"]: row["balance"] for row in resp.json()} == {
        "KRW": "10000000",
        "BTC": "0.5",
    }


def test_missing_token_is_refused(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    resp = requests.get(f"{base}/v1/accounts", timeout=TIMEOUT)
    assert resp.status_code == 401
    assert error_name(resp) == "no_authorization_token"


def test_wrong_secret_fails_jwt_verification(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    headers = {"Authorization": upbit_token("ak-1", "not-the-secret")}
    resp = requests.get(f"{base}/v1/accounts", headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {"name": "jwt_verification", "message": "Jwt 토큰 검증에 실패했습니다."}
    }


def test_unknown_access_key_is_refused(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    headers = {"Authorization": upbit_token("nobody", "sk-1")}
    resp = requests.get(f"{base}/v1/accounts", headers=headers, timeout=TIMEOUT)
    assert (resp.status_code, error_name(resp)) == (401, "invalid_access_key")


def test_query_hash_must_cover_the_parameters_sent(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    signed_for_eth = upbit_token("ak-1", "sk-1", "market=KRW-ETH")
    resp = requests.get(
        f"{base}/v1/orders/chance?market=KRW-BTC",
        headers={"Authorization": signed_for_eth},
        timeout=TIMEOUT,
    )
    assert (resp.status_code, error_name(resp)) == (401, "invalid_query_payload")
    no_hash = upbit_token("ak-1", "sk-1")
    resp = requests.get(
        f"{base}/v1/orders/chance?market=KRW-BTC",
        headers={"Authorization": no_hash},
        timeout=TIMEOUT,
    )
    assert (resp.status_code, error_name(resp)) == (401, "invalid_query_payload")


def test_query_hash_over_a_form_body_on_get_is_accepted(upbit: tuple[str, UpbitClient]) -> None:
    """pyupbit's way: parameters as a form body on a GET, hash over the encoded body."""
    base, _ = upbit
    body = {"market": "KRW-BTC"}
    headers = {"Authorization": upbit_token("ak-1", "sk-1", "market=KRW-BTC")}
    resp = requests.get(f"{base}/v1/orders/chance", data=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["market"]["bid"]["min_total"] == "5000"


def test_reused_nonce_is_refused(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    token = upbit_token("ak-1", "sk-1", nonce="fixed-nonce")
    first = requests.get(f"{base}/v1/accounts", headers={"Authorization": token}, timeout=TIMEOUT)
    again = requests.get(f"{base}/v1/accounts", headers={"Authorization": token}, timeout=TIMEOUT)
    assert first.status_code == 200
    assert (again.status_code, error_name(again)) == (401, "nonce_used")


def test_expired_access_key_is_refused_after_a_year(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    assert client.get("/v1/accounts").status_code == 200
    advance(base, 366 * 86_400)
    resp = client.get("/v1/accounts")
    assert (resp.status_code, error_name(resp)) == (401, "expired_access_key")


# ---- Remaining-Req and rate limits -------------------------------------------------------------


def test_every_response_carries_remaining_req(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    public = requests.get(f"{base}/v1/ticker?markets=KRW-BTC", timeout=TIMEOUT)
    private = client.get("/v1/accounts")
    failed = requests.get(f"{base}/v1/accounts", timeout=TIMEOUT)
    order = client.post(
        "/v1/orders",
        {
            "market": "KRW-BTC",
            "side": "bid",
            "ord_type": "limit",
            "price": "1000000",
            "volume": "0.01",
        },
    )
    groups = []
    for resp in (public, private, failed, order):
        match = REMAINING_REQ.match(resp.headers["Remaining-Req"])
        assert match, resp.headers["Remaining-Req"]
        groups.append(match.group(1))
    assert groups == ["ticker", "default", "default", "order"]
    assert REMAINING_REQ.match(private.headers["Remaining-Req"]).group(3) == "29"  # type: ignore[union-attr]
    assert REMAINING_REQ.match(order.headers["Remaining-Req"]).group(3) == "11"  # type: ignore[union-attr]


def test_order_group_limit_answers_429_then_418(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock(), order_rate=3, ban_after=3)).url
    create_account(
        base, {"access_key": "ak-r", "secret_key": "sk-r", "balances": {"KRW": "100000000"}}
    )
    client = UpbitClient(base, "ak-r", "sk-r")
    body = {
        "market": "KRW-XRP",
        "side": "bid",
        "ord_type": "limit",
        "price": "1000",
        "volume": "10",
    }
    statuses = [client.post("/v1/orders", body).status_code for _ in range(8)]
    assert statuses[:3] == [201, 201, 201]
    assert 429 in statuses and statuses[-1] == 418
    assert statuses.index(418) > statuses.index(429)
    limited = client.post("/v1/orders", body)
    assert limited.status_code == 418
    assert REMAINING_REQ.match(limited.headers["Remaining-Req"])
    # The other group is counted apart (but the key is banned as a whole).
    assert client.get("/v1/accounts").status_code == 418


def test_429_body_is_pyupbits_plain_text(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock(), quotation_rate=2, ban_after=100)).url
    answers = [requests.get(f"{base}/v1/market/all", timeout=TIMEOUT) for _ in range(4)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused and refused[0].text == "Too many API requests."
    assert refused[0].headers["Remaining-Req"].endswith("sec=0")


def test_order_rate_was_8_before_2026_08_21(serve: Serve) -> None:
    from datetime import UTC, datetime

    from simulators.engine import SimClock

    base = serve(create_app(clock=SimClock.frozen(datetime(2026, 8, 1, tzinfo=UTC)))).url
    create_account(
        base, {"access_key": "ak-o", "secret_key": "sk-o", "balances": {"KRW": "1000000"}}
    )
    client = UpbitClient(base, "ak-o", "sk-o")
    resp = client.post(
        "/v1/orders",
        {"market": "KRW-XRP", "side": "bid", "ord_type": "limit", "price": "1000", "volume": "10"},
    )
    assert resp.headers["Remaining-Req"] == "group=order; min=1800; sec=7"


# ---- identifiers and validation ----------------------------------------------------------------


def limit_bid(
    client: UpbitClient,
    price: str,
    volume: str,
    identifier: str | None = None,
    market: str = "KRW-BTC",
) -> requests.Response:
    body = {"market": market, "side": "bid", "ord_type": "limit", "price": price, "volume": volume}
    if identifier:
        body["identifier"] = identifier
    return client.post("/v1/orders", body)


def test_identifier_is_unique_forever_even_after_cancel(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000")
    placed = limit_bid(client, "90000000", "0.001", "cid-1")
    assert placed.status_code == 201
    assert placed.json()["identifier"] == "cid-1"
    assert client.delete("/v1/order", {"identifier": "cid-1"}).status_code == 200
    again = limit_bid(client, "90000000", "0.001", "cid-1")
    assert (again.status_code, error_name(again)) == (400, "duplicate_identifier")


def test_identifier_is_burned_by_a_rejected_order(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000")
    too_big = limit_bid(client, "90000000", "1", "cid-x")
    assert (too_big.status_code, error_name(too_big)) == (400, "insufficient_funds_bid")
    assert "KRW" in too_big.json()["error"]["message"]
    retry = limit_bid(client, "90000000", "0.001", "cid-x")
    assert (retry.status_code, error_name(retry)) == (400, "duplicate_identifier")


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"price": "90000500", "volume": "0.001"}, "invalid_price_bid"),  # tick is 1,000 KRW here
        ({"price": "90000000", "volume": "0.00005"}, "under_min_total_bid"),  # 4,500 KRW
        ({"price": "90000000", "volume": "0.000000001"}, "validation_error"),  # 9 decimals
        ({"volume": "0.001"}, "create_bid_error"),  # a limit order without price
    ],
)
def test_rule_violations_use_upbits_error_names(
    upbit: tuple[str, UpbitClient], body: dict[str, str], name: str
) -> None:
    _base, client = upbit
    resp = client.post(
        "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "limit", **body}
    )
    assert (resp.status_code, error_name(resp)) == (400, name)


def test_low_priced_market_uses_the_krw_tick_table(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-XRP", "3000")
    assert (
        limit_bid(client, "2999", "10", market="KRW-XRP").status_code == 201
    )  # tick 1 under 5,000
    assert error_name(limit_bid(client, "2999.5", "10", market="KRW-XRP")) == "invalid_price_bid"


def test_unknown_order_is_order_not_found(upbit: tuple[str, UpbitClient]) -> None:
    _base, client = upbit
    resp = client.get("/v1/order", {"uuid": "00000000-0000-4000-8000-000000000000"})
    assert (resp.status_code, error_name(resp)) == (404, "order_not_found")


# ---- order states, partial fills, fees ---------------------------------------------------------


def test_limit_order_fills_partially_then_completely_with_fees(
    upbit: tuple[str, UpbitClient],
) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000", liquidity="0.0004")
    placed = limit_bid(client, "100000000", "0.001", "fill-1")
    assert placed.status_code == 201
    assert (
        placed.json()["state"] == "wait" and placed.json()["executed_volume"] == "0"
    )  # as accepted
    first = client.get("/v1/order", {"identifier": "fill-1"}).json()
    assert (first["state"], first["executed_volume"], first["remaining_volume"]) == (
        "wait",
        "0.0004",
        "0.0006",
    )
    assert first["paid_fee"] == "20"  # 40,000 KRW × 0.05 %
    assert first["reserved_fee"] == "50" and first["remaining_fee"] == "30"
    assert len(first["trades"]) == 1 and first["trades"][0]["funds"] == "40000"
    advance(base, 1)
    second = client.get("/v1/order", {"uuid": first["uuid"]}).json()
    assert (second["state"], second["executed_volume"]) == ("wait", "0.0008")
    advance(base, 1)
    done = client.get("/v1/order", {"uuid": first["uuid"]}).json()
    assert (done["state"], done["executed_volume"], done["paid_fee"], done["locked"]) == (
        "done",
        "0.001",
        "50",
        "0",
    )
    balances = {row["currency"]: row for row in client.get("/v1/accounts").json()}
    assert D(balances["KRW"]["balance"]) == D("10000000") - D("100000") - D("50")
    assert D(balances["BTC"]["balance"]) == D("0.501")


def test_cancel_answers_wait_then_the_order_is_cancel(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000", liquidity="0.0004")
    uuid = limit_bid(client, "100000000", "0.001").json()["uuid"]
    cancelled = client.delete("/v1/order", {"uuid": uuid})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "wait"
    after = client.get("/v1/order", {"uuid": uuid}).json()
    assert (after["state"], after["executed_volume"], after["remaining_volume"]) == (
        "cancel",
        "0.0004",
        "0.0006",
    )
    assert client.delete("/v1/order", {"uuid": uuid}).status_code == 404
    closed = client.get("/v1/orders/closed", {"market": "KRW-BTC", "state": "cancel"}).json()
    assert [o["uuid"] for o in closed] == [uuid]
    assert client.get("/v1/orders/open", {"market": "KRW-BTC"}).json() == []


def test_market_buy_by_amount_and_market_sell(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000")
    exact = client.post(
        "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}
    ).json()
    got = client.get("/v1/order", {"uuid": exact["uuid"]}).json()
    assert (got["state"], got["executed_volume"], got["executed_funds"], got["paid_fee"]) == (
        "done",
        "0.0001",
        "10000",
        "5",
    )
    assert got["price"] == "10000" and got["volume"] is None
    pin(base, "KRW-BTC", "140000000")
    dust = client.post(
        "/v1/orders", {"market": "KRW-BTC", "side": "bid", "ord_type": "price", "price": "10000"}
    ).json()
    got = client.get("/v1/order", {"uuid": dust["uuid"]}).json()
    assert got["state"] == "cancel" and D(got["executed_volume"]) == D(
        "0.00007142"
    )  # dust refunded
    sell = client.post(
        "/v1/orders", {"market": "KRW-BTC", "side": "ask", "ord_type": "market", "volume": "0.01"}
    ).json()
    got = client.get("/v1/order", {"uuid": sell["uuid"]}).json()
    assert (got["state"], got["executed_funds"], got["paid_fee"]) == ("done", "1400000", "700")
    bad = client.post(
        "/v1/orders",
        {"market": "KRW-BTC", "side": "ask", "ord_type": "market", "volume": "0.01", "price": "1"},
    )
    assert error_name(bad) == "create_ask_error"


def test_legacy_order_list_and_open_orders(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000")
    ids = [limit_bid(client, "90000000", "0.001", f"l-{i}").json()["uuid"] for i in range(3)]
    listed = client.get(
        "/v1/orders",
        {"market": "KRW-BTC", "state": "wait", "page": 1, "limit": 2, "order_by": "desc"},
    ).json()
    assert [o["uuid"] for o in listed] == ids[::-1][:2]
    page2 = client.get(
        "/v1/orders", {"market": "KRW-BTC", "state": "wait", "page": 2, "limit": 2}
    ).json()
    assert [o["uuid"] for o in page2] == [ids[0]]
    by_ids = client.get("/v1/orders", {"identifiers[]": ["l-0", "l-2"]}).json()
    assert sorted(o["identifier"] for o in by_ids) == ["l-0", "l-2"]
    assert len(client.get("/v1/orders/open", {"market": "KRW-BTC"}).json()) == 3


# ---- faults and the ledger ---------------------------------------------------------------------


def test_dropped_order_response_executes_once_and_is_found_by_identifier(
    upbit: tuple[str, UpbitClient],
) -> None:
    base, client = upbit
    pin(base, "KRW-BTC", "100000000")
    fault = requests.post(
        f"{base}/_sim/faults", json={"kind": "drop", "path_prefix": "/v1/orders"}, timeout=TIMEOUT
    )
    assert fault.status_code == 201
    with pytest.raises(requests.ConnectionError):
        limit_bid(client, "90000000", "0.001", "dropped-1")
    found = client.get("/v1/order", {"identifier": "dropped-1"})
    assert found.status_code == 200 and found.json()["state"] == "wait"
    placed = [e for e in ledger(base, "order_placed") if e["client_order_id"] == "dropped-1"]
    assert len(placed) == 1 and placed[0]["order_no"] == found.json()["uuid"]
    retry = limit_bid(client, "90000000", "0.001", "dropped-1")
    assert error_name(retry) == "duplicate_identifier"  # a blind resend cannot double it
    client.delete("/v1/order", {"uuid": found.json()["uuid"]})
    cancels = [e for e in ledger(base, "order_cancelled") if e["order_no"] == found.json()["uuid"]]
    assert len(cancels) == 1


def test_http_status_fault_answers_without_placing(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    body = {"error": {"name": "server_error", "message": "점검 중"}}
    requests.post(
        f"{base}/_sim/faults",
        json={"kind": "http_status", "status": 503, "body": body, "path_prefix": "/v1/orders"},
        timeout=TIMEOUT,
    )
    resp = limit_bid(client, "90000000", "0.001", "fault-1")
    assert resp.status_code == 503
    assert client.get("/v1/order", {"identifier": "fault-1"}).status_code == 404
    assert not [e for e in ledger(base, "order_placed") if e["client_order_id"] == "fault-1"]


def test_public_quotation_endpoints(upbit: tuple[str, UpbitClient]) -> None:
    base, _ = upbit
    pin(base, "KRW-ETH", "5000000")
    markets = requests.get(f"{base}/v1/market/all?isDetails=true", timeout=TIMEOUT).json()
    assert {
        "market": "KRW-BTC",
        "korean_name": "비트코인",
        "english_name": "Bitcoin",
    }.items() <= markets[0].items()
    repeated = requests.get(
        f"{base}/v1/ticker?markets=KRW-ETH&markets=KRW-BTC", timeout=TIMEOUT
    ).json()
    assert [t["market"] for t in repeated] == ["KRW-ETH", "KRW-BTC"]
    assert repeated[0]["trade_price"] == 5000000
    book = requests.get(f"{base}/v1/orderbook?markets=KRW-ETH", timeout=TIMEOUT).json()[0]
    assert book["orderbook_units"][0]["ask_price"] == 5000000
    assert book["orderbook_units"][0]["bid_price"] == 4999000
    missing = requests.get(f"{base}/v1/ticker?markets=KRW-NOPE", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Code not found"
