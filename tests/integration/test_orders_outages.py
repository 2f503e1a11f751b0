"""Orders through database outages and racing replays: no 500, nothing lost, nothing doubled.

The database's connections are cut from an administrator's connection (``pg_terminate_backend``)
while requests place orders; a simulator's ledger says what the broker saw. Every client behaves
as a client should: on 409, 429 or 503 it waits (``Retry-After``, shortened here) and sends the
same request with the same ``Idempotency-Key`` again.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import re
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import psycopg
import pytest
import requests
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from werkzeug.exceptions import TooManyRequests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import idle_in_transaction, random_key, remember_secret
from web_server.database import close_session
from web_server.extensions import db
from web_server.services.orders import START_LEASE, reconcile_orders
from web_server.services.stocks_sync import run_sync
from web_server.services.tokens import refresh_token

ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
RETRYABLE = (409, 429, 503)
FINAL = ("SUBMITTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED")


class Venue:
    """A KIS simulator with an account in it and in the gateway."""

    def __init__(self, url: str, account_id: int, resting: str) -> None:
        self.url = url
        self.account_id = account_id
        self.resting = resting

    def placed(self) -> list[dict]:
        """Return the orders the broker accepted, as its ledger recorded them."""
        ledger = requests.get(f"{self.url}/_sim/ledger", params={"kind": "order_placed"}, timeout=5)
        return ledger.json()["entries"]

    def fault(self, **fault) -> None:
        """Queue a fault at the simulator."""
        requests.post(f"{self.url}/_sim/faults", json=fault, timeout=5).raise_for_status()

    def order(self, **changes) -> dict:
        """Return an order body that rests (a limit below the market)."""
        body = {
            "account_id": self.account_id,
            "symbol": "005930",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "limit_price": self.resting,
        }
        return {**body, **changes}


@pytest.fixture
def kis(app, client, api_headers, database_url):
    """A KIS simulator with the stocks master synced, a funded account and a token issued."""
    # Open all day: the test is about the database, not about KRX's session hours.
    handle = serve_in_thread(
        create_simulator("kis", rate_limit_per_second=0, market_hours="always")
    )
    app_key, secret = random_key(36), remember_secret(random_key(180))
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": "50123457",
            "product_code": "01",
            "cash": "10000000000",
        },
        timeout=5,
    ).raise_for_status()
    run_sync(database_url, f"{handle.url}/common/master")
    app.extensions["gateway.symbols"].invalidate()
    account = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": "kis-outages",
            "exchange": "KIS",
            "api_key": app_key,
            "api_secret": secret,
            "base_url": handle.url,
            "securities_config": {"account_number": "50123457", "product_code": "01"},
        },
    ).get_json()
    with app.app_context():
        # Issued before the connections are cut: KIS issues one token a minute, and the test is
        # about orders, not about a token issuance cut in half.
        assert refresh_token(account["id"]).token
    prices = requests.get(f"{handle.url}/_sim/prices", params={"symbol": "005930"}, timeout=5)
    price = Decimal(prices.json()["prices"]["005930"])
    resting = str((price * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)
    yield Venue(handle.url, account["id"], resting)
    handle.stop()


def _post(client, headers, body, key):
    return client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})


def _place_until_settled(app, headers, body, key, answers, *, give_up_after=45.0):
    """Send one order as a well-behaved client would; return the order id it finally got."""
    client = app.test_client()
    deadline = time.monotonic() + give_up_after
    while True:
        response = _post(client, headers, body, key)
        answer = response.get_json(silent=True) or {}
        answers.append((key, response.status_code, response.headers.get("Retry-After"), answer))
        if response.status_code in (200, 201):
            return answer["id"]
        if response.status_code not in RETRYABLE or time.monotonic() > deadline:
            return None
        # The header says when; a test waits less, which only makes the client more eager.
        time.sleep(min(float(response.headers.get("Retry-After") or 1), 0.2))


class Cutter:
    """Terminates every connection to the test database, again and again, from outside."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url.replace("+psycopg", "")
        self.database = database
        self.cuts = 0
        self.killed = 0
        self.last_cut: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-cutter", daemon=True)

    def start(self) -> None:
        """Start cutting."""
        self._thread.start()

    def stop(self) -> dt.datetime:
        """Stop cutting; return when the last cut happened (the database answers from then on)."""
        self._stop.set()
        self._thread.join(10)
        assert self.last_cut is not None
        return self.last_cut

    def _run(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            pause = 0.02
            while not self._stop.is_set():
                (killed,) = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchone()
                self.cuts += 1
                self.killed += killed
                self.last_cut = dt.datetime.now(dt.UTC)
                # Irregular gaps, so cuts land at every step of a placement, not in lockstep.
                self._stop.wait(pause)
                pause = 0.02 + (pause * 7.3) % 0.18


class Leader:
    """The scheduler's reconcile job, every few tenths of a second, as a leader would run it."""

    def __init__(self, app) -> None:
        self.app = app
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def __enter__(self) -> Leader:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            with self.app.app_context():
                try:
                    self.outcomes.update(reconcile_orders())
                except sa_exc.SQLAlchemyError:
                    self.outcomes["job_failed"] += 1  # the job runs again on its next tick
                finally:
                    close_session(db.session)


def test_orders_survive_cut_database_connections(
    app, api_headers, kis, pg_server, database_url, caplog
):
    orders, threads = 72, 12
    database = database_url.rsplit("/", 1)[1].split("?")[0]
    # Each broker call takes a moment, so cuts land while requests are at the broker too (their
    # lock's connection dies under them) and not only between database statements.
    kis.fault(kind="latency", seconds=0.25, path_prefix=ORDER_PATH, count=orders)
    keys = [f"burst-{number}" for number in range(orders)]
    # Distinct quantities tell the orders apart in the broker's ledger.
    bodies = {key: kis.order(quantity=str(number + 1)) for number, key in enumerate(keys)}
    answers: list[tuple] = []
    cutter = Cutter(pg_server.admin_url, database)

    with (
        caplog.at_level(logging.INFO, logger="web_server"),
        Leader(app) as leader,
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
    ):
        cutter.start()
        futures = {
            key: pool.submit(_place_until_settled, app, api_headers, bodies[key], key, answers)
            for key in keys
        }
        time.sleep(2.0)  # the burst is under way, cut after cut
        database_back = cutter.stop()
        ids = {key: future.result(timeout=60) for key, future in futures.items()}
        # The cutter killed the fixtures' connections too: look with a new one.
        psql = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
        settled_at = _wait_until_settled(psql, orders, within=10.0)

    statuses = Counter(status for _, status, _, _ in answers)
    # Where the cuts hit a placement that carried on: a retried step, or the order's lock lost
    # while its request was at the broker (the lease kept the reconciler off).
    hits = Counter(
        match.group(1)
        for record in caplog.records
        if (match := re.match(r"order \S+: (\w+): \w+; attempt", record.getMessage()))
    )
    hits["lock lost at the broker"] = sum(
        "its lock's connection was lost" in record.getMessage() for record in caplog.records
    )
    print(
        f"\n{orders} orders, {cutter.cuts} cuts ({cutter.killed} connections killed); answers "
        f"{dict(sorted(statuses.items()))}; retried {dict(hits)}; all settled "
        f"{(settled_at - database_back).total_seconds():.2f} s after the last cut; "
        f"reconciler {dict(leader.outcomes)}"
    )
    assert cutter.cuts >= 10 and cutter.killed >= 10
    assert statuses[500] == 0, [a for a in answers if a[1] == 500][:3]
    assert set(statuses) <= {200, 201, *RETRYABLE}, statuses
    assert statuses[503] + sum(hits.values()) > 0  # the cuts did hit requests
    for _, status, retry_after, answer in answers:
        if status in RETRYABLE:
            assert retry_after and int(retry_after) >= 1, (status, answer)
            assert answer["type"].endswith(answer["code"]) and "id" not in answer
    # Every client got an order, and every answer for one key named the same order.
    assert all(ids.values()), [key for key, order_id in ids.items() if not order_id]
    for key in keys:
        named = {a["id"] for k, s, _, a in answers if k == key and s in (200, 201)}
        assert named == {ids[key]}, (key, named)
    # Final within 10 s of the database answering again (measured by the wait above), and by
    # the orders' own clocks.
    (last_change,) = psql.execute("SELECT max(updated_ts) FROM trade.orders").fetchone()
    assert (max(last_change, database_back) - database_back).total_seconds() <= 10
    # Nothing lost, nothing doubled: one intent and one order per key, each order exactly once at
    # the broker, and the broker has nothing else.
    rows = psql.execute(
        "SELECT o.id::text, o.status, o.broker_order_id, o.quantity FROM trade.orders o"
    ).fetchall()
    assert psql.execute("SELECT count(*) FROM trade.order_intents").fetchone() == (orders,)
    assert sorted(row[0] for row in rows) == sorted(ids.values())
    assert {row[1] for row in rows} <= set(FINAL)
    ledger = kis.placed()
    assert len(ledger) == orders
    assert sorted(e["order_no"] for e in ledger) == sorted(row[2] for row in rows)
    by_number = {e["order_no"]: Decimal(e["quantity"]) for e in ledger}
    assert all(by_number[row[2]] == row[3] for row in rows)
    psql.close()


def _wait_until_settled(psql, orders: int, *, within: float) -> dt.datetime:
    deadline = time.monotonic() + within
    while True:
        (unsettled, total) = psql.execute(
            "SELECT count(*) FILTER (WHERE status IN ('PENDING_SUBMIT', 'UNKNOWN')), count(*)"
            " FROM trade.orders"
        ).fetchone()
        if unsettled == 0 and total == orders:
            return dt.datetime.now(dt.UTC)
        assert time.monotonic() < deadline, f"{unsettled} of {total} orders still unsettled"
        time.sleep(0.05)


def test_one_key_raced_while_the_broker_rate_limits(app, api_headers, kis, psql):
    racers = 100
    # The broker refuses the first attempts (429 without a body, as a rate limiter does) and
    # then takes the order normally, after a moment.
    kis.fault(kind="http_status", status=429, path_prefix=ORDER_PATH, count=3)
    kis.fault(kind="latency", seconds=0.2, path_prefix=ORDER_PATH, count=1)
    body = kis.order(quantity="7")
    start = threading.Barrier(racers)
    answers: list[tuple] = []

    def race() -> str | None:
        start.wait(10)
        return _place_until_settled(app, api_headers, body, "the-one-key", answers)

    with concurrent.futures.ThreadPoolExecutor(racers) as pool:
        finals = [
            future.result(timeout=60) for future in [pool.submit(race) for _ in range(racers)]
        ]

    statuses = Counter(status for _, status, _, _ in answers)
    print(f"\n{racers} racers, {len(answers)} answers {dict(sorted(statuses.items()))}")
    # No 500, no 404. A 503 is a full pool: the hundred racers share this one process's 30
    # connections, and on a slow machine some wait past the pool's 5 s timeout; they are told to
    # retry like the others (a real deployment spreads them over workers of a few threads each).
    assert set(statuses) <= {200, 201, 409, 429, 503}, statuses
    assert statuses[429] >= 1  # the broker did refuse, and the refusal reached a client
    assert statuses[201] == 1  # one request placed the order; every other one replayed it
    for _, status, retry_after, answer in answers:
        if status in (409, 429, 503):
            assert retry_after and int(retry_after) >= 1, answer
            assert "id" not in answer and "order_id" not in answer  # no id before it is settled
    # Every client ended on the same order, and no other id was ever handed out.
    handed_out = {answer["id"] for _, status, _, answer in answers if status in (200, 201)}
    assert set(finals) == handed_out and len(handed_out) == 1, (set(finals), handed_out)
    (order_id,) = handed_out
    got = app.test_client().get(f"/api/v1/orders/{order_id}", headers=api_headers)
    assert got.status_code == 200 and got.get_json()["status"] == "SUBMITTED"
    # The broker took exactly one order; the refused attempts left nothing behind.
    assert len(kis.placed()) == 1
    assert psql.execute("SELECT count(*) FROM trade.orders").fetchone() == (1,)
    assert psql.execute("SELECT count(*) FROM trade.order_intents").fetchone() == (1,)


def test_a_burst_of_orders_larger_than_the_pool_never_waits_on_itself(
    app, make_app, database_url, api_headers, kis, psql
):
    """No request waits for a second connection while it holds one.

    Twelve new orders at once in a process whose pool has three connections: were an order to
    hold its connection while its checks or its token read took another, three of them would hold
    the whole pool and wait for more until the pool's timeout, and every order would answer 503.
    """
    options = {**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": 3, "max_overflow": 0}
    small = make_app(DATABASE_URL=database_url, SQLALCHEMY_ENGINE_OPTIONS=options)
    start = threading.Barrier(12)

    def place(number: int) -> int:
        client = small.test_client()
        start.wait(10)
        return _post(client, api_headers, kis.order(), f"pool-{number}").status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = Counter(pool.map(place, range(12)))
    assert statuses == Counter({201: 12}), statuses
    assert psql.execute("SELECT count(*) FROM trade.orders").fetchone() == (12,)
    with small.app_context():
        db.engine.dispose()


def test_no_transaction_stays_open_while_the_broker_cancels(app, client, api_headers, kis, psql):
    """A cancel ends its own reads before the broker is asked (the order's lock is enough).

    Before, its transaction (the order and its account, read under the lock) stayed open for as
    long as the broker took: a TRUNCATE or a migration queued behind its snapshot, and every
    statement behind them.
    """
    placed = _post(client, api_headers, kis.order(), "cancel-open")
    assert placed.status_code == 201, placed.get_json()
    order_id = placed.get_json()["id"]
    kis.fault(kind="latency", seconds=2, path_prefix=CANCEL_PATH, count=1)

    def cancel() -> tuple[int, dict]:
        answer = app.test_client().post(f"/api/v1/orders/{order_id}/cancel", headers=api_headers)
        return answer.status_code, answer.get_json()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cancelling = pool.submit(cancel)
        time.sleep(1.0)  # the cancel is now waiting on the broker
        open_ones = idle_in_transaction(psql)
        status, answer = cancelling.result(timeout=30)
    assert status == 200, answer
    assert answer["status"] in ("CANCELLED", "CANCEL_PENDING"), answer
    assert open_ones == []


def test_a_lost_database_is_a_503_problem_with_retry_after(make_app, database_url):
    app = make_app(DATABASE_URL=database_url)
    raised = {
        "cut": sa_exc.OperationalError(
            "SELECT 1", {}, psycopg.OperationalError("terminating connection")
        ),
        "direct": psycopg.OperationalError("connection refused"),
        "pool": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
        "invalidated": sa_exc.DBAPIError(
            "SELECT 1", {}, Exception("server closed"), connection_invalidated=True
        ),
    }

    @app.get("/api/v1/db/<kind>")
    def fail(kind):
        raise raised[kind]

    @app.get("/api/v1/busy/<int:status>")
    def busy(status):
        if status == 429:
            raise TooManyRequests()
        return {"status": "not ready"}, status  # a view answering 503 itself, as /readyz does

    client = app.test_client()
    for kind in raised:
        response = client.get(f"/api/v1/db/{kind}")
        assert response.status_code == 503, kind
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["code"] == "database_unavailable"
        assert response.headers["Retry-After"] == "1"
        assert "terminating" not in response.get_data(as_text=True)
    for status in (429, 503):
        response = client.get(f"/api/v1/busy/{status}")
        assert response.status_code == status and response.headers["Retry-After"] == "1"


def test_requests_after_the_connections_were_cut_just_work(
    client, api_headers, pg_server, database_url
):
    assert client.get("/api/v1/stocks?q=x", headers=api_headers).status_code == 200
    with psycopg.connect(pg_server.admin_url.replace("+psycopg", ""), autocommit=True) as admin:
        # Waits until each backend has ended (a cut that has happened, not one under way: a
        # request racing the server's own shutdown of a backend may be told 503).
        admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_url.rsplit("/", 1)[1].split("?")[0],),
        )
    # The pool's check finds its connections dead and replaces them: no error at all.
    assert client.get("/api/v1/stocks?q=x", headers=api_headers).status_code == 200


