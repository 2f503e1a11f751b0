"""The authorization matrix: every endpoint × every kind of key (issue 12, "Hard edges").

Columns: no key; a key without the endpoint's scope (every other scope, admin aside); a key
with the scope but limited to another account (B); an ``admin`` key limited to the account the
request is about (A); and, as the baseline, an unrestricted key with the scope. Each cell is
one test: the status it must get, and for a refusal that nothing changed. The table here is the
one in the README ("Authorization"): a test reads the README and compares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret
from web_server.services.stocks_sync import run_sync

README = Path(__file__).resolve().parents[2] / "README.md"
SCOPES = ("orders:write", "orders:read", "holdings:read", "accounts:read", "admin")
COLUMNS = ("no key", "wrong scope", "key for another account", "admin limited to it", "baseline")


@dataclass(frozen=True)
class Endpoint:
    """An operation, the scope it needs (None: any key; "" : none), and its expected row."""

    label: str
    method: str
    scope: str | None
    expected: tuple[int, int, int, int, int]
    fresh_account: bool = False  # an allowed cell acts on an account of its own
    fresh_order: bool = False  # an allowed cell acts on an order of its own
    fresh_subscription: bool = False  # an allowed cell acts on a webhook subscription of its own
    prepare: str | None = None  # engage this switch or set this policy before the request


ENDPOINTS = (
    Endpoint("GET /api/v1/accounts", "GET", "accounts:read", (401, 403, 200, 200, 200)),
    Endpoint("POST /api/v1/accounts", "POST", "admin", (401, 403, 403, 403, 201)),
    Endpoint("GET /api/v1/accounts/{id}", "GET", "accounts:read", (401, 403, 403, 200, 200)),
    Endpoint("PATCH /api/v1/accounts/{id}", "PATCH", "admin", (401, 403, 403, 200, 200)),
    Endpoint(
        "DELETE /api/v1/accounts/{id}",
        "DELETE",
        "admin",
        (401, 403, 403, 204, 204),
        fresh_account=True,
    ),
    Endpoint(
        "POST /api/v1/accounts/{id}/token/refresh",
        "POST",
        "admin",
        (401, 403, 403, 200, 200),
        fresh_account=True,
    ),
    Endpoint(
        "GET /api/v1/accounts/{id}/balances", "GET", "holdings:read", (401, 403, 403, 200, 200)
    ),
    Endpoint(
        "GET /api/v1/accounts/{id}/holdings", "GET", "holdings:read", (401, 403, 403, 200, 200)
    ),
    Endpoint("POST /api/v1/orders", "POST", "orders:write", (401, 403, 403, 201, 201)),
    Endpoint("GET /api/v1/orders", "GET", "orders:read", (401, 403, 200, 200, 200)),
    Endpoint("GET /api/v1/orders/{id}", "GET", "orders:read", (401, 403, 404, 200, 200)),
    Endpoint(
        "POST /api/v1/orders/{id}/cancel",
        "POST",
        "orders:write",
        (401, 403, 404, 200, 200),
        fresh_order=True,
    ),
    Endpoint("GET /api/v1/stocks", "GET", None, (401, 200, 200, 200, 200)),
    Endpoint("GET /api/v1/stocks/{symbol}", "GET", None, (401, 200, 200, 200, 200)),
    Endpoint("GET /api/v1/openapi.json", "GET", "", (200, 200, 200, 200, 200)),
    Endpoint("GET /api/v1/docs", "GET", "", (200, 200, 200, 200, 200)),
    Endpoint("GET /api/v1/kill-switches", "GET", "admin", (401, 403, 200, 200, 200)),
    Endpoint("GET /api/v1/kill-switches/global", "GET", "admin", (401, 403, 200, 200, 200)),
    Endpoint("PUT /api/v1/kill-switches/global", "PUT", "admin", (401, 403, 403, 403, 200)),
    Endpoint(
        "DELETE /api/v1/kill-switches/global",
        "DELETE",
        "admin",
        (401, 403, 403, 403, 204),
        prepare="GLOBAL",
    ),
    Endpoint("GET /api/v1/accounts/{id}/kill-switch", "GET", "admin", (401, 403, 403, 200, 200)),
    Endpoint("PUT /api/v1/accounts/{id}/kill-switch", "PUT", "admin", (401, 403, 403, 200, 200)),
    Endpoint(
        "DELETE /api/v1/accounts/{id}/kill-switch",
        "DELETE",
        "admin",
        (401, 403, 403, 204, 204),
        prepare="ACCOUNT",
    ),
    Endpoint("GET /api/v1/api-keys/{id}/kill-switch", "GET", "admin", (401, 403, 403, 403, 200)),
    Endpoint("PUT /api/v1/api-keys/{id}/kill-switch", "PUT", "admin", (401, 403, 403, 403, 200)),
    Endpoint(
        "DELETE /api/v1/api-keys/{id}/kill-switch",
        "DELETE",
        "admin",
        (401, 403, 403, 403, 204),
        prepare="API_KEY",
    ),
    Endpoint("GET /api/v1/accounts/{id}/risk-policy", "GET", "admin", (401, 403, 403, 200, 200)),
    Endpoint("PUT /api/v1/accounts/{id}/risk-policy", "PUT", "admin", (401, 403, 403, 200, 200)),
    Endpoint(
        "DELETE /api/v1/accounts/{id}/risk-policy",
        "DELETE",
        "admin",
        (401, 403, 403, 204, 204),
        prepare="ACCOUNT_POLICY",
    ),
    Endpoint("GET /api/v1/api-keys/{id}/risk-policy", "GET", "admin", (401, 403, 403, 403, 200)),
    Endpoint("PUT /api/v1/api-keys/{id}/risk-policy", "PUT", "admin", (401, 403, 403, 403, 200)),
    Endpoint(
        "DELETE /api/v1/api-keys/{id}/risk-policy",
        "DELETE",
        "admin",
        (401, 403, 403, 403, 204),
        prepare="API_KEY_POLICY",
    ),
    Endpoint(
        "POST /api/v1/accounts/{id}/panic/cancel-all",
        "POST",
        "admin",
        (401, 403, 403, 201, 201),
        fresh_account=True,
    ),
    Endpoint(
        "POST /api/v1/accounts/{id}/panic/flatten",
        "POST",
        "admin",
        (401, 403, 403, 201, 201),
        fresh_account=True,
    ),
    Endpoint(
        "POST /api/v1/api-keys/{id}/panic/cancel-all", "POST", "admin", (401, 403, 403, 403, 201)
    ),
    Endpoint("GET /api/v1/panic-actions/{id}", "GET", "admin", (401, 403, 403, 403, 200)),
    Endpoint(
        "POST /api/v1/orders/{id}/amend",
        "POST",
        "orders:write",
        (401, 403, 404, 201, 201),
        fresh_order=True,
    ),
    Endpoint("GET /api/v1/orders/{id}/fills", "GET", "orders:read", (401, 403, 404, 200, 200)),
    Endpoint("GET /api/v1/events", "GET", "orders:read", (401, 403, 200, 200, 200)),
    Endpoint("POST /api/v1/webhooks", "POST", "orders:read", (401, 403, 201, 201, 201)),
    Endpoint("GET /api/v1/webhooks", "GET", "orders:read", (401, 403, 200, 200, 200)),
    Endpoint("GET /api/v1/webhooks/{id}", "GET", "orders:read", (401, 403, 404, 404, 200)),
    Endpoint(
        "DELETE /api/v1/webhooks/{id}",
        "DELETE",
        "orders:read",
        (401, 403, 404, 404, 204),
        fresh_subscription=True,
    ),
    Endpoint(
        "GET /api/v1/webhooks/{id}/deliveries", "GET", "orders:read", (401, 403, 404, 404, 200)
    ),
    Endpoint("GET /metrics", "GET", "admin", (401, 403, 403, 403, 200)),
    Endpoint("GET /healthz", "GET", "", (200, 200, 200, 200, 200)),
    Endpoint("GET /readyz", "GET", "", (200, 200, 200, 200, 200)),
)


class World:
    """A KIS simulator, accounts A and B in it and in the gateway, an order on A, and keys."""

    def __init__(self, app, url: str) -> None:
        self.app = app
        self.url = url
        self.client = app.test_client()
        self._keys: dict[tuple, dict[str, str]] = {}
        self._numbers = 0
        self._admin = self.key(("admin",), None)
        self.a = self.new_account("account-a")
        self.b = self.new_account("account-b")
        price = requests.get(f"{url}/_sim/prices", params={"symbol": "005930"}, timeout=5)
        market = Decimal(price.json()["prices"]["005930"])
        # Inside KRX's price band and on its tick, below the market: the order rests.
        self.resting = str((market * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)
        self.order = self.place_order()
        # Another strategy's key: the target of the per-key switch, policy and panic rows.
        self.target_key = self._key_id(self.key(("orders:write",), None))
        ran = self.client.post(
            f"/api/v1/accounts/{self.b}/panic/cancel-all",
            headers={**self._admin, "Idempotency-Key": random_key(20)},
        )
        assert ran.status_code == 201, ran.get_json()
        self.panic_action = ran.get_json()["id"]
        # A webhook subscription of the baseline orders:read key: a subscription is its key's own.
        self.subscription = self.subscribe()

    def subscribe(self) -> int:
        """Subscribe a receiver with the baseline ``orders:read`` key; return the id."""
        made = self.client.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook"},
            headers=self.key(("orders:read",), None),
        )
        assert made.status_code == 201, made.get_json()
        return int(made.get_json()["id"])

    def _key_id(self, headers: dict[str, str]) -> int:
        from web_server.services.api_keys import authenticate

        with self.app.app_context():
            return authenticate(headers["Authorization"]).id

    def prepare(self, what: str, account: int) -> None:
        """Engage a switch or set a policy, so that the cell's DELETE has something to remove."""
        from web_server.services import kill_switches, risk_policies

        with self.app.app_context():
            if what == "GLOBAL":
                kill_switches.engage("GLOBAL", None, "matrix", "test")
            elif what == "ACCOUNT":
                kill_switches.engage("ACCOUNT", account, "matrix", "test")
            elif what == "API_KEY":
                kill_switches.engage("API_KEY", self.target_key, "matrix", "test")
            elif what == "ACCOUNT_POLICY":
                risk_policies.set_policy("ACCOUNT", account, {"max_open_orders": 50}, "test")
            else:
                risk_policies.set_policy(
                    "API_KEY", self.target_key, {"max_open_orders": 50}, "test"
                )

    def key(self, scopes: tuple[str, ...], accounts: tuple[int, ...] | None) -> dict[str, str]:
        """Return the headers of a key with these scopes and accounts (made once)."""
        from web_server.extensions import db
        from web_server.services.api_keys import create_api_key

        if (scopes, accounts) not in self._keys:
            with self.app.app_context():
                _, key = create_api_key("matrix", scopes, list(accounts) if accounts else None)
                db.session.commit()
            self._keys[(scopes, accounts)] = {"Authorization": f"Bearer {key}"}
        return self._keys[(scopes, accounts)]

    def new_account(self, name: str) -> int:
        """Make a KIS account with keys of its own (the simulator's issuance limit is per key)."""
        app_key, secret = random_key(36), remember_secret(random_key(180))
        self._numbers += 1
        number = f"{50000000 + self._numbers}"
        requests.post(
            f"{self.url}/_sim/accounts",
            json={
                "app_key": app_key,
                "app_secret": secret,
                "account_number": number,
                "product_code": "01",
                "cash": "100000000",
                "positions": {"005930": 10},
            },
            timeout=5,
        ).raise_for_status()
        created = self.client.post(
            "/api/v1/accounts",
            headers=self._admin,
            json={
                "name": name,
                "exchange": "KIS",
                "api_key": app_key,
                "api_secret": secret,
                "base_url": self.url,
                "securities_config": {"account_number": number, "product_code": "01"},
            },
        )
        assert created.status_code == 201, created.get_json()
        return int(created.get_json()["id"])

    def place_order(self) -> str:
        """Place a resting order on A; return its id."""
        placed = self.client.post(
            "/api/v1/orders",
            json=self.order_body(),
            headers={**self._admin, "Idempotency-Key": random_key(20)},
        )
        assert placed.status_code == 201, placed.get_json()
        return str(placed.get_json()["id"])

    def order_body(self) -> dict[str, Any]:
        """Return an order on A that rests at the broker."""
        return {
            "account_id": self.a,
            "symbol": "005930",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "limit_price": self.resting,
        }


