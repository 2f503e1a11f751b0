"""The KIS simulator's trading days over real HTTP, on the simulator clock (trading-days.md §1–3):
sessions and the broker's out-of-session answers, day orders lapsing at the close, order numbers
restarting each trading day, earlier days by date range, T+2 cash, and inquire-psbl-sell."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulators.engine import SimClock, krx_tick_size
from simulators.krx import KST

from .conftest import KIS_ACCOUNT, TIMEOUT, Sim
from .test_kis import CCLD, PSBL, account_params, headers, open_account, order, token_request

BALANCE = "/uapi/domestic-stock/v1/trading/inquire-balance"
RVSECNCL = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
PSBL_RVSECNCL = "/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl"
PSBL_SELL = "/uapi/domestic-stock/v1/trading/inquire-psbl-sell"
CASH = 10_000_000


def kst(text: str) -> datetime:
    """``"2026-04-30 10:00"`` in Seoul, as an aware time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=KST)


def seconds_until(sim: Sim, text: str) -> float:
    now = datetime.fromisoformat(sim.http.get(f"{sim.url}/_sim/clock").json()["now"])
    return (kst(text) - now).total_seconds()


def go(sim: Sim, text: str) -> None:
    """Move the simulator clock to a Seoul time."""
    sim.advance(seconds_until(sim, text))


def start_at(start_sim: Any, text: str, **options: Any) -> tuple[Sim, str]:
    sim = start_sim("kis", clock=SimClock.frozen(kst(text).astimezone(UTC)), **options)
    open_account(sim, cash=str(CASH), positions={"005930": 10})
    return sim, token(sim)


def token(sim: Sim) -> str:
    r = token_request(sim)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def price_of(sim: Sim, symbol: str = "005930") -> Decimal:
    r = sim.http.get(f"{sim.url}/_sim/prices", params={"symbol": symbol}, timeout=TIMEOUT)
    return Decimal(r.json()["prices"][symbol])


def resting_buy(sim: Sim, tok: str, qty: int = 1, **body: str) -> requests.Response:
    price = price_of(sim)
    sim.pin("005930", int(price))
    limit = price - 5 * krx_tick_size(price)
    return order(sim, tok, ORD_QTY=str(qty), ORD_UNPR=str(limit), **body)


def marketable_buy(sim: Sim, tok: str, qty: int) -> requests.Response:
    return order(sim, tok, ORD_DVSN="01", ORD_QTY=str(qty), ORD_UNPR="0")


def odno(r: requests.Response) -> str:
    body = r.json()
    assert body["rt_cd"] == "0", body
    return str(body["output"]["ODNO"])


def ccld(sim: Sim, tok: str, start: str, end: str, tr_id: str = "TTTC0081R", **extra: str) -> Any:
    params = account_params(
        INQR_STRT_DT=start,
        INQR_END_DT=end,
        SLL_BUY_DVSN_CD="00",
        INQR_DVSN="00",
        PDNO="",
        CCLD_DVSN="00",
        ORD_GNO_BRNO="",
        ODNO="",
        INQR_DVSN_3="00",
        INQR_DVSN_1="",
        CTX_AREA_FK100="",
        CTX_AREA_NK100="",
    )
    params.update(extra)
    r = sim.http.get(f"{sim.url}{CCLD}", params=params, headers=headers(tok, tr_id))
    assert r.status_code == 200 and r.json()["rt_cd"] == "0", r.text
    return r.json()["output1"]


def summary(sim: Sim, tok: str) -> dict[str, str]:
    params = account_params(
        AFHR_FLPR_YN="N",
        OFL_YN="",
        INQR_DVSN="02",
        UNPR_DVSN="01",
        FUND_STTL_ICLD_YN="N",
        FNCG_AMT_AUTO_RDPT_YN="N",
        PRCS_DVSN="00",
        CTX_AREA_FK100="",
        CTX_AREA_NK100="",
    )
    r = sim.http.get(f"{sim.url}{BALANCE}", params=params, headers=headers(tok, "TTTC8434R"))
    assert r.status_code == 200, r.text
    return dict(r.json()["output2"][0])


