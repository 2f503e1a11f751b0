"""The lean order path (issue 12 item 6): what an order no longer costs, and what it checks first.

- A crypto order is checked against its market's rules as the gateway stored them *before* its
  intent is written: a broken tick, lot or minimum notional is a 422 with nothing stored and
  nothing sent (before, it became a stored REJECTED order).
- No order downloads the exchange's market list: with the list made unreachable at the exchange,
  orders still go through (before, every crypto order fetched it, and above ~10 orders a second
  the gateway's address was banned for all its Upbit accounts).
- An account's adapter (and its decrypted keys) is built once per process, not per order.
- A process sends at most ``ORDERS_MAX_IN_FLIGHT`` orders at once (each holds a connection while
  the broker answers); one more is withdrawn with a 503 ``gateway_busy`` and ``Retry-After``,
  never sent, and its key works again.
"""

from __future__ import annotations

import time
from decimal import Decimal

import requests
from sqlalchemy import func, select

from tests.conftest import idle_in_transaction, random_key, remember_secret
from tests.integration.test_orders_api import _post, upbit  # noqa: F401 - the fixture
from tests.integration.test_orders_outages import ORDER_PATH, kis  # noqa: F401 - the fixture
from web_server.extensions import db
from web_server.models import Order, OrderIntent
from web_server.services.orders import submission


def _body(account_id: int, **changes) -> dict:
    body = {
        "account_id": account_id,
        "symbol": "KRW-BTC",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.01",
        "limit_price": "1000000",
    }
    return body | changes


def _stored(app) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(OrderIntent)),
            db.session.scalar(select(func.count()).select_from(Order)),
        )


def test_a_crypto_order_breaking_its_market_rules_is_refused_before_anything_is_stored(
    app,
    client,
    api_headers,
    upbit,  # noqa: F811
):
    cases = {
        "tick": (_body(upbit.account_id, limit_price="1000001"), "limit_price", "RULE_TICK"),
        "min notional": (
            _body(upbit.account_id, quantity="0.000001"),
            "quantity",
            "RULE_MIN_NOTIONAL",
        ),
    }
    for name, (body, field, rule) in cases.items():
        answer = _post(client, api_headers, body, f"rule-{name.replace(' ', '-')}")
        assert answer.status_code == 422, (name, answer.get_json())
        problem = answer.get_json()
        assert problem["code"] == "validation_failed", problem
        assert rule in problem["errors"][field][0], problem
    assert _stored(app) == (0, 0)
    assert upbit.placed() == []


def test_no_order_downloads_the_market_list_and_adapters_are_built_once(
    app,
    client,
    api_headers,
    upbit,  # noqa: F811
):
    # The exchange's market list now fails for every caller: an order that needed it would fail.
    requests.post(
        f"{upbit.url}/_sim/faults",
        json={"kind": "http_status", "status": 503, "path_prefix": "/v1/market/all", "count": 1000},
        timeout=5,
    ).raise_for_status()
    built = []
    original = app.extensions.get("gateway.adapters")
    for number in range(5):
        answer = _post(client, api_headers, _body(upbit.account_id, quantity=f"0.0{number + 1}"),
                       f"lean-{number}")  # fmt: skip
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["status"] == "SUBMITTED", answer.get_json()
        built.append(len(app.extensions["gateway.adapters"]))
    assert len(upbit.placed()) == 5
    # One cached adapter for the account, from the first order on.
    assert original is None or built[0] >= 1
    assert len(set(built)) == 1, built


def test_new_or_re_encrypted_keys_get_a_new_adapter_and_the_old_keys_are_never_sent_again(
    app,
    client,
    api_headers,
    upbit,  # noqa: F811
):
    from web_server.models import Account

    first = _post(client, api_headers, _body(upbit.account_id), "keys-1")
    assert first.status_code == 201, first.get_json()
    # New keys at the exchange, then on the account: the next order is signed with them.
    access, secret = random_key(40), random_key(40)
    remember_secret(secret)
    requests.post(
        f"{upbit.url}/_sim/accounts",
        json={"access_key": access, "secret_key": secret, "balances": {"KRW": "50000000"}},
        timeout=5,
    ).raise_for_status()
    patched = client.patch(
        f"/api/v1/accounts/{upbit.account_id}",
        json={"api_key": access, "api_secret": secret},
        headers=api_headers,
    )
    assert patched.status_code == 200, patched.get_json()
    second = _post(client, api_headers, _body(upbit.account_id, quantity="0.02"), "keys-2")
    assert second.status_code == 201, second.get_json()
    assert [entry["app_key"] for entry in upbit.placed()] == [upbit.key, access]
    # The same keys sealed anew (what `gateway keys rotate` does): found by their stored form,
    # the adapter is built again from them, never from a stale entry.
    with app.app_context():
        account = db.session.get(Account, upbit.account_id)
        stored = account.api_secret_ciphertext
        account.api_secret = secret
        assert account.api_secret_ciphertext != stored
        db.session.commit()
        kept = len(app.extensions["gateway.adapters"])
    third = _post(client, api_headers, _body(upbit.account_id, quantity="0.03"), "keys-3")
    assert third.status_code == 201, third.get_json()
    assert [entry["app_key"] for entry in upbit.placed()][-1] == access
    assert len(app.extensions["gateway.adapters"]) == kept + 1


