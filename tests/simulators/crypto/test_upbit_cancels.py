"""Upbit's bulk cancel and cancel-and-new, lost cancels by fault target, and unknown paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from simulators.server import ServerHandle
from simulators.upbit import create_app
from tests.simulators.crypto.conftest import (
    TIMEOUT,
    UpbitClient,
    create_account,
    frozen_clock,
    ledger,
    pin,
    upbit_token,
)

Serve = Callable[..., ServerHandle]
REMAINING_REQ = re.compile(r"^group=([a-z\-]+); min=([0-9]+); sec=([0-9]+)$")


@pytest.fixture
def upbit(serve: Serve) -> tuple[str, UpbitClient]:
    """A fresh Upbit simulator (frozen clock, pinned prices) with one funded account."""
    base = serve(create_app(seed=7, clock=frozen_clock())).url
    create_account(
        base,
        {"access_key": "ak-1", "secret_key": "sk-1", "balances": {"KRW": "10000000", "BTC": "0.5"}},
    )
    pin(base, "KRW-BTC", "100000000")
    pin(base, "KRW-ETH", "5000000")
    return base, UpbitClient(base, "ak-1", "sk-1")


def order(
    client: UpbitClient, side: str, price: str, volume: str, market: str = "KRW-BTC", **extra: Any
) -> str:
    """Place a resting limit order; return its uuid."""
    body = {"market": market, "side": side, "ord_type": "limit", "price": price, "volume": volume}
    placed = client.post("/v1/orders", {**body, **extra})
    assert placed.status_code == 201, placed.text
    return str(placed.json()["uuid"])


def state_of(client: UpbitClient, uuid: str) -> str:
    return str(client.get("/v1/order", {"uuid": uuid}).json()["state"])


def fault(base: str, **body: Any) -> None:
    resp = requests.post(f"{base}/_sim/faults", json=body, timeout=TIMEOUT)
    assert resp.status_code == 201, resp.text


# ---- DELETE /v1/orders/open --------------------------------------------------------------------


def test_bulk_cancel_by_side_and_pair(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    btc_bid = order(client, "bid", "90000000", "0.001", identifier="b-1")
    eth_bid = order(client, "bid", "4000000", "0.01", market="KRW-ETH")
    btc_ask = order(client, "ask", "110000000", "0.001")
    resp = client.delete("/v1/orders/open", {"cancel_side": "bid", "pairs": "KRW-BTC,KRW-XRP"})
    assert resp.status_code == 200
    assert resp.json() == {
        "success": {
            "count": 1,
            "orders": [{"uuid": btc_bid, "market": "KRW-BTC", "identifier": "b-1"}],
        },
        "failed": {"count": 0, "orders": []},
    }
    group, _min, sec = REMAINING_REQ.match(resp.headers["Remaining-Req"]).groups()  # type: ignore[union-attr]
    assert (group, sec) == ("order-cancel-all", "0")
    assert [state_of(client, u) for u in (btc_bid, eth_bid, btc_ask)] == ["cancel", "wait", "wait"]
    cancelled = ledger(base, "order_cancelled")
    assert [e["order_no"] for e in cancelled] == [btc_bid]


def test_bulk_cancel_defaults_newest_first_and_count(serve: Serve) -> None:
    base = serve(create_app(seed=7, clock=frozen_clock(), cancel_all_rate=100)).url
    create_account(base, {"access_key": "ak", "secret_key": "sk", "balances": {"KRW": "1000000"}})
    pin(base, "KRW-BTC", "100000000")
    client = UpbitClient(base, "ak", "sk")
    uuids = [order(client, "bid", str(90_000_000 - i * 1000), "0.0001") for i in range(3)]
    first = client.delete("/v1/orders/open", {"count": "2"}).json()
    assert [o["uuid"] for o in first["success"]["orders"]] == uuids[:0:-1]  # the 2 newest
    rest = client.delete("/v1/orders/open", {"quote_currencies": "KRW", "order_by": "asc"}).json()
    assert [o["uuid"] for o in rest["success"]["orders"]] == uuids[:1]
    assert client.delete("/v1/orders/open", {}).json()["success"] == {"count": 0, "orders": []}


@pytest.mark.parametrize(
    "params",
    [
        {"cancel_side": "both"},
        {"pairs": "KRW-BTC", "quote_currencies": "KRW"},
        {"pairs": "KRW-NOPE"},
        {"count": "301"},
        {"order_by": "newest"},
    ],
)
def test_bulk_cancel_refuses_bad_parameters(serve: Serve, params: dict[str, str]) -> None:
    base = serve(create_app(seed=7, clock=frozen_clock(), cancel_all_rate=100)).url
    create_account(base, {"access_key": "ak", "secret_key": "sk", "balances": {"KRW": "1000000"}})
    resp = UpbitClient(base, "ak", "sk").delete("/v1/orders/open", params)
    assert resp.status_code == 400 and resp.json()["error"]["name"] == "validation_error"


def test_bulk_cancel_is_limited_to_one_request_per_two_seconds(
    upbit: tuple[str, UpbitClient],
) -> None:
    _, client = upbit
    assert client.delete("/v1/orders/open", {}).status_code == 200
    again = client.delete("/v1/orders/open", {})
    assert again.status_code == 429 and again.text == "Too many API requests."
    assert client.get("/v1/accounts").status_code == 200  # the default group is separate


# ---- POST /v1/orders/cancel_and_new ------------------------------------------------------------


def test_cancel_and_new_replaces_an_order(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    old = order(client, "bid", "90000000", "0.001", identifier="old-1")
    resp = client.post(
        "/v1/orders/cancel_and_new",
        {
            "prev_order_identifier": "old-1",
            "new_ord_type": "limit",
            "new_price": "91000000",
            "new_volume": "remain_only",
            "new_identifier": "new-1",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["uuid"], body["state"], body["identifier"]) == (old, "wait", "old-1")
    assert body["new_order_identifier"] == "new-1"
    assert REMAINING_REQ.match(resp.headers["Remaining-Req"]).group(1) == "order"  # type: ignore[union-attr]
    new = client.get("/v1/order", {"uuid": body["new_order_uuid"]}).json()
    assert (new["state"], new["price"], new["volume"], new["side"]) == (
        "wait",
        "91000000",
        "0.001",
        "bid",
    )
    assert state_of(client, old) == "cancel"
    kinds = [e["kind"] for e in ledger(base) if e["kind"].startswith("order_")]
    assert kinds[-2:] == ["order_cancelled", "order_placed"]  # cancel first, then the new one


@pytest.mark.parametrize(
    ("body", "status", "name"),
    [
        ({"new_ord_type": "limit", "new_price": "1", "new_volume": "1"}, 400, "validation_error"),
        ({"prev_order_uuid": "OLD"}, 400, "validation_error"),  # no new_ord_type
        (
            {"prev_order_uuid": "OLD", "new_ord_type": "price", "new_volume": "remain_only"},
            400,
            "validation_error",
        ),
        (
            {"prev_order_uuid": "OLD", "new_ord_type": "market", "new_volume": "0.001"},
            400,
            "create_bid_error",  # a market *sell* on a bid
        ),
        (
            {
                "prev_order_uuid": "OLD",
                "new_ord_type": "limit",
                "new_price": "91000000",
                "new_volume": "0.001",
                "new_identifier": "taken",
            },
            400,
            "duplicate_identifier",
        ),
    ],
    ids=["no-prev", "no-type", "remain-only-on-price", "wrong-side-type", "reused-identifier"],
)
def test_cancel_and_new_refusals_leave_the_old_order_open(
    upbit: tuple[str, UpbitClient], body: dict[str, str], status: int, name: str
) -> None:
    _, client = upbit
    order(client, "bid", "80000000", "0.001", identifier="taken")
    old = order(client, "bid", "90000000", "0.001")
    sent = {k: (old if v == "OLD" else v) for k, v in body.items()}
    resp = client.post("/v1/orders/cancel_and_new", sent)
    assert (resp.status_code, resp.json()["error"]["name"]) == (status, name)
    assert state_of(client, old) == "wait"


def test_cancel_and_new_of_a_finished_order_is_not_found(upbit: tuple[str, UpbitClient]) -> None:
    _, client = upbit
    old = order(client, "bid", "90000000", "0.001")
    client.delete("/v1/order", {"uuid": old})
    resp = client.post(
        "/v1/orders/cancel_and_new",
        {"prev_order_uuid": old, "new_ord_type": "limit", "new_price": "1000", "new_volume": "1"},
    )
    assert (resp.status_code, resp.json()["error"]["name"]) == (404, "order_not_found")


# ---- lost cancels: faults aimed at cancel requests ---------------------------------------------


def test_cancel_lost_before_the_broker_acted(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    uuid = order(client, "bid", "90000000", "0.001")
    fault(base, kind="reset", target="cancel")
    assert state_of(client, uuid) == "wait"  # GET /v1/order shares the path: not a cancel
    with pytest.raises(requests.ConnectionError):
        client.delete("/v1/order", {"uuid": uuid})
    assert state_of(client, uuid) == "wait"  # the cancel never arrived
    fault(base, kind="http_status", status=503, target="cancel")
    assert client.delete("/v1/order", {"uuid": uuid}).status_code == 503
    assert state_of(client, uuid) == "wait"
    applied = ledger(base, "fault_applied")
    assert [(e["fault"], e["target"], e["method"]) for e in applied] == [
        ("reset", "cancel", "DELETE"),
        ("http_status", "cancel", "DELETE"),
    ]


def test_cancel_acted_answer_lost(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    first = order(client, "bid", "90000000", "0.001")
    second = order(client, "bid", "89000000", "0.001")
    fault(base, kind="drop", target="cancel")
    with pytest.raises(requests.ConnectionError):
        client.delete("/v1/order", {"uuid": first})
    assert state_of(client, first) == "cancel"  # done, the answer lost
    fault(base, kind="http_status", status=500, acted=True, target="cancel")
    assert client.delete("/v1/orders/open", {}).status_code == 500  # the bulk cancel too
    assert state_of(client, second) == "cancel"


def test_a_late_cancel_applies_after_the_client_gave_up(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    uuid = order(client, "bid", "90000000", "0.001")
    fault(base, kind="late", sim_seconds=90, target="cancel")
    with pytest.raises(requests.exceptions.ReadTimeout):
        query = f"uuid={uuid}"
        requests.delete(
            f"{base}/v1/order?{query}",
            headers={"Authorization": upbit_token("ak-1", "sk-1", query)},
            timeout=0.2,
        )
    assert state_of(client, uuid) == "wait"
    requests.post(f"{base}/_sim/clock", json={"advance_seconds": 90}, timeout=TIMEOUT)
    assert state_of(client, uuid) == "cancel"


def test_unknown_path_answers_upbits_json_error(upbit: tuple[str, UpbitClient]) -> None:
    base, client = upbit
    missing = requests.get(f"{base}/v1/withdraws/chance", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"name": 404, "message": "Not Found"}}
    assert REMAINING_REQ.match(missing.headers["Remaining-Req"])  # pyupbit can still parse it
    wrong_method = requests.put(f"{base}/v1/orders", timeout=TIMEOUT)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["name"] == 405