def cancel(sim: Sim, tok: str, original: str, tr_id: str = "TTTC0013U") -> requests.Response:
    body = {
        "CANO": KIS_ACCOUNT,
        "ACNT_PRDT_CD": "01",
        "KRX_FWDG_ORD_ORGNO": "",
        "ORGN_ODNO": original,
        "ORD_DVSN": "00",
        "RVSE_CNCL_DVSN_CD": "02",
        "ORD_QTY": "0",
        "ORD_UNPR": "0",
        "QTY_ALL_ORD_YN": "Y",
    }
    return sim.http.post(f"{sim.url}{RVSECNCL}", json=body, headers=headers(tok, tr_id))


def reject(r: requests.Response) -> tuple[str, str, str]:
    assert r.status_code == 200, r.text
    body = r.json()
    return body["rt_cd"], body["msg_cd"], body["msg1"]


# ---- sessions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    ["2026-03-03 08:20", "2026-03-03 15:30", "2026-03-07 10:00", "2026-05-01 10:00"],
    ids=["before the pre-open call", "at the close", "a Saturday", "May 1"],
)
def test_real_host_refuses_an_order_outside_its_session_with_kiok0320(
    start_sim: Any, when: str
) -> None:
    sim, tok = start_at(start_sim, when)
    assert reject(order(sim, tok)) == ("7", "KIOK0320", "장운영시간이 아닙니다")
    assert sim.ledger("order_placed") == []


