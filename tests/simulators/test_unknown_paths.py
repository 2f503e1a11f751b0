"""Every simulator answers a path it does not serve with its broker's JSON error, not HTML."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulators.registry import NAMES, create_simulator
from simulators.server import ServerHandle, serve_in_thread

TIMEOUT = 5

#: broker → (a path it does not serve, the keys of its error envelope, a served path + wrong method)
CASES: dict[str, tuple[str, set[str], tuple[str, str]]] = {
    "kis": (
        "/uapi/domestic-stock/v1/trading/inquire-nothing",
        {"rt_cd", "msg_cd", "msg1"},
        ("GET", "/oauth2/tokenP"),
    ),
    "kiwoom": ("/api/dostk/nothing", {"return_code", "return_msg"}, ("GET", "/api/dostk/ordr")),
    "upbit": ("/v1/nothing", {"error"}, ("PUT", "/v1/orders")),
    "bithumb": ("/v2/nothing", {"error"}, ("PUT", "/v2/orders")),
    "binance": ("/api/v3/nothing", {"code", "msg"}, ("PUT", "/api/v3/account")),
}


@pytest.fixture(params=NAMES)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerHandle]]:
    """Each simulator, served on a free port."""
    handle = serve_in_thread(create_simulator(request.param))
    try:
        yield request.param, handle
    finally:
        handle.stop()


def test_unknown_path_and_method_answer_json(served: tuple[str, ServerHandle]) -> None:
    name, handle = served
    path, keys, (method, known) = CASES[name]
    missing = requests.get(f"{handle.url}{path}", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = missing.json()
    assert set(body) == keys
    wrong = requests.request(method, f"{handle.url}{known}", timeout=TIMEOUT)
    assert wrong.status_code == 405 and set(wrong.json()) == keys
    assert "Allow" in wrong.headers


def test_unknown_control_path_answers_the_control_error(served: tuple[str, ServerHandle]) -> None:
    _, handle = served
    resp = requests.get(f"{handle.url}/_sim/nothing", timeout=TIMEOUT)
    assert resp.status_code == 404 and resp.json() == {
        "error": "no control route GET /_sim/nothing"
    }


def test_a_routes_own_404_keeps_its_answer() -> None:
    """KIS's master download for a market it has no file for stays the download host's page."""
    handle = serve_in_thread(create_simulator("kis"))
    try:
        resp = requests.get(f"{handle.url}/common/master/nothing_code.mst.zip", timeout=TIMEOUT)
        assert resp.status_code == 404 and resp.headers["Content-Type"].startswith("text/html")
    finally:
        handle.stop()
