"""The shared rate limiter on both stores (Redis, PostgreSQL): pacing, priorities, bans, deadlines.

Each test runs once against the Redis on 127.0.0.1:6379 (a key prefix of its own) and once against
``system.rate_limit_buckets`` in the session's PostgreSQL; both read the time from the store.
The last test goes through the API: an order that gets no slot in time answers 429 with
``Retry-After``, and the simulator's ledger shows nothing sent.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

import pytest
import requests

from brokers.errors import RateLimited
from brokers.limits import Budget, scope_id
from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.integration.accounts_support import add_account, start_upbit
from web_server.extensions import db
from web_server.services.rate_limits import (
    PostgresBuckets,
    RedisBuckets,
    SharedRateLimiter,
    rate_limiter,
    spec_of,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["redis", "postgres"])
def buckets(request, app_ctx):
    """A store of each kind, empty for this test."""
    if request.param == "redis":
        if not _redis_up():
            pytest.fail("Redis is not answering on 127.0.0.1:6379 (make redis starts it)")
        prefix = f"test:{secrets.token_hex(6)}:"
        store = RedisBuckets(REDIS_URL, prefix)
        yield store
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        return
    yield PostgresBuckets(db.engine)


def _budget(rate: float = 20, period: float = 1.0, cost: float = 1.0) -> Budget:
    return Budget(f"test:{secrets.token_hex(4)}", rate, period, cost)


def test_slots_never_exceed_the_limit_in_any_window(buckets):
    budget = _budget(20)
    spec = spec_of(budget, 0.95)
    waits = []
    for _ in range(60):
        asked = time.monotonic()
        answer = buckets.reserve([spec], 60.0)
        assert answer.status == "ok"
        # The store's clock (Redis TIME, PostgreSQL) runs on this machine: a local send time.
        waits.append(asked + answer.wait)
    # Any 1 s window holds at most 20 send times (the broker's limit); the pace is 0.95 of it.
    waits.sort()
    worst = max(sum(1 for w in waits if start <= w < start + 1.0) for start in waits)
    assert worst <= 20, worst
    achieved = (len(waits) - 1) / (waits[-1] - waits[0])
    assert 0.9 * 20 <= achieved <= 20, achieved


def test_weights_spend_their_cost(buckets):
    weight = _budget(1200, 60.0)
    heavy = weight.with_cost(20)
    sent = 0
    while buckets.reserve([spec_of(heavy, 0.95)], 0.0).status == "ok":
        sent += 20
    # The burst tolerance is 5 % of the minute: about 57 units at once, never the whole 1200.
    assert 40 <= sent <= 80, sent


def test_orders_wait_for_a_slot_and_reads_take_only_free_ones(buckets):
    slept: list[float] = []
    limiter = SharedRateLimiter(buckets, sleep=slept.append)
    budget = _budget(10)
    for _ in range(10):
        limiter.acquire([budget], priority="order", deadline_s=5.0)
    # Ten orders reserved about a second ahead: a read finds no free slot and gives up…
    started = time.monotonic()
    with pytest.raises(RateLimited) as refused:
        limiter.acquire([budget], priority="read", deadline_s=0.3)
    assert refused.value.retry_after and refused.value.retry_after > 0.3
    assert not refused.value.banned
    # …while it polled the store, never jumping the queue; an order still gets the next slot.
    assert time.monotonic() - started < 2
    before = len(slept)
    limiter.acquire([budget], priority="order", deadline_s=5.0)
    assert slept[before] > 0.8  # behind the ten reservations


def test_an_order_past_its_deadline_is_refused_and_reserves_nothing(buckets):
    limiter = SharedRateLimiter(buckets, sleep=lambda s: None)
    budget = _budget(5)
    for _ in range(10):
        limiter.acquire([budget], priority="order", deadline_s=5.0)
    with pytest.raises(RateLimited) as refused:
        limiter.acquire([budget], priority="order", deadline_s=0.5)
    wait = refused.value.retry_after
    assert wait is not None and 1.0 < wait < 3.0
    # Nothing was reserved by the refusal: the next slot is where it was.
    again = buckets.reserve([spec_of(budget, 0.95)], 0.0)
    assert again.status == "later" and abs(again.wait - wait) < 0.3


def test_all_budgets_or_none(buckets):
    limiter = SharedRateLimiter(buckets, sleep=lambda s: None)
    free, busy = _budget(10), _budget(1)
    limiter.acquire([busy], priority="order")
    limiter.acquire([busy], priority="order")
    with pytest.raises(RateLimited):
        limiter.acquire([free, busy], priority="order", deadline_s=0.1)
    # The free budget was not charged for the refused request.
    assert buckets.reserve([spec_of(free, 0.95)], 0.0).wait == 0


def test_a_ban_refuses_at_once_until_it_ends(buckets):
    limiter = SharedRateLimiter(buckets)
    budget, other = _budget(20), _budget(20)
    limiter.ban([budget], seconds=1.5, reason="HTTP 418")
    started = time.monotonic()
    with pytest.raises(RateLimited) as refused:
        limiter.acquire([other, budget], priority="order", deadline_s=5.0)
    assert time.monotonic() - started < 0.5  # at once, not after the deadline
    assert refused.value.banned and refused.value.scope == budget.key
    assert 1.0 < refused.value.retry_after <= 1.5
    limiter.acquire([other], priority="read")  # other budgets are not banned
    time.sleep(1.6)
    limiter.acquire([budget], priority="order", deadline_s=0.0)


def test_the_brokers_count_slows_the_budget(buckets):
    slept: list[float] = []
    limiter = SharedRateLimiter(buckets, sleep=slept.append)
    budget = _budget(1200, 60.0)
    # Binance says 1190 of 1200 were used this minute (by someone else too): our pace follows.
    limiter.observe(budget, used=1190)
    limiter.acquire([budget.with_cost(20)], priority="order", deadline_s=10.0)
    assert slept and slept[0] > 0.5


def test_a_broker_refusal_bans_the_budget_in_every_process(buckets):
    """Upbit answers 429: the adapter bans the budget, and nothing more is sent until it ends."""
    from brokers import Credentials, make_http_session
    from brokers.errors import BrokerRateLimited
    from crypto_exchanges._http import NO_RETRY
    from crypto_exchanges.upbit import UpbitAdapter

    handle = serve_in_thread(create_simulator("upbit", quotation_rate=1))
    try:
        # The gateway believes in 10 a second; this simulator allows 1: the second call is refused.
        limiter = SharedRateLimiter(buckets, {"UPBIT_QUOTATION_PER_SECOND": 10})
        adapter = UpbitAdapter(
            Credentials(api_key="k" * 40, api_secret="s" * 40),
            base_url=handle.url,
            session=make_http_session(),
            retry_policy=NO_RETRY,
            limiter=limiter,
        )
        first = adapter.client.request("GET", "/v1/market/all", signed=False)
        assert first
        with pytest.raises(BrokerRateLimited) as refused_here:
            adapter.client.request("GET", "/v1/market/all", signed=False)
        assert not isinstance(refused_here.value, RateLimited)  # the broker's own 429
        # Another process's adapter on the same budget is refused at once, without sending.
        other = UpbitAdapter(
            Credentials(api_key="k" * 40, api_secret="s" * 40),
            base_url=handle.url,
            session=make_http_session(),
            retry_policy=NO_RETRY,
            limiter=SharedRateLimiter(buckets, {"UPBIT_QUOTATION_PER_SECOND": 10}),
        )
        with pytest.raises(RateLimited) as banned:
            other.client.request("GET", "/v1/market/all", signed=False)
        assert banned.value.banned
        refused = requests.get(
            f"{handle.url}/_sim/ledger", params={"kind": "request_refused"}, timeout=5
        ).json()["entries"]
        assert len(refused) == 1  # the broker said no once; nobody asked again during the ban
    finally:
        handle.stop()


# ------------------------------------------------------------------------------------------------
# Through the API
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def upbit(app, client, api_headers):
    """An Upbit simulator with its markets synced and a funded account."""
    sim = start_upbit({"KRW": "50000000"})
    yield sim.url, add_account(client, api_headers, sim), sim.key
    sim.stop()


def test_an_order_without_a_slot_answers_429_and_is_not_sent(app, client, api_headers, upbit):
    url, account_id, access = upbit
    host = urlsplit(url).netloc
    order_budget = Budget(f"upbit:order:{scope_id('UPBIT', host, access)}", 8)
    with app.app_context():
        # Other processes have reserved the account's order slots two seconds ahead (they are
        # sleeping until their slots; this one does not wait for them).
        others = SharedRateLimiter(rate_limiter().buckets, sleep=lambda s: None)
        for _ in range(16):
            others.acquire([order_budget], priority="order", deadline_s=5.0)
    app.config["RATE_LIMIT_ORDER_DEADLINE_SECONDS"] = 0.5
    app.extensions.pop("gateway.rate_limiter", None)
    try:
        body = {
            "account_id": account_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limit_price": "1000000",
        }
        response = client.post(
            "/api/v1/orders", json=body, headers={**api_headers, "Idempotency-Key": "rl-1"}
        )
        assert response.status_code == 429, response.get_json()
        problem = response.get_json()
        assert problem["code"] == "rate_limited" and not problem["banned"]
        assert int(response.headers["Retry-After"]) >= 1
        # The broker saw nothing: no order, no refusal.
        ledger = requests.get(
            f"{url}/_sim/ledger", params={"kind": "order_placed,request_refused"}, timeout=5
        ).json()
        assert ledger["entries"] == []
        # The same key may be retried once a slot is free (the order was withdrawn).
        time.sleep(float(problem["retry_after"]) + 0.2)
        retried = client.post(
            "/api/v1/orders", json=body, headers={**api_headers, "Idempotency-Key": "rl-1"}
        )
        assert retried.status_code == 201, retried.get_json()
    finally:
        app.config["RATE_LIMIT_ORDER_DEADLINE_SECONDS"] = 5.0
        app.extensions.pop("gateway.rate_limiter", None)