def test_a_cancel_that_reads_fills_at_the_broker_holds_no_transaction_meanwhile(
    app,
    client,
    api_headers,
    upbit,  # noqa: F811
    psql,
):
    """A cancel whose answer shows fills the gateway has not recorded reads them at the broker
    (Upbit's cancel answer lists none) with no transaction open, as the cancel itself is sent."""
    import concurrent.futures

    placed = _post(client, api_headers, _body(upbit.account_id), "cancel-fills")
    assert placed.status_code == 201, placed.get_json()
    order = placed.get_json()
    # Part of it fills at the exchange (a step's liquidity), then the market moves away; the
    # gateway has not read the fill yet.
    limit = Decimal(order["limit_price"])
    for price in (upbit.price("KRW-BTC"), limit, limit * 2):  # the liquidity first, uncrossed
        requests.post(
            f"{upbit.url}/_sim/prices",
            json={"symbol": "KRW-BTC", "price": str(price), "liquidity": "0.003"},
            timeout=5,
        ).raise_for_status()
    upbit.fault(kind="latency", seconds=2, path_prefix="/v1/order", method="GET", count=1)

    def cancel() -> tuple[int, dict]:
        answer = app.test_client().post(f"/api/v1/orders/{order['id']}/cancel", headers=api_headers)
        return answer.status_code, answer.get_json()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cancelling = pool.submit(cancel)
        time.sleep(1.0)  # the cancel is now reading the order's fills at the exchange
        open_ones = idle_in_transaction(psql)
        status, answer = cancelling.result(timeout=30)
    assert status == 200, answer
    assert Decimal(0) < Decimal(answer["filled_quantity"]) < Decimal("0.01"), answer
    assert open_ones == []


def test_a_process_with_all_its_order_slots_taken_answers_503_and_sends_nothing(
    app,
    client,
    api_headers,
    kis,  # noqa: F811 - the fixture
    monkeypatch,
):
    import concurrent.futures

    monkeypatch.setitem(app.config, "ORDERS_MAX_IN_FLIGHT", 1)
    monkeypatch.setattr(submission, "SLOT_WAIT", 0.3)
    app.extensions.pop("gateway.order_slots", None)
    try:
        kis.fault(kind="latency", seconds=1.5, path_prefix=ORDER_PATH, count=1)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = pool.submit(_post, app.test_client(), api_headers, kis.order(), "slot-1")
            time.sleep(0.4)  # the first order is at the broker, holding the only slot
            busy = _post(client, api_headers, kis.order(quantity="2"), "slot-2")
            first = slow.result(timeout=30)
        assert first.status_code == 201, first.get_json()
        assert busy.status_code == 503, busy.get_json()
        assert busy.get_json()["code"] == "gateway_busy"
        assert int(busy.headers["Retry-After"]) >= 1
        assert [e["quantity"] for e in kis.placed()] == ["1"]
        assert _stored(app) == (1, 1)  # the busy attempt was withdrawn, not left behind
        again = _post(client, api_headers, kis.order(quantity="2"), "slot-2")
        assert again.status_code == 201, again.get_json()
    finally:
        app.extensions.pop("gateway.order_slots", None)


def test_an_empty_holdings_snapshot_is_served_from_the_database(
    app,
    client,
    api_headers,
    kis,  # noqa: F811 - the fixture
):
    url = f"/api/v1/accounts/{kis.account_id}/holdings"
    first = client.get(f"{url}?refresh=true", headers=api_headers)
    assert first.status_code == 200 and first.get_json()["holdings"] == []
    as_of = first.get_json()["as_of"]
    # The account holds nothing: the next reads are the stored (empty) snapshot, not the broker.
    kis.fault(
        kind="http_status",
        status=503,
        path_prefix="/uapi/domestic-stock/v1/trading/inquire-balance",
        count=100,
    )
    for _ in range(3):
        cached = client.get(url, headers=api_headers)
        assert cached.status_code == 200, cached.get_json()
        assert cached.get_json() == {**first.get_json(), "as_of": as_of}


