"""Amends and market buys by amount (issue 11, item 9), against the five simulators over HTTP.

An amend is a new order replacing the old one (``replaces_order_id``; the old one ends CANCELLED
with ``replaced_by_order_id``); each simulator's ledger shows the broker's own way of doing it:
KIS and Kiwoom modify (``order_amended``, a new order number, no new placement), Upbit
``cancel_and_new``, Binance ``cancelReplace`` and Bithumb cancel-then-new (a cancel and a new
placement). Amends are idempotent with their own key, and a lost answer is reconciled like a
lost placement.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.integration.venues_support import (
    close_venue,
    open_venue,
    order_body,
    post,
    run_job,
)
from web_server.services.orders import poll_open_orders, reconcile_orders

TICKS = {
    "KIS": Decimal(1000),
    "KIWOOM": Decimal(1000),
    "UPBIT": Decimal(1000),
    "BITHUMB": Decimal(1000),
    "BINANCE": Decimal("0.01"),
}
QUANTITY = {"KIS": "3", "KIWOOM": "3", "UPBIT": "0.03", "BITHUMB": "0.03", "BINANCE": "0.03"}
AMEND_PATHS = {
    "KIS": "/uapi/domestic-stock/v1/trading/order-rvsecncl",
    "KIWOOM": "/api/dostk/ordr",
    "UPBIT": "/v1/orders/cancel_and_new",
    "BINANCE": "/api/v3/order/cancelReplace",
}


@pytest.fixture
def venue(request, app, client, api_headers, database_url):
    opened = open_venue(app, client, api_headers, database_url, request.param)
    yield opened
    close_venue(app, opened)


def _resting(venue, fraction: str) -> Decimal:
    """A buy price ``fraction`` of the market's, on the tick: it rests."""
    tick = TICKS[venue.exchange]
    return (venue.price() * Decimal(fraction) / tick).quantize(Decimal(1)) * tick


def _place_resting(client, headers, venue, key: str) -> dict[str, Any]:
    body = order_body(venue, "BUY", QUANTITY[venue.exchange], _resting(venue, "0.8"))
    placed = post(client, headers, "/api/v1/orders", body, key)
    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["status"] == "SUBMITTED", placed.get_json()
    return dict(placed.get_json())


def _order(client, headers, order_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=headers)
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def _amend(client, headers, order_id: str, body: dict[str, Any], key: str) -> Any:
    return post(client, headers, f"/api/v1/orders/{order_id}/amend", body, key)


