"""Orders through ``/api/v1/orders``: idempotent, validated, never lost, never sent twice.

The simulators' ledgers are the ground truth: every test counts what the broker saw.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.integration.accounts_support import add_account, start_kis, start_upbit
from web_server.services.orders import poll_open_orders, reconcile_orders


@pytest.fixture
def kis(app, client, api_headers, database_url):
    """A KIS simulator, its stocks master synced, and an account with cash and shares."""
    sim = start_kis(app, database_url, cash="100000000", positions={"005930": 10})
    add_account(client, api_headers, sim)
    # A limit price inside KRX's ±30 % band but below the market: the order rests.
    global RESTING
    RESTING = sim.resting_price()
    yield sim
    sim.stop()


RESTING = "50000"


@pytest.fixture
def upbit(app, client, api_headers):
    """An Upbit simulator with its markets synced and a funded account."""
    sim = start_upbit({"KRW": "50000000", "BTC": "1"})
    add_account(client, api_headers, sim)
    yield sim
    sim.stop()


def _order(account_id: int, **changes) -> dict:
    body = {
        "account_id": account_id,
        "symbol": "005930",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "2",
        "limit_price": RESTING,
    }
    body.update(changes)
    return body


def _post(client, headers, body, key):
    return client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})


def test_place_replay_and_conflict(client, api_headers, kis):
    first = _post(client, api_headers, _order(kis.account_id), "k-1")
    assert first.status_code == 201, first.get_json()
    order = first.get_json()
    assert order["status"] == "SUBMITTED" and order["broker_order_id"], order["reject_message"]
    assert order["quantity"] == "2" and order["limit_price"] == RESTING
    replay = _post(client, api_headers, _order(kis.account_id), "k-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == order["id"]
    conflict = _post(client, api_headers, _order(kis.account_id, quantity="3"), "k-1")
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "idempotency_conflict"
    assert len(kis.placed()) == 1  # the broker saw one order
    got = client.get(f"/api/v1/orders/{order['id']}", headers=api_headers).get_json()
    assert got["client_order_id"] == order["client_order_id"]


def test_validation_refuses_before_anything_is_sent(client, api_headers, kis, psql):
    cases = [
        ({"symbol": "999999"}, "symbol_unknown"),
        ({"symbol": "001470"}, "symbol_suspended"),  # halted in the simulator's universe
        ({"quantity": "1.5"}, "validation_failed"),
        ({"type": "MARKET"}, "validation_failed"),  # a market order with a limit price
        ({"route": "NYSE"}, "validation_failed"),
        ({"limit_price": "-1"}, "validation_failed"),
    ]
    for number, (change, code) in enumerate(cases):
        response = _post(client, api_headers, _order(kis.account_id, **change), f"bad-{number}")
        assert response.status_code == 422, (change, response.get_json())
        assert response.get_json()["code"] == code, change
    missing_key = client.post("/api/v1/orders", json=_order(kis.account_id), headers=api_headers)
    assert missing_key.status_code == 422
    assert kis.placed() == []
    assert psql.execute("SELECT count(*) FROM trade.order_intents").fetchone() == (0,)


def test_scopes_and_accounts_are_enforced(client, api_headers, make_api_key, kis):
    reader = make_api_key("orders:read")
    assert _post(client, reader, _order(kis.account_id), "s-1").status_code == 403
    other = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": "other",
            "exchange": "UPBIT",
            "api_key": "a",
            "api_secret": "b",
        },
    ).get_json()
    elsewhere = make_api_key("orders:write", accounts=[other["id"]])
    assert _post(client, elsewhere, _order(kis.account_id), "s-2").status_code == 403
    assert kis.placed() == []


def test_broker_rejection_is_recorded(client, api_headers, kis):
    response = _post(client, api_headers, _order(kis.account_id, quantity="1000000"), "poor")
    assert response.status_code == 201
    order = response.get_json()
    assert order["status"] == "REJECTED" and order["reject_code"]
    replay = _post(client, api_headers, _order(kis.account_id, quantity="1000000"), "poor")
    assert replay.get_json()["status"] == "REJECTED"


def test_lost_answer_is_reconciled_never_resent(app, client, api_headers, kis):
    kis.fault(kind="drop", path_prefix="/uapi/domestic-stock/v1/trading/order-cash", count=1)
    lost = _post(client, api_headers, _order(kis.account_id), "lost-1")
    assert lost.status_code == 201 and lost.get_json()["status"] == "UNKNOWN"
    assert len(kis.placed()) == 1  # the broker did act
    again = _post(client, api_headers, _order(kis.account_id), "lost-1")
    assert again.status_code == 200 and again.get_json()["status"] == "UNKNOWN"
    with app.app_context():
        assert reconcile_orders() == {"found": 1}
    settled = client.get(f"/api/v1/orders/{lost.get_json()['id']}", headers=api_headers)
    assert settled.get_json()["status"] in ("SUBMITTED", "PARTIALLY_FILLED", "FILLED")
    assert settled.get_json()["broker_order_id"] == kis.placed()[0]["order_no"]
    assert len(kis.placed()) == 1  # found again, not sent again


def test_reset_before_the_broker_acted_ends_rejected(app, client, api_headers, kis):
    kis.fault(kind="reset", path_prefix="/uapi/domestic-stock/v1/trading/order-cash", count=1)
    lost = _post(client, api_headers, _order(kis.account_id), "reset-1")
    assert lost.get_json()["status"] == "UNKNOWN"
    with app.app_context():
        assert reconcile_orders() == {"waiting": 1}  # too early to say it never arrived
        # KIS has no client id: absence is final only once the order's KST day is over.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        assert reconcile_orders(now=later) == {"waiting": 1}
        next_day = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert reconcile_orders(now=next_day) == {"never_arrived": 1}
    order = client.get(f"/api/v1/orders/{lost.get_json()['id']}", headers=api_headers)
    assert order.get_json()["status"] == "REJECTED"
    assert kis.placed() == []


def test_unreachable_broker_leaves_nothing_and_the_key_can_retry(client, api_headers, kis):
    kis.handle.stop()
    down = _post(client, api_headers, _order(kis.account_id), "down-1")
    assert down.status_code in (503, 504) and down.get_json()["code"].startswith("broker_")
    orders = client.get("/api/v1/orders", headers=api_headers).get_json()
    assert orders["orders"] == []


def test_cancel_and_poll(app, client, api_headers, kis):
    order = _post(client, api_headers, _order(kis.account_id), "c-1")
    assert order.get_json()["status"] == "SUBMITTED"  # far below the market: rests
    cancelled = client.post(f"/api/v1/orders/{order.get_json()['id']}/cancel", headers=api_headers)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] in ("CANCEL_PENDING", "CANCELLED")
    with app.app_context():
        poll_open_orders()
    final = client.get(f"/api/v1/orders/{order.get_json()['id']}", headers=api_headers)
    assert final.get_json()["status"] == "CANCELLED"
    again = client.post(f"/api/v1/orders/{order.get_json()['id']}/cancel", headers=api_headers)
    assert again.status_code == 409


def test_listing_pages_with_a_cursor(client, api_headers, kis):
    for number in range(5):
        _post(client, api_headers, _order(kis.account_id), f"p-{number}")
    page = client.get("/api/v1/orders?limit=2", headers=api_headers).get_json()
    seen = [o["id"] for o in page["orders"]]
    while page["next_cursor"]:
        page = client.get(
            f"/api/v1/orders?limit=2&cursor={page['next_cursor']}", headers=api_headers
        ).get_json()
        seen += [o["id"] for o in page["orders"]]
    assert len(seen) == len(set(seen)) == 5
    bad = client.get("/api/v1/orders?cursor=nonsense", headers=api_headers)
    assert bad.status_code == 422


def test_crypto_order_with_client_id_and_lost_answer(app, client, api_headers, upbit):
    body = {
        "account_id": upbit.account_id,
        "symbol": "KRW-BTC",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.01",
        "limit_price": "1000000",
    }
    placed = _post(client, api_headers, body, "u-1")
    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["status"] == "SUBMITTED", placed.get_json()["reject_message"]
    ledger = upbit.placed()
    assert ledger[0]["client_order_id"] == placed.get_json()["client_order_id"]

    upbit.fault(kind="drop", path_prefix="/v1/orders", count=1)
    lost = _post(client, api_headers, {**body, "limit_price": "1001000"}, "u-2")
    assert lost.get_json()["status"] == "UNKNOWN"
    with app.app_context():
        assert reconcile_orders() == {"found": 1}
    assert len(upbit.placed()) == 2
    market = {k: v for k, v in body.items() if k != "limit_price"} | {"type": "MARKET"}
    market_buy = _post(client, api_headers, market, "u-3")
    assert market_buy.status_code == 422
    assert "by amount" in market_buy.get_json()["errors"]["type"][0]
    unknown = _post(client, api_headers, {**body, "symbol": "KRW-NOPE"}, "u-4")
    assert unknown.get_json()["code"] == "symbol_unknown"


def test_an_order_still_at_the_broker_is_left_alone(app, client, api_headers, kis):
    import threading

    kis.fault(kind="latency", seconds=2.0, path_prefix="/uapi/domestic-stock/v1/trading/order-cash")
    result = {}

    def place() -> None:
        result["response"] = _post(client, api_headers, _order(kis.account_id), "slow-1")

    thread = threading.Thread(target=place)
    thread.start()
    try:
        import time

        time.sleep(0.7)  # the request is now waiting for the broker, holding the order's lock
        with app.app_context():
            later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
            assert reconcile_orders(now=later) == {"busy": 1}
        replay = _post(client, api_headers, _order(kis.account_id), "slow-1")
        assert replay.status_code == 409 and "still at the broker" in replay.get_json()["detail"]
    finally:
        thread.join()
    order = result["response"].get_json()
    assert result["response"].status_code == 201
    assert order["status"] == "SUBMITTED" and order["reject_code"] is None
    assert len(kis.placed()) == 1


def test_idempotency_keys_belong_to_the_api_key(client, api_headers, make_api_key, kis):
    other_strategy = make_api_key("orders:write", "orders:read")
    first = _post(client, api_headers, _order(kis.account_id), "shared-name")
    second = _post(client, other_strategy, _order(kis.account_id), "shared-name")
    assert first.status_code == second.status_code == 201
    assert first.get_json()["id"] != second.get_json()["id"]  # two strategies, two orders
    assert len(kis.placed()) == 2
    # The same key for another account is another body: a conflict, not a second order.
    other = _post(client, api_headers, _order(kis.account_id + 1), "shared-name")
    assert other.status_code in (403, 409)
    # Equal numbers written differently are the same request.
    same = _post(client, api_headers, _order(kis.account_id, quantity="2.0"), "shared-name")
    assert same.status_code == 200


@pytest.mark.parametrize(
    "change, field",
    [
        ({"quantity": 2}, "quantity"),  # a JSON number: money travels as strings
        ({"quantity": "1e400"}, "quantity"),
        ({"limit_price": "0.0000000000001"}, "limit_price"),
        ({"account_id": 10**20}, "account_id"),
        ({"symbol": "005930\x00"}, "symbol"),
    ],
)
def test_absurd_input_is_a_422(client, api_headers, kis, change, field):
    body = {**_order(kis.account_id), **change}
    response = _post(client, api_headers, body, f"absurd-{field}")
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["json"]
    assert kis.placed() == []


def test_bad_keys_ids_and_ticks_are_4xx(client, api_headers, kis):
    nul = client.post(
        "/api/v1/orders",
        json=_order(kis.account_id),
        headers={**api_headers, "Idempotency-Key": "a\x01b"},
    )
    assert nul.status_code == 422
    assert (
        client.get("/api/v1/accounts/99999999999999999999", headers=api_headers).status_code == 404
    )
    assert (
        client.get(
            "/api/v1/orders?account_id=99999999999999999999", headers=api_headers
        ).status_code
        == 422
    )
    off_tick = str(Decimal(RESTING) + 1)
    response = _post(client, api_headers, _order(kis.account_id, limit_price=off_tick), "tick")
    assert response.status_code == 422 and "tick" in response.get_json()["detail"]
    assert kis.placed() == []


def test_an_unexpected_failure_after_the_commit_leaves_the_order_unknown(
    client, api_headers, kis, monkeypatch
):
    from securities.kis import KisAdapter

    def broken(self, request):
        raise ValueError("a broker answer nobody expected")

    monkeypatch.setattr(KisAdapter, "place_order", broken)
    response = _post(client, api_headers, _order(kis.account_id), "broken-1")
    assert response.status_code == 201
    assert response.get_json()["status"] == "UNKNOWN"


def test_polling_never_moves_a_cancel_back(app, client, api_headers, kis, psql):
    order = _post(client, api_headers, _order(kis.account_id), "cp-1").get_json()
    psql.execute("UPDATE trade.orders SET status = 'CANCEL_PENDING' WHERE id = %s", (order["id"],))
    with app.app_context():
        poll_open_orders()
    still = client.get(f"/api/v1/orders/{order['id']}", headers=api_headers).get_json()
    assert still["status"] == "CANCEL_PENDING"  # the broker still shows it open: not a regress
