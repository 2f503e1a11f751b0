"""Orders across trading days, lost answers and lost cancels (issue 11, "Why"), one test each.

The gateway and the KIS/Kiwoom simulators run on one simulated clock: the simulator's
:class:`~simulators.engine.SimClock` is installed as the gateway's clock
(``services/clock.py``), and ``POST /_sim/clock`` moves both, whole trading days in a moment.
The simulators keep the KRX calendar and sessions, number orders afresh each trading day, and
lapse day orders at the close. Their ledgers are the ground truth.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulators.engine import SimClock
from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret
from web_server.extensions import db
from web_server.models import Order
from web_server.services import clock as gateway_clock
from web_server.services.orders import poll_open_orders, reconcile_orders
from web_server.services.stocks_sync import run_sync

KST = dt.timezone(dt.timedelta(hours=9))
#: Wednesday and Thursday, both KRX trading days; the session runs 09:00–15:30 KST.
DAY1 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=KST)
#: The next morning, inside the session and inside the first day's token lifetime (24 h): the
#: token service's issuance windows run on wall time, which the test does not move.
DAY2 = dt.datetime(2026, 12, 3, 9, 30, tzinfo=KST)
TIMEOUT = 5


class Venue:
    """A securities simulator on a frozen clock, an account in it and in the gateway."""

    def __init__(self, url: str, account_id: int, handle: Any, sim_clock: SimClock) -> None:
        self.url, self.account_id, self.handle, self.clock = url, account_id, handle, sim_clock

    def advance(self, seconds: float) -> None:
        r = requests.post(f"{self.url}/_sim/clock", json={"advance_seconds": seconds}, timeout=30)
        r.raise_for_status()

    def go(self, when: dt.datetime) -> None:
        """Move both clocks to ``when`` (the simulator settles held requests and lapses orders)."""
        self.advance((when - self.clock.now()).total_seconds())

    def price(self, symbol: str) -> Decimal:
        r = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=TIMEOUT)
        return Decimal(r.json()["prices"][symbol])

    def resting(self, symbol: str) -> str:
        """A buy price inside the daily band, well below the market: the order rests."""
        return str((self.price(symbol) * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)

    def ledger(self, kind: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/_sim/ledger", params={"kind": kind}, timeout=TIMEOUT)
        return list(r.json()["entries"])

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.url}/_sim/faults", json=fault, timeout=TIMEOUT).raise_for_status()


def _open_venue(app, client, api_headers, database_url, exchange: str) -> Venue:
    sim_clock = SimClock.frozen(DAY1.astimezone(dt.UTC))
    name = exchange.lower()
    handle = serve_in_thread(
        create_simulator(name, market_hours="krx", clock=sim_clock, rate_limit_per_second=0)
    )
    app_key, secret = random_key(36), remember_secret(random_key(180))
    if exchange == "KIS":
        sim_account = {"app_key": app_key, "app_secret": secret, "account_number": "50123456"}
        sim_account["product_code"] = "01"
        config = {"securities_config": {"account_number": "50123456", "product_code": "01"}}
    else:
        sim_account = {"app_key": app_key, "secret_key": secret, "account_number": "5012345611"}
        # Kiwoom knows the account by its token; the gateway keeps the number all the same.
        config = {"securities_config": {"account_number": "50123456", "product_code": "11"}}
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={**sim_account, "cash": "1000000000", "positions": {"005930": 10}},
        timeout=TIMEOUT,
    ).raise_for_status()
    if exchange == "KIS":
        run_sync(database_url, f"{handle.url}/common/master")
    else:  # Kiwoom serves no master file: KIS's simulator serves the same KRX listings
        master = serve_in_thread(create_simulator("kis"))
        try:
            run_sync(database_url, f"{master.url}/common/master")
        finally:
            master.stop()
    app.extensions["gateway.symbols"].invalidate()
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": name,
            "exchange": exchange,
            "api_key": app_key,
            "api_secret": secret,
            "base_url": handle.url,
            **config,
        },
    )
    assert account.status_code == 201, account.get_json()
    return Venue(handle.url, account.get_json()["id"], handle, sim_clock)


@pytest.fixture
def on_sim_clock(app):
    """The gateway reads the simulator's clock; broker calls time out after one second."""
    timeout = app.config.get("BROKER_TIMEOUT_SECONDS")
    app.config["BROKER_TIMEOUT_SECONDS"] = 1.0
    yield
    gateway_clock.install(app, None)
    app.config["BROKER_TIMEOUT_SECONDS"] = timeout


