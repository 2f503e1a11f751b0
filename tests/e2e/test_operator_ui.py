"""The operator's day in a real browser: log in, add a KIS account, get its token, see holdings.

Chromium drives the gateway served on loopback; the gateway talks to a KIS simulator over real
HTTP. Locators use roles and labels, assertions wait (no sleeps). A screenshot of the account page
is kept in the test's temporary folder.
"""

from __future__ import annotations

import re

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret
from tests.e2e.conftest import PASSWORD, create_operator


@pytest.fixture
def kis_sim():
    """A KIS simulator with an account holding three Samsung Electronics shares."""
    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    app_key, secret = remember_secret(random_key(36)), remember_secret(random_key(180))
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": "50123456",
            "product_code": "01",
            "cash": "5000000",
            "positions": {"005930": 3},
        },
        timeout=5,
    ).raise_for_status()
    yield handle.url, app_key, secret
    handle.stop()


def test_operator_adds_a_kis_account_and_sees_its_token_and_holdings(app, page, kis_sim, tmp_path):
    from playwright.sync_api import expect

    url, app_key, secret = kis_sim
    create_operator(app)

    page.goto("/accounts")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Accounts")).to_be_visible()

    page.goto("/accounts/new")
    page.get_by_label("Name").fill("kis-e2e")
    page.get_by_label("Exchange").select_option("KIS")
    page.get_by_label("Base URL (optional, e.g. a simulator)").fill(url)
    page.get_by_label("API key (app key)").fill(app_key)
    page.get_by_label("API secret (app secret)").fill(secret)
    page.get_by_label("Account number (8 digits)").fill("5012345")  # one digit short
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_text("must be 8 digits")).to_be_visible()

    # The keys are never sent back: the operator types them again.
    page.get_by_label("API key (app key)").fill(app_key)
    page.get_by_label("API secret (app secret)").fill(secret)
    page.get_by_label("Account number (8 digits)").fill("50123456")
    page.get_by_role("button", name="Add account").click()

    row = page.get_by_role("row", name=re.compile("kis-e2e"))
    expect(row).to_contain_text("missing")
    row.get_by_role("link", name="kis-e2e").click()
    page.get_by_role("button", name="Refresh token").click()
    expect(page.get_by_role("region", name="Token")).to_contain_text("valid")

    holdings = page.get_by_role("region", name="Holdings")
    expect(holdings.get_by_role("row", name=re.compile("005930"))).to_contain_text("삼성전자")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_role("status").first).to_contain_text("Connection OK")
    page.screenshot(path=str(tmp_path / "account.png"), full_page=True)

    html = page.content()
    assert app_key not in html and secret not in html