def test_the_real_hosts_other_captured_code_is_a_switch(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 16:00", closed_code="APBK0918")
    assert reject(order(sim, tok)) == ("7", "APBK0918", "장운영시간이 아닙니다.(주문불가)")


@pytest.mark.parametrize(
    ("when", "answer"),
    [
        ("2026-03-03 08:50", ("1", "40570000", "모의투자 장시작전 입니다.")),
        ("2026-03-03 15:31", ("1", "40580000", "모의투자 장종료 입니다.")),
        ("2026-03-08 11:00", ("1", "40580000", "모의투자 장종료 입니다.")),
    ],
    ids=["before the open", "after the close", "a Sunday"],
)
def test_paper_host_answers_before_open_and_closed(
    start_sim: Any, when: str, answer: tuple[str, str, str]
) -> None:
    sim, tok = start_at(start_sim, when, paper=True)
    assert reject(order(sim, tok, "VTTC0012U")) == answer


def test_paper_host_refuses_a_cancel_after_the_close_too(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 15:00", paper=True)
    number = odno(resting_buy(sim, tok, tr_id="VTTC0012U"))
    sim.advance(31 * 60)
    assert reject(cancel(sim, tok, number, "VTTC0013U"))[1] == "40580000"


def test_an_order_in_the_pre_open_call_waits_for_the_open(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 08:45")
    price = price_of(sim)
    sim.pin("005930", int(price))
    number = odno(order(sim, tok, ORD_UNPR=str(price + 20 * krx_tick_size(price))))
    (row,) = ccld(sim, tok, "20260303", "20260303")
    assert (row["odno"], row["tot_ccld_qty"], row["rmn_qty"]) == (number, "0", "1")
    go(sim, "2026-03-03 09:00")
    (row,) = ccld(sim, tok, "20260303", "20260303")
    assert (row["tot_ccld_qty"], row["rmn_qty"]) == ("1", "0")
    (fill,) = sim.ledger("fill")  # at the opening price, as a taker
    assert fill["order_no"] == number and Decimal(fill["price"]) == price
    assert datetime.fromisoformat(fill["time"]) == kst("2026-03-03 09:00")


def test_nxt_trades_from_8_to_20_for_the_issues_it_lists(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 19:00")
    assert odno(resting_buy(sim, tok, EXCG_ID_DVSN_CD="NXT"))
    assert odno(resting_buy(sim, tok, EXCG_ID_DVSN_CD="SOR"))  # KRX closed: routed to NXT
    assert reject(order(sim, tok, EXCG_ID_DVSN_CD="KRX"))[1] == "KIOK0320"
    etf = order(sim, tok, PDNO="069500", ORD_UNPR="100000", EXCG_ID_DVSN_CD="NXT")
    assert reject(etf) == ("2", "OPSQ2001", "ERROR : INPUT_FIELD_NAME EXCG_ID_DVSN_CD")
    go(sim, "2026-03-03 20:00")
    assert reject(order(sim, tok, EXCG_ID_DVSN_CD="NXT"))[1] == "KIOK0320"
    assert {r["excg_id_dvsn_cd"] for r in ccld(sim, tok, "20260303", "20260303")} == {
        "NXT",
        "SOR",
    }


def test_after_hours_divisions_have_their_own_sessions_and_prices(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 08:35")
    assert odno(order(sim, tok, ORD_DVSN="05", ORD_UNPR="0"))  # 장전 시간외: yesterday's close
    assert reject(order(sim, tok, ORD_DVSN="07", ORD_UNPR="200000"))[1] == "KIOK0320"
    assert reject(order(sim, tok, ORD_DVSN="05", EXCG_ID_DVSN_CD="NXT"))[1] == "OPSQ2001"
    go(sim, "2026-03-03 15:30")
    close = price_of(sim)
    go(sim, "2026-03-03 15:45")
    assert odno(order(sim, tok, ORD_DVSN="06", ORD_UNPR="0"))  # 장후 시간외: today's close
    go(sim, "2026-03-03 16:30")
    tick = krx_tick_size(close)
    inside = (close * Decimal("0.95") / tick).to_integral_value() * tick
    outside = (close * Decimal("0.85") / tick).to_integral_value() * tick
    assert odno(order(sim, tok, ORD_DVSN="07", ORD_UNPR=str(inside)))
    assert reject(order(sim, tok, ORD_DVSN="07", ORD_UNPR=str(outside)))[1] == "APBK0508"
    rows = {r["ord_dvsn_cd"]: r for r in ccld(sim, tok, "20260303", "20260303")}
    assert rows["07"]["ord_dvsn_name"] == "시간외 단일가" and rows["07"]["ord_unpr"] == str(inside)
    assert rows["06"]["ord_unpr"] == str(int(close))


def test_the_2026_session_table_is_a_switch(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-07-01 07:30", session_table="2026")
    assert odno(resting_buy(sim, tok))  # the announced KRX pre-market
    go(sim, "2026-07-01 17:00")
    assert odno(resting_buy(sim, tok))  # the announced after-market
    assert reject(order(sim, tok, ORD_DVSN="07"))[1] == "OPSQ2001"  # no single-price session


# ---- the day roll ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "rmn", "cnc", "ccld_yn"),
    [("cancel_confirmed", "0", "2", "Y"), ("remaining", "2", "0", "N")],
)
def test_a_day_order_lapses_at_the_close_and_shows_so_in_the_history(
    start_sim: Any, style: str, rmn: str, cnc: str, ccld_yn: str
) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 10:00", expired_in_history=style)
    number = odno(resting_buy(sim, tok, qty=2))
    go(sim, "2026-03-03 15:40")
    sim.pin("005930", 1000)  # would cross the limit, but the order lapsed at 15:30
    (row,) = ccld(sim, tok, "20260303", "20260303")
    assert (row["odno"], row["tot_ccld_qty"], row["rmn_qty"], row["cnc_cfrm_qty"]) == (
        number,
        "0",
        rmn,
        cnc,
    )
    assert row["ccld_yn"] == ccld_yn and row["cncl_yn"] == "N"
    (expired,) = sim.ledger("order_expired")
    assert expired["order_no"] == number and expired["expired_quantity"] == "2"
    assert datetime.fromisoformat(expired["expired_at"]) == kst("2026-03-03 15:30")
    assert sim.ledger("fill") == []
    r = sim.http.get(
        f"{sim.url}{PSBL_RVSECNCL}",
        params=account_params(INQR_DVSN_1="0", INQR_DVSN_2="0"),
        headers=headers(tok, "TTTC0084R"),
    )
    assert r.json()["output"] == []
    r = sim.http.get(
        f"{sim.url}{PSBL}",
        params=account_params(PDNO="005930", ORD_UNPR="100000", ORD_DVSN="00"),
        headers=headers(tok, "TTTC8908R"),
    )
    assert r.json()["output"]["ord_psbl_cash"] == str(CASH)  # the lock went with the order
    assert reject(cancel(sim, tok, number))[2] == "정정/취소할 수량이 없습니다."


def test_order_numbers_restart_on_the_next_trading_day_not_on_a_holiday(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-04-30 10:00")
    first = odno(resting_buy(sim, tok))
    second = odno(resting_buy(sim, tok))
    cancelled = odno(cancel(sim, tok, second))
    assert (first, second, cancelled) == ("0000000001", "0000000002", "0000000003")
    go(sim, "2026-05-01 10:00")  # May 1: KRX is closed
    assert reject(order(sim, token(sim)))[1] == "KIOK0320"
    go(sim, "2026-05-02 10:00")  # Saturday
    assert reject(order(sim, token(sim)))[1] == "KIOK0320"
    go(sim, "2026-05-04 09:30")
    tok = token(sim)
    assert odno(resting_buy(sim, tok)) == "0000000001"
    placed = sim.ledger("order_placed")
    assert [e["order_no"] for e in placed] == ["0000000001", "0000000002", "0000000001"]


def test_one_sequence_forever_is_the_switch(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-04-30 10:00", daily_order_numbers=False)
    assert odno(resting_buy(sim, tok)) == "0000000001"
    go(sim, "2026-05-04 09:30")
    assert odno(resting_buy(sim, token(sim))) == "0000000002"


def test_yesterdays_orders_are_found_by_date_range_with_both_history_trs(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-04-30 10:00")
    odno(resting_buy(sim, tok))
    odno(cancel(sim, tok, odno(resting_buy(sim, tok))))
    go(sim, "2026-05-04 09:30")
    tok = token(sim)
    odno(resting_buy(sim, tok))
    for tr_id in ("TTTC0081R", "CTSC9215R", "TTTC8001R", "CTSC9115R"):
        rows = ccld(sim, tok, "20260430", "20260504", tr_id)
        assert [(r["ord_dt"], r["odno"]) for r in rows] == [
            ("20260504", "0000000001"),
            ("20260430", "0000000003"),
            ("20260430", "0000000002"),
            ("20260430", "0000000001"),
        ]
    today = ccld(sim, tok, "20260504", "20260504")
    assert [(r["odno"], r["rmn_qty"]) for r in today] == [("0000000001", "1")]
    same_number = ccld(sim, tok, "20260430", "20260504", ODNO="0000000001")
    assert [r["ord_dt"] for r in same_number] == ["20260504", "20260430"]
    # Yesterday's order numbers name nothing today (numbers are unique within a day only).
    assert reject(cancel(sim, tok, "0000000002"))[2] == "원주문번호가 존재하지 않습니다."


# ---- settlement -------------------------------------------------------------------------------


def cash_days(sim: Sim, tok: str) -> tuple[int, int, int]:
    out = summary(sim, tok)
    return int(out["dnca_tot_amt"]), int(out["nxdy_excc_amt"]), int(out["prvs_rcdl_excc_amt"])


def test_cash_settles_two_trading_days_after_the_trade(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-04-30 10:00")  # Thu; May 1 and 5 are closed
    odno(marketable_buy(sim, tok, 10))
    (fill,) = sim.ledger("fill")
    cost = int(Decimal(fill["price"]) * 10 + Decimal(fill["fee"]))
    assert cash_days(sim, tok) == (CASH, CASH, CASH - cost)  # settles Wed May 6
    out = summary(sim, tok)
    assert int(out["thdt_buy_amt"]) == int(Decimal(fill["price"]) * 10)
    assert int(out["tot_evlu_amt"]) == CASH - cost + int(out["scts_evlu_amt"])

    go(sim, "2026-05-04 10:00")  # Mon: D+1 is Wed May 6
    tok = token(sim)
    assert cash_days(sim, tok) == (CASH, CASH - cost, CASH - cost)
    out = summary(sim, tok)
    assert (out["thdt_buy_amt"], out["bfdy_buy_amt"]) == ("0", str(int(fill["price"]) * 10))
    assert out["bfdy_tlex_amt"] == str(int(Decimal(fill["fee"])))
    sim.pin("005930", int(price_of(sim)))
    odno(order(sim, tok, "TTTC0011U", ORD_DVSN="01", ORD_QTY="5", ORD_UNPR="0"))
    sale = sim.ledger("fill")[-1]
    proceeds = int(Decimal(sale["price"]) * 5 - Decimal(sale["fee"]) - Decimal(sale["tax"]))
    assert cash_days(sim, tok) == (CASH, CASH - cost, CASH - cost + proceeds)  # settles Thu 7

    go(sim, "2026-05-06 10:00")
    tok = token(sim)
    assert cash_days(sim, tok) == (CASH - cost, CASH - cost + proceeds, CASH - cost + proceeds)
    go(sim, "2026-05-07 10:00")
    tok = token(sim)
    assert cash_days(sim, tok)[0] == CASH - cost + proceeds


# ---- inquire-psbl-sell -------------------------------------------------------------------------


def psbl_sell(sim: Sim, tok: str, symbol: str) -> requests.Response:
    return sim.http.get(
        f"{sim.url}{PSBL_SELL}",
        params=account_params(PDNO=symbol),
        headers=headers(tok, "TTTC8408R"),
    )


def test_inquire_psbl_sell_answers_the_sellable_quantity(start_sim: Any) -> None:
    sim, tok = start_at(start_sim, "2026-03-03 10:00")
    price = price_of(sim)
    sim.pin("005930", int(price))
    odno(order(sim, tok, "TTTC0011U", ORD_QTY="3", ORD_UNPR=str(price + 10 * krx_tick_size(price))))
    odno(marketable_buy(sim, tok, 2))
    r = psbl_sell(sim, tok, "005930")
    body = r.json()
    assert (body["rt_cd"], body["msg_cd"], r.headers["tr_cont"]) == ("0", "KIOK0510", "D")
    out = body["output"]
    assert set(out) == {
        "pdno", "buy_qty", "sll_qty", "cblc_qty", "nsvg_qty", "ord_psbl_qty", "pchs_avg_pric",
        "pchs_amt", "now_pric", "evlu_amt", "evlu_pfls_amt", "evlu_pfls_rt",
    }  # fmt: skip
    assert (out["pdno"], out["cblc_qty"], out["ord_psbl_qty"]) == ("005930", "12", "9")
    assert (out["buy_qty"], out["sll_qty"], out["now_pric"]) == ("2", "0", str(int(price)))
    assert psbl_sell(sim, tok, "035720").json()["output"]["ord_psbl_qty"] == "0"
    assert reject(psbl_sell(sim, tok, "999999"))[1] == "APBK0656"
    r = sim.http.get(
        f"{sim.url}{PSBL_SELL}", params=account_params(), headers=headers(tok, "TTTC8408R")
    )
    assert reject(r)[1] == "OPSQ2001"
