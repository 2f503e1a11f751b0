"""The Bithumb API 2.0 simulator over real HTTP: JWT timestamp, /v2 orders, client ids, limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests

from simulators.bithumb import create_app
from simulators.server import ServerHandle
from tests.simulators.crypto.conftest import (
    FROZEN_AT,
    TIMEOUT,
    UpbitClient,
    advance,
    create_account,
    frozen_clock,
    ledger,
    pin,
    upbit_token,
)

Serve = Callable[..., ServerHandle]
NOW_MS = int(FROZEN_AT.timestamp() * 1000)


@pytest.fixture
def bithumb(serve: Serve) -> tuple[str, UpbitClient]:
    """A fresh Bithumb simulator on a frozen clock, with one funded account."""
    base = serve(create_app(seed=3, clock=frozen_clock())).url
    create_account(
        base,
        {"access_key": "bk-1", "secret_key": "bs-1", "balances": {"KRW": "10000000", "BTC": "0.5"}},
    )
    client = UpbitClient(base, "bk-1", "bs-1", with_timestamp=True)

    def server_ms() -> int:
        clock = requests.get(f"{base}/_sim/clock", timeout=TIMEOUT).json()
        return NOW_MS + int(clock["offset_seconds"] * 1000)

    client.server_ms = server_ms  # Bithumb's timestamp claim is checked against the sim clock
    return base, client


def error(resp: requests.Response) -> tuple[int, Any]:
    return resp.status_code, resp.json()["error"]["name"]


def test_jwt_needs_a_fresh_timestamp(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    assert client.get("/v1/accounts").status_code == 200
    stale = upbit_token("bk-1", "bs-1", timestamp=NOW_MS - 31_000)
    resp = requests.get(f"{base}/v1/accounts", headers={"Authorization": stale}, timeout=TIMEOUT)
    assert error(resp) == (401, "expired_jwt")
    assert resp.json()["error"]["message"] == "Jwt가 만료되었습니다."
    no_timestamp = upbit_token("bk-1", "bs-1")
    resp = requests.get(
        f"{base}/v1/accounts", headers={"Authorization": no_timestamp}, timeout=TIMEOUT
    )
    assert error(resp) == (401, "jwt_verification")


def test_bad_signature_and_query_hash(bithumb: tuple[str, UpbitClient]) -> None:
    base, _ = bithumb
    wrong = upbit_token("bk-1", "other", timestamp=NOW_MS)
    assert error(
        requests.get(f"{base}/v1/accounts", headers={"Authorization": wrong}, timeout=TIMEOUT)
    ) == (401, "jwt_verification")
    mismatch = upbit_token("bk-1", "bs-1", "uuid=other", timestamp=NOW_MS)
    resp = requests.get(
        f"{base}/v1/order?uuid=C0101000000000000001",
        headers={"Authorization": mismatch},
        timeout=TIMEOUT,
    )
    assert error(resp) == (401, "invalid_query_payload")


def test_query_hash_in_encode_uri_component_form(bithumb: tuple[str, UpbitClient]) -> None:
    """ccxt's Bithumb hash: ``k=encodeURIComponent(v)`` pairs of the JSON body."""
    base, _ = bithumb
    pin(base, "KRW-BTC", "100000000")
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "order_type": "limit",
        "price": "90000000",
        "volume": "0.001",
        "client_order_id": "x:y z",
    }
    hashed = "&".join(f"{k}={quote(v, safe='-_.!~*()')}" for k, v in body.items())
    token = upbit_token("bk-1", "bs-1", hashed, timestamp=NOW_MS)
    resp = requests.post(
        f"{base}/v2/orders", json=body, headers={"Authorization": token}, timeout=TIMEOUT
    )
    assert resp.status_code == 201, resp.text


