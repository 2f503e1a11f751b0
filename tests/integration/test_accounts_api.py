"""``/api/v1/accounts`` with API keys and scopes, against the KIS and Upbit simulators."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import random_key, remember_secret, run_cli
from tests.integration.accounts_support import start_kis, start_upbit

PROBLEM = "application/problem+json"


@pytest.fixture
def kis(app, database_url):
    """A KIS simulator with one account and its stocks master synced; yields (url, key, secret)."""
    sim = start_kis(app, database_url, cash="5000000", positions={"005930": 3})
    yield sim.url, sim.key, sim.secret
    sim.stop()


def _kis_body(url: str, app_key: str, secret: str, name: str = "kis-main") -> dict:
    return {
        "name": name,
        "exchange": "KIS",
        "environment": "REAL",
        "api_key": app_key,
        "api_secret": secret,
        "base_url": url,
        "securities_config": {
            "account_number": "50123456",
            "product_code": "01",
            "cert_password": remember_secret("cert-pw-" + random_key(8)),
        },
    }


def _no_secret(response, *secrets_: str) -> None:
    text = response.get_data(as_text=True)
    for secret in secrets_:
        assert secret not in text


def test_create_and_read_an_account_without_its_secrets(client, api_headers, kis, psql):
    url, app_key, secret = kis
    body = _kis_body(url, app_key, secret)
    created = client.post("/api/v1/accounts", json=body, headers=api_headers)
    assert created.status_code == 201, created.get_json()
    account = created.get_json()
    assert account["account_type"] == "SECURITIES_STOCK" and account["exchange"] == "KIS"
    assert account["account_number"] == "50****56"
    assert account["token"]["state"] == "missing"
    assert "api_key" not in account and "api_secret" not in account
    _no_secret(created, app_key, secret, body["securities_config"]["cert_password"], "50123456")

    refreshed = client.post(f"/api/v1/accounts/{account['id']}/token/refresh", headers=api_headers)
    assert refreshed.status_code == 200 and refreshed.get_json()["state"] == "valid"
    listed = client.get("/api/v1/accounts", headers=api_headers)
    assert listed.get_json()[0]["token"]["state"] == "valid"
    _no_secret(listed, app_key, secret)

    balances = client.get(f"/api/v1/accounts/{account['id']}/balances", headers=api_headers)
    assert balances.status_code == 200
    krw = balances.get_json()[0]
    assert krw["currency"] == "KRW" and krw["total"] == "5000000"  # decimal strings
    holdings = client.get(f"/api/v1/accounts/{account['id']}/holdings", headers=api_headers)
    snapshot = holdings.get_json()
    assert [(h["symbol"], h["quantity"], h["name"]) for h in snapshot["holdings"]] == [
        ("005930", "3", "삼성전자")
    ]
    assert snapshot["as_of"] and snapshot["unlisted_symbols"] == []
    # Stored as the broker's truth, with its time, and served from there while fresh.
    assert psql.execute("SELECT symbol, quantity FROM trade.holdings").fetchall() == [("005930", 3)]
    again = client.get(f"/api/v1/accounts/{account['id']}/holdings", headers=api_headers)
    assert again.get_json()["as_of"] == snapshot["as_of"]
    fresh = client.get(
        f"/api/v1/accounts/{account['id']}/holdings?refresh=true", headers=api_headers
    )
    assert fresh.get_json()["as_of"] > snapshot["as_of"]


def test_bad_input_is_a_422_and_writes_nothing(client, api_headers, kis):
    url, app_key, secret = kis
    body = _kis_body(url, app_key, secret)
    body["exchange"] = "NYSE"
    del body["securities_config"]["account_number"]
    response = client.post("/api/v1/accounts", json=body, headers=api_headers)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["code"] == "validation_failed"
    assert "exchange" in problem["errors"]["json"]
    _no_secret(response, secret)
    missing_config = _kis_body(url, app_key, secret)
    del missing_config["securities_config"]
    response = client.post("/api/v1/accounts", json=missing_config, headers=api_headers)
    assert response.status_code == 422
    assert "securities_config" in response.get_json()["errors"]
    assert client.get("/api/v1/accounts", headers=api_headers).get_json() == []
    client.post("/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers)
    duplicate = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    )
    assert duplicate.status_code == 409 and duplicate.get_json()["code"] == "conflict"


def test_keys_scopes_and_account_restrictions(client, api_headers, make_api_key, kis):
    url, app_key, secret = kis
    first = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    ).get_json()
    second = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret, "kis-2"), headers=api_headers
    ).get_json()
    assert client.get("/api/v1/accounts").status_code == 401
    bogus = {"Authorization": "Bearer gw_aaaaaaaaaaaa_" + "x" * 43}
    assert client.get("/api/v1/accounts", headers=bogus).status_code == 401
    reader = make_api_key("accounts:read", accounts=[first["id"]])
    assert [a["id"] for a in client.get("/api/v1/accounts", headers=reader).get_json()] == [
        first["id"]
    ]
    other = client.get(f"/api/v1/accounts/{second['id']}", headers=reader)
    assert other.status_code == 403 and other.get_json()["code"] == "forbidden"
    create = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret, "x"), headers=reader
    )
    assert create.status_code == 403
    holdings = client.get(f"/api/v1/accounts/{first['id']}/holdings", headers=reader)
    assert holdings.status_code == 403


def test_revoked_key_stops_working(app, client, kis):
    result = run_cli(app, "apikeys", "create", "--label", "strategy-1", "--scope", "accounts:read")
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("gw_")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/accounts", headers=headers).status_code == 200
    listing = run_cli(app, "apikeys", "list")
    assert key not in listing.output and "strategy-1" in listing.output
    key_id = listing.output.splitlines()[1].split("\t")[0]
    assert run_cli(app, "apikeys", "revoke", key_id).exit_code == 0
    assert client.get("/api/v1/accounts", headers=headers).status_code == 401


def test_replacing_keys_revokes_the_token_and_delete_is_guarded(client, api_headers, kis, psql):
    url, app_key, secret = kis
    account = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    ).get_json()
    client.post(f"/api/v1/accounts/{account['id']}/token/refresh", headers=api_headers)
    half = client.patch(
        f"/api/v1/accounts/{account['id']}", json={"api_key": "new"}, headers=api_headers
    )
    assert half.status_code == 422
    patched = client.patch(
        f"/api/v1/accounts/{account['id']}",
        json={"api_key": app_key, "api_secret": secret, "name": "renamed"},
        headers=api_headers,
    )
    assert patched.status_code == 200 and patched.get_json()["name"] == "renamed"
    assert patched.get_json()["token"]["state"] == "missing"
    revoked = requests.get(f"{url}/_sim/ledger", params={"kind": "token_revoked"}, timeout=5)
    assert revoked.json()["count"] == 1

    psql.execute(
        "INSERT INTO trade.holdings (account_id, symbol, quantity) VALUES (%s, '005930', 3)",
        (account["id"],),
    )
    guarded = client.delete(f"/api/v1/accounts/{account['id']}", headers=api_headers)
    assert guarded.status_code == 409
    psql.execute("DELETE FROM trade.holdings")
    deleted = client.delete(f"/api/v1/accounts/{account['id']}", headers=api_headers)
    assert deleted.status_code == 204
    assert client.get(f"/api/v1/accounts/{account['id']}", headers=api_headers).status_code == 404


def test_crypto_account_balances(client, api_headers):
    sim = start_upbit({"KRW": "1000000", "BTC": "0.5"})
    try:
        account = client.post(
            "/api/v1/accounts", headers=api_headers, json=sim.account_body("upbit-1")
        ).get_json()
        assert account["token"] is None and account["account_number"] is None
        holdings = client.get(
            f"/api/v1/accounts/{account['id']}/holdings", headers=api_headers
        ).get_json()["holdings"]
        assert {"asset": "BTC", "quantity": "0.5"}.items() <= {
            k: v for h in holdings if h["asset"] == "BTC" for k, v in h.items()
        }.items()
    finally:
        sim.stop()


def test_an_admin_key_limited_to_one_account_cannot_touch_another(
    client, api_headers, make_api_key, kis
):
    url, app_key, secret = kis
    mine = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    ).get_json()
    other = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret, "kis-2"), headers=api_headers
    ).get_json()
    limited = make_api_key("admin", accounts=[mine["id"]])
    for method, path, body in (
        ("patch", f"/api/v1/accounts/{other['id']}", {"base_url": "https://evil.example"}),
        ("delete", f"/api/v1/accounts/{other['id']}", None),
        ("post", f"/api/v1/accounts/{other['id']}/token/refresh", None),
    ):
        response = getattr(client, method)(path, json=body, headers=limited)
        assert response.status_code == 403, (method, path)
    assert (
        client.get(f"/api/v1/accounts/{other['id']}", headers=api_headers).get_json()["base_url"]
        == url
    )


def test_base_url_must_be_https_except_on_loopback_and_a_new_host_gets_no_old_token(
    app, client, api_headers, kis, monkeypatch
):
    url, app_key, secret = kis
    plain = _kis_body(url, app_key, secret)
    plain["base_url"] = "http://broker.example.com"
    refused = client.post("/api/v1/accounts", json=plain, headers=api_headers)
    assert refused.status_code == 422 and "base_url" in refused.get_json()["errors"]
    account = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    ).get_json()
    client.post(f"/api/v1/accounts/{account['id']}/token/refresh", headers=api_headers)
    # A host the operator did not allow is refused, and a move needs the keys (issue 12).
    elsewhere = {"base_url": "https://openapi.example.com"}
    path = f"/api/v1/accounts/{account['id']}"
    refused = client.patch(path, json=elsewhere, headers=api_headers).get_json()
    assert set(refused["errors"]) == {"base_url", "api_key", "api_secret"}
    monkeypatch.setitem(app.config, "BROKER_URL_ALLOWLIST", ["https://openapi.example.com"])
    without_keys = client.patch(path, json=elsewhere, headers=api_headers).get_json()
    assert set(without_keys["errors"]) == {"api_key", "api_secret"}
    moved = client.patch(
        path, json={**elsewhere, "api_key": app_key, "api_secret": secret}, headers=api_headers
    )
    assert moved.status_code == 200
    assert moved.get_json()["token"]["state"] == "missing"  # revoked at the old host, forgotten
    revoked = requests.get(f"{url}/_sim/ledger", params={"kind": "token_revoked"}, timeout=5)
    assert revoked.json()["count"] == 1


def test_a_holding_unknown_to_the_stocks_master_is_shown_and_stored_outside_the_foreign_key(
    app, client, api_headers, kis, psql
):
    url, app_key, secret = kis
    account = client.post(
        "/api/v1/accounts", json=_kis_body(url, app_key, secret), headers=api_headers
    ).get_json()
    psql.execute("DELETE FROM market.stocks WHERE symbol = '005930'")  # a stale master
    app.extensions["gateway.symbols"].invalidate()
    snapshot = client.get(
        f"/api/v1/accounts/{account['id']}/holdings?refresh=true", headers=api_headers
    ).get_json()
    assert snapshot["unlisted_symbols"] == ["005930"]
    assert [(h["symbol"], h["in_master"]) for h in snapshot["holdings"]] == [("005930", False)]
    # Kept by the broker's code, its symbol NULL (issue 11, test_holdings_balances.py).
    assert psql.execute("SELECT broker_symbol, symbol FROM trade.holdings").fetchall() == [
        ("005930", None)
    ]
