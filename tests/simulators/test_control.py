"""The /_sim control surface over real HTTP: accounts, faults, clock, ledger, tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.control import (
    AccountSpecError,
    FaultBook,
    FaultKind,
    RateLimiter,
    SimState,
    TokenStatus,
    get_state,
    install_control,
    parse_amounts,
    require_string,
)
from simulators.engine import Instrument, SimClock, SimulatorError
from simulators.server import ServerHandle, serve_in_thread

START = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
TIMEOUT = 5


def build_app(state: SimState) -> Flask:
    """A throwaway facade: KIS-shaped accounts, a token route and an order route."""
    app = Flask("fake_broker")

    def create_account(body: Mapping[str, Any]) -> Mapping[str, Any]:
        app_key = require_string(body, "app_key")
        require_string(body, "app_secret")
        number = require_string(body, "account_number", pattern=r"\d{8}", what="8 digits")
        cash = parse_amounts({"cash": {"KRW": body.get("cash")}}, "cash")
        positions = parse_amounts(body, "positions")
        state.options.setdefault("secrets", {})[app_key] = body["app_secret"]
        state.engine.create_account(
            number, balances=cash, positions=positions, credential_id=app_key
        )
        return {"account_number": number, "app_key": app_key}

    install_control(app, state, create_account)

    @app.post("/oauth2/token")
    def token() -> ResponseReturnValue:
        body = request.get_json()
        app_key = body["appkey"]
        refusal = state.take_token_refusal(request.path)
        if refusal is not None:
            state.tokens.record_refusal(app_key, "fault")
            return jsonify(refusal.body or {"error_code": "EGW00133"}), refusal.status or 403
        issued = state.tokens.issue(app_key, timedelta(hours=24))
        return jsonify(
            {"access_token": issued.token, "expires_in": issued.expires_in(state.clock.now())}
        )

    @app.get("/whoami")
    def whoami() -> ResponseReturnValue:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        status = state.tokens.status(token)
        if status is not TokenStatus.VALID:
            return jsonify({"error": status.value}), 401
        return jsonify({"app_key": state.tokens.lookup(token).app_key})  # type: ignore[union-attr]

    @app.post("/uapi/order")
    def order() -> ResponseReturnValue:
        body = request.get_json()
        try:
            placed = state.engine.place_order(
                body["account"],
                body["symbol"],
                body["side"],
                body["type"],
                quantity=body.get("quantity"),
                price=body.get("price"),
            )
        except SimulatorError as exc:
            return jsonify({"error": type(exc).__name__}), 400
        return jsonify({"order_no": placed.order_no, "status": placed.status.value})

    @app.get("/uapi/ping")
    def ping() -> ResponseReturnValue:
        return jsonify({"pong": True})

    return app


@pytest.fixture
def sim() -> Iterator[tuple[SimState, ServerHandle]]:
    """A fresh simulator state served on a free loopback port."""
    state = SimState.create(
        "fake",
        seed=5,
        clock=SimClock.frozen(START),
        instruments=[Instrument("005930", "KRW", D(70000))],
    )
    handle = serve_in_thread(build_app(state))
    try:
        yield state, handle
    finally:
        handle.stop()


def new_account(url: str, number: str = "50012345", **extra: Any) -> requests.Response:
    body = {
        "app_key": "PSkey" + number,
        "app_secret": "s" * 180,
        "account_number": number,
        "product_code": "01",
        "cash": "10000000",
        **extra,
    }
    return requests.post(f"{url}/_sim/accounts", json=body, timeout=TIMEOUT)


def order(url: str, **extra: Any) -> requests.Response:
    body = {
        "account": "50012345",
        "symbol": "005930",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "1",
        **extra,
    }
    return requests.post(f"{url}/uapi/order", json=body, timeout=TIMEOUT)


def add_fault(url: str, **body: Any) -> requests.Response:
    return requests.post(f"{url}/_sim/faults", json=body, timeout=TIMEOUT)


def test_accounts(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    created = new_account(handle.url, positions={"005930": 10})
    assert created.status_code == 201
    assert created.json() == {"account_number": "50012345", "app_key": "PSkey50012345"}
    assert "s" * 180 not in created.text
    assert state.engine.balance("50012345", "005930").total == 10
    assert new_account(handle.url).status_code == 409
    bad = new_account(handle.url, number="123")
    assert bad.status_code == 400 and "8 digits" in bad.json()["error"]
    assert new_account(handle.url, number="50099999", cash=1.5).status_code == 400
    not_json = requests.post(f"{handle.url}/_sim/accounts", data="x", timeout=TIMEOUT)
    assert not_json.status_code == 400
    view = requests.get(f"{handle.url}/_sim/accounts/50012345", timeout=TIMEOUT).json()
    assert view["balances"]["KRW"]["available"] == "10000000"
    assert get_state(handle.server.app) is state  # type: ignore[attr-defined]


def test_latency_and_http_status(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    new_account(handle.url)
    assert add_fault(handle.url, kind="latency", seconds=0.3).status_code == 201
    started = time.perf_counter()
    assert order(handle.url).status_code == 200
    assert time.perf_counter() - started >= 0.3

    add_fault(
        handle.url,
        kind="http_status",
        status=503,
        body={"rt_cd": "1", "msg_cd": "EGW00201"},
        headers={"Retry-After": "1"},
        count=2,
    )
    for _ in range(2):
        answer = order(handle.url)
        assert answer.status_code == 503 and answer.json()["msg_cd"] == "EGW00201"
        assert answer.headers["Retry-After"] == "1"
    assert len(state.engine.orders("50012345")) == 1  # the faulted requests never reached it
    assert order(handle.url).status_code == 200


def test_path_prefix_and_listing_and_clearing(sim: tuple[SimState, ServerHandle]) -> None:
    _, handle = sim
    new_account(handle.url)
    add_fault(handle.url, kind="http_status", status=500, path_prefix="/uapi/ping", count=3)
    assert order(handle.url).status_code == 200  # other path: untouched
    assert requests.get(f"{handle.url}/uapi/ping", timeout=TIMEOUT).status_code == 500
    pending = requests.get(f"{handle.url}/_sim/faults", timeout=TIMEOUT).json()["faults"]
    assert [(f["kind"], f["count"]) for f in pending] == [("http_status", 2)]
    assert requests.delete(f"{handle.url}/_sim/faults", timeout=TIMEOUT).json() == {
        "cleared": 1,
        "abandoned": 0,
    }
    assert requests.get(f"{handle.url}/uapi/ping", timeout=TIMEOUT).status_code == 200
    assert add_fault(handle.url, kind="nope").status_code == 400
    assert add_fault(handle.url, kind="latency").status_code == 400
    assert add_fault(handle.url, kind="http_status", status=99).status_code == 400


def test_reset_closes_before_the_broker_acts(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    new_account(handle.url)
    add_fault(handle.url, kind="reset", path_prefix="/uapi/order")
    with pytest.raises(requests.ConnectionError) as info:
        order(handle.url)
    assert "reset" in str(info.value).lower()  # a real TCP RST, not a polite close
    assert state.engine.orders("50012345") == []
    assert state.ledger.entries(kinds=["order_placed"]) == []
    assert order(handle.url).status_code == 200  # the server is fine afterwards


def test_drop_acts_then_closes_without_answer(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    new_account(handle.url)
    add_fault(handle.url, kind="drop", path_prefix="/uapi/order")
    with pytest.raises(requests.ConnectionError):
        order(handle.url)
    orders = state.engine.orders("50012345")
    assert len(orders) == 1 and orders[0].status.value == "filled"
    ledger = requests.get(f"{handle.url}/_sim/ledger?kind=order_placed", timeout=TIMEOUT).json()
    assert ledger["count"] == 1 and ledger["entries"][0]["order_no"] == orders[0].order_no
    assert ledger["entries"][0]["app_key"] == "PSkey50012345"
    applied = state.ledger.entries(kinds=["fault_applied"])
    assert [e.data["fault"] for e in applied] == [FaultKind.DROP]


def test_clock(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    moved = requests.post(
        f"{handle.url}/_sim/clock", json={"advance_seconds": 3600}, timeout=TIMEOUT
    )
    assert moved.status_code == 200
    assert datetime.fromisoformat(moved.json()["now"]) == START + timedelta(hours=1)
    assert (
        requests.get(f"{handle.url}/_sim/clock", timeout=TIMEOUT).json()["offset_seconds"] == 3600
    )
    assert state.clock.now() == START + timedelta(hours=1)
    for bad in ({"advance_seconds": -1}, {"advance_seconds": "x"}, {}):
        assert (
            requests.post(f"{handle.url}/_sim/clock", json=bad, timeout=TIMEOUT).status_code == 400
        )


def test_ledger_filters(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    new_account(handle.url)
    order(handle.url)
    state.clock.advance(60)
    cut = state.clock.now()
    order(handle.url)
    url = f"{handle.url}/_sim/ledger"
    everything = requests.get(url, timeout=TIMEOUT).json()["entries"]
    assert [e["kind"] for e in everything] == [
        "account_created",
        "order_placed",
        "fill",
        "order_placed",
        "fill",
    ]
    since = requests.get(
        url, params={"kind": "order_placed", "since": cut.isoformat()}, timeout=TIMEOUT
    ).json()
    assert since["count"] == 1 and since["entries"][0]["time"] == cut.isoformat()
    assert requests.get(url, params={"since": "yesterday"}, timeout=TIMEOUT).status_code == 400


def test_prices_control(sim: tuple[SimState, ServerHandle]) -> None:
    _, handle = sim
    url = f"{handle.url}/_sim/prices"
    pinned = requests.post(url, json={"symbol": "005930", "price": "65000"}, timeout=TIMEOUT)
    assert pinned.json()["price"] == "65000"
    assert requests.get(url, timeout=TIMEOUT).json()["prices"] == {"005930": "65000"}
    assert (
        requests.post(url, json={"symbol": "005930", "price": "65010"}, timeout=TIMEOUT).status_code
        == 400
    )
    assert requests.get(url, params={"symbol": "000000"}, timeout=TIMEOUT).status_code == 404


def test_tokens_refusal_and_revoke_all(sim: tuple[SimState, ServerHandle]) -> None:
    state, handle = sim
    token_url = f"{handle.url}/oauth2/token"
    first = requests.post(token_url, json={"appkey": "K1"}, timeout=TIMEOUT).json()["access_token"]
    headers = {"Authorization": f"Bearer {first}"}
    assert requests.get(f"{handle.url}/whoami", headers=headers, timeout=TIMEOUT).status_code == 200

    add_fault(handle.url, kind="token_refusal", path_prefix="/oauth2/")
    refused = requests.post(token_url, json={"appkey": "K1"}, timeout=TIMEOUT)
    assert refused.status_code == 403 and refused.json() == {"error_code": "EGW00133"}
    assert requests.get(f"{handle.url}/uapi/ping", timeout=TIMEOUT).status_code == 200

    revoked = add_fault(handle.url, kind="revoke_all_tokens")
    assert revoked.status_code == 201 and revoked.json()["revoked"] == 1
    denied = requests.get(f"{handle.url}/whoami", headers=headers, timeout=TIMEOUT)
    assert denied.status_code == 401 and denied.json() == {"error": "revoked"}

    kinds = [
        e["kind"]
        for e in requests.get(f"{handle.url}/_sim/ledger", timeout=TIMEOUT).json()["entries"]
    ]
    assert kinds == ["token_issued", "token_refused", "tokens_revoked_all"]
    issued = state.ledger.entries(kinds=["token_issued"])[0].to_json()
    assert issued["app_key"] == "K1" and first not in str(issued)


def test_token_registry_rules_on_the_sim_clock() -> None:
    state = SimState.create("fake", clock=SimClock.frozen(START))
    tokens = state.tokens
    issued = tokens.issue("K", timedelta(hours=24), token="t1")
    assert tokens.seconds_until_next_issue("K", timedelta(minutes=1)) == 60
    state.clock.advance(30)
    assert tokens.seconds_until_next_issue("K", timedelta(minutes=1)) == 30
    assert tokens.latest("K") == issued and tokens.lookup("t1") == issued
    state.clock.advance(24 * 3600)
    assert tokens.status("t1") is TokenStatus.EXPIRED and tokens.latest("K") is None
    assert tokens.status("nope") is TokenStatus.UNKNOWN
    tokens.issue("K", timedelta(hours=1), token="t2")
    assert tokens.revoke("t2") and tokens.status("t2") is TokenStatus.REVOKED
    assert tokens.revoke_all() == 0


def test_rate_limiter_uses_its_own_time() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 1.0, time_source=lambda: now[0])
    assert limiter.try_acquire("k") and limiter.try_acquire("k")
    assert not limiter.try_acquire("k")
    assert limiter.retry_after("k") == pytest.approx(0.5)
    assert limiter.try_acquire("other")
    now[0] += 0.5
    assert limiter.try_acquire("k")


def test_fault_book_and_spec_helpers() -> None:
    book = FaultBook()
    book.add("http_status", status=500, count=2, path_prefix="/a")
    assert book.take(FaultKind.HTTP_STATUS, "/b") is None
    assert book.take(FaultKind.HTTP_STATUS, "/a/x").remaining == 1  # type: ignore[union-attr]
    assert book.take(FaultKind.HTTP_STATUS, "/a") is not None
    assert book.pending() == []
    with pytest.raises(ValueError):
        book.add("revoke_all_tokens")
    with pytest.raises(AccountSpecError):
        parse_amounts({"balances": {"KRW": "-1"}}, "balances")
    with pytest.raises(AccountSpecError):
        parse_amounts({"balances": ["KRW"]}, "balances")
    assert parse_amounts({"balances": {"BTC": "0.5"}}, "balances") == {"BTC": D("0.5")}
