"""The dashboard of what needs attention (issue 15, item 3), on real data from a KIS simulator.

A rejected order, an order whose answer was lost (UNKNOWN), a token refresh the broker refused,
a scheduler leader, the stocks sync the venue ran and the rate-limit budget the orders spent:
each must show on ``/attention``, and no key or secret may.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.integration.venues_support import (
    CSRF_FIELD,
    close_venue,
    log_in_operator,
    open_venue,
    order_body,
    post,
)
from web_server.extensions import db
from web_server.jobs.leader import LeaderLock

ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"


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


def _section(html: str, heading: str) -> str:
    return re.search(rf'id="{heading}-heading".*?</section>', html, re.S).group(0)


def test_an_empty_gateway_has_nothing_to_flag_but_the_scheduler(operator):
    page = operator.get("/attention")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Every token is valid" in _section(html, "tokens")
    assert "No order is in doubt." in _section(html, "orders")
    assert "No scheduler has ever led" in _section(html, "scheduler")
    assert "never synced" in _section(html, "syncs")
    # The nav links the dashboard first.
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', html, re.S).group(0)
    assert re.search(r"<li><a [^>]*>(\w+)</a>", nav).group(1) == "Attention"


def test_the_dashboard_shows_what_needs_attention(app, operator, api_headers, kis, monkeypatch):
    client = operator
    price = (kis.price() / 1000).quantize(1) * 1000
    rejected = post(
        client, api_headers, "/api/v1/orders", order_body(kis, "BUY", "1000000", price), "poor"
    )
    assert rejected.get_json()["status"] == "REJECTED", rejected.get_json()
    kis.fault(kind="drop", path_prefix=ORDER_PATH, count=1)
    lost = post(client, api_headers, "/api/v1/orders", order_body(kis, "BUY", "1", price), "lost")
    assert lost.get_json()["status"] == "UNKNOWN", lost.get_json()

    # The broker refuses the next token (bad secret, as after a key change at the broker); the
    # issuance window is opened so the forced refresh really asks.
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_INTERVAL_SECONDS", {"KIS": 0})
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_MARGIN_SECONDS", 0)
    refusal = {"error_code": "EGW00105", "error_description": "유효하지 않은 AppSecret입니다."}
    kis.fault(kind="token_refusal", path_prefix="/oauth2/", status=403, body=refusal)
    page = client.get(f"/accounts/{kis.account_id}").get_data(as_text=True)
    token = dict(CSRF_FIELD.findall(page))["refresh-csrf_token"]
    refreshed = client.post(
        f"/accounts/{kis.account_id}/token/refresh",
        data={"refresh-csrf_token": token},
        follow_redirects=True,
    )
    assert "Token refresh" in refreshed.get_data(as_text=True)

    with app.app_context():
        leader = LeaderLock(db.engine, "scheduler")
        assert leader.tick()
    try:
        html = client.get("/attention").get_data(as_text=True)
    finally:
        leader.release()

    tokens = _section(html, "tokens")
    assert ">kis</a>" in tokens and "failing" in tokens and "EGW00105" in tokens

    orders = _section(html, "orders")
    assert lost.get_json()["id"] in orders and "UNKNOWN" in orders
    assert rejected.get_json()["id"] not in orders  # settled: nothing to decide

    errors = _section(html, "errors")
    assert rejected.get_json()["id"] in errors and rejected.get_json()["reject_code"] in errors
    assert "order_state_unknown" in errors and "token_refresh_failed" in errors

    budgets = _section(html, "rate-limits")
    row = re.search(r'<th scope="row">KIS</th>.*?</tr>', budgets, re.S).group(0)
    assert ">app<" in row and ">kis<" in row and "20 / 1 s" in row

    scheduler = _section(html, "scheduler")
    assert "alive" in scheduler and "No scheduler" not in scheduler

    syncs = _section(html, "syncs")
    assert "APPLIED" in syncs and "never synced" not in syncs

    summary = re.search(r'class="attention-summary".*?</nav>', html, re.S).group(0)
    assert (
        "Tokens: <strong>1</strong>" in summary and "Orders in doubt: <strong>1</strong>" in summary
    )

    with app.app_context():
        keys = db.session.execute(text("SELECT key FROM system.rate_limit_buckets")).scalars()
        assert any(f'title="{key}"' in budgets for key in keys)
