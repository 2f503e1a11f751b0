"""The order event log: written with each change, gap-free in commit order, streamed and paged.

Must-shows of issue 14 here: a client streaming through gateway processes that are killed
during an order burst holds, after reconnecting with ``Last-Event-ID``, every event exactly once
and in order, matching the orders' final states; 200 concurrent SSE clients on two workers each
receive every event they may see and none they may not.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.integration.events_support import (
    PATH,
    Gateways,
    StreamReader,
    gateway_env,
    make_accounts,
    new_orders,
    step,
)
from tests.integration.test_orders_api import upbit as upbit  # a fixture
from web_server.extensions import db
from web_server.models import Fill, Order, OrderEvent
from web_server.services import events


@pytest.fixture
def world(app, app_ctx):
    """Three accounts and a market; yields the engine and the account ids."""
    accounts, market = make_accounts(db.engine, 3)
    return db.engine, accounts, market


def _all_events(engine) -> list[OrderEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(OrderEvent).order_by(OrderEvent.id)))


def _base(engine) -> int:
    with Session(engine) as session:
        return events.latest_id(session)


def test_an_event_commits_with_its_change_or_not_at_all(world):
    engine, accounts, market = world
    base = _base(engine)
    [order_id] = new_orders(engine, accounts[0], market, 1)
    # A change that rolls back leaves no event behind.
    with Session(engine) as session:
        with session.begin():
            order = session.get(Order, order_id)
            order.status = "SUBMITTED"
            session.flush()
            assert events.pending_count(session) == 1
            session.rollback()
        assert events.pending_count(session) == 0
    step(engine, order_id, "SUBMITTED")
    step(engine, order_id, "PARTIALLY_FILLED")
    step(engine, order_id, "FILLED")
    rows = [e for e in _all_events(engine) if e.id > base]
    assert [(e.id - base, e.type) for e in rows] == [
        (1, "accepted"),
        (2, "submitted"),
        (3, "fill"),
        (4, "partially_filled"),
        (5, "fill"),
        (6, "filled"),
    ]
    assert rows[1].payload["order"]["status"] == "SUBMITTED"
    assert rows[1].payload["order"]["quantity"] == "2"  # decimals as strings, never floats
    assert str(rows[1].order_id) == rows[1].payload["order"]["id"]
    # Fills derived from the cumulative quantity and average: 1 at 1,000,000, then 1 at 1,000,100.
    assert [(r.payload["fill"]["quantity"], r.payload["fill"]["price"]) for r in rows[2::2]] == [
        ("1", "1000000"),
        ("1", "1000100"),
    ]
    assert rows[5].payload["order"]["filled_quantity"] == "2"
    # Each fill event names its fill by the id GET /api/v1/orders/{id}/fills shows.
    with Session(engine) as session:
        stored = session.scalars(select(Fill.fill_id).where(Fill.order_id == order_id)).all()
    assert {r.payload["fill"]["fill_id"] for r in rows[2::2]} == {str(i) for i in stored}


def test_an_order_withdrawn_before_sending_ends_rejected(world):
    engine, accounts, market = world
    base = _base(engine)
    [order_id] = new_orders(engine, accounts[0], market, 1)
    with Session(engine) as session, session.begin():
        order = session.get(Order, order_id)
        intent = order.intent
        session.delete(order)
        session.flush()
        session.delete(intent)
    rows = [e for e in _all_events(engine) if e.id > base]
    assert [e.type for e in rows] == ["accepted", "rejected"]
    assert rows[1].payload["order"]["reject_code"] == "not_sent"


def test_transitions_name_their_events():
    assert events.transition_type(None, "PENDING_SUBMIT") == "accepted"
    assert events.transition_type("PENDING_SUBMIT", "SUBMITTED") == "submitted"
    assert events.transition_type("SUBMITTED", "SUBMITTED") is None
    assert events.transition_type("SUBMITTED", "CANCEL_PENDING") == "cancel_requested"
    assert events.transition_type("PENDING_SUBMIT", "UNKNOWN") == "unknown"
    assert events.transition_type("UNKNOWN", "FILLED") == "reconciled"
    assert events.transition_type("REJECTED", "SUBMITTED") == "reconciled"
    assert events.transition_type("UNKNOWN", "REJECTED") == "rejected"
    assert events.transition_type("SUBMITTED", "EXPIRED") == "expired"
    with pytest.raises(ValueError):
        events.record(None, None, "nonsense")  # type: ignore[arg-type]


def test_concurrent_writers_commit_ids_without_gaps_in_order(world):
    """32 threads change orders at once: ids are 1..N with no gap, each order's in its order."""
    engine, accounts, market = world
    base = _base(engine)
    orders = new_orders(engine, accounts[0], market, 64)
    seen_max: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        # A reader that has seen id N must already see every id below it.
        while not stop.is_set():
            with engine.connect() as conn:
                ids = [
                    r[0]
                    for r in conn.execute(
                        text("SELECT id FROM trade.order_events WHERE id > :b ORDER BY id"),
                        {"b": base},
                    )
                ]
            if ids:
                assert ids == list(range(base + 1, ids[-1] + 1)), "a reader saw a gap"
                seen_max.append(ids[-1])

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            for status in PATH:
                list(pool.map(lambda o, s=status: step(engine, o, s), orders))
    finally:
        stop.set()
        watcher.join()
    rows = [e for e in _all_events(engine) if e.id > base]
    assert [e.id for e in rows] == list(range(base + 1, base + len(rows) + 1))
    assert len(rows) == 64 * (1 + 3 + 2)  # accepted, three moves, two fills
    per_order = defaultdict(list)
    for row in rows:
        per_order[row.order_id].append(row.type)
    expected = ["accepted", "submitted", "fill", "partially_filled", "fill", "filled"]
    assert all(types == expected for types in per_order.values())
    assert seen_max, "the reader never ran"


