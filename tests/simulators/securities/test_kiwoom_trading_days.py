"""The Kiwoom simulator's trading days over real HTTP, on the simulator clock (trading-days.md
§1–3): out-of-session answers (real 505217 taking cancels, mock RC4058/RC4010), day orders
lapsing at the close in ka10075/kt00007, daily order numbers, earlier days by ``ord_dt``, and the
kt00001 D+0/D+1/D+2 cash as trades settle."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulators.engine import SimClock, krx_tick_size

from .conftest import Sim
from .test_kis_trading_days import go, kst, price_of
from .test_kiwoom import ACNT, buy, call, issue, open_account

CASH = 10_000_000
CLOSED_REAL = "[2000](505217:휴장시간으로 취소주문만 가능합니다.)"


def start_at(start_sim: Any, text: str, **options: Any) -> tuple[Sim, str]:
    sim = start_sim("kiwoom", clock=SimClock.frozen(kst(text).astimezone(UTC)), **options)
    open_account(sim, cash=str(CASH), positions={"005930": 10})
    return sim, token(sim)


def token(sim: Sim) -> str:
    return str(issue(sim).json()["token"])


def resting_buy(sim: Sim, tok: str, qty: int = 1, **body: str) -> requests.Response:
    price = price_of(sim)
    sim.pin("005930", int(price))
    limit = price - 5 * krx_tick_size(price)
    return buy(sim, tok, ord_qty=str(qty), ord_uv=str(limit), **body)


def ord_no(r: requests.Response) -> str:
    body = r.json()
    assert body["return_code"] == 0, body
    return str(body["ord_no"])


def refused(r: requests.Response) -> tuple[int, str]:
    assert r.status_code == 200, r.text
    return r.json()["return_code"], r.json()["return_msg"]


def cancel(sim: Sim, tok: str, original: str) -> requests.Response:
    body = {"dmst_stex_tp": "KRX", "orig_ord_no": original, "stk_cd": "005930", "cncl_qty": "0"}
    return call(sim, tok, "/api/dostk/ordr", "kt10003", body)


def history(sim: Sim, tok: str, day: str, qry_tp: str = "1") -> list[dict[str, str]]:
    body = {
        "ord_dt": day,
        "qry_tp": qry_tp,
        "stk_bond_tp": "0",
        "sell_tp": "0",
        "stk_cd": "",
        "fr_ord_no": "",
        "dmst_stex_tp": "%",
    }
    r = call(sim, tok, ACNT, "kt00007", body)
    assert r.json()["return_code"] == 0, r.text
    return list(r.json()["acnt_ord_cntr_prps_dtl"])


def open_orders(sim: Sim, tok: str) -> list[dict[str, str]]:
    body = {"all_stk_tp": "0", "trde_tp": "0", "stk_cd": "", "stex_tp": "0"}
    return list(call(sim, tok, ACNT, "ka10075", body).json()["oso"])


@pytest.mark.parametrize(
    "when", ["2026-03-03 08:20", "2026-03-03 16:00", "2026-03-07 10:00", "2026-12-31 10:00"]
)
def test_real_host_refuses_orders_outside_their_session_with_505217(
    start_sim: Any, when: str
) -> None:
    sim, tok = start_at(start_sim, when)
    assert refused(buy(sim, tok)) == (20, CLOSED_REAL)
    assert sim.ledger("order_placed") == []


def test_real_host_still_takes_cancels_and_refuses_amends_while_closed(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 15:00")
    number = ord_no(resting_buy(sim, tok))
    go(sim, "2026-03-03 15:45")
    amend = {
        "dmst_stex_tp": "KRX",
        "orig_ord_no": number,
        "stk_cd": "005930",
        "mdfy_qty": "0",
        "mdfy_uv": "100000",
    }
    assert refused(call(sim, tok, "/api/dostk/ordr", "kt10002", amend)) == (20, CLOSED_REAL)
    # A cancel is taken; there is nothing left to cancel, as the day order lapsed at 15:30.
    assert refused(cancel(sim, tok, number)) == (2, "[2000](RC4052:정정/취소 가능수량이 없습니다)")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("2026-03-03 15:31", "[2000](RC4058:모의투자 장종료)"),
        ("2026-03-03 08:55", "[2000](RC4058:모의투자 장종료)"),
        ("2026-03-07 10:00", "[2000](RC4010:모의투자 영업일이 아닙니다.)"),
    ],
    ids=["after the close", "before the open", "a Saturday"],
)
def test_mock_host_answers_rc4058_and_rc4010(start_sim: Any, when: str, message: str) -> None:
    sim, tok = start_at(start_sim, when, paper=True)
    assert refused(buy(sim, tok)) == (20, message)


def test_single_price_and_nxt_orders_after_the_close(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 15:30")
    close = price_of(sim)
    go(sim, "2026-03-03 16:30")
    assert ord_no(resting_buy(sim, tok, dmst_stex_tp="NXT"))
    tick = krx_tick_size(close)
    inside = (close * Decimal("0.95") / tick).to_integral_value() * tick
    assert ord_no(buy(sim, tok, trde_tp="62", ord_uv=str(inside)))
    assert refused(resting_buy(sim, tok, dmst_stex_tp="KRX")) == (20, CLOSED_REAL)
    assert refused(buy(sim, tok, trde_tp="61", ord_uv=""))[0] == 20  # 장전 시간외 is at 08:30
    assert {r["stex_tp_txt"] for r in open_orders(sim, tok)} == {"KRX", "NXT"}
    go(sim, "2026-03-03 18:01")  # the single-price session ended; NXT trades until 20:00
    assert [r["stex_tp_txt"] for r in open_orders(sim, tok)] == ["NXT"]


@pytest.mark.parametrize(("style", "left"), [("cancel_confirmed", "0"), ("remaining", "2")])
def test_a_day_order_lapses_at_the_close(start_sim: Any, style: str, left: str) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 10:00", expired_in_history=style)
    number = ord_no(resting_buy(sim, tok, qty=2))
    assert [r["ord_no"] for r in open_orders(sim, tok)] == [number]
    go(sim, "2026-03-03 15:31")
    assert open_orders(sim, tok) == []
    (row,) = history(sim, tok, "20260303")
    assert (row["ord_no"], row["cntr_qty"], row["ord_remnq"]) == (number, "0" * 10, left.zfill(10))
    unfilled = history(sim, tok, "20260303", qry_tp="3")
    assert [r["ord_no"] for r in unfilled] == ([number] if style == "remaining" else [])
    (expired,) = sim.ledger("order_expired")
    assert expired["order_no"] == number
    deposit = call(sim, tok, ACNT, "kt00001", {"qry_tp": "3"}).json()
    assert int(deposit["ord_alow_amt"]) == CASH  # the lock went with the order


def test_numbers_restart_daily_and_earlier_days_are_read_by_ord_dt(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-12-30 10:00")  # Wed; Dec 31 and Jan 1 are closed
    first = ord_no(resting_buy(sim, tok))
    cancelled = ord_no(cancel(sim, tok, first))
    assert (first, cancelled) == ("0000001", "0000002")
    go(sim, "2026-12-31 10:00")
    assert refused(buy(sim, token(sim))) == (20, CLOSED_REAL)
    go(sim, "2027-01-04 10:05")  # the year's first trading day opens at 10:00
    tok = token(sim)
    assert ord_no(resting_buy(sim, tok)) == "0000001"
    earlier = history(sim, tok, "20261230")
    assert [(r["ord_no"], r["ori_ord"], r["mdfy_cncl"]) for r in earlier] == [
        ("0000001", "0000000", "취소"),
        ("0000002", "0000001", "취소"),
    ]
    assert [r["ord_no"] for r in history(sim, tok, "20270104")] == ["0000001"]
    assert [r["ord_no"] for r in history(sim, tok, "")] == ["0000001"]  # today by default


def test_ka10076_lists_todays_fills_only(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 10:00")
    assert ord_no(buy(sim, tok, trde_tp="3", ord_uv=""))
    body = {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"}
    assert len(call(sim, tok, ACNT, "ka10076", body).json()["cntr"]) == 1
    go(sim, "2026-03-04 09:30")
    tok = token(sim)
    assert call(sim, tok, ACNT, "ka10076", body).json()["cntr"] == []


def deposit(sim: Sim, tok: str) -> dict[str, int]:
    body = call(sim, tok, ACNT, "kt00001", {"qry_tp": "3"}).json()
    return {k: int(v) for k, v in body.items() if k[:3] in {"ent", "d1_", "d2_"} and v}


def test_kt00001_cash_moves_as_trades_settle_t_plus_2(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-06 10:00")  # Fri: settles Tue Mar 10
    assert ord_no(buy(sim, tok, trde_tp="3", ord_uv="", ord_qty="10"))
    (fill,) = sim.ledger("fill")
    cost = int(Decimal(fill["price"]) * 10 + Decimal(fill["fee"]))
    cash = deposit(sim, tok)
    assert (cash["entr"], cash["d1_entra"], cash["d2_entra"]) == (CASH, CASH, CASH - cost)
    assert (cash["d2_buy_exct_amt"], cash["d1_buy_exct_amt"]) == (cost, 0)
    assert cash["d2_pymn_alow_amt"] == CASH - cost
    go(sim, "2026-03-09 10:00")  # Mon: D+1 is Tue
    tok = token(sim)
    cash = deposit(sim, tok)
    assert (cash["entr"], cash["d1_entra"], cash["d2_entra"]) == (CASH, CASH - cost, CASH - cost)
    assert (cash["d1_buy_exct_amt"], cash["d1_slby_exct_amt"]) == (cost, -cost)
    balance = call(sim, tok, ACNT, "kt00018", {"qry_tp": "1", "dmst_stex_tp": "KRX"})
    (row,) = balance.json()["acnt_evlt_remn_indv_tot"]
    assert (int(row["rmnd_qty"]), int(row["pred_buyq"]), int(row["tdy_buyq"])) == (20, 10, 0)
    go(sim, "2026-03-10 10:00")
    assert deposit(sim, token(sim))["entr"] == CASH - cost
