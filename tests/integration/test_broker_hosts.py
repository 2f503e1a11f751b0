"""Where an account's keys may travel (issue 12): a leaked API key never leaks a broker secret.

KIS and Kiwoom send the app secret in clear on every token request, so the host of an account is
the broker's official one for its environment, one configured for it, one the operator
allow-listed, or (outside production only) loopback; moving an account needs its keys; and the
host is checked again before every broker call.
"""

from __future__ import annotations

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret

KIS_REAL, KIS_PAPER = (
    "https://openapi.koreainvestment.com:9443",
    "https://openapivts.koreainvestment.com:29443",
)


@pytest.fixture
def kis():
    """A KIS simulator with one account; yields (url, app_key, app_secret)."""
    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    app_key, secret = random_key(36), remember_secret(random_key(180))
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": "50123456",
            "product_code": "01",
            "cash": "1000000",
        },
        timeout=5,
    ).raise_for_status()
    yield handle.url, app_key, secret
    handle.stop()


def _account(name: str, **changes) -> dict:
    return {
        "name": name,
        "exchange": "KIS",
        "environment": "REAL",
        "api_key": "PSapp-key-0123456789",
        "api_secret": "app-secret-0123456789",
        "securities_config": {"account_number": "50123456", "product_code": "01"},
        **changes,
    }


def _ledger(url: str, kind: str) -> int:
    return requests.get(f"{url}/_sim/ledger", params={"kind": kind}, timeout=5).json()["count"]


def test_official_configured_and_allowlisted_hosts_are_accepted(
    app, client, api_headers, monkeypatch
):
    monkeypatch.setitem(app.config, "BROKERS", {"KIS": {"REAL_URL": "https://kis-proxy.example"}})
    monkeypatch.setitem(app.config, "BROKER_URL_ALLOWLIST", ["https://kis-gw.example:8443"])
    for name, url in (
        ("official", KIS_REAL),
        ("official-with-slash", KIS_REAL + "/"),
        ("configured", "https://kis-proxy.example"),
        ("allowlisted", "https://KIS-GW.example:8443"),
        ("default", None),
    ):
        body = _account(name) if url is None else _account(name, base_url=url)
        created = client.post("/api/v1/accounts", json=body, headers=api_headers)
        assert created.status_code == 201, (name, created.get_json())
    refused = client.post(
        "/api/v1/accounts",
        json=_account("paper-host", base_url=KIS_PAPER),
        headers=api_headers,
    )
    assert refused.status_code == 422 and "base_url" in refused.get_json()["errors"]
    paper = client.post(
        "/api/v1/accounts",
        json=_account("paper", environment="PAPER", base_url=KIS_PAPER),
        headers=api_headers,
    )
    assert paper.status_code == 201


def test_loopback_is_refused_in_production(app, client, api_headers, monkeypatch):
    monkeypatch.setitem(app.config, "ENV", "production")
    for url in ("http://127.0.0.1:18001", "https://localhost:18001", "http://[::1]:18001"):
        refused = client.post(
            "/api/v1/accounts", json=_account("loop", base_url=url), headers=api_headers
        )
        assert refused.status_code == 422, url
        assert "production" in refused.get_json()["errors"]["base_url"][0]


def test_a_host_no_longer_allowed_gets_nothing(app, client, api_headers, kis, monkeypatch):
    """An account made when loopback was allowed: in production its keys are not sent there."""
    url, app_key, secret = kis
    body = _account("kis", api_key=app_key, api_secret=secret, base_url=url)
    account = client.post("/api/v1/accounts", json=body, headers=api_headers).get_json()
    monkeypatch.setitem(app.config, "ENV", "production")
    balances = client.get(f"/api/v1/accounts/{account['id']}/balances", headers=api_headers)
    assert balances.status_code == 500 and balances.get_json()["code"] == "config_error"
    assert "base_url is not allowed" in balances.get_json()["detail"]
    assert secret not in balances.get_data(as_text=True)
    assert _ledger(url, "token_issued") == 0


def test_moving_an_account_takes_its_keys_and_revokes_the_old_token(
    app, client, api_headers, kis, psql
):
    url, app_key, secret = kis
    body = _account("kis", api_key=app_key, api_secret=secret, base_url=url)
    account = client.post("/api/v1/accounts", json=body, headers=api_headers).get_json()
    path = f"/api/v1/accounts/{account['id']}"
    assert client.post(f"{path}/token/refresh", headers=api_headers).status_code == 200
    before = psql.execute("SELECT base_url, environment, api_key FROM accounts").fetchall()
    for change in (
        {"environment": "PAPER"},
        {"base_url": "http://127.0.0.1:1"},
        {"base_url": None},
    ):
        refused = client.patch(path, json=change, headers=api_headers)
        assert refused.status_code == 422, change
        assert {"api_key", "api_secret"} <= set(refused.get_json()["errors"]), change
    assert psql.execute("SELECT base_url, environment, api_key FROM accounts").fetchall() == before
    # Saying the same host again is no move: nothing to prove.
    same = client.patch(path, json={"base_url": url + "/", "name": "kis-2"}, headers=api_headers)
    assert same.status_code == 200 and same.get_json()["token"]["state"] == "valid"
    moved = client.patch(
        path,
        json={"environment": "PAPER", "api_key": app_key, "api_secret": secret},
        headers=api_headers,
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["environment"] == "PAPER"
    assert moved.get_json()["token"]["state"] == "missing"
    assert _ledger(url, "token_revoked") == 1


def test_a_restricted_admin_can_rekey_its_account_but_not_create_one(
    client, api_headers, make_api_key, kis
):
    url, app_key, secret = kis
    body = _account("kis", api_key=app_key, api_secret=secret, base_url=url)
    account = client.post("/api/v1/accounts", json=body, headers=api_headers).get_json()
    limited = make_api_key("admin", accounts=[account["id"]])
    created = client.post("/api/v1/accounts", json=_account("mine"), headers=limited)
    assert created.status_code == 403 and "limited to some accounts" in created.get_json()["detail"]
    rekeyed = client.patch(
        f"/api/v1/accounts/{account['id']}",
        json={"api_key": app_key, "api_secret": secret},
        headers=limited,
    )
    assert rekeyed.status_code == 200