def test_v2_order_lifecycle_by_client_order_id(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    pin(base, "KRW-BTC", "100000000", liquidity="0.0004")
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "order_type": "limit",
        "price": "100000000",
        "volume": "0.001",
        "client_order_id": "b-1",
    }
    created = client.post("/v2/orders", body)
    assert created.status_code == 201
    assert set(created.json()) == {"order_id", "market", "side", "order_type", "created_at"}
    assert created.json()["order_id"].startswith("C0101")
    order = client.get("/v1/order", {"client_order_id": "b-1"}).json()
    assert (order["uuid"], order["state"], order["executed_volume"], order["paid_fee"]) == (
        created.json()["order_id"],
        "wait",
        "0.0004",
        "100",  # 40,000 KRW × 0.25 %
    )
    assert order["client_order_id"] == "b-1"
    listed = client.get("/v1/orders", {"market": "KRW-BTC", "state": "wait"}).json()
    assert [o["uuid"] for o in listed] == [order["uuid"]]
    cancelled = client.delete("/v2/order", {"client_order_id": "b-1"})
    assert cancelled.json() == {"order_id": order["uuid"], "created_at": order["created_at"]}
    after = client.get("/v1/order", {"uuid": order["uuid"]}).json()
    assert (after["state"], after["executed_volume"]) == ("cancel", "0.0004")
    assert error(client.delete("/v2/order", {"order_id": order["uuid"]})) == (
        404,
        "order_not_found",
    )
    duplicate = client.post("/v2/orders", body)
    assert error(duplicate) == (400, "duplicate_client_order_id")
    placed = [e for e in ledger(base, "order_placed") if e["client_order_id"] == "b-1"]
    assert len(placed) == 1


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"price": "90000500", "volume": "0.001"}, "invalid_price_bid"),
        ({"price": "90000000", "volume": "0.00005"}, "under_price_limit_bid"),
        ({"price": "90000000", "volume": "1"}, "insufficient_funds_bid"),
        ({"volume": "0.001"}, "invalid_parameter"),
    ],
)
def test_order_errors_use_bithumb_names(
    bithumb: tuple[str, UpbitClient], body: dict[str, str], name: str
) -> None:
    _base, client = bithumb
    resp = client.post(
        "/v2/orders", {"market": "KRW-BTC", "side": "bid", "order_type": "limit", **body}
    )
    assert error(resp) == (400, name)


