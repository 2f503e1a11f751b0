"""python-kis (PyPI ``python-kis``, import ``pykis``), a KIS client nobody here wrote, against the
KIS simulator over real HTTP. Only its hosts change: ``pykis.kis.REAL_DOMAIN`` (the constant it
imported from ``pykis.__env__``) is pointed at the simulator; everything else is the library's own
code path: token issuance, balance paging, order, cancel, and its own response parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask

from simulators import kis
from simulators.krx import KST
from simulators.server import ServerHandle

from .conftest import TIMEOUT, ledger, move_to, session_clock, sim_now, two_day_clock

pykis = pytest.importorskip(
    "pykis", reason="python-kis is a dev dependency (pip install python-kis)"
)

APP_KEY = "PS" + "a1B2c3D4e5" * 3 + "f6G7"  # 36 characters, as python-kis insists
SECRET = ("s3cr3t" * 30)[:180]  # 180 characters
ACCOUNT = "50012345"


def start(
    serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch, clock: Any
) -> str:
    """A KIS simulator on ``clock`` with the account, and python-kis pointed at it."""
    url = serve(kis.create_app(clock=clock)).url
    r = requests.post(
        f"{url}/_sim/accounts",
        timeout=TIMEOUT,
        json={
            "app_key": APP_KEY,
            "app_secret": SECRET,
            "account_number": ACCOUNT,
            "product_code": "01",
            "cash": "10000000",
            "positions": {"005930": 10, "035720": 3},
        },
    )
    assert r.status_code == 201, r.text
    import pykis.kis

    monkeypatch.setattr(pykis.kis, "REAL_DOMAIN", url)  # the only change: the host
    return url


@pytest.fixture
def kis_url(serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch) -> str:
    return start(serve, monkeypatch, session_clock())


def client() -> Any:
    from pykis import PyKis

    return PyKis(
        id="simulator",
        account=f"{ACCOUNT}-01",
        appkey=APP_KEY,
        secretkey=SECRET,
        use_websocket=False,
        keep_token=False,
    )


def test_python_kis_issues_a_token_reads_the_balance_orders_and_cancels(kis_url: str) -> None:
    from pykis import PyKis

    client = PyKis(
        id="simulator",
        account=f"{ACCOUNT}-01",
        appkey=APP_KEY,
        secretkey=SECRET,
        use_websocket=False,
        keep_token=False,
    )
    token = client.token
    assert token.token.count(".") == 2  # the HS512 JWT
    assert len(ledger(kis_url, "token_issued")) == 1

    balance = client.account().balance(country="KR")
    holdings = {stock.symbol: stock for stock in balance.stocks}
    assert set(holdings) == {"005930", "035720"}
    assert holdings["005930"].qty == 10 and holdings["035720"].name == "카카오"
    assert balance.deposits["KRW"].amount == Decimal(10000000)

    price = Decimal(
        requests.get(f"{kis_url}/_sim/prices", params={"symbol": "005930"}, timeout=TIMEOUT).json()[
            "prices"
        ]["005930"]
    )
    limit = price - 5000 - price % 500  # below the market: the order rests
    order = client.account().buy(market="KRX", symbol="005930", price=limit, qty=1)
    assert order.number and len(order.number) == 10 and order.branch == "06010"
    placed = ledger(kis_url, "order_placed")
    assert [e["order_no"] for e in placed] == [order.number]

    cancelled = order.cancel()
    assert cancelled.number != order.number
    assert [e["order_no"] for e in ledger(kis_url, "order_cancelled")] == [order.number]
    # The order history a gateway reconciles with (KIS has no client order id).
    today = sim_now(kis_url).date()
    history = client.account().daily_orders(start=today, end=today, country="KR")
    numbers = {o.order_number.number for o in history.orders}
    assert {order.number, cancelled.number} <= numbers
    # One token for the whole session: python-kis reused it.
    assert len(ledger(kis_url, "token_issued")) == 1


def test_python_kis_reads_history_by_date_range_and_t_plus_2_cash_across_a_day_roll(
    serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, day1, day2 = two_day_clock()
    url = start(serve, monkeypatch, clock)
    kis_client = client()
    account = kis_client.account()

    price = Decimal(
        requests.get(f"{url}/_sim/prices", params={"symbol": "005930"}, timeout=TIMEOUT).json()[
            "prices"
        ]["005930"]
    )
    bought = account.buy(market="KRX", symbol="005930", qty=2)  # a market order: fills now
    resting = account.buy(market="KRX", symbol="005930", price=price - 5000 - price % 500, qty=1)
    (fill,) = ledger(url, "fill")
    cost = Decimal(fill["price"]) * 2 + Decimal(fill["fee"])

    balance = account.balance(country="KR")
    # python-kis reads the deposit as dnca_tot_amt: today's cash, which a buy does not move
    # before it settles (T+2); the D+2 figure already has it.
    assert balance.deposits["KRW"].amount == Decimal(10000000)
    raw = balance.raw()["output2"][0]
    assert Decimal(raw["prvs_rcdl_excc_amt"]) == Decimal(10000000) - cost
    assert Decimal(raw["nxdy_excc_amt"]) == Decimal(10000000)

    move_to(url, datetime.combine(day2, time(9, 30), tzinfo=KST))
    history = account.daily_orders(start=day1, end=day2, country="KR")
    rows = {(o.order_number.number, o.time.date()) for o in history.orders}
    assert {(bought.number, day1), (resting.number, day1)} <= rows
    lapsed = next(o for o in history.orders if o.order_number.number == resting.number)
    assert (lapsed.pending_quantity, lapsed.executed_quantity) == (0, 0)  # lapsed at the close
    # (python-kis's ``canceled`` is always False: its KisTransform gets the whole row, not
    # ``ccld_yn``; the row itself says ``ccld_yn`` "Y" and ``cnc_cfrm_qty`` 1.)
    row = next(r for r in history.raw()["output1"] if r["odno"] == resting.number)
    assert (row["ccld_yn"], row["cnc_cfrm_qty"], row["rmn_qty"]) == ("Y", "1", "0")

    again = account.buy(market="KRX", symbol="005930", price=price - 5000 - price % 500, qty=1)
    assert again.number == bought.number  # numbers restart on the next trading day
    balance = account.balance(country="KR")
    raw = balance.raw()["output2"][0]
    assert balance.deposits["KRW"].amount == Decimal(10000000)  # settles on day1 + 2
    assert Decimal(raw["nxdy_excc_amt"]) == Decimal(10000000) - cost
    assert Decimal(raw["bfdy_buy_amt"]) == Decimal(fill["price"]) * 2