def test_an_orphan_never_sent_is_forgotten_when_its_lease_ends(app, client, api_headers, kis):
    """A request that committed its order and died before sending leaves no trace at the broker.

    Its key is answered "in flight" (409, no id) until the reconciler forgets it, then starts over.
    """
    body = kis.order(quantity="3")
    with app.app_context():
        from web_server.models import Order, OrderIntent

        intent = OrderIntent(
            account_id=kis.account_id,
            symbol="005930",
            side="BUY",
            order_type="LIMIT",
            quantity=Decimal(3),
            limit_price=Decimal(kis.resting),
            action_key=f"{_key_id(app, api_headers)}:orphan-1",
            request_hash=_hash(body),
            status="PENDING_SUBMIT",
        )
        now = dt.datetime.now(dt.UTC)
        db.session.add(intent)
        db.session.add(
            Order(
                account_id=kis.account_id,
                symbol="005930",
                side="BUY",
                order_type="LIMIT",
                quantity=Decimal(3),
                limit_price=Decimal(kis.resting),
                intent=intent,
                client_order_id="gw" + uuid.uuid4().hex,
                status="PENDING_SUBMIT",
                lease_until=now + START_LEASE,
            )
        )
        db.session.commit()
        replay = _post(client, api_headers, body, "orphan-1")
        assert replay.status_code == 409 and replay.get_json()["code"] == "order_in_flight"
        assert replay.headers["Retry-After"] == "1" and "order_id" not in replay.get_json()
        assert reconcile_orders() == {}  # leased: its request may still be getting ready
        later = now + START_LEASE + dt.timedelta(seconds=1)
        assert reconcile_orders(now=later) == {"never_sent": 1}
        assert db.session.execute(text("SELECT count(*) FROM trade.orders")).scalar() == 0
    again = _post(client, api_headers, body, "orphan-1")
    assert again.status_code == 201 and again.get_json()["status"] == "SUBMITTED"
    assert len(kis.placed()) == 1