@pytest.fixture(scope="module")
def world(app, database_url):
    """The matrix's world, for the whole module; the tables are emptied at the end."""
    from sqlalchemy import text

    from tests.conftest import _DATA_TABLES
    from web_server.extensions import db

    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    run_sync(database_url, f"{handle.url}/common/master")
    app.extensions["gateway.symbols"].invalidate()
    yield World(app, handle.url)
    handle.stop()
    with app.app_context():
        db.session.remove()
        db.session.execute(text(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY CASCADE"))
        db.session.commit()


def _headers(world: World, endpoint: Endpoint, column: str, account: int) -> dict[str, str]:
    scope = endpoint.scope or "accounts:read"  # "any key" endpoints: some scope
    if column == "no key":
        return {}
    if column == "wrong scope":
        others = tuple(s for s in SCOPES if s not in (scope, "admin"))
        if endpoint.scope is None or endpoint.scope == "":
            others = ("orders:read",)
        return world.key(others, None)
    if column == "key for another account":
        return world.key((scope,), (world.b,))
    if column == "admin limited to it":
        return world.key(("admin",), (account,))
    return world.key((scope,), None)


def _request(
    world: World, endpoint: Endpoint, allowed: bool, headers: dict[str, str], account: int
) -> Any:
    order, subscription = world.order, world.subscription
    if allowed and endpoint.fresh_order:
        order = world.place_order()
    if allowed and endpoint.fresh_subscription:
        subscription = world.subscribe()
    path = (
        endpoint.label.split(" ", 1)[1]
        .replace("/accounts/{id}", f"/accounts/{account}")
        .replace("/orders/{id}", f"/orders/{order}")
        .replace("/webhooks/{id}", f"/webhooks/{subscription}")
        .replace("{symbol}", "005930")
        .replace("/api-keys/{id}", f"/api-keys/{world.target_key}")
        .replace("/panic-actions/{id}", f"/panic-actions/{world.panic_action}")
    )
    body: dict[str, Any] | None = None
    extra: dict[str, str] = {}
    if endpoint.label == "POST /api/v1/accounts":
        body = {
            "name": f"made-{random_key(8)}",
            "exchange": "UPBIT",
            "api_key": "access-key",
            "api_secret": "secret-key",
            "base_url": world.url,
        }
    elif endpoint.label.startswith("PATCH"):
        body = {"name": f"renamed-{random_key(8)}"}
    elif endpoint.label == "POST /api/v1/orders":
        body = world.order_body()
        extra = {"Idempotency-Key": random_key(20)}
    elif endpoint.label.endswith("/amend"):
        body = {"limit_price": str(Decimal(world.resting) - 1000)}
        extra = {"Idempotency-Key": random_key(20)}
    elif endpoint.label == "POST /api/v1/webhooks":
        body = {"url": "http://127.0.0.1:9/hook"}
    elif "/panic/" in endpoint.label:
        extra = {"Idempotency-Key": random_key(20)}
    elif endpoint.method == "PUT" and "kill-switch" in endpoint.label:
        body = {"reason": "matrix"}
    elif endpoint.method == "PUT" and endpoint.label.endswith("risk-policy"):
        body = {"max_open_orders": 50}
    return world.client.open(path, method=endpoint.method, json=body, headers={**headers, **extra})


def _snapshot(psql) -> dict[str, list[tuple]]:
    return {
        "accounts": psql.execute("SELECT * FROM accounts ORDER BY id").fetchall(),
        "orders": psql.execute("SELECT * FROM trade.orders ORDER BY id").fetchall(),
        "tokens": psql.execute("SELECT account_id FROM securities_tokens").fetchall(),
        "kill_switches": psql.execute("SELECT * FROM trade.kill_switches ORDER BY id").fetchall(),
        "risk_policies": psql.execute("SELECT * FROM trade.risk_policies ORDER BY id").fetchall(),
        "panic_actions": psql.execute("SELECT id FROM trade.panic_actions ORDER BY id").fetchall(),
        "webhooks": psql.execute("SELECT id FROM trade.webhook_subscriptions").fetchall(),
    }


CELLS = [(e, i) for e in ENDPOINTS for i in range(len(COLUMNS))]


@pytest.mark.parametrize(
    "endpoint, column",
    CELLS,
    ids=[f"{e.label} | {COLUMNS[i]}" for e, i in CELLS],
)
def test_authorization_matrix(world, psql, endpoint, column):
    expected = endpoint.expected[column]
    allowed = expected < 400
    account = world.a
    if allowed and endpoint.fresh_account:
        account = world.new_account(f"fresh-{random_key(8)}")
    headers = _headers(world, endpoint, COLUMNS[column], account)
    if endpoint.prepare:
        world.prepare(endpoint.prepare, account)
    before = _snapshot(psql)
    try:
        response = _request(world, endpoint, allowed, headers, account)
    finally:
        # Each cell leaves no switch and no policy behind for the next one.
        after = _snapshot(psql)
        psql.execute("DELETE FROM trade.kill_switches")
        psql.execute("DELETE FROM trade.risk_policies")
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if not allowed:
        assert response.mimetype == "application/problem+json"
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[expected]
        assert response.get_json()["code"] == code
        assert after == before
    elif endpoint.label == "GET /api/v1/events":
        seen = {e["account_id"] for e in response.get_json()["events"]}
        if COLUMNS[column] == "key for another account":
            assert world.a not in seen
        elif COLUMNS[column] == "admin limited to it":
            assert seen == {world.a}
        else:
            assert world.a in seen
    elif endpoint.label in ("GET /api/v1/accounts", "GET /api/v1/orders"):
        listed = response.get_json()
        if endpoint.label == "GET /api/v1/accounts":
            seen = {a["id"] for a in listed}
        else:
            seen = {o["account_id"] for o in listed["orders"]}
        if COLUMNS[column] == "key for another account":  # B has no orders
            assert seen == ({world.b} if endpoint.label.endswith("accounts") else set())
        elif COLUMNS[column] == "admin limited to it":
            assert seen == {world.a}
        else:
            assert world.a in seen


def _readme_matrix() -> dict[str, tuple[int, ...]]:
    """Read the README's authorization matrix: endpoint → the status of each column."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Authorization matrix", 1)[1].split("\n\n", 2)[1]
    rows: dict[str, tuple[int, ...]] = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        statuses = tuple(int(re.match(r"\d{3}", c).group()) for c in cells[2:])
        for label in cells[0].split(", "):
            rows[label.strip("`")] = statuses
    return rows


def test_the_readme_documents_the_same_matrix():
    documented = _readme_matrix()
    assert documented == {e.label: e.expected for e in ENDPOINTS}