@pytest.fixture
def kis(app, client, api_headers, database_url, on_sim_clock):
    venue = _open_venue(app, client, api_headers, database_url, "KIS")
    gateway_clock.install(app, venue.clock.now)
    yield venue
    venue.handle.stop()


@pytest.fixture
def kiwoom(app, client, api_headers, database_url, on_sim_clock):
    venue = _open_venue(app, client, api_headers, database_url, "KIWOOM")
    gateway_clock.install(app, venue.clock.now)
    yield venue
    venue.handle.stop()


def _place(client, headers, venue: Venue, key: str, symbol: str = "005930", qty: str = "1"):
    body = {
        "account_id": venue.account_id,
        "symbol": symbol,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": qty,
        "limit_price": venue.resting(symbol),
    }
    return client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})


def _get(client, headers, order_id: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/orders/{order_id}", headers=headers)
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def _jobs(app, job) -> dict[str, int]:
    with app.app_context():
        counts = job()
        db.session.commit()
    return counts


def test_a_number_repeated_on_a_later_day_binds_to_that_days_order(app, client, api_headers, kis):
    first = _place(client, api_headers, kis, "day1")
    assert first.status_code == 201, first.get_json()
    kis.go(DAY2)  # Thursday 09:30: numbers start again at 1
    second = _place(client, api_headers, kis, "day2")
    assert second.status_code == 201, second.get_json()
    one, two = first.get_json(), second.get_json()
    # The broker gave both the same number, each on its own day; both are bound and live.
    assert int(one["broker_order_id"]) == int(two["broker_order_id"]) == 1
    assert two["status"] == "SUBMITTED", two
    assert (one["broker_order_date"], two["broker_order_date"]) == ("2026-12-02", "2026-12-03")
    # Yesterday's order lapsed at its close; today's is still open: each bound to its own day.
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, one["id"])["status"] == "EXPIRED"
    assert _get(client, api_headers, two["id"])["status"] == "SUBMITTED"


def test_cancelling_yesterdays_number_never_cancels_todays(app, client, api_headers, kis):
    yesterday = _place(client, api_headers, kis, "y-1").get_json()
    kis.go(DAY2)
    today = _place(client, api_headers, kis, "t-1", symbol="000660").get_json()
    assert int(today["broker_order_id"]) == int(yesterday["broker_order_id"])
    r = client.post(f"/api/v1/orders/{yesterday['id']}/cancel", headers=api_headers)
    assert r.status_code == 200, r.get_json()
    # Yesterday's order lapsed at its close: nothing was sent, and today's #1 is untouched.
    assert r.get_json()["status"] == "EXPIRED"
    assert kis.ledger("order_cancelled") == []
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, today["id"])["status"] == "SUBMITTED"


def test_a_lost_cancel_can_be_repeated_and_reopens_after_the_recheck(app, client, api_headers, kis):
    order = _place(client, api_headers, kis, "lc-1").get_json()
    # The cancel never reaches the broker's order desk: the connection is reset.
    kis.fault(kind="reset", target="cancel")
    lost = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=api_headers)
    assert lost.status_code == 200 and lost.get_json()["status"] == "CANCEL_PENDING"
    # Still open at the broker: after CANCEL_RECHECK the poller puts it back to its open state.
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, order["id"])["status"] == "CANCEL_PENDING"
    kis.advance(61)
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, order["id"])["status"] == "SUBMITTED"
    # A second lost cancel, then the cancel is simply repeated (no 409).
    kis.fault(kind="reset", target="cancel")
    assert (
        client.post(f"/api/v1/orders/{order['id']}/cancel", headers=api_headers).status_code == 200
    )
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=api_headers)
    assert again.status_code == 200, again.get_json()
    assert len(kis.ledger("order_cancelled")) == 1
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, order["id"])["status"] == "CANCELLED"


