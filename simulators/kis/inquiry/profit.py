"""KIS ``inquire-period-trade-profit`` (``TTTC8715R``, 기간별매매손익현황조회[v1_국내주식-060]).

The one KIS REST inquiry found that gives the broker's own commission and tax: per trading day and
stock (the HTS screen [0856] "종목별", per the official sample's docstring), ``output1`` rows
``trad_dt, pdno, prdt_name, trad_dvsn_name, loan_dt, hldg_qty, pchs_unpr, buy_qty, buy_amt,
sll_pric, sll_qty, sll_amt, rlzt_pfls, pfls_rt, fee, tl_tax, loan_int`` and one ``output2`` of sums
([OFFICIAL] ``examples_llm/domestic_stock/inquire_period_trade_profit/``; docs/trading-days.md §5).

The simulator's figures are its ledger's: ``fee`` and ``tl_tax`` are the sums of the commission
and tax its engine charged each execution of the day's orders of the stock, so a gateway that
trues its estimates up to them matches the ledger exactly at this granularity. [UNVERIFIED]: the
exact meaning of ``trad_dvsn_name`` (one row per day and stock here, both sides together), the
realised profit figures (not modelled: ``rlzt_pfls``, ``pchs_unpr``, ``hldg_qty`` read 0),
whether a paper twin (``VTTC8715R``) exists (accepted here, like every TR) and how soon
after an execution the real figures show.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from flask import Blueprint, Response

from simulators.engine import Side
from simulators.kis.inquiry.conventions import account_inquiry, done_message, page, paged
from simulators.kis.inquiry.history import _parse_day
from simulators.kis.protocol import KisContext, arg, krw, kst_now, ok
from simulators.krx import KST

__all__ = ["PROFIT_TR_IDS", "register_profit_routes"]

PROFIT_TR_IDS: Final = {"TTTC8715R": "period_trade_profit"}
_PAGE: Final = 50
_SUMS: Final = ("buy_qty", "buy_amt", "sll_qty", "sll_amt", "fee", "tl_tax")


def register_profit_routes(bp: Blueprint, ctx: KisContext) -> None:
    """Add ``inquire-period-trade-profit`` to the inquiry blueprint."""
    engine = ctx.state.engine

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-period-trade-profit")
    def inquire_period_trade_profit() -> Response:
        credential = account_inquiry(ctx, PROFIT_TR_IDS)
        today = kst_now(ctx).date()
        start = _parse_day(arg("INQR_STRT_DT").strip(), "INQR_STRT_DT", today)
        end = _parse_day(arg("INQR_END_DT").strip(), "INQR_END_DT", today)
        pdno = arg("PDNO").strip()
        sums: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
            lambda: dict.fromkeys(_SUMS, Decimal(0))
        )
        for order in engine.orders(
            credential.account_id, start_date=start, end_date=end, symbol=pdno or None
        ):
            if not order.filled_quantity:
                continue
            day = order.created_at.astimezone(KST).strftime("%Y%m%d")
            row = sums[(day, order.symbol)]
            side = "buy" if order.side is Side.BUY else "sll"
            row[f"{side}_qty"] += order.filled_quantity
            row[f"{side}_amt"] += order.filled_notional
            row["fee"] += order.fees
            row["tl_tax"] += order.taxes
        keys = sorted(sums, reverse=arg("SORT_DVSN").strip() != "01")
        rows = [_row(ctx, day, symbol, sums[(day, symbol)]) for day, symbol in keys]
        chunk, cursors, letter = page(ctx, rows, _PAGE, f"{start:%Y%m%d}^{end:%Y%m%d}^{pdno}^")
        totals = {name: sum((s[name] for s in sums.values()), Decimal(0)) for name in _SUMS}
        summary = {
            "sll_qty_sum": krw(totals["sll_qty"]),
            "sll_tr_amt_sum": krw(totals["sll_amt"]),
            "sll_fee_smtl": "0",
            "sll_tltx_smtl": krw(totals["tl_tax"]),
            "sll_excc_amt_smtl": "0",
            "buyqty_smtl": krw(totals["buy_qty"]),
            "buy_tr_amt_smtl": krw(totals["buy_amt"]),
            "buy_fee_smtl": "0",
            "buy_tax_smtl": "0",
            "buy_excc_amt_smtl": "0",
            "tot_qty": krw(totals["buy_qty"] + totals["sll_qty"]),
            "tot_tr_amt": krw(totals["buy_amt"] + totals["sll_amt"]),
            "tot_fee": krw(totals["fee"]),
            "tot_tltx": krw(totals["tl_tax"]),
            "tot_excc_amt": "0",
            "tot_rlzt_pfls": "0",
            "loan_int": "0",
        }
        body = {**cursors, "output1": list(chunk), "output2": summary}
        return paged(ok(body, *done_message(ctx)), letter)


def _row(ctx: KisContext, day: str, symbol: str, sums: dict[str, Decimal]) -> dict[str, str]:
    listing = ctx.listings.get(symbol)
    sell_price = (
        (sums["sll_amt"] / sums["sll_qty"]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if sums["sll_qty"]
        else Decimal(0)
    )
    return {
        "trad_dt": day,
        "pdno": symbol,
        "prdt_name": getattr(listing, "name", "") or "",
        "trad_dvsn_name": "현금",
        "loan_dt": "",
        "hldg_qty": "0",
        "pchs_unpr": "0",
        "buy_qty": krw(sums["buy_qty"]),
        "buy_amt": krw(sums["buy_amt"]),
        "sll_pric": krw(sell_price),
        "sll_qty": krw(sums["sll_qty"]),
        "sll_amt": krw(sums["sll_amt"]),
        "rlzt_pfls": "0",
        "pfls_rt": "0.00",
        "fee": krw(sums["fee"]),
        "tl_tax": krw(sums["tl_tax"]),
        "loan_int": "0",
    }