def test_a_page_holds_only_the_keys_accounts_and_pages_on(client, make_api_key, world):
    engine, accounts, market = world
    base = _base(engine)
    mine = new_orders(engine, accounts[0], market, 3)
    new_orders(engine, accounts[1], market, 2)
    step(engine, mine[0], "SUBMITTED")
    limited = make_api_key("orders:read", accounts=[accounts[0]])
    page = client.get(f"/api/v1/events?after={base}&limit=2", headers=limited)
    assert page.status_code == 200, page.get_json()
    body = page.get_json()
    assert [e["account_id"] for e in body["events"]] == [accounts[0]] * 2
    rest = client.get(f"/api/v1/events?after={body['next_after']}", headers=limited).get_json()
    assert [e["type"] for e in body["events"] + rest["events"]] == [
        "accepted",
        "accepted",
        "accepted",
        "submitted",
    ]
    assert rest["next_after"] == rest["latest_id"] == base + 6
    no_scope = make_api_key("holdings:read")
    assert client.get("/api/v1/events", headers=no_scope).status_code == 403
    bad = client.get("/api/v1/events", headers={**limited, "Last-Event-ID": "x1"})
    assert bad.status_code == 422


@pytest.mark.slow
def test_a_stream_resumes_across_killed_workers_exactly_once(
    app, world, make_api_key, database_url, base_config, tmp_path
):
    """Two gateway processes; their workers are killed during a burst; the client resumes."""
    engine, accounts, market = world
    headers = make_api_key("orders:read")
    gateways = Gateways(tmp_path, gateway_env(database_url, base_config))
    try:
        (url_a, proc_a), (url_b, proc_b) = gateways.start("a"), gateways.start("b")
        base = _base(engine)
        reader = StreamReader([url_a, url_b], headers, after=base, until=time.time() + 60)
        reader.start()
        orders = new_orders(engine, accounts[0], market, 40)
        killed = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for number, status in enumerate(PATH):
                list(pool.map(lambda o, s=status: step(engine, o, s), orders))
                # Kill the worker serving streams (gunicorn starts a new one).
                for proc in (proc_a, proc_b):
                    for child in _children(proc.pid):
                        os.kill(child, signal.SIGKILL)
                        killed += 1
                time.sleep(0.3 * number)
        expected = [e for e in _all_events(engine) if e.id > base]
        ends = time.time() + 30
        while time.time() < ends and reader.last < expected[-1].id:
            time.sleep(0.1)
        reader.until = 0
        got = [(int(e["id"]), e["event"]) for e in reader.received]
        assert got == [(e.id, e.type) for e in expected], (reader.errors, len(got))
        assert reader.reconnects >= 1 and killed >= 2
        # The last event of each order carries its final state.
        final = {}
        for event in reader.received:
            final[event["data"]["order_id"]] = event["data"]["order"]["status"]
        with Session(engine) as session:
            for order in session.scalars(select(Order).where(Order.id.in_(orders))):
                assert final[str(order.id)] == order.status == "FILLED"
    finally:
        gateways.stop()


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as handle:
            return [int(p) for p in handle.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_200_streams_on_two_workers_get_all_they_may_see_and_nothing_else(
    app, world, make_api_key, database_url, base_config, tmp_path
):
    engine, accounts, market = world
    keys = [make_api_key("orders:read", accounts=[a]) for a in accounts]
    admin = make_api_key("orders:read")
    gateways = Gateways(tmp_path, gateway_env(database_url, base_config))
    try:
        # One gunicorn of two workers; each stream holds a thread. The kernel does not share
        # connections evenly between the workers, so each has threads for all of them.
        url, _ = gateways.start("pair", workers=2, threads=210)
        base = _base(engine)
        until = time.time() + 25
        readers = []
        for number in range(200):
            who = number % 4  # three keys of one account each, and an unrestricted one
            readers.append(
                StreamReader([url], keys[who] if who < 3 else admin, after=base, until=until)
            )
        for reader in readers:
            reader.start()
        time.sleep(2)
        orders = {a: new_orders(engine, a, market, 10) for a in accounts}
        every = [o for a in accounts for o in orders[a]]
        random.Random(4).shuffle(every)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for status in PATH:
                list(pool.map(lambda o, s=status: step(engine, o, s), every))
        expected = [e for e in _all_events(engine) if e.id > base]
        last = expected[-1].id
        ends = time.time() + 20
        while time.time() < ends and any(r.last < last for r in readers[3::4]):
            time.sleep(0.2)
        time.sleep(1.5)  # the limited readers' heartbeats carry no id; let their events land
        for reader in readers:
            reader.until = 0
        tally = Counter()
        for number, reader in enumerate(readers):
            who = number % 4
            wanted = [e.id for e in expected if who == 3 or e.account_id == accounts[who]]
            got = [int(e["id"]) for e in reader.received]
            assert got == wanted, (number, reader.errors[:3], len(got), len(wanted))
            tally["events"] += len(got)
            tally["reconnects"] += reader.reconnects
        print(
            f"\n200 streams: {tally['events']} events delivered, {tally['reconnects']} reconnects"
        )
    finally:
        gateways.stop()


def test_a_stream_in_process_starts_now_and_heartbeats(app, client, make_api_key, world):
    """The stream's framing, through the app itself: retry, comment, id/event/data."""
    engine, accounts, market = world
    app.config["EVENTS_HEARTBEAT_SECONDS"] = 0.2
    try:
        headers = {**make_api_key("orders:read"), "Accept": "text/event-stream"}
        base = _base(engine)
        response = client.get("/api/v1/events", headers=headers, buffered=False)
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        chunks = iter(response.response)
        first = next(chunks)
        assert first.startswith(b"retry: 1000\n: connected at") and str(base).encode() in first
        [order] = new_orders(engine, accounts[0], market, 1)
        seen = b""
        deadline = time.time() + 10
        while b"event: accepted" not in seen and time.time() < deadline:
            seen += next(chunks)
        assert f"id: {base + 1}\nevent: accepted\ndata: ".encode() in seen
        assert str(order).encode() in seen
        beat = next(chunks)
        assert beat == b": heartbeat\n\n"
        response.close()
    finally:
        app.config["EVENTS_HEARTBEAT_SECONDS"] = 15
        hub = app.extensions.pop("gateway.event_hub", None)
        if hub is not None:
            hub.stop()  # the session's database is dropped at the end; stop listening to it


def test_the_order_lifecycle_writes_its_events(app, client, api_headers, upbit):  # noqa: F811
    """Real orders through the API and the poller: each change is in the log, in order."""
    from web_server.services.orders import poll_open_orders

    with app.app_context():
        base = _base(db.engine)
    resting = client.post(
        "/api/v1/orders",
        json={
            "account_id": upbit.account_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limit_price": "1000000",
        },
        headers={**api_headers, "Idempotency-Key": "events-rest"},
    ).get_json()
    assert resting["status"] == "SUBMITTED"
    cancelled = client.post(f"/api/v1/orders/{resting['id']}/cancel", headers=api_headers)
    assert cancelled.status_code == 200
    with app.app_context():
        poll_open_orders()
    # Below the market: sells at once.
    below = str((upbit.price("KRW-BTC") * Decimal("0.9") / 1000).quantize(Decimal(1)) * 1000)
    market = client.post(
        "/api/v1/orders",
        json={
            "account_id": upbit.account_id,
            "symbol": "KRW-BTC",
            "side": "SELL",
            "type": "LIMIT",
            "quantity": "0.001",
            "limit_price": below,
        },
        headers={**api_headers, "Idempotency-Key": "events-market"},
    ).get_json()
    assert "id" in market, market
    with app.app_context():
        poll_open_orders()
    page = client.get(f"/api/v1/events?after={base}", headers=api_headers).get_json()
    by_order = defaultdict(list)
    for event in page["events"]:
        by_order[event["order_id"]].append(event["type"])
    final = client.get(f"/api/v1/orders/{resting['id']}", headers=api_headers).get_json()
    assert by_order[resting["id"]][:2] == ["accepted", "submitted"]
    assert by_order[resting["id"]][-1] == "cancelled" == final["status"].lower()
    market_final = client.get(f"/api/v1/orders/{market['id']}", headers=api_headers).get_json()
    assert by_order[market["id"]][0] == "accepted"
    assert market_final["status"] == "FILLED", market_final
    assert by_order[market["id"]][-2:] == ["fill", "filled"], by_order[market["id"]]
    last = [e for e in page["events"] if e["order_id"] == market["id"]][-1]
    assert last["order"]["status"] == market_final["status"]
    assert last["order"]["filled_quantity"] == market_final["filled_quantity"]