def test_a_late_acceptance_is_bound_not_rejected(app, client, api_headers, kis):
    # The broker holds the order request and acts on it ten simulated minutes later; the
    # gateway's call times out meanwhile.
    kis.fault(kind="late", target="order", sim_seconds=600)
    r = _place(client, api_headers, kis, "late-1")
    order = r.get_json()
    assert order["status"] == "UNKNOWN", order
    kis.advance(300)  # long past the lease and the grace: the old rule said "never arrived"
    _jobs(app, reconcile_orders)
    assert _get(client, api_headers, order["id"])["status"] == "UNKNOWN"
    kis.advance(400)  # the broker acts on the held request
    assert len(kis.ledger("order_placed")) == 1
    _jobs(app, reconcile_orders)
    bound = _get(client, api_headers, order["id"])
    assert bound["status"] == "SUBMITTED" and int(bound["broker_order_id"]) == 1, bound


def test_two_identical_orders_in_doubt_are_not_bound_to_each_others_rows(
    app, client, api_headers, kis
):
    # The first is held in front of the broker and placed late; the second, identical, is
    # placed at once but its answer is lost. The broker's rows come in the other order.
    kis.fault(kind="late", target="order", sim_seconds=30)
    first = _place(client, api_headers, kis, "twin-1").get_json()
    kis.fault(kind="protocol_error", target="order")
    second = _place(client, api_headers, kis, "twin-2").get_json()
    assert (first["status"], second["status"]) == ("UNKNOWN", "UNKNOWN")
    kis.advance(31)
    rows = kis.ledger("order_placed")
    assert len(rows) == 2
    kis.advance(300)
    _jobs(app, reconcile_orders)
    one, two = _get(client, api_headers, first["id"]), _get(client, api_headers, second["id"])
    # Neither is bound (either binding could be the wrong one): both stay UNKNOWN, flagged
    # with both broker rows for the operator.
    assert (one["status"], two["status"]) == ("UNKNOWN", "UNKNOWN")
    assert one["broker_order_id"] is None and two["broker_order_id"] is None
    for view in (one, two):
        assert view["attention"]["reason"] == "ambiguous_match"
        assert {int(r["broker_order_id"]) for r in view["attention"]["broker_rows"]} == {1, 2}


def test_orders_the_broker_no_longer_has_stop_being_polled(app, client, api_headers, kis):
    order = _place(client, api_headers, kis, "old-1").get_json()
    with app.app_context():
        # An open order from before the broker's history window (a gateway that was down for
        # months): the broker has forgotten it.
        row = db.session.get(Order, order["id"])
        row.created_ts -= dt.timedelta(days=120)
        db.session.commit()
    first = _jobs(app, poll_open_orders)
    assert first.get("beyond_window") == 1, first
    view = _get(client, api_headers, order["id"])
    assert view["attention"]["reason"] == "beyond_history_window"
    # From then on the poller leaves it to the operator.
    assert _jobs(app, poll_open_orders) == {}


def test_day_orders_expire_at_the_close(app, client, api_headers, kis):
    order = _place(client, api_headers, kis, "exp-1").get_json()
    kis.go(DAY1.replace(hour=16, minute=0))  # the regular session closed at 15:30
    _jobs(app, poll_open_orders)
    view = _get(client, api_headers, order["id"])
    assert view["status"] == "EXPIRED", view
    assert len(kis.ledger("order_expired")) == 1


def test_kiwoom_day_orders_expire_and_numbers_repeat(app, client, api_headers, kiwoom):
    first = _place(client, api_headers, kiwoom, "kw-1").get_json()
    kiwoom.go(DAY2)
    second = _place(client, api_headers, kiwoom, "kw-2").get_json()
    assert second["status"] == "SUBMITTED", second
    assert int(first["broker_order_id"]) == int(second["broker_order_id"])
    _jobs(app, poll_open_orders)
    assert _get(client, api_headers, first["id"])["status"] == "EXPIRED"
    assert _get(client, api_headers, second["id"])["status"] == "SUBMITTED"
