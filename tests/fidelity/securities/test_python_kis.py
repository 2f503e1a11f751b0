"""python-kis (PyPI ``python-kis``, import ``pykis``), a KIS client nobody here wrote, against the
KIS simulator over real HTTP. Only its hosts change: ``pykis.kis.REAL_DOMAIN`` (the constant it
imported from ``pykis.__env__``) is pointed at the simulator; everything else is the library's own
code path: token issuance, balance paging, order, cancel, and its own response parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
import requests
from flask import Flask

from simulators import kis
from simulators.server import ServerHandle

from .conftest import TIMEOUT, ledger, real_clock

pykis = pytest.importorskip(
    "pykis", reason="python-kis is a dev dependency (pip install python-kis)"
)

APP_KEY = "PS" + "a1B2c3D4e5" * 3 + "f6G7"  # 36 characters, as python-kis insists
SECRET = ("s3cr3t" * 30)[:180]  # 180 characters
ACCOUNT = "50012345"


@pytest.fixture
def kis_url(serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch) -> str:
    app = kis.create_app(clock=real_clock())
    url = serve(app).url
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
    from datetime import datetime, timedelta, timezone

    today = datetime.now(timezone(timedelta(hours=9))).date()
    history = client.account().daily_orders(start=today, end=today, country="KR")
    numbers = {o.order_number.number for o in history.orders}
    assert {order.number, cancelled.number} <= numbers
    # One token for the whole session: python-kis reused it.
    assert len(ledger(kis_url, "token_issued")) == 1
