"""Fills (issue 11, item 6): written once, with fees and taxes, net of base-asset commissions.

Against the real simulators over HTTP, on one simulated clock: the poller and the reconciler run
twice and every fill is still written once; partial fills; fees and taxes equal the simulators'
ledgers (KIS sell tax, Kiwoom commission, Upbit fee, Binance commission in the base asset, whose
net quantity equals the simulator's balance change); a cancel after a partial fill records the
fills and the average price.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers import Side
from brokers.krx import KRX_COMMISSION_RATE, krx_charges
from tests.integration.venues_support import (
    close_venue,
    open_venue,
    order_body,
    post,
    run_job,
)
from web_server.models import Fill
from web_server.services.orders import poll_open_orders, reconcile_orders
from web_server.services.orders.fills import _spread


@pytest.fixture
def venue(request, app, client, api_headers, database_url):
    opened = open_venue(app, client, api_headers, database_url, request.param)
    yield opened
    close_venue(app, opened)


def _number(value: str) -> str:
    return str(value).lstrip("0")


def _ledger_fills(venue, broker_order_id: str) -> list[dict[str, Any]]:
    return [f for f in venue.ledger("fill") if _number(f["order_no"]) == _number(broker_order_id)]


def _order(client, headers, order_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=headers)
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def _settle_twice(app) -> None:
    """Poll and reconcile twice: a fill seen again must not be written again."""
    for _ in range(2):
        run_job(app, poll_open_orders)
        run_job(app, reconcile_orders)


def _sum(rows, field: str) -> Decimal:
    return sum((Decimal(str(r[field] or 0)) for r in rows), Decimal(0))


@pytest.mark.parametrize("venue", ["KIS"], indirect=True)
def test_kis_sell_fill_is_written_once_with_its_tax(app, client, api_headers, venue):
    price = (venue.price() / 1000).quantize(Decimal(1)) * 1000  # on every KRX tick
    venue.pin(price)
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "SELL", "10", price), "k-sell"
    )
    assert placed.status_code == 201, placed.get_json()
    _settle_twice(app)
    order = _order(client, api_headers, placed.get_json()["id"])
    ledger = _ledger_fills(venue, order["broker_order_id"])
    assert order["status"] == "FILLED"
    assert len(order["fills"]) == 1, order["fills"]
    fill = order["fills"][0]
    assert Decimal(fill["quantity"]) == 10 and Decimal(fill["price"]) == price
    assert fill["key"] == "cum:10" and fill["currency"] == "KRW"
    assert Decimal(order["tax_total"]) == _sum(ledger, "tax") > 0
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee") > 0
    assert order["fee_currency"] == "KRW"
    again = client.get(f"/api/v1/orders/{order['id']}/fills", headers=api_headers).get_json()
    assert again["fills"] == order["fills"]


@pytest.mark.parametrize("venue", ["KIWOOM"], indirect=True)
def test_kiwoom_partial_fills_are_increments_written_once(app, client, api_headers, venue):
    price = (venue.price() / 1000).quantize(Decimal(1)) * 1000  # on every KRX tick
    venue.pin(price, liquidity="3")
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "BUY", "5", price), "kw-buy"
    )
    assert placed.status_code == 201, placed.get_json()
    _settle_twice(app)
    order = _order(client, api_headers, placed.get_json()["id"])
    assert order["status"] == "PARTIALLY_FILLED", order
    assert [(f["key"], f["quantity"]) for f in order["fills"]] == [("cum:3", "3")]
    venue.advance(60)  # the next steps' liquidity fills the rest
    _settle_twice(app)
    order = _order(client, api_headers, order["id"])
    ledger = _ledger_fills(venue, order["broker_order_id"])
    assert order["status"] == "FILLED"
    assert [(f["key"], f["quantity"]) for f in order["fills"]] == [("cum:3", "3"), ("cum:5", "2")]
    assert _sum(order["fills"], "quantity") == _sum(ledger, "quantity") == 5
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee")
    assert Decimal(order["tax_total"]) == _sum(ledger, "tax") == 0  # a buy pays no tax
    assert Decimal(order["average_fill_price"]) == price


def _price_truncated_per_share(venue) -> Decimal:
    """A price on every KRX tick near the market whose 1-share commission has >= 1/3 won cut off.

    Three executions of one share then pay at least 1 won less than one execution of three
    (truncation per execution): the KRX-rule estimate of a fill that spans them is off.
    """
    k = int(venue.price() / 1000)
    while (Decimal(k * 1000) * KRX_COMMISSION_RATE) % 1 < Decimal(1) / 3:
        k += 1
    return Decimal(k * 1000)


def _three_executions(venue, client, api_headers, side: str, key: str) -> str:
    """Place ``side`` 3 at a price filled one share per step; return the order id once all 3
    executed at the broker (before the gateway read any of it)."""
    price = _price_truncated_per_share(venue)
    venue.pin(price, liquidity="1")
    placed = post(client, api_headers, "/api/v1/orders", order_body(venue, side, "3", price), key)
    assert placed.status_code == 201, placed.get_json()
    order_id = placed.get_json()["id"]
    broker_id = _order(client, api_headers, order_id)["broker_order_id"]
    for _ in range(10):
        if len(_ledger_fills(venue, broker_id)) >= 3:
            break
        venue.advance(30)
    assert len(_ledger_fills(venue, broker_id)) == 3
    return order_id


@pytest.mark.parametrize("venue", ["KIWOOM"], indirect=True)
def test_kiwoom_fills_carry_kiwooms_own_charges(app, client, api_headers, venue):
    order_id = _three_executions(venue, client, api_headers, "SELL", "kw-charges")
    _settle_twice(app)
    order = _order(client, api_headers, order_id)
    ledger = _ledger_fills(venue, order["broker_order_id"])
    # One fill seen for three executions: the KRX rule on its amount would be 1 won off; the
    # gateway records Kiwoom's ka10076 figures instead, equal to the ledger's to the won.
    assert [(f["key"], f["quantity"]) for f in order["fills"]] == [("cum:3", "3")]
    amount = _sum(ledger, "quantity") * Decimal(order["average_fill_price"])
    estimate = krx_charges(Side.SELL, amount)
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee") != estimate[0]
    assert Decimal(order["tax_total"]) == _sum(ledger, "tax") > 0
    assert _sum(order["fills"], "fee") == _sum(ledger, "fee")


@pytest.mark.parametrize("venue", ["KIS"], indirect=True)
def test_kis_charges_are_trued_up_to_the_brokers_day_figures(app, client, api_headers, venue):
    order_id = _three_executions(venue, client, api_headers, "SELL", "kis-charges")
    _settle_twice(app)
    order = _order(client, api_headers, order_id)
    ledger = _ledger_fills(venue, order["broker_order_id"])
    # During the day: KIS's history has no charges, the fill carries the KRX-rule estimate.
    assert Decimal(order["fee_total"]) > _sum(ledger, "fee")
    venue.advance(15 * 3600)  # past KST midnight: the day is over
    counts = run_job(app, poll_open_orders)
    assert counts.get("charges_trued_up") == 1, counts
    order = _order(client, api_headers, order_id)
    # inquire-period-trade-profit's per-(day, stock) figures, which the ledger's fills add up to.
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee")
    assert Decimal(order["tax_total"]) == _sum(ledger, "tax") > 0
    assert _sum(order["fills"], "fee") == _sum(ledger, "fee")
    assert "charges_trued_up" not in run_job(app, poll_open_orders)  # once per day's fills


@pytest.mark.parametrize("venue", ["UPBIT"], indirect=True)
def test_upbit_cancel_after_a_partial_fill_records_fills_and_price(app, client, api_headers, venue):
    price = (venue.price() / 1000).quantize(Decimal(1)) * 1000
    venue.pin(price, liquidity="0.02")
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "BUY", "0.05", price), "u-buy"
    )
    assert placed.status_code == 201, placed.get_json()
    order_id = placed.get_json()["id"]
    cancelled = client.post(f"/api/v1/orders/{order_id}/cancel", headers=api_headers)
    assert cancelled.status_code == 200, cancelled.get_json()
    view = cancelled.get_json()
    # The cancel reported a fill: its execution and price are recorded without any poll.
    assert Decimal(view["filled_quantity"]) == Decimal("0.02")
    assert Decimal(view["average_fill_price"]) == price
    ledger = _ledger_fills(venue, view["broker_order_id"])
    assert Decimal(view["fee_total"]) == _sum(ledger, "fee") > 0
    _settle_twice(app)
    order = _order(client, api_headers, order_id)
    assert order["status"] == "CANCELLED"
    assert len(order["fills"]) == len(ledger) == 1
    assert order["fills"][0]["broker_fill_id"] and order["fills"][0]["fee_currency"] == "KRW"
    assert Decimal(order["fills"][0]["fee"]) == Decimal(str(ledger[0]["fee"]))
    assert Decimal(order["net_filled_quantity"]) == Decimal("0.02")  # the fee is in KRW


@pytest.mark.parametrize("venue", ["BINANCE"], indirect=True)
def test_binance_buy_commission_in_base_asset_nets_the_quantity(app, client, api_headers, venue):
    price = venue.price().quantize(Decimal("0.01"))
    venue.pin(price)
    before = venue.balance("BTC")
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "BUY", "0.5", price), "b-buy"
    )
    assert placed.status_code == 201, placed.get_json()
    _settle_twice(app)
    order = _order(client, api_headers, placed.get_json()["id"])
    ledger = _ledger_fills(venue, order["broker_order_id"])
    assert order["status"] == "FILLED"
    assert len(order["fills"]) == len(ledger) >= 1
    assert {f["broker_fill_id"] for f in order["fills"]} == {str(f["fill_id"]) for f in ledger}
    assert order["fee_currency"] == "BTC"
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee") > 0
    gained = venue.balance("BTC") - before
    assert Decimal(order["net_filled_quantity"]) == gained == Decimal("0.5") - _sum(ledger, "fee")
    assert Decimal(order["filled_quantity"]) == Decimal("0.5")


@pytest.mark.parametrize("venue", ["BITHUMB"], indirect=True)
def test_bithumb_fills_after_polls_match_the_ledger(app, client, api_headers, venue):
    price = (venue.price() / 1000).quantize(Decimal(1)) * 1000
    venue.pin(price)
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "SELL", "0.3", price), "bt-sell"
    )
    assert placed.status_code == 201, placed.get_json()
    _settle_twice(app)
    order = _order(client, api_headers, placed.get_json()["id"])
    ledger = _ledger_fills(venue, order["broker_order_id"])
    assert order["status"] == "FILLED"
    assert len(order["fills"]) == len(ledger) == 1
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee") > 0
    assert order["fee_currency"] == "KRW"


ORDER_PATHS = {"KIS": "/uapi/domestic-stock/v1/trading/order-cash", "UPBIT": "/v1/orders"}


@pytest.mark.parametrize("venue", ["KIS", "UPBIT"], indirect=True)
def test_a_filled_order_whose_answer_was_lost_gets_its_fills_once(app, client, api_headers, venue):
    tick = Decimal(1000)
    price = (venue.price() / tick).quantize(Decimal(1)) * tick
    venue.pin(price)
    quantity = "2" if venue.exchange == "KIS" else "0.02"
    venue.fault(kind="drop", path_prefix=ORDER_PATHS[venue.exchange], count=1)
    lost = post(
        client, api_headers, "/api/v1/orders", order_body(venue, "BUY", quantity, price), "lost"
    )
    assert lost.get_json()["status"] == "UNKNOWN", lost.get_json()
    assert run_job(app, reconcile_orders).get("found") == 1
    _settle_twice(app)
    order = _order(client, api_headers, lost.get_json()["id"])
    ledger = _ledger_fills(venue, order["broker_order_id"])
    assert order["status"] == "FILLED"
    assert len(order["fills"]) == len(ledger) == 1
    assert Decimal(order["fills"][0]["quantity"]) == Decimal(quantity)
    assert Decimal(order["fee_total"]) == _sum(ledger, "fee") > 0
    assert len(venue.ledger("order_placed")) == 1


def test_a_days_true_up_takes_back_no_more_than_each_fills_estimate_could_be_off():
    def fill(quantity: int) -> Fill:
        return Fill(quantity=Decimal(quantity), price=Decimal(70000))

    fills = [fill(1), fill(5), fill(3)]
    # Estimates 3 won too high: a one-share fill was exact (nothing taken), the others give in
    # proportion to quantity − 1, never more than that.
    assert _spread(Decimal(-3), fills) == [0, -2, -1]
    assert _spread(Decimal(-9), fills) == [0, -6, -3]  # 6 within the bounds, 3 by amount
    assert _spread(Decimal(2), fills) == [0, 1, 1]  # the broker charged more: by amount
    assert _spread(Decimal(0), fills) == [0, 0, 0]
