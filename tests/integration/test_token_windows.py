"""The token issuance window holds whatever the request's latency or a host's clock.

Tried as an operator would: a token request that took 2 s to reach KIS, then a second host whose
clock runs 2 s ahead asking again as early as it may. The window runs on the database's clock and
counts from the first request's answer, plus a margin, so KIS never answers EGW00133. The broker's
one-a-minute window is shortened to 5 s here (simulator and gateway alike) so the test takes
seconds; the arithmetic is the same.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.integration.test_tokens import Clock, make_account
from web_server.services.tokens import refresh_token

WINDOW = 5


@pytest.fixture
def short_window(app, app_ctx):
    """The broker's window and the gateway's, both 5 s (margin 2 s) for this test."""
    saved = app.config["TOKEN_ISSUE_INTERVAL_SECONDS"]
    app.config["TOKEN_ISSUE_INTERVAL_SECONDS"] = {"KIS": WINDOW, "KIWOOM": 1}
    handle = serve_in_thread(
        create_simulator("kis", rate_limit_per_second=0, token_window_seconds=WINDOW)
    )
    yield handle.url
    handle.stop()
    app.config["TOKEN_ISSUE_INTERVAL_SECONDS"] = saved
    app.extensions.pop("gateway.clock", None)


def _ledger(url: str, kinds: str, app_key: str) -> list[dict]:
    entries = requests.get(f"{url}/_sim/ledger", params={"kind": kinds}, timeout=5).json()
    return [e for e in entries["entries"] if e.get("app_key") == app_key]


def test_a_slow_request_and_a_fast_clock_never_draw_egw00133(app, short_window):
    url = short_window
    account = make_account(url)
    # Host A: a correct clock; its token request takes 2 s to reach KIS.
    requests.post(
        f"{url}/_sim/faults",
        json={"kind": "latency", "seconds": 2.0, "path_prefix": "/oauth2/tokenP", "count": 1},
        timeout=5,
    ).raise_for_status()
    first = refresh_token(account.id, force=True)
    assert first.outcome == "issued", first
    # Host B: its clock runs 2 s ahead. It asks again (the operator's "refresh now") as early as
    # the gateway lets it.
    ahead = Clock()
    ahead.offset = dt.timedelta(seconds=2)
    app.extensions["gateway.clock"] = ahead
    deferred = 0
    ends = time.monotonic() + 20
    while time.monotonic() < ends:
        second = refresh_token(account.id, force=True)
        if second.outcome != "deferred":
            break
        deferred += 1
        time.sleep(0.1)
    assert second.outcome == "issued", second
    assert deferred > 0  # the window held host B back

    refused = _ledger(url, "request_refused,token_refused", account.api_key)
    assert refused == [], refused
    answered = _ledger(url, "token_issued,token_reused", account.api_key)
    assert len(answered) == 2
    gap = dt.datetime.fromisoformat(answered[1]["time"]) - dt.datetime.fromisoformat(
        answered[0]["time"]
    )
    # KIS saw the two requests at least its window apart (the margin on top).
    assert gap >= dt.timedelta(seconds=WINDOW), gap
    print(f"token requests reached KIS {gap.total_seconds():.2f} s apart (window {WINDOW} s)")


def test_the_simulator_refuses_a_second_request_inside_its_window(short_window):
    url = short_window
    account = make_account(url)
    body = {
        "grant_type": "client_credentials",
        "appkey": account.api_key,
        "appsecret": account.api_secret,
    }
    assert requests.post(f"{url}/oauth2/tokenP", json=body, timeout=5).status_code == 200
    again = requests.post(f"{url}/oauth2/tokenP", json=body, timeout=5)
    assert again.status_code == 403 and again.json()["error_code"] == "EGW00133"
    refused = _ledger(url, "request_refused", account.api_key)
    assert [(e["reason"], e["code"], e["status"]) for e in refused] == [("rate", "EGW00133", 403)]