class _Statements:
    """Counts what an order costs the database: statements (BEGIN and COMMIT included, as psycopg
    sends them), pool checkouts and connections in use."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.checkouts = 0

    def __enter__(self) -> _Statements:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        event.listen(self.engine.pool, "checkout", self._checkout)
        return self

    def __exit__(self, *exc) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)
        event.remove(self.engine.pool, "checkout", self._checkout)

    def _statement(self, conn, cursor, statement, *args) -> None:
        self.statements.append(" ".join(statement.split())[:120])

    # Outside a transaction (autocommit) psycopg sends no BEGIN, COMMIT or ROLLBACK.
    @staticmethod
    def _sent(conn) -> bool:
        return not conn.connection.dbapi_connection.autocommit

    def _begin(self, conn) -> None:
        if self._sent(conn):
            self.statements.append("BEGIN")

    def _commit(self, conn) -> None:
        if self._sent(conn):
            self.statements.append("COMMIT")

    def _rollback(self, conn) -> None:
        if self._sent(conn):
            self.statements.append("ROLLBACK")

    def _checkout(self, *args) -> None:
        self.checkouts += 1


#: What one resting order may cost at most, warm (its account's token and adapter in hand):
#: statements sent, BEGIN/COMMIT/ROLLBACK included, and pool checkouts. Without
#: Redis (as here) the shared rate limiter adds its own: 5 statements and 1 checkout per KIS
#: order, 8 and 2 per Upbit order. Before issue 12's cuts: KIS 44 and 7, Upbit 47 and 8; then
#: 22 and 25 before the first reads and the intent left their transactions and a resting
#: order's answer became one statement (services/orders/answered.py); 10 and 13 before the
#: risk gate's facts joined the first read. With Redis, a KIS order is four: the first read,
#: the intent, the claim and the answer.
MAX_STATEMENTS = {"KIS": 9, "UPBIT": 12}
#: The first reads are made on the order's own connection, which then carries it to its answer
#: (placement.py, submission.Held): one checkout per order, and the PostgreSQL limiter's.
MAX_CHECKOUTS = {"KIS": 2, "UPBIT": 3}


def test_what_one_order_costs_the_database(
    app,
    client,
    api_headers,
    kis,  # noqa: F811 - the fixture
    upbit,  # noqa: F811 - the fixture
):
    orders = {"KIS": kis.order(), "UPBIT": _body(upbit.account_id)}
    with app.app_context():
        engine = db.engine
    for exchange, body in orders.items():
        # The first order warms the process: adapter, token, caches.
        assert _post(client, api_headers, body, f"warm-{exchange}").status_code == 201
        with _Statements(engine) as seen:
            answer = _post(client, api_headers, body, f"counted-{exchange}")
        assert answer.status_code == 201, answer.get_json()
        report = "\n".join(seen.statements)
        assert len(seen.statements) <= MAX_STATEMENTS[exchange], report
        assert seen.checkouts <= MAX_CHECKOUTS[exchange], (seen.checkouts, report)


def test_a_resting_order_answered_in_one_statement_reads_back_as_answered(
    app,
    client,
    api_headers,
    kis,  # noqa: F811 - the fixture
    upbit,  # noqa: F811 - the fixture
):
    """The one-statement answer (services/orders/answered.py) tells the client, and its event
    tells the stream, the order as the database then holds it: its view is computed from the
    claimed row rather than read back, so every field is compared with a fresh read."""
    from web_server.models import OrderEvent

    for body in (kis.order(), _body(upbit.account_id)):
        placed = _post(client, api_headers, body, f"read-back-{body['account_id']}")
        assert placed.status_code == 201, placed.get_json()
        view = placed.get_json()
        assert view["status"] == "SUBMITTED" and view["broker_order_id"]
        fresh = client.get(f"/api/v1/orders/{view['id']}", headers=api_headers).get_json()
        fresh.pop("fills")
        assert view == fresh
        with app.app_context():
            events = db.session.scalars(
                select(OrderEvent).where(OrderEvent.order_id == view["id"]).order_by(OrderEvent.id)
            ).all()
            stored = db.session.get(Order, view["id"])
            assert stored.lease_until == stored.updated_ts  # the lease ended with the answer
            assert stored.intent.status == "SUBMITTED"
        assert [e.type for e in events] == ["accepted", "submitted"]
        shown = events[1].payload["order"]
        for field in shown:
            if field in fresh:
                assert shown[field] == fresh[field], field