def test_market_orders_fill_and_leave_no_rest(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    pin(base, "KRW-BTC", "100000000", liquidity="0.003")
    sell = client.post(
        "/v2/orders",
        {"market": "KRW-BTC", "side": "ask", "order_type": "market", "volume": "0.005"},
    ).json()
    got = client.get("/v1/order", {"uuid": sell["order_id"]}).json()
    assert (got["state"], got["executed_volume"], got["paid_fee"]) == ("cancel", "0.003", "750")
    advance(base, 5)  # nothing rests, so nothing more fills
    assert client.get("/v1/order", {"uuid": sell["order_id"]}).json()["executed_volume"] == "0.003"


def test_no_remaining_req_header_and_json_429(serve: Serve) -> None:
    base = serve(create_app(clock=frozen_clock(), public_rate=2, ban_after=3)).url
    answers = [
        requests.get(f"{base}/v1/market/all?isDetails=true", timeout=TIMEOUT) for _ in range(7)
    ]
    assert "Remaining-Req" not in answers[0].headers
    statuses = [a.status_code for a in answers]
    assert statuses[:2] == [200, 200] and 429 in statuses and statuses[-1] == 418
    assert answers[statuses.index(429)].json()["error"]["name"] == "too_many_requests"


def test_token_age_limit_follows_the_sim_clock(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    advance(base, timedelta(hours=1).total_seconds())
    assert client.get("/v1/accounts").status_code == 200  # signed with the moved clock
    old = upbit_token("bk-1", "bs-1", timestamp=NOW_MS)
    assert error(
        requests.get(f"{base}/v1/accounts", headers={"Authorization": old}, timeout=TIMEOUT)
    ) == (401, "expired_jwt")


# ---- POST /v2/orders/cancel (bulk, and the single-cancel form), unknown paths ----------------


def post_lists(client: UpbitClient, path: str, body: dict[str, Any]) -> requests.Response:
    """A signed JSON POST whose hash covers repeated keys (``order_ids=a&order_ids=b``)."""
    assert client.server_ms is not None
    token = upbit_token(
        client.access_key,
        client.secret_key,
        urlencode(body, doseq=True),
        timestamp=client.server_ms(),
    )
    return requests.post(
        f"{client.base}{path}", json=body, headers={"Authorization": token}, timeout=TIMEOUT
    )


def resting_bid(client: UpbitClient, price: str, client_order_id: str | None = None) -> str:
    body = {"market": "KRW-BTC", "side": "bid", "order_type": "limit", "price": price}
    if client_order_id:
        body["client_order_id"] = client_order_id
    created = client.post("/v2/orders", {**body, "volume": "0.001"})
    assert created.status_code == 201, created.text
    return str(created.json()["order_id"])


def test_bulk_cancel_by_order_ids_reports_each(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    pin(base, "KRW-BTC", "100000000")
    first, second = resting_bid(client, "90000000"), resting_bid(client, "89000000")
    unknown = "C0101999999999999999"
    resp = post_lists(client, "/v2/orders/cancel", {"order_ids": [first, unknown, second]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [row["order_id"] for row in body["success"]] == [first, second]
    assert set(body["success"][0]) == {"order_id", "created_at"}
    assert body["fail"] == [
        {
            "order_id": unknown,
            "error": {"name": "order_not_found", "message": "주문을 찾지 못했습니다."},
        }
    ]
    states = {client.get("/v1/order", {"uuid": o}).json()["state"] for o in (first, second)}
    assert states == {"cancel"}


def test_bulk_cancel_by_client_ids_and_the_single_form(bithumb: tuple[str, UpbitClient]) -> None:
    base, client = bithumb
    pin(base, "KRW-BTC", "100000000")
    one = resting_bid(client, "90000000", "c-1")
    two = resting_bid(client, "89000000", "c-2")
    resp = post_lists(client, "/v2/orders/cancel", {"client_order_ids": ["c-1"]}).json()
    assert resp["success"][0] | {"created_at": None} == {
        "order_id": one,
        "client_order_id": "c-1",
        "created_at": None,
    }
    single = client.post("/v2/orders/cancel", {"order_id": two})  # the other doc's single cancel
    assert single.status_code == 200 and set(single.json()) == {"order_id", "created_at"}
    assert client.get("/v1/order", {"uuid": two}).json()["state"] == "cancel"
    both = post_lists(client, "/v2/orders/cancel", {"order_ids": [one], "client_order_ids": ["x"]})
    assert error(both) == (400, "invalid_parameter")
    too_many = post_lists(client, "/v2/orders/cancel", {"order_ids": [one] * 21})
    assert error(too_many) == (400, "invalid_parameter")


def test_bulk_cancel_counts_in_the_batch_group(serve: Serve) -> None:
    base = serve(create_app(seed=3, clock=frozen_clock(), batch_rate=1, ban_after=100)).url
    create_account(base, {"access_key": "bk", "secret_key": "bs", "balances": {"KRW": "1000000"}})
    client = UpbitClient(base, "bk", "bs", with_timestamp=True)
    client.server_ms = lambda: NOW_MS
    assert post_lists(client, "/v2/orders/cancel", {"order_ids": ["C1"]}).status_code == 200
    limited = post_lists(client, "/v2/orders/cancel", {"order_ids": ["C1"]})
    assert error(limited) == (429, "too_many_requests")
    assert client.delete("/v2/order", {"order_id": "C1"}).status_code == 404  # other group


def test_unknown_path_answers_bithumbs_json_error(bithumb: tuple[str, UpbitClient]) -> None:
    base, _ = bithumb
    resp = requests.get(f"{base}/v1/orders/open", timeout=TIMEOUT)  # Upbit's, not Bithumb's
    assert resp.status_code == 404
    assert resp.json() == {"error": {"name": 404, "message": "Not Found"}}
