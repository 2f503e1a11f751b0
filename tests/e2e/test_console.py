"""The operator trades from the console in Chromium (issue 15, items 1, 2 and 6).

The gateway is served on loopback and talks to an Upbit simulator over HTTP (a frozen clock,
markets synced: ``venues_support``). The operator places a resting order, amends and cancels it,
places a marketable one and sees its fill and events on the order page (after a reload: the
poller runs between), engages a kill switch on an API key from the risk page and the key's next
API order is refused, and finds every one of these actions on the audit page. Every page visited
must raise no CSP violation and no console error.

Live pages (item 5): with the orders list, an order's page and a KIS ticket open, an order placed
through the API appears at the top of the list, the simulator's fill reaches the list's row and
the order's page, and a token issued (then a failed issuance) redraws the token badge, all
without a reload. The ticket suggests stocks as the operator types and shows the tick.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests

from tests.e2e.conftest import PASSWORD, collect_page_errors, create_operator
from tests.integration.venues_support import close_venue, open_venue, run_job
from web_server.services.orders import poll_open_orders


@pytest.fixture
def upbit(app, client, api_headers, database_url, live_gateway):
    venue = open_venue(app, client, api_headers, database_url, "UPBIT")
    yield venue
    close_venue(app, venue)


def _on_tick(price: Decimal, fraction: str) -> Decimal:
    return (price * Decimal(fraction) / 1000).quantize(Decimal(1)) * 1000


def _login(page) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Accounts")).to_be_visible()


def _nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def _place(page, account_id: int, side: str, quantity: str, price: Decimal) -> None:
    from playwright.sync_api import expect

    page.goto(f"/accounts/{account_id}")
    page.get_by_role("link", name="New order").click()
    page.get_by_label("Symbol").fill("KRW-BTC")
    page.get_by_label("Side").select_option(side)
    page.get_by_label("Type").select_option("LIMIT")
    page.get_by_label("Quantity").fill(quantity)
    page.get_by_label("Limit price").fill(str(price))
    # The ticket's script finds the market and shows its tick at that price (Upbit: 1,000 won).
    expect(page.locator("#symbol-name")).to_contain_text("BTC/KRW")
    expect(page.locator("#tick-hint")).to_contain_text("KRW-BTC")
    expect(page.locator("#tick-hint")).to_contain_text(": 1,000 (on the tick)")
    page.get_by_role("button", name="Place order").click()


def test_operator_trades_sets_a_kill_switch_and_finds_it_all_in_the_audit_log(
    app, page, upbit, make_api_key, live_gateway, tmp_path
):
    from playwright.sync_api import expect

    create_operator(app)
    bot = make_api_key("orders:write", "orders:read")
    bot_prefix = bot["Authorization"].split("_")[1]
    problems = collect_page_errors(page)
    _login(page)
    price = upbit.price()

    # Place a resting order, amend it, cancel it.
    resting = _on_tick(price, "0.8")
    _place(page, upbit.account_id, "BUY", "0.01", resting)
    expect(page.get_by_role("heading", level=1)).to_contain_text("SUBMITTED")
    expect(page.get_by_role("region", name="Order")).to_contain_text(f"{int(resting):,} KRW")
    first_url = page.url
    new_price = resting - 1000
    page.get_by_label("New limit price").fill(str(new_price))
    page.get_by_label("I confirm the amend (the order is replaced)").check()
    page.get_by_role("button", name="Amend order").click()
    expect(page.get_by_role("status").first).to_contain_text("Order amended")
    assert page.url != first_url
    expect(page.get_by_role("region", name="Order")).to_contain_text(f"{int(new_price):,} KRW")
    expect(page.get_by_role("region", name="Order")).to_contain_text("Replaces")
    # An unconfirmed cancel is not sent.
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("alert").first).to_contain_text("tick the box")
    page.get_by_label("Yes, I am sure").check()
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("status").first).to_contain_text("Cancel sent")
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("CANCEL"))
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.get_by_role("row", name=re.compile("cancel"))).not_to_have_count(0)

    # A marketable order fills; its fill and events show on the order page.
    _place(page, upbit.account_id, "BUY", "0.02", _on_tick(price, "1.1"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    run_job(app, poll_open_orders)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("FILLED")
    fills = page.get_by_role("region", name="Fills")
    expect(fills.get_by_role("row")).to_have_count(2)  # header and one fill
    expect(fills).to_contain_text("0.02")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("fill")
    expect(page.locator("time").first).to_have_attribute("title", re.compile(r"UTC$"))
    page.screenshot(path=str(tmp_path / "order.png"), full_page=True)

    # The orders list finds them.
    _nav(page, "Orders")
    page.get_by_label("Status").select_option("FILLED")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name=re.compile("KRW-BTC"))).to_have_count(1)

    # A kill switch on the bot's key: its next API order is refused.
    _nav(page, "Risk")
    page.get_by_label("Stop new orders of").select_option(label=f"API key test (gw_{bot_prefix}_…)")
    page.get_by_label("Reason").fill("bot misbehaving")
    page.get_by_role("button", name="Engage").click()
    expect(page.get_by_role("status").first).to_contain_text("Kill switch engaged")
    refused = requests.post(
        f"{live_gateway}/api/v1/orders",
        headers={**bot, "Idempotency-Key": "bot-1"},
        json={
            "account_id": upbit.account_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limit_price": str(resting),
        },
        timeout=10,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "kill_switch_engaged"

    # Every action is on the audit log.
    _nav(page, "Audit")
    page.get_by_label("Actor").fill("operator")
    page.get_by_role("button", name="Search").click()
    entries = page.locator("tr.audit-entry")
    expect(entries).to_have_count(6)  # the console key, 2 places, amend, cancel, kill switch
    for action in ("order.place", "order.amend", "order.cancel", "kill_switch.engage"):
        expect(page.get_by_role("rowheader", name=action, exact=True).first).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("kill_switch.engage"))).to_contain_text(
        "bot misbehaving"
    )
    page.get_by_label("Action (from the start)").fill("order.")
    page.get_by_role("button", name="Search").click()
    expect(entries).to_have_count(4)
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)

    html = page.content()
    assert bot["Authorization"].split(" ")[1] not in html
    assert problems == [], problems


def test_order_page_follows_its_fills_without_reloading(app, page, upbit):
    from playwright.sync_api import expect

    create_operator(app)
    problems = collect_page_errors(page)
    _login(page)
    limit = _on_tick(upbit.price(), "0.9")
    _place(page, upbit.account_id, "BUY", "0.01", limit)
    expect(page.get_by_role("heading", level=1)).to_contain_text("SUBMITTED")
    expect(page.locator("#live-state")).to_contain_text("Live")
    page.evaluate("window.notReloaded = true")

    # The market comes down to the limit; the poller records the fill; the page follows.
    upbit.pin(limit)
    upbit.advance(60)
    run_job(app, poll_open_orders)
    expect(page.get_by_role("heading", level=1)).to_contain_text("FILLED")
    fills = page.get_by_role("region", name="Fills")
    expect(fills.get_by_role("row")).to_have_count(2)
    expect(fills).to_contain_text(f"{int(limit):,} KRW")
    expect(
        page.get_by_role("region", name="Timeline").get_by_role(
            "rowheader", name="fill", exact=True
        )
    ).to_have_count(1)
    expect(page.get_by_role("region", name="Actions")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    assert problems == [], problems


@pytest.fixture
def kis(app, client, api_headers, database_url, live_gateway):
    venue = open_venue(app, client, api_headers, database_url, "KIS")
    yield venue
    close_venue(app, venue)


def test_orders_list_order_page_and_token_badges_follow_the_streams_without_reloading(
    app, page, upbit, kis, make_api_key, live_gateway, monkeypatch
):
    """Issue 15 item 5: orders, fills and token states arrive on open pages by themselves."""
    from playwright.sync_api import expect

    from web_server.services.tokens import refresh_token

    create_operator(app)
    bot = make_api_key("orders:write", "orders:read")
    problems = collect_page_errors(page)
    _login(page)

    def api_order(key: str, price: Decimal) -> str:
        answer = requests.post(
            f"{live_gateway}/api/v1/orders",
            headers={**bot, "Idempotency-Key": key},
            json={
                "account_id": upbit.account_id,
                "symbol": "KRW-BTC",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "0.01",
                "limit_price": str(price),
            },
            timeout=10,
        )
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["id"])

    # The orders list: a new API order appears at the top, by itself.
    page.goto("/orders")
    expect(page.locator("#live-state")).to_contain_text("Live")
    page.evaluate("window.notReloaded = true")
    limit = _on_tick(upbit.price(), "0.9")
    order_id = api_order("live-1", limit)
    row = page.locator(f'tr[data-order-id="{order_id}"]')
    expect(row).to_contain_text("SUBMITTED")
    expect(row).to_contain_text(f"{int(limit):,} KRW")
    expect(page.locator("#orders-body tr").first).to_have_attribute("data-order-id", order_id)

    # The order's page in a second tab; the ticket of the KIS account (its token) in a third.
    order_page = page.context.new_page()
    order_page.goto(f"/orders/{order_id}")
    expect(order_page.locator("#live-state")).to_contain_text("Live")
    ticket = page.context.new_page()
    ticket.goto(f"/accounts/{kis.account_id}/orders/new")
    badge = ticket.locator(f'[data-live-token="{kis.account_id}"] .badge')
    expect(badge).to_have_text("missing")

    # The ticket suggests stocks as the operator types, and shows the tick at the price typed.
    ticket.get_by_label("Symbol").press_sequentially("삼성")
    expect(ticket.locator('#symbol-options option[value="005930"]')).to_have_count(1)
    ticket.get_by_label("Symbol").fill("005930")
    ticket.get_by_label("Limit price").fill("70050")
    expect(ticket.locator("#symbol-name")).to_contain_text("삼성전자")
    expect(ticket.locator("#tick-hint")).to_have_text(
        "Tick of 005930 at 70,050: 100 (NOT on the tick)"
    )
    refused = ticket.request.get(
        f"/accounts/{kis.account_id}/symbols?q=005930&price=7e4",
        headers={"Accept": "application/json"},
    )
    assert refused.status == 422 and refused.json()["code"] == "validation_failed"

    # The simulator fills the order: the list's row and the order's page follow.
    upbit.pin(limit)
    upbit.advance(60)
    run_job(app, poll_open_orders)
    expect(row.locator("[data-live=status]")).to_have_text("FILLED")
    expect(row.locator("[data-live=filled]")).to_have_text("0.01")
    expect(row.locator("[data-live=average]")).to_have_text(f"{int(limit):,} KRW")
    expect(order_page.get_by_role("heading", level=1)).to_contain_text("FILLED")
    fills = order_page.get_by_role("region", name="Fills")
    expect(fills.get_by_role("row")).to_have_count(2)
    expect(fills).to_contain_text(f"{int(limit):,} KRW")

    # A token issued: the badge changes on the open ticket and on the accounts list.
    accounts = page.context.new_page()
    accounts.goto("/accounts")
    listed = accounts.locator(f'[data-live-token="{kis.account_id}"]')
    with app.app_context():
        assert refresh_token(kis.account_id, force=True).outcome == "issued"
    expect(badge).to_have_text("valid")
    expect(badge).to_have_class(re.compile("badge-valid"))
    expect(listed.locator(".badge")).to_have_text("valid")

    # A failed issuance (the broker answers 500): the old token stays valid, its error shows.
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_INTERVAL_SECONDS", {"KIS": 0})
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_MARGIN_SECONDS", 0)
    kis.fault(kind="http_status", status=500, path_prefix="/oauth2/tokenP", count=1)
    with app.app_context():
        assert refresh_token(kis.account_id, force=True).outcome == "failed"
    holder = ticket.locator(f'[data-live-token="{kis.account_id}"]')
    expect(holder.locator(".token-error")).to_contain_text("last error:")
    expect(badge).to_have_text("valid")
    assert page.evaluate("window.notReloaded") is True
    assert problems == [], problems