def _key_id(app, headers) -> int:
    from web_server.services.api_keys import authenticate

    return authenticate(headers["Authorization"]).id


def _hash(body: dict) -> str:
    from web_server.services.orders import request_hash

    return request_hash(
        {
            **body,
            "quantity": Decimal(body["quantity"]),
            "limit_price": Decimal(body["limit_price"]),
        }
    )


def test_an_orphan_that_was_sent_is_settled_from_the_broker_once_its_lease_ends(
    app, client, api_headers, kis, psql
):
    """A request that sent its order and died before recording the answer: found, not resent."""
    placed = _post(client, api_headers, kis.order(quantity="4"), "sent-orphan").get_json()
    # What the database holds when the request dies between the broker's answer and its record:
    # cleared to send, no answer, its lease (to the end of the longest broker call) still running.
    psql.execute(
        "UPDATE trade.orders SET status = 'PENDING_SUBMIT', broker_order_id = NULL,"
        " lease_until = now() + interval '60 seconds' WHERE id = %s",
        (placed["id"],),
    )
    with app.app_context():
        assert reconcile_orders() == {}  # its lock is free, but its lease says "maybe alive"
        replay = _post(client, api_headers, kis.order(quantity="4"), "sent-orphan")
        assert replay.status_code == 409 and replay.headers["Retry-After"] == "1"
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
        assert reconcile_orders(now=later) == {"found": 1}
    replay = _post(client, api_headers, kis.order(quantity="4"), "sent-orphan")
    assert replay.status_code == 200 and replay.get_json()["id"] == placed["id"]
    assert replay.get_json()["status"] == "SUBMITTED"
    assert replay.get_json()["broker_order_id"] == placed["broker_order_id"]
    assert len(kis.placed()) == 1  # found again, never sent again


def test_retrying_stops_at_its_budget_and_never_retries_a_bug():
    from web_server.database import retry_unavailable
    from web_server.errors import DatabaseUnavailable

    cut = sa_exc.OperationalError("COMMIT", {}, psycopg.OperationalError("server closed"))
    calls, pauses = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise cut
        return "done"

    assert retry_unavailable(flaky, budget=5, what="test", sleep=pauses.append) == "done"
    assert len(calls) == 3 and all(0 < pause <= 1 for pause in pauses)

    def down() -> None:
        raise cut

    with pytest.raises(DatabaseUnavailable):
        retry_unavailable(down, budget=0.2, what="test")

    def bug() -> None:
        calls.append(1)
        raise sa_exc.ProgrammingError("SELECT nope", {}, Exception("syntax error"))

    calls.clear()
    with pytest.raises(sa_exc.ProgrammingError):
        retry_unavailable(bug, budget=5, what="test", sleep=pauses.append)
    assert len(calls) == 1