@pytest.mark.parametrize("venue", ["KIS", "KIWOOM", "UPBIT", "BINANCE", "BITHUMB"], indirect=True)
def test_amend_replaces_the_order_the_brokers_way(app, client, api_headers, venue):
    old = _place_resting(client, api_headers, venue, "a-place")
    new_price = _resting(venue, "0.85")
    amended = _amend(client, api_headers, old["id"], {"limit_price": str(new_price)}, "a-1")
    assert amended.status_code == 201, amended.get_json()
    new = amended.get_json()
    assert new["replaces_order_id"] == old["id"] and new["id"] != old["id"]
    assert new["status"] == "SUBMITTED" and Decimal(new["limit_price"]) == new_price
    assert Decimal(new["quantity"]) == Decimal(QUANTITY[venue.exchange])
    assert new["broker_order_id"] and new["broker_order_id"] != old["broker_order_id"]
    run_job(app, poll_open_orders)
    before = _order(client, api_headers, old["id"])
    assert before["status"] == "CANCELLED" and before["replaced_by_order_id"] == new["id"]
    placed = venue.ledger("order_placed")
    if venue.exchange in ("KIS", "KIWOOM"):
        (entry,) = venue.ledger("order_amended")
        assert entry["order_no"].lstrip("0") == old["broker_order_id"].lstrip("0")
        assert entry["new_order_no"].lstrip("0") == new["broker_order_id"].lstrip("0")
        assert Decimal(entry["price"]) == new_price
        assert len(placed) == 1  # a modify is not a new placement
    else:
        (cancel,) = venue.ledger("order_cancelled")
        assert cancel["order_no"] == old["broker_order_id"]
        assert [p["order_no"] for p in placed] == [old["broker_order_id"], new["broker_order_id"]]
        assert placed[1]["client_order_id"] == new["client_order_id"]
    # Replayed: the same key and body answer the same new order; nothing reaches the broker.
    replay = _amend(client, api_headers, old["id"], {"limit_price": str(new_price)}, "a-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == new["id"]
    other = _amend(client, api_headers, old["id"], {"limit_price": str(new_price + 0)}, "a-1")
    assert other.status_code == 200
    conflict = _amend(client, api_headers, old["id"], {"limit_price": "1"}, "a-1")
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_conflict"
    assert len(venue.ledger("order_placed")) == len(placed)
    # The replaced order is closed: amending it again is refused.
    again = _amend(client, api_headers, old["id"], {"limit_price": str(new_price)}, "a-2")
    assert again.status_code == 409


@pytest.mark.parametrize("venue", ["KIS", "UPBIT", "BINANCE"], indirect=True)
def test_a_lost_amend_answer_is_reconciled(app, client, api_headers, venue):
    old = _place_resting(client, api_headers, venue, "l-place")
    new_price = _resting(venue, "0.85")
    venue.fault(kind="drop", path_prefix=AMEND_PATHS[venue.exchange], count=1)
    lost = _amend(client, api_headers, old["id"], {"limit_price": str(new_price)}, "l-1")
    assert lost.status_code == 201, lost.get_json()
    assert lost.get_json()["status"] == "UNKNOWN"
    assert run_job(app, reconcile_orders).get("found") == 1
    run_job(app, poll_open_orders)
    new = _order(client, api_headers, lost.get_json()["id"])
    assert new["status"] == "SUBMITTED" and Decimal(new["limit_price"]) == new_price
    before = _order(client, api_headers, old["id"])
    assert before["status"] == "CANCELLED" and before["replaced_by_order_id"] == new["id"]
    # The broker saw the amend once; the gateway never sent it again.
    if venue.exchange == "KIS":
        assert len(venue.ledger("order_amended")) == 1
        assert new["broker_order_id"].lstrip("0") == venue.ledger("order_amended")[0][
            "new_order_no"
        ].lstrip("0")
    else:
        assert len(venue.ledger("order_placed")) == 2


@pytest.mark.parametrize("venue", ["KIS"], indirect=True)
def test_kis_amends_only_the_whole_remainder(app, client, api_headers, venue):
    old = _place_resting(client, api_headers, venue, "w-place")
    partial = _amend(client, api_headers, old["id"], {"quantity": "1"}, "w-1")
    assert partial.status_code == 422 and "quantity" in partial.get_json()["errors"]
    nothing = _amend(client, api_headers, old["id"], {}, "w-2")
    assert nothing.status_code == 422
    missing_key = client.post(
        f"/api/v1/orders/{old['id']}/amend", json={"limit_price": "1000"}, headers=api_headers
    )
    assert missing_key.status_code == 422
    assert venue.ledger("order_amended") == []


def _buy_by_amount(venue) -> dict[str, Any]:
    """A market buy of 1,000,000 KRW's worth (Upbit and Bithumb buy at market by amount)."""
    return {
        "account_id": venue.account_id,
        "symbol": venue.symbol,
        "side": "BUY",
        "type": "MARKET",
        "quote_amount": "1000000",
    }


@pytest.mark.parametrize("venue", ["UPBIT", "BITHUMB"], indirect=True)
def test_market_buy_by_amount(app, client, api_headers, venue):
    price = (venue.price() / 1000).quantize(Decimal(1)) * 1000
    venue.pin(price)
    krw_before = venue.balance("KRW")
    body = _buy_by_amount(venue)
    placed = post(client, api_headers, "/api/v1/orders", body, "q-1")
    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["quantity"] is None
    assert Decimal(placed.get_json()["quote_amount"]) == 1000000
    run_job(app, poll_open_orders)
    run_job(app, poll_open_orders)
    order = _order(client, api_headers, placed.get_json()["id"])
    assert order["status"] == "FILLED", order
    (entry,) = [p for p in venue.ledger("order_placed")]
    assert entry["client_order_id"] == order["client_order_id"]
    fills = [f for f in venue.ledger("fill") if f["order_no"] == order["broker_order_id"]]
    assert len(order["fills"]) == len(fills) >= 1
    spent = sum((Decimal(f["quantity"]) * Decimal(f["price"]) for f in fills), Decimal(0))
    fees = sum((Decimal(f["fee"]) for f in fills), Decimal(0))
    assert Decimal(order["fee_total"]) == fees
    assert krw_before - venue.balance("KRW") == spent + fees
    assert spent <= 1000000


@pytest.mark.parametrize("venue", ["UPBIT"], indirect=True)
def test_a_buy_by_amount_counts_its_amount_toward_the_daily_notional_before_it_fills(
    app, client, api_headers, venue
):
    from web_server.extensions import db
    from web_server.services import risk_policies

    with app.app_context():
        risk_policies.set_policy(
            "ACCOUNT", venue.account_id, {"max_daily_notional": "1500000"}, actor="test"
        )
        db.session.commit()
    body = _buy_by_amount(venue)
    first = post(client, api_headers, "/api/v1/orders", body, "amount-1")
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["filled_quantity"] == "0"  # not filled yet: the poller reads it
    second = post(client, api_headers, "/api/v1/orders", body, "amount-2")
    assert second.status_code == 422, second.get_json()
    assert second.get_json()["code"] == "risk_daily_notional"
    assert second.get_json()["value"] == "2000000"
    assert len(venue.ledger("order_placed")) == 1


@pytest.mark.parametrize("venue", ["KIS", "BINANCE"], indirect=True)
def test_quote_amount_is_refused_where_the_broker_buys_by_quantity(app, client, api_headers, venue):
    body = {
        "account_id": venue.account_id,
        "symbol": venue.symbol,
        "side": "BUY",
        "type": "MARKET",
        "quote_amount": "100000",
    }
    refused = post(client, api_headers, "/api/v1/orders", body, "r-1")
    assert refused.status_code == 422, refused.get_json()
    assert "quote_amount" in refused.get_json()["errors"]
    both = post(client, api_headers, "/api/v1/orders", {**body, "quantity": "1"}, "r-2")
    assert both.status_code == 422
    neither = {k: v for k, v in body.items() if k != "quote_amount"}
    assert post(client, api_headers, "/api/v1/orders", neither, "r-3").status_code == 422
    assert venue.ledger("order_placed") == []
