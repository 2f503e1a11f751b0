"""Kill switches: set through one gateway process, they refuse orders in another within 1 s.

Two real gunicorn servers (as two hosts would run them) share the test database and a KIS
simulator. The switch is engaged through server A's API; orders then go to server B until one is
refused, and the delay from A's answer to B's first refusal is measured and printed. The switch
is read in the transaction that writes each order's intent, so the first order after A's
commit is already refused: no cache, no delay beyond one request. Who set it, when and why is
shown by the API of the other server, in the refusal itself, in the UI and by the CLI.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import SECRETS_IN_USE, random_key, remember_secret, run_cli
from web_server.services.stocks_sync import run_sync

ROOT = Path(__file__).resolve().parents[2]
_CSRF = re.compile(r'name="(?:[\w-]+-)?csrf_token" type="hidden" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "web_server:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway process exited"
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def two_servers(app, client, api_headers, database_url, base_config, tmp_path):
    """A KIS simulator with an account, and two gunicorn servers on the test database."""
    sim = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    run_sync(database_url, f"{sim.url}/common/master")
    app.extensions["gateway.symbols"].invalidate()
    app_key, secret = random_key(36), remember_secret(random_key(180))
    requests.post(
        f"{sim.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": "50123456",
            "product_code": "01",
            "cash": "1000000000",
            "positions": {"005930": 10},
        },
        timeout=5,
    ).raise_for_status()
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": "kis",
            "exchange": "KIS",
            "api_key": app_key,
            "api_secret": secret,
            "base_url": sim.url,
            "securities_config": {"account_number": "50123456", "product_code": "01"},
        },
    ).get_json()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": base_config["SECRET_KEY"],
        "GATEWAY_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
        "GATEWAY_ENV": "test",
    }
    env.pop("GATEWAY_REDIS_URL", None)
    servers = [_start_server(env, tmp_path / f"server-{n}.log") for n in ("a", "b")]
    try:
        for process, url in servers:
            _wait_ready(url, process)
        prices = requests.get(f"{sim.url}/_sim/prices", params={"symbol": "005930"}, timeout=5)
        market = Decimal(prices.json()["prices"]["005930"])
        resting = str((market * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)
        yield servers[0][1], servers[1][1], account["id"], resting, sim.url
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        sim.stop()
        logged = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
        assert all(value not in logged for value in SECRETS_IN_USE)


def _order(url: str, headers: dict, account_id: int, price: str) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/orders",
        headers={**headers, "Idempotency-Key": f"ks-{uuid.uuid4()}"},
        json={
            "account_id": account_id,
            "symbol": "005930",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "limit_price": price,
        },
        timeout=10,
    )


def _placed(sim_url: str) -> int:
    ledger = requests.get(f"{sim_url}/_sim/ledger", params={"kind": "order_placed"}, timeout=5)
    return len(ledger.json()["entries"])


@pytest.mark.slow
def test_a_switch_set_through_one_process_refuses_orders_in_another_within_a_second(
    app, client, api_headers, two_servers
):
    server_a, server_b, account_id, price, sim_url = two_servers
    assert _order(server_b, api_headers, account_id, price).status_code == 201
    placed_before = _placed(sim_url)

    sent = time.monotonic()
    engaged = requests.put(
        f"{server_a}/api/v1/accounts/{account_id}/kill-switch",
        headers=api_headers,
        json={"reason": "runaway strategy 7"},
        timeout=10,
    )
    answered = time.monotonic()
    assert engaged.status_code == 200, engaged.text
    assert engaged.json()["engaged"] is True

    accepted_after = 0
    while True:
        refused = _order(server_b, api_headers, account_id, price)
        if refused.status_code == 422:
            break
        assert refused.status_code == 201, refused.text
        accepted_after += 1
        assert time.monotonic() - answered < 5, "server B never saw the switch"
    first_refusal = time.monotonic()
    delay = first_refusal - answered
    print(
        f"\nkill switch: engaged through A in {answered - sent:.3f} s; B refused "
        f"{delay:.3f} s after A's answer ({accepted_after} orders accepted in between)"
    )
    assert delay < 1.0
    assert accepted_after == 0  # read in the intent's transaction: no window at all
    problem = refused.json()
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert problem["code"] == "kill_switch_engaged"
    assert problem["kill_switch"]["reason"] == "runaway strategy 7"
    assert problem["kill_switch"]["set_by"].startswith("api-key:")
    assert _placed(sim_url) == placed_before  # nothing reached the broker

    # Who, when and why, through the other process's API.
    shown = requests.get(
        f"{server_b}/api/v1/accounts/{account_id}/kill-switch", headers=api_headers, timeout=5
    ).json()
    assert shown["engaged"] and shown["reason"] == "runaway strategy 7"
    assert shown["set_by"] == problem["kill_switch"]["set_by"] and shown["set_at"]
    listed = requests.get(f"{server_b}/api/v1/kill-switches", headers=api_headers, timeout=5)
    assert [s["target_id"] for s in listed.json()] == [account_id]

    # …in the UI, where the operator releases it with the page's CSRF token…
    result = run_cli(
        app, "users", "create", "--username", "olga", "--password-stdin", input="pw-olga-123456\n"
    )
    assert result.exit_code == 0, result.output
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    login = client.post(
        "/login", data={"username": "olga", "password": "pw-olga-123456", "csrf_token": token}
    )
    assert login.status_code == 302
    page = client.get("/risk").get_data(as_text=True)
    assert "runaway strategy 7" in page and problem["kill_switch"]["set_by"] in page
    # …and by the CLI.
    listing = run_cli(app, "risk", "list")
    assert listing.exit_code == 0 and "runaway strategy 7" in listing.output
    without_token = client.post(f"/risk/kill-switches/ACCOUNT/{account_id}/release")
    assert without_token.status_code == 400  # no CSRF token: refused, still engaged
    token = _CSRF.search(page).group(1)
    released = client.post(
        f"/risk/kill-switches/ACCOUNT/{account_id}/release",
        data={f"release-account-{account_id}-csrf_token": token},
    )
    assert released.status_code == 302, released.get_data(as_text=True)[:300]
    after = client.get("/risk").get_data(as_text=True)
    assert "No kill switch is engaged." in after and "kill_switch_released" in after
    assert _order(server_b, api_headers, account_id, price).status_code == 201


def test_the_ui_engages_a_global_switch_and_the_cli_releases_it(app, client, api_headers):
    result = run_cli(
        app, "users", "create", "--username", "ivan", "--password-stdin", input="pw-ivan-123456\n"
    )
    assert result.exit_code == 0, result.output
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    client.post(
        "/login", data={"username": "ivan", "password": "pw-ivan-123456", "csrf_token": token}
    )
    page = client.get("/risk").get_data(as_text=True)
    token = _CSRF.search(page).group(1)
    missing_reason = client.post(
        "/risk/kill-switches", data={"target": "GLOBAL:0", "reason": "", "csrf_token": token}
    )
    assert missing_reason.status_code == 422
    engaged = client.post(
        "/risk/kill-switches",
        data={"target": "GLOBAL:0", "reason": "exchange incident", "csrf_token": token},
    )
    assert engaged.status_code == 302
    shown = client.get("/api/v1/kill-switches/global", headers=api_headers).get_json()
    assert shown["engaged"] and shown["set_by"] == "user:ivan"
    assert shown["reason"] == "exchange incident"
    released = run_cli(app, "risk", "release", "--global")
    assert released.exit_code == 0, released.output
    assert client.get("/api/v1/kill-switches/global", headers=api_headers).get_json() == {
        "scope": "GLOBAL",
        "target_id": None,
        "engaged": False,
        "reason": None,
        "set_by": None,
        "set_at": None,
    }


def test_the_cli_sets_switches_and_policies_the_api_then_shows(
    app, client, api_headers, make_api_key
):
    strategy = make_api_key("orders:write")
    with app.app_context():
        from web_server.services.api_keys import authenticate

        key_id = authenticate(strategy["Authorization"]).id
    engaged = run_cli(app, "risk", "kill", "--api-key", str(key_id), "--reason", "drill")
    assert engaged.exit_code == 0, engaged.output
    own = client.get(f"/api/v1/api-keys/{key_id}/kill-switch", headers=strategy).get_json()
    assert own["engaged"] and own["reason"] == "drill" and own["set_by"].startswith("cli:")
    assert run_cli(app, "risk", "kill", "--reason", "x").exit_code == 2  # no target named
    policy = run_cli(
        app,
        "risk",
        "policy",
        "set",
        "--api-key",
        str(key_id),
        "--max-order-notional",
        "5000000",
        "--max-open-orders",
        "3",
        "--allowed-side",
        "SELL",
    )
    assert policy.exit_code == 0, policy.output
    shown = client.get(f"/api/v1/api-keys/{key_id}/risk-policy", headers=strategy).get_json()
    assert shown["limits"]["max_order_notional"] == "5000000"
    assert shown["limits"]["max_open_orders"] == 3
    assert shown["limits"]["allowed_sides"] == ["SELL"]
    assert shown["updated_by"].startswith("cli:")
    # The strategy may read its own policy, not change it.
    refused = client.put(
        f"/api/v1/api-keys/{key_id}/risk-policy", headers=strategy, json={"max_open_orders": 9}
    )
    assert refused.status_code == 403
    replaced = client.put(
        f"/api/v1/api-keys/{key_id}/risk-policy",
        headers=api_headers,
        json={"max_daily_orders": 10, "refused_designations": ["ADMINISTRATIVE"]},
    )
    assert replaced.status_code == 200, replaced.get_json()
    limits = replaced.get_json()["limits"]
    assert limits["max_daily_orders"] == 10 and limits["max_order_notional"] is None
    bad = client.put(
        f"/api/v1/api-keys/{key_id}/risk-policy",
        headers=api_headers,
        json={"max_order_notional": 5000000},
    )
    assert bad.status_code == 422 and bad.get_json()["code"] == "validation_failed"
    listing = run_cli(app, "risk", "list")
    assert "drill" in listing.output and '"max_daily_orders": 10' in listing.output
    assert run_cli(app, "risk", "policy", "delete", "--api-key", str(key_id)).exit_code == 0
    assert (
        client.delete(f"/api/v1/api-keys/{key_id}/risk-policy", headers=api_headers).status_code
        == 404
    )
    assert run_cli(app, "risk", "release", "--api-key", str(key_id)).exit_code == 0
    events = [e.action for e in _events(app)]
    assert events[:5] == [
        "kill_switch_released",
        "policy_deleted",
        "policy_set",
        "policy_set",
        "kill_switch_engaged",
    ]


def _events(app):
    from web_server.services.risk_policies import list_events

    with app.app_context():
        return list(list_events(10))
