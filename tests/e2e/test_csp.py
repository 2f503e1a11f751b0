"""Every page under the Content-Security-Policy in Chromium: no violation, no console error.

The pages are found from the app's URL map, not listed by hand: a page added later is visited
too. Each answer must carry the policy, and the browser must report nothing it refused.
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
def upbit_account(app, client, api_headers):
    """An Upbit simulator and an account at it, so the account pages have something to show."""
    handle = serve_in_thread(create_simulator("upbit"))
    access, secret = random_key(40), remember_secret(random_key(40))
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={"access_key": access, "secret_key": secret, "balances": {"KRW": "1000000"}},
        timeout=5,
    ).raise_for_status()
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": "csp-upbit",
            "exchange": "UPBIT",
            "api_key": access,
            "api_secret": secret,
            "base_url": handle.url,
        },
    ).get_json()
    yield account["id"]
    handle.stop()


def _pages(app, account_id: int) -> list[str]:
    """Every GET page of the UI (and the API docs), with ids filled in."""
    paths = {"/api/v1/docs"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui.") or "GET" not in rule.methods:
            continue
        path = re.sub(r"<int[^>]*:account_id>", str(account_id), rule.rule)
        if "<" not in path:  # a page of something this test did not create
            paths.add(path)
    return sorted(paths)


def test_every_page_loads_under_the_csp_without_errors(app, page, upbit_account):
    from playwright.sync_api import expect

    create_operator(app, "csp")
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}") if response.status == 404 else None
        ),
    )
    # A refused inline script or style is reported as a securitypolicyviolation event.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )

    page.goto("/login")
    page.get_by_label("Username").fill("csp")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Accounts")).to_be_visible()

    visited = []
    for path in _pages(app, upbit_account):
        problems_before = len(problems)
        response = page.goto(path)
        assert response is not None and response.status < 500, (path, response and response.status)
        policy = response.headers.get("content-security-policy", "")
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
        ), (path, policy)
        page.wait_for_load_state("networkidle")
        visited.append(path)
        if path == "/api/v1/docs":
            # Redoc's "API docs by Redocly" badge asks for its logo on Redocly's CDN; the policy
            # refuses it (the docs reach nothing but the gateway) and Chromium says so. Nothing
            # else may be refused there either.
            new = problems[problems_before:]
            del problems[problems_before:]
            assert all("cdn.redoc.ly" in p or "img-src" in p for p in new), new
    assert "/accounts" in visited and f"/accounts/{upbit_account}" in visited
    assert problems == [], problems


def test_security_headers_and_session_expiry(app, make_app, database_url):
    from datetime import timedelta

    client = app.test_client()
    login = client.get("/login")
    assert "default-src 'self'" in login.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in login.headers  # not production: plain http
    production = make_app(DATABASE_URL=database_url, ENV="production")
    answer = production.test_client().get("/login")
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert production.permanent_session_lifetime == timedelta(hours=8)
