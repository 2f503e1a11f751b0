"""The Python client (clients/python) and the example strategy against a live gateway.

A gunicorn gateway (threaded workers) in its own process, a live Upbit simulator and the KIS
simulator's stocks master; the client speaks to the gateway over HTTP only.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
import requests
from gateway_client import ApiError, GatewayClient, TransportError

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret
from tests.integration.events_support import ROOT, Gateways, gateway_env
from web_server.extensions import db
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.stocks_sync import run_sync


@pytest.fixture
def live(app, client, make_api_key, database_url, base_config, tmp_path):
    """A gateway process, an Upbit account with KRW and BTC, the stocks master; yields a dict."""
    upbit = serve_in_thread(create_simulator("upbit"))
    kis = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    gateways = Gateways(tmp_path, gateway_env(database_url, base_config))
    try:
        run_sync(database_url, f"{kis.url}/common/master")
        access, secret = random_key(40), remember_secret(random_key(40))
        requests.post(
            f"{upbit.url}/_sim/accounts",
            json={
                "access_key": access,
                "secret_key": secret,
                "balances": {"KRW": "50000000", "BTC": "1"},
            },
            timeout=5,
        ).raise_for_status()
        admin = make_api_key("admin")
        account = client.post(
            "/api/v1/accounts",
            headers=admin,
            json={
                "name": "upbit-live",
                "exchange": "UPBIT",
                "api_key": access,
                "api_secret": secret,
                "base_url": upbit.url,
            },
        ).get_json()
        with app.app_context():
            sync_all_markets(("UPBIT",))
            db.session.commit()
        url, _ = gateways.start("gateway", workers=2, threads=16)
        key = admin["Authorization"].removeprefix("Bearer ")
        price = Decimal(
            requests.get(
                f"{upbit.url}/_sim/prices", params={"symbol": "KRW-BTC"}, timeout=5
            ).json()["prices"]["KRW-BTC"]
        )
        yield {
            "url": url,
            "key": key,
            "account": account,
            "sim": upbit.url,
            "price": price,
            "gateways": gateways,
        }
    finally:
        gateways.stop()
        upbit.stop()
        kis.stop()


def _below(price: Decimal) -> Decimal:
    return (price * Decimal("0.9") / 1000).quantize(Decimal(1)) * 1000


def _placed(sim: str) -> list[dict]:
    ledger = requests.get(f"{sim}/_sim/ledger", params={"kind": "order_placed"}, timeout=5)
    return ledger.json()["entries"]


def test_typed_calls_in_decimal(live):
    with GatewayClient(live["url"], live["key"]) as gw:
        [account] = [a for a in gw.accounts() if a.id == live["account"]["id"]]
        assert account.exchange == "UPBIT"
        balances = {b.currency: b for b in gw.balances(account.id)}
        assert isinstance(balances["KRW"].total, Decimal) and balances["KRW"].total > 0
        snapshot = gw.holdings(account.id, refresh=True)
        assert all(isinstance(h.quantity, Decimal) for h in snapshot.holdings)
        assert gw.stock("005930").symbol == "005930"
        assert any(s.symbol == "005930" for s in gw.stocks("005930"))
        order = gw.place_order(
            account.id, "KRW-BTC", "BUY", Decimal("0.01"), limit_price=Decimal("1000000")
        )
        assert order.status == "SUBMITTED" and order.quantity == Decimal("0.01")
        assert order.limit_price == Decimal("1000000")
        assert gw.get_order(order.id).id == order.id
        assert order.id in [o.id for o in gw.list_orders(account_id=account.id).orders]
        assert gw.cancel_order(order.id).status in ("CANCEL_PENDING", "CANCELLED")
        with pytest.raises(ApiError) as refused:
            gw.get_order(uuid.uuid4())
        assert refused.value.status == 404 and refused.value.code == "not_found"
        with pytest.raises(TypeError):
            gw.place_order(account.id, "KRW-BTC", "BUY", 0.01)  # type: ignore[arg-type]


def test_an_order_retried_after_a_lost_answer_is_placed_once(live):
    """The broker is slow, the client's read times out: its retry carries the same key."""
    requests.post(
        f"{live['sim']}/_sim/faults",
        json={"kind": "latency", "seconds": 3, "target": "order"},
        timeout=5,
    ).raise_for_status()
    before = len(_placed(live["sim"]))
    with GatewayClient(live["url"], live["key"], timeout=1.0, retries=8, max_wait=2) as gw:
        order = gw.place_order(
            live["account"]["id"], "KRW-BTC", "BUY", "0.01", limit_price="1000000"
        )
    assert order.status == "SUBMITTED"
    assert len(_placed(live["sim"])) == before + 1  # one order at the broker, not two


def test_nothing_is_resent_when_it_may_have_acted(live):
    """A cancel whose answer is lost is not sent again: the caller learns the outcome is open."""
    with GatewayClient(live["url"], live["key"]) as gw:
        order = gw.place_order(
            live["account"]["id"], "KRW-BTC", "BUY", "0.01", limit_price="1000000"
        )
    requests.post(
        f"{live['sim']}/_sim/faults",
        json={"kind": "latency", "seconds": 3, "target": "cancel"},
        timeout=5,
    ).raise_for_status()
    with GatewayClient(live["url"], live["key"], timeout=1.0) as gw, pytest.raises(TransportError):
        gw.cancel_order(order.id)


def test_the_event_stream_resumes_by_id(live):
    with GatewayClient(live["url"], live["key"]) as gw:
        start = gw.latest_event_id()
        placed = [
            gw.place_order(live["account"]["id"], "KRW-BTC", "BUY", "0.01", limit_price="1000000")
            for _ in range(3)
        ]
        first = []
        for event in gw.events(after=start):
            first.append(event)
            if len(first) == 2:
                break
        rest = []
        for event in gw.events(after=first[-1].id):  # a new connection, after the last id
            rest.append(event)
            if len(first) + len(rest) == 6:
                break
    got = first + rest
    assert [e.id for e in got] == list(range(start + 1, start + 7))
    assert [e.type for e in got] == ["accepted", "submitted"] * 3
    assert [e.order_id for e in got[1::2]] == [o.id for o in placed]


def test_the_example_strategy_follows_its_order_to_the_end(live):
    # As in `make demo`: the scheduler's poller finds the fills the broker makes.
    live["gateways"].start_scheduler(GATEWAY_ORDERS_POLL_INTERVAL_SECONDS="1")
    below = _below(live["price"])
    done = subprocess.run(
        [
            sys.executable,
            "examples/follow_order.py",
            "--url",
            live["url"],
            "--key",
            live["key"],
            "--account",
            "upbit-live",
            "--symbol",
            "KRW-BTC",
            "--side",
            "SELL",
            "--quantity",
            "0.002",
            "--price",
            str(below),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fill: 0.002 @ " in done.stdout
    assert "final: FILLED, filled 0.002" in done.stdout
    # And an order that rests, cancelled by the strategy after a second.
    resting = subprocess.run(
        [
            sys.executable,
            "examples/follow_order.py",
            "--url",
            live["url"],
            "--key",
            live["key"],
            "--account",
            "upbit-live",
            "--symbol",
            "KRW-BTC",
            "--side",
            "BUY",
            "--quantity",
            "0.01",
            "--price",
            "1000000",
            "--cancel-after",
            "1",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert resting.returncode == 0, resting.stdout + resting.stderr
    assert "final: CANCELLED" in resting.stdout, resting.stdout
    print("\n" + done.stdout + resting.stdout)
