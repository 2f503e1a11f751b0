"""The failure faults seen from a plain HTTP client: protocol errors, late acceptance, acted/not.

Each test checks two sides: what ``requests`` raised (or answered), and what the broker did
(the ledger and the engine). The throwaway facade and helpers come from ``test_control``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.control import FaultBook, SimState
from simulators.engine import Instrument, SimClock
from simulators.server import ServerHandle, self_signed_tls, serve_in_thread
from tests.simulators.test_control import START, TIMEOUT, add_fault, build_app, new_account, order

Sim = tuple[SimState, ServerHandle]


@pytest.fixture
def sim() -> Iterator[Sim]:
    """A fresh throwaway simulator (frozen clock) with one account, on plain HTTP."""
    state = SimState.create(
        "fake",
        seed=5,
        clock=SimClock.frozen(START),
        instruments=[Instrument("005930", "KRW", D(70000))],
    )
    handle = serve_in_thread(build_app(state))
    new_account(handle.url)
    try:
        yield state, handle
    finally:
        requests.delete(f"{handle.url}/_sim/faults", timeout=TIMEOUT)  # frees held requests
        handle.stop()


def placed(state: SimState) -> int:
    """How many orders the broker accepted."""
    return len(state.ledger.entries(kinds=["order_placed"]))


def applied(state: SimState) -> list[dict[str, Any]]:
    """The ``fault_applied`` ledger entries, as JSON."""
    return [e.to_json() for e in state.ledger.entries(kinds=["fault_applied"])]


def impatient_order(url: str, timeout: float) -> requests.Response:
    """A market buy from a client that waits only ``timeout`` seconds for the answer."""
    body = {"account": "50012345", "symbol": "005930", "side": "BUY", "type": "MARKET"}
    return requests.post(f"{url}/uapi/order", json={**body, "quantity": "1"}, timeout=timeout)


def eventually(check: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Poll ``check`` for up to ``seconds`` (for work a held handler thread finishes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# ---- protocol_error: a failure after the send ------------------------------------------------


def test_protocol_error_garbage_acts_then_breaks_the_status_line(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="protocol_error", path_prefix="/uapi/order")
    with pytest.raises(requests.ConnectionError) as info:
        order(handle.url)
    assert "BadStatusLine" in repr(info.value)  # a protocol error, not a reset or a clean close
    assert placed(state) == 1  # the broker executed it
    assert applied(state)[0]["fault"] == "protocol_error"
    assert applied(state)[0]["acted"] is True
    assert order(handle.url).status_code == 200  # the server is fine afterwards


def test_protocol_error_truncated_answers_half_a_body(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="protocol_error", mode="truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
        order(handle.url)
    assert "IncompleteRead" in repr(info.value)
    assert placed(state) == 1


def test_protocol_error_before_acting_sends_nothing_to_the_broker(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="protocol_error", acted=False)
    with pytest.raises(requests.ConnectionError):
        order(handle.url)
    assert placed(state) == 0


def test_protocol_error_over_tls_is_a_broken_tls_record(tmp_path: Path) -> None:
    state = SimState.create(
        "fake", clock=SimClock.frozen(START), instruments=[Instrument("005930", "KRW", D(70000))]
    )
    tls = self_signed_tls(tmp_path)
    handle = serve_in_thread(build_app(state), tls=tls)
    verify = str(tls.certificate)
    try:
        assert handle.url.startswith("https://")
        body = {"app_key": "K", "app_secret": "s", "account_number": "50012345", "cash": "1000000"}
        url = f"{handle.url}/_sim/accounts"
        assert requests.post(url, json=body, timeout=TIMEOUT, verify=verify).status_code == 201
        fault = {"kind": "protocol_error", "path_prefix": "/uapi/order"}
        requests.post(f"{handle.url}/_sim/faults", json=fault, timeout=TIMEOUT, verify=verify)
        spec = {"account": "50012345", "symbol": "005930", "side": "BUY", "type": "MARKET"}
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(
                f"{handle.url}/uapi/order",
                json={**spec, "quantity": "1"},
                timeout=TIMEOUT,
                verify=verify,
            )
        assert placed(state) == 1  # sent, executed, and the answer died in the TLS layer
        ok = requests.post(
            f"{handle.url}/uapi/order",
            json={**spec, "quantity": "1"},
            timeout=TIMEOUT,
            verify=verify,
        )
        assert ok.status_code == 200
    finally:
        handle.stop()


# ---- acted: the same transport failure before or after the broker acts ------------------------


@pytest.mark.parametrize(
    ("fields", "raises", "status", "acted"),
    [
        ({"kind": "reset", "acted": True}, requests.ConnectionError, None, True),
        ({"kind": "drop", "acted": False}, requests.ConnectionError, None, False),
        ({"kind": "http_status", "status": 503, "acted": True}, None, 503, True),
    ],
    ids=["reset-after", "drop-before", "503-after"],
)
def test_acted_switch(
    sim: Sim, fields: dict[str, Any], raises: type[Exception] | None, status: int, acted: bool
) -> None:
    state, handle = sim
    add_fault(handle.url, path_prefix="/uapi/order", **fields)
    if raises is not None:
        with pytest.raises(raises):
            order(handle.url)
    else:
        assert order(handle.url).status_code == status
    assert placed(state) == (1 if acted else 0)
    assert applied(state)[0]["acted"] is acted


def test_method_narrows_a_fault(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="http_status", status=500, method="post")
    ping = requests.get(f"{handle.url}/uapi/ping", timeout=TIMEOUT)
    assert ping.status_code == 200  # a GET: untouched
    assert order(handle.url).status_code == 500
    assert placed(state) == 0


# ---- late: accepted now, acted on later ------------------------------------------------------


def test_late_real_seconds_client_times_out_then_the_broker_acts(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="late", seconds=0.4, path_prefix="/uapi/order")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient_order(handle.url, 0.15)
    assert time.monotonic() - started < 0.4
    assert placed(state) == 0  # the client gave up; the broker has not acted yet
    held = requests.get(f"{handle.url}/_sim/faults", timeout=TIMEOUT).json()["held"]
    assert [(h["method"], h["path"]) for h in held] == [("POST", "/uapi/order")]
    assert eventually(lambda: placed(state) == 1)
    stages = [(e["stage"], e.get("status")) for e in applied(state)]
    assert stages == [("held", None), ("acted", 200)]
    assert requests.get(f"{handle.url}/_sim/faults", timeout=TIMEOUT).json()["held"] == []


def test_late_on_the_simulator_clock_acts_when_the_clock_gets_there(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="late", sim_seconds=120)
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient_order(handle.url, 0.2)
    clock = f"{handle.url}/_sim/clock"
    requests.post(clock, json={"advance_seconds": 60}, timeout=TIMEOUT)
    assert placed(state) == 0  # not due yet
    requests.post(clock, json={"advance_seconds": 60}, timeout=TIMEOUT)
    entries = state.ledger.entries(kinds=["order_placed"])  # settled before the clock answered
    assert len(entries) == 1
    assert (entries[0].time - START).total_seconds() == 120  # at the later simulator time
    held = applied(state)[0]
    assert held["stage"] == "held" and held["time"] == START.isoformat()
    assert held["due_at"] == entries[0].time.isoformat()


def test_late_answer_reaches_a_client_that_waits(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="late", seconds=0.3)
    started = time.monotonic()
    answer = order(handle.url)
    assert answer.status_code == 200 and answer.json()["status"] == "filled"
    assert time.monotonic() - started >= 0.3
    assert placed(state) == 1


def test_clearing_faults_abandons_held_requests(sim: Sim) -> None:
    state, handle = sim
    add_fault(handle.url, kind="late", sim_seconds=3600)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{handle.url}/uapi/ping", timeout=0.2)
    cleared = requests.delete(f"{handle.url}/_sim/faults", timeout=TIMEOUT).json()
    assert cleared == {"cleared": 0, "abandoned": 1}
    assert eventually(lambda: [e["stage"] for e in applied(state)] == ["held", "abandoned"])
    requests.post(f"{handle.url}/_sim/clock", json={"advance_seconds": 7200}, timeout=TIMEOUT)
    assert placed(state) == 0


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "late"},
        {"kind": "late", "seconds": 1, "sim_seconds": 1},
        {"kind": "late", "seconds": 301},
        {"kind": "late", "sim_seconds": 0},
        {"kind": "drop", "mode": "garbage"},
        {"kind": "protocol_error", "mode": "tls"},
        {"kind": "latency", "seconds": 1, "acted": True},
        {"kind": "late", "seconds": 1, "acted": False},
        {"kind": "reset", "acted": "yes"},
        {"kind": "reset", "method": "FETCH"},
        {"kind": "drop", "sim_seconds": 5},
        {"kind": "reset", "target": "cancel"},  # the throwaway facade has no target table
        {"kind": "token_refusal", "method": "POST"},
    ],
)
def test_invalid_fault_specs_are_refused(sim: Sim, body: dict[str, Any]) -> None:
    _, handle = sim
    answer = add_fault(handle.url, **body)
    assert answer.status_code == 400, body
    assert "error" in answer.json()


def test_fault_json_describes_targets() -> None:
    book = FaultBook("upbit")
    fault = book.add("drop", target="cancel", acted=False)
    described = fault.to_json()
    assert described["target"] == "cancel" and described["acted"] is False
    assert {"method": "DELETE", "path": "/v1/order"} in described["requests"]
    with pytest.raises(ValueError):
        FaultBook("bithumb").add("reset", target="amend")  # Bithumb cannot amend
    with pytest.raises(ValueError):
        book.add("reset", target="withdraw")


@pytest.mark.parametrize(
    ("broker", "method", "path", "headers", "body", "targets"),
    [
        (
            "kis",
            "POST",
            "/uapi/domestic-stock/v1/trading/order-rvsecncl",
            {},
            {"RVSE_CNCL_DVSN_CD": "02", "ORGN_ODNO": "0000000001"},
            {"cancel"},
        ),
        (
            "kis",
            "POST",
            "/uapi/domestic-stock/v1/trading/order-rvsecncl",
            {},
            {"RVSE_CNCL_DVSN_CD": "01"},
            {"amend"},
        ),
        ("kis", "POST", "/uapi/domestic-stock/v1/trading/order-cash", {}, {}, {"order"}),
        ("kiwoom", "POST", "/api/dostk/ordr", {"api-id": "kt10003"}, {}, {"cancel"}),
        ("kiwoom", "POST", "/api/dostk/ordr", {"api-id": "kt10001"}, {}, {"order"}),
        ("upbit", "GET", "/v1/order", {}, {}, set()),
        ("upbit", "POST", "/v1/orders/cancel_and_new", {}, {}, {"order", "cancel", "amend"}),
        ("binance", "DELETE", "/api/v3/openOrders", {}, {}, {"cancel"}),
        ("binance", "POST", "/api/v3/order/test", {}, {}, set()),
    ],
)
def test_targets_recognise_each_brokers_requests(
    broker: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: dict[str, str],
    targets: set[str],
) -> None:
    from werkzeug.test import EnvironBuilder

    from simulators.control.targets import TARGETS, RequestInfo

    environ = EnvironBuilder(
        path=path, method=method, headers=headers, json=body or None
    ).get_environ()
    info = RequestInfo(environ)
    matched = {
        name for name, patterns in TARGETS[broker].items() if any(p.matches(info) for p in patterns)
    }
    assert matched == targets
    if body:  # reading it for matching leaves it whole for the app
        assert environ["wsgi.input"].read() == info.body() and b"RVSE" in info.body()
