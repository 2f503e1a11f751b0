"""kiwoom-rest-api (PyPI ``kiwoom-rest-api``), a Kiwoom REST client nobody here wrote, against the
Kiwoom simulator over real HTTP. Only configuration changes: its base URL
(``kiwoom_rest_api.config.DEFAULT_BASE_URL``, normally from ``KIWOOM_DEFAULT_BASE_URL``) points at
the simulator, and its credentials (``KIWOOM_API_KEY``/``KIWOOM_API_SECRET``, read at import) are
the simulator account's. Token issuance, balance, order, cancel and history use the library's own
request building and response handling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from flask import Flask

from simulators import kiwoom
from simulators.server import ServerHandle

from .conftest import TIMEOUT, ledger, real_clock

pytest.importorskip("kiwoom_rest_api", reason="kiwoom-rest-api is a dev dependency")

APP_KEY = "kiwoom-fidelity-app-key"
SECRET = "kiwoom-fidelity-secret-key"
ACCOUNT = "6001234511"


@pytest.fixture
def kiwoom_url(serve: Callable[[Flask], ServerHandle], monkeypatch: pytest.MonkeyPatch) -> str:
    url = serve(kiwoom.create_app(clock=real_clock())).url
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

    today = datetime.now(timezone(timedelta(hours=9))).strftime("%Y%m%d")
    history = account.account_order_execution_detail_request_kt00007(
        qry_tp="1", stk_bond_tp="0", sell_tp="0", dmst_stex_tp="%", ord_dt=today
    )
    numbers = [row["ord_no"] for row in history["acnt_ord_cntr_prps_dtl"]]
    assert numbers == [placed["ord_no"], cancel["ord_no"]]
    assert len(ledger(kiwoom_url, "token_issued")) == 1  # the library kept its token
