"""Outbound webhooks: signed per Standard Webhooks, at least once, in order per order.

The must-show: a receiver down for a while (short back-off) gets every event afterwards, in order
per order, each signature verifying with the reference ``standardwebhooks`` package from PyPI —
delivered by a real ``gateway scheduler`` process.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.events_support import (
    PATH,
    ROOT,
    free_port,
    gateway_env,
    make_accounts,
    new_orders,
    step,
)
from web_server.extensions import db
from web_server.services import webhooks


class Receiver:
    """A webhook receiver on loopback that records what it is sent; it can be down."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.received: list[tuple[dict[str, str], bytes, float]] = []
        self.server: http.server.ThreadingHTTPServer | None = None
        self.failing = False

    def up(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failing:
                    self.send_response(503)
                else:
                    receiver.received.append((dict(self.headers), body, time.time()))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _subscribe(client, headers, url, **extra) -> dict:
    created = client.post("/api/v1/webhooks", json={"url": url, **extra}, headers=headers)
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def test_receivers_on_private_networks_are_refused_unless_allowed(app, client, api_headers):
    refused = {"allow_private": False, "allowlist": []}
    for url in (
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "https://localhost/hook",
        "http://203.0.113.9/hook",  # plain http outside the operator's allowances
        "https://user:pw@example.com/hook",
        "ftp://example.com/",
    ):
        assert webhooks.url_problem(url, **refused) is not None, url
    assert (
        webhooks.url_problem("https://10.1.2.3/x", allow_private=False, allowlist=["10.1.2.3"])
        is None
    )
    assert webhooks.url_problem("http://127.0.0.1:9/x", allow_private=True) is None
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    try:
        answer = client.post(
            "/api/v1/webhooks", json={"url": "https://127.0.0.1/hook"}, headers=api_headers
        )
        assert answer.status_code == 422
        assert "url" in answer.get_json()["errors"]
    finally:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = None


def test_subscriptions_belong_to_their_key(app, app_ctx, client, make_api_key):
    accounts, _ = make_accounts(db.engine, 2)
    mine = make_api_key("orders:read", accounts=[accounts[0]])
    other = make_api_key("orders:read")
    created = _subscribe(client, mine, "http://127.0.0.1:9/hook", event_types=["fill"])
    assert created["secret"].startswith("whsec_")
    sub = created["id"]
    assert client.get(f"/api/v1/webhooks/{sub}", headers=mine).get_json()["event_types"] == ["fill"]
    assert "secret" not in client.get(f"/api/v1/webhooks/{sub}", headers=mine).get_json()
    assert client.get(f"/api/v1/webhooks/{sub}", headers=other).status_code == 404
    assert client.get("/api/v1/webhooks", headers=other).get_json() == {"subscriptions": []}
    forbidden = client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "account_ids": [accounts[1]]},
        headers=mine,
    )
    assert forbidden.status_code == 403
    assert client.delete(f"/api/v1/webhooks/{sub}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/webhooks/{sub}", headers=mine).status_code == 204
    assert client.get(f"/api/v1/webhooks/{sub}/deliveries", headers=mine).status_code == 404


@pytest.mark.slow
def test_a_receiver_down_for_a_while_gets_everything_in_order_signed(
    app, app_ctx, client, make_api_key, database_url, base_config, tmp_path
):
    accounts, market = make_accounts(db.engine, 2)
    headers = make_api_key("orders:read", accounts=[accounts[0]])
    receiver = Receiver(free_port())
    sub = _subscribe(client, headers, receiver.url)
    env = {
        **gateway_env(database_url, base_config),
        "GATEWAY_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "GATEWAY_WEBHOOK_RETRY_MAX_SECONDS": "1",
    }
    log = open(tmp_path / "scheduler.log", "w")  # noqa: SIM115 - closed below
    scheduler = subprocess.Popen(
        [str(Path(sys.executable).parent / "gateway"), "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The receiver is down (nothing listens on its port) while the orders move.
        mine = new_orders(db.engine, accounts[0], market, 10)
        new_orders(db.engine, accounts[1], market, 3)  # another account: never sent
        for status in PATH:
            for order in mine:
                step(db.engine, order, status)
        # The scheduler starts (seconds, on a slow machine) and tries each delivery at least
        # once while the receiver is down.
        ends = time.time() + 60
        while True:
            pending = client.get(
                f"/api/v1/webhooks/{sub['id']}/deliveries?status=pending", headers=headers
            ).get_json()["deliveries"]
            tried = pending and all(d["attempts"] >= 1 for d in pending[:10])
            if tried or time.time() > ends:
                break
            time.sleep(0.2)
        assert tried, pending[:3]
        assert pending[0]["last_error"]
        # Up, but failing for a while: 503s are retried too.
        receiver.failing = True
        receiver.up()
        time.sleep(2)
        receiver.failing = False
        expected = 10 * 6  # accepted, submitted, fill, partially_filled, fill, filled
        ends = time.time() + 90
        while (
            time.time() < ends
            and len({h["webhook-id"] for h, _, _ in receiver.received}) < expected
        ):
            time.sleep(0.2)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=20)
        log.close()
        receiver.down()
    verifier = Webhook(sub["secret"])
    by_order = defaultdict(list)
    ids = set()
    for headers_in, body, _ in receiver.received:
        payload = verifier.verify(body, headers_in)  # raises if a signature does not verify
        assert headers_in["webhook-id"] == f"evt_{payload['data']['id']}"
        assert payload["data"]["account_id"] == accounts[0]
        if headers_in["webhook-id"] not in ids:
            ids.add(headers_in["webhook-id"])
            by_order[payload["data"]["order_id"]].append(payload["data"]["id"])
    assert len(ids) == expected, (len(ids), (tmp_path / "scheduler.log").read_text()[-3000:])
    for order, event_ids in by_order.items():
        assert event_ids == sorted(event_ids), order
        assert len(event_ids) == 6
    listed = client.get(
        f"/api/v1/webhooks/{sub['id']}/deliveries?limit=500", headers=headers
    ).get_json()["deliveries"]
    assert len(listed) == expected
    assert all(d["status"] == "delivered" and d["attempts"] >= 2 for d in listed[:10])
    print(
        f"\nwebhooks: {expected} events, {len(receiver.received)} requests received, "
        f"attempts per delivery up to {max(d['attempts'] for d in listed)}"
    )
    json.dumps(listed)  # the listing is plain JSON
