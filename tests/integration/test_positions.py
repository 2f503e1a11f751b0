"""Positions and P&L (issue 15, item 4) from real fills at a KIS simulator and its holdings.

The account holds 10 Samsung shares at the simulator before the gateway sees any fill; it buys 5
and sells 3 through the API, then the account page's refresh reads the broker. Realized P&L is
worked out here from the simulator's own ledger (its fees and taxes) by average cost and must be
what the account page and the dashboard show, formatted in won. A last sale of 4 goes beyond
what the fills bought: its cost comes partly from the snapshot's average price, marked "est.".
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from tests.integration.venues_support import (
    CSRF_FIELD,
    close_venue,
    log_in_operator,
    open_venue,
    order_body,
    post,
    run_job,
)
from web_server.extensions import db
from web_server.models import Account, Holding
from web_server.services import positions
from web_server.services.orders import poll_open_orders


def _won(value: Decimal) -> str:
    return f"{value.quantize(Decimal(1), rounding=ROUND_HALF_UP):,f} KRW"


@pytest.fixture
def kis(app, client, api_headers, database_url):
    """A KIS simulator on a frozen clock, its account opened on both sides."""
    venue = open_venue(app, client, api_headers, database_url, "KIS")
    yield venue
    close_venue(app, venue)


@pytest.fixture
def operator(app, client):
    """The test client, logged in as an operator."""
    return log_in_operator(app, client)


def _filled(app, client, api_headers, venue, side: str, quantity: str, price: Decimal, key: str):
    placed = post(
        client, api_headers, "/api/v1/orders", order_body(venue, side, quantity, price), key
    )
    assert placed.status_code == 201, placed.get_json()
    run_job(app, poll_open_orders)
    order = client.get(f"/api/v1/orders/{placed.get_json()['id']}", headers=api_headers)
    assert order.get_json()["status"] == "FILLED", order.get_json()
    return order.get_json()


def _ledger(venue, order: dict) -> dict:
    number = order["broker_order_id"].lstrip("0")
    [fill] = [f for f in venue.ledger("fill") if str(f["order_no"]).lstrip("0") == number]
    return {k: Decimal(str(fill[k] or 0)) for k in ("quantity", "price", "fee", "tax")}


def test_positions_and_pnl_from_the_snapshot_and_the_fills(app, operator, api_headers, kis):
    client = operator
    buy_price = (kis.price() / 1000).quantize(Decimal(1)) * 1000
    kis.pin(buy_price)
    bought = _filled(app, client, api_headers, kis, "BUY", "5", buy_price, "pos-buy")
    sell_price = buy_price + 3000
    kis.pin(sell_price)
    sold = _filled(app, client, api_headers, kis, "SELL", "3", sell_price, "pos-sell")
    buy, sell = _ledger(kis, bought), _ledger(kis, sold)
    assert sell["tax"] > 0 and buy["fee"] > 0  # the charges are real and must count

    cost_of_three = (buy["quantity"] * buy["price"] + buy["fee"] + buy["tax"]) * 3 / 5
    realized = sell["quantity"] * sell["price"] - sell["fee"] - sell["tax"] - cost_of_three
    charges = buy["fee"] + buy["tax"] + sell["fee"] + sell["tax"]

    # Before any refresh the page shows what was stored (nothing), and the fills' P&L already.
    page = client.get(f"/accounts/{kis.account_id}").get_data(as_text=True)
    assert "The broker has not been read for this account yet." in page

    token = dict(CSRF_FIELD.findall(page))["holdings-csrf_token"]
    fragment = client.post(
        f"/accounts/{kis.account_id}/holdings/refresh",
        data={"holdings-csrf_token": token},
        headers={"X-Requested-With": "fetch"},
    )
    assert fragment.status_code == 200
    assert "broker-error" not in fragment.get_data(as_text=True)
    with app.app_context():
        holding = db.session.scalars(
            select(Holding).where(Holding.account_id == kis.account_id)
        ).one()
        assert holding.quantity == 12  # 10 held before, 5 bought, 3 sold
        unrealized = holding.pnl
        assert unrealized is not None

    html = client.get(f"/accounts/{kis.account_id}").get_data(as_text=True)
    section = re.search(r'id="holdings-heading".*?</section>', html, re.S).group(0)
    row = re.search(r'<th scope="row">005930<.*?</tr>', section, re.S).group(0)
    assert "삼성전자" in row
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row, re.S)
    # Quantity, available, average, price, valuation, unrealized, today, to date, charges.
    assert cells[0] == "12"
    assert cells[5].startswith(_won(unrealized))
    assert cells[6].strip() == _won(realized)
    assert cells[7].strip() == _won(realized)  # every fill was today (KST)
    assert cells[8] == _won(charges)
    assert "Snapshot read from the broker" in section and "<time " in section

    with app.app_context():
        account = db.session.get(Account, kis.account_id)
        # Tomorrow (KST) the same fills are realized to date, not today.
        tomorrow = kis.clock.now() + dt.timedelta(days=1)
        later = positions.account_positions(account, now=tomorrow)
        [position] = later.rows
        assert position.realized_today == 0 and position.realized_total == realized
        assert later.totals["KRW"]["realized_total"] == realized

    board = client.get("/attention").get_data(as_text=True)
    summary = re.search(r'id="positions-heading".*?</section>', board, re.S).group(0)
    assert "kis</a>" in summary and _won(realized) in summary and _won(unrealized) in summary

    # Selling 4 more: the fills bought only 2 of them; the other 2 were held before the gateway
    # saw any fill, so their cost is the snapshot's average price and the figure says "est.".
    with app.app_context():
        average = db.session.scalars(
            select(Holding.avg_price).where(Holding.account_id == kis.account_id)
        ).one()
    more = _filled(app, client, api_headers, kis, "SELL", "4", sell_price, "pos-sell-2")
    again = _ledger(kis, more)
    remaining_cost = (buy["quantity"] * buy["price"] + buy["fee"] + buy["tax"]) * 2 / 5
    second = (
        (again["quantity"] * again["price"] - again["fee"] - again["tax"])
        - remaining_cost
        - 2 * average
    )
    with app.app_context():
        account = db.session.get(Account, kis.account_id)
        [position] = positions.account_positions(account).rows
        assert position.basis_estimated and not position.basis_missing
        assert position.realized_total == realized + second
    html = client.get(f"/accounts/{kis.account_id}").get_data(as_text=True)
    row = re.search(r'<th scope="row">005930<.*?</tr>', html, re.S).group(0)
    assert _won(realized + second) in row and ">est.</abbr>" in row
