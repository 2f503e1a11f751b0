"""The operator trades from the console in Chromium (issue 15, items 1, 2 and 6).

The gateway is served on loopback and talks to an Upbit simulator over HTTP (a frozen clock,
markets synced: ``venues_support``). The operator places a resting order, amends and cancels it,
places a marketable one and sees its fill and events on the order page (after a reload: the
poller runs between), engages a kill switch on an API key from the risk page and the key's next
API order is refused, and finds every one of these actions on the audit page. Every page visited
must raise no CSP violation and no console error.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests

from tests.conftest import run_cli
from tests.integration.venues_support import close_venue, open_venue, run_job
from web_server.services.orders import poll_open_orders

PASSWORD = "a long operator passphrase"


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
    page.goto(f"/accounts/{account_id}")
    page.get_by_role("link", name="New order").click()
    page.get_by_label("Symbol").fill("KRW-BTC")
    page.get_by_label("Side").select_option(side)
    page.get_by_label("Type").select_option("LIMIT")
    page.get_by_label("Quantity").fill(quantity)
    page.get_by_label("Limit price").fill(str(price))
    page.get_by_role("button", name="Place order").click()


def test_operator_trades_sets_a_kill_switch_and_finds_it_all_in_the_audit_log(
    app, page, upbit, make_api_key, live_gateway, tmp_path
):
    from playwright.sync_api import expect

    assert (
        run_cli(
            app,
            "users",
            "create",
            "--username",
            "operator",
            "--password-stdin",
            input=PASSWORD + "\n",
        ).exit_code
        == 0
    )
    bot = make_api_key("orders:write", "orders:read")
    bot_prefix = bot["Authorization"].split("_")[1]
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
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

    assert (
        run_cli(
            app,
            "users",
            "create",
            "--username",
            "operator",
            "--password-stdin",
            input=PASSWORD + "\n",
        ).exit_code
        == 0
    )
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
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
