"""kiwoom-rest-api (PyPI ``kiwoom-rest-api``), a Kiwoom REST client nobody here wrote, against the
Kiwoom simulator over real HTTP. Only configuration changes: its base URL
(``kiwoom_rest_api.config.DEFAULT_BASE_URL``, normally from ``KIWOOM_DEFAULT_BASE_URL``) points at
the simulator, and its credentials (``KIWOOM_API_KEY``/``KIWOOM_API_SECRET``, read at import) are
the simulator account's. Token issuance, balance, order, cancel and history use the library's own
request building and response handling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask

from simulators import kiwoom
from simulators.krx import KST
from simulators.server import ServerHandle

from .conftest import TIMEOUT, ledger, move_to, session_clock, sim_now, two_day_clock

pytest.importorskip("kiwoom_rest_api", reason="kiwoom-rest-api is a dev dependency")

APP_KEY = "kiwoom-fidelity-app-key"
SECRET = "kiwoom-fidelity-secret-key"
ACCOUNT = "6001234511"


def start(
    serve: Callable[[Flask], ServerHandle],
    monkeypatch: pytest.MonkeyPatch,
    clock: Any,
    **options: Any,
) -> str:
    """A Kiwoom simulator on ``clock`` with the account, and kiwoom-rest-api pointed at it."""
    url = serve(kiwoom.create_app(clock=clock, **options)).url
    r = requests.post(
        f"{url}/_sim/accounts",
        timeout=TIMEOUT,
        json={
            "app_key": APP_KEY,
            "secret_key": SECRET,
            "account_number": ACCOUNT,
            "cash": "5000000",
            "positions": {"005930": 4},
        },
    )
    assert r.status_code == 201, r.text
    from kiwoom_rest_api import config

    monkeypatch.setattr(config, "DEFAULT_BASE_URL", url)  # the host
    monkeypatch.setattr(config, "USE_SANDBOX", False)
    monkeypatch.setattr(config, "API_KEY", APP_KEY)  # what KIWOOM_API_KEY would hold
    monkeypatch.setattr(config, "API_SECRET", SECRET)
    return url


@pytest.fixture
def kiwoom_url(serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch) -> str:
    return start(serve, monkeypatch, session_clock())


def price_of(url: str) -> Decimal:
    r = requests.get(f"{url}/_sim/prices", params={"symbol": "005930"}, timeout=TIMEOUT)
    return Decimal(r.json()["prices"]["005930"])


def test_kiwoom_rest_api_token_balance_order_cancel_history(kiwoom_url: str) -> None:
    from kiwoom_rest_api.auth.token import TokenManager
    from kiwoom_rest_api.koreanstock.account import Account
    from kiwoom_rest_api.koreanstock.order import Order

    tokens = TokenManager()
    assert tokens.get_token()
    assert len(ledger(kiwoom_url, "token_issued")) == 1

    account = Account(base_url=kiwoom_url, token_manager=tokens)
    balance = account.account_evaluation_balance_detail_request_kt00018(
        query_type="1", domestic_exchange_type="KRX"
    )
    assert balance["return_code"] == 0
    rows = balance["acnt_evlt_remn_indv_tot"]
    assert [(r["stk_cd"], int(r["rmnd_qty"])) for r in rows] == [("A005930", 4)]
    # The library copies the headers listed in Access-Control-Expose-Headers into the body.
    assert balance["cont-yn"] == "N" and balance["api-id"] == "kt00018"

    price = Decimal(
        requests.get(
            f"{kiwoom_url}/_sim/prices", params={"symbol": "005930"}, timeout=TIMEOUT
        ).json()["prices"]["005930"]
    )
    limit = price - 5000 - price % 500
    orders = Order(base_url=kiwoom_url, token_manager=tokens)
    placed = orders.stock_buy_order_request_kt10000(
        dmst_stex_tp="KRX", stk_cd="005930", ord_qty="1", trde_tp="0", ord_uv=str(limit)
    )
    assert placed["return_code"] == 0 and len(placed["ord_no"]) == 7
    assert [e["order_no"] for e in ledger(kiwoom_url, "order_placed")] == [placed["ord_no"]]

    cancel = orders.stock_cancel_order_request_kt10003(
        dmst_stex_tp="KRX", orig_ord_no=placed["ord_no"], stk_cd="005930", cncl_qty="0"
    )
    assert cancel["return_code"] == 0 and cancel["base_orig_ord_no"] == placed["ord_no"]
    assert [e["order_no"] for e in ledger(kiwoom_url, "order_cancelled")] == [placed["ord_no"]]

    today = sim_now(kiwoom_url).strftime("%Y%m%d")
    history = account.account_order_execution_detail_request_kt00007(
        qry_tp="1", stk_bond_tp="0", sell_tp="0", dmst_stex_tp="%", ord_dt=today
    )
    numbers = [row["ord_no"] for row in history["acnt_ord_cntr_prps_dtl"]]
    assert numbers == [placed["ord_no"], cancel["ord_no"]]
    assert len(ledger(kiwoom_url, "token_issued")) == 1  # the library kept its token


def test_kiwoom_rest_api_reads_yesterday_by_ord_dt_and_t_plus_2_cash_across_a_day_roll(
    serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiwoom_rest_api.auth.token import TokenManager
    from kiwoom_rest_api.koreanstock.account import Account
    from kiwoom_rest_api.koreanstock.order import Order

    clock, day1, day2 = two_day_clock()
    # The library does not pace itself; the simulator's per-key limit (5/s) would answer 1700.
    url = start(serve, monkeypatch, clock, rate_limit_per_second=0)
    tokens = TokenManager()
    account = Account(base_url=url, token_manager=tokens)
    orders = Order(base_url=url, token_manager=tokens)

    bought = orders.stock_buy_order_request_kt10000(
        dmst_stex_tp="KRX", stk_cd="005930", ord_qty="2", trde_tp="3", ord_uv=""
    )
    price = price_of(url)
    resting = orders.stock_buy_order_request_kt10000(
        dmst_stex_tp="KRX",
        stk_cd="005930",
        ord_qty="1",
        trde_tp="0",
        ord_uv=str(price - 5000 - price % 500),
    )
    assert (bought["ord_no"], resting["ord_no"]) == ("0000001", "0000002")
    (fill,) = ledger(url, "fill")
    cost = int(Decimal(fill["price"]) * 2 + Decimal(fill["fee"]))
    cash = account.deposit_detail_status_request_kt00001(qry_tp="3")
    assert (int(cash["entr"]), int(cash["d1_entra"]), int(cash["d2_entra"])) == (
        5000000,
        5000000,
        5000000 - cost,
    )

    move_to(url, datetime.combine(day2, time(9, 30), tzinfo=KST))
    unfilled = account.unfilled_orders_request_ka10075(all_stk_tp="0", trde_tp="0", stex_tp="0")
    assert unfilled["oso"] == []  # the day order lapsed at yesterday's close
    again = orders.stock_buy_order_request_kt10000(
        dmst_stex_tp="KRX", stk_cd="005930", ord_qty="1", trde_tp="3", ord_uv=""
    )
    assert again["ord_no"] == "0000001"  # numbers restart on the next trading day
    yesterday = account.account_order_execution_detail_request_kt00007(
        qry_tp="1", stk_bond_tp="0", sell_tp="0", dmst_stex_tp="%", ord_dt=day1.strftime("%Y%m%d")
    )
    rows = {r["ord_no"]: r for r in yesterday["acnt_ord_cntr_prps_dtl"]}
    assert set(rows) == {"0000001", "0000002"}
    assert (int(rows["0000001"]["cntr_qty"]), int(rows["0000002"]["ord_remnq"])) == (2, 0)
    fills = account.filled_orders_request_ka10076(qry_tp="0", sell_tp="0", stex_tp="0")
    assert [r["ord_no"] for r in fills["cntr"]] == ["0000001"]  # today's only
    cash = account.deposit_detail_status_request_kt00001(qry_tp="3")
    assert int(cash["entr"]) == 5000000  # day 1's buy settles on day1 + 2
    assert int(cash["d1_entra"]) == 5000000 - cost  # ... which is D+1 now
    assert int(cash["d2_entra"]) < 5000000 - cost  # today's buy settles on D+2
    assert int(cash["d1_buy_exct_amt"]) == cost
    assert len(ledger(url, "token_issued")) == 1  # one token across the day roll
