"""KIS balance inquiries: holdings with today's trades (inquire-balance), orderable cash.

``inquire-balance`` pages (see :mod:`simulators.kis.inquiry`); ``inquire-psbl-order`` sizes the
largest buy the cash allows at a price (the upper limit for a price-less order).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Final

from flask import Blueprint, Response, jsonify

from simulators.engine import Side
from simulators.kis.inquiry.conventions import (
    account_inquiry,
    done_message,
    page,
    page_message,
    paged,
    rate,
)
from simulators.kis.orders import base_price
from simulators.kis.protocol import (
    KisContext,
    KisReject,
    arg,
    input_error,
    krw,
    kst_now,
    ok,
)
from simulators.krx import Listing, price_limits

__all__ = ["BALANCE_TR_IDS", "PSBL_ORDER_TR_IDS", "register_balance_routes"]

BALANCE_TR_IDS: Final = {"TTTC8434R": "balance"}
PSBL_ORDER_TR_IDS: Final = {"TTTC8908R": "psbl"}

_FEE_RATE: Final = Decimal("0.00015")


def _today_fills(ctx: KisContext, account_id: str) -> dict[tuple[str, Side], Decimal]:
    today = kst_now(ctx).date()
    out: dict[tuple[str, Side], Decimal] = {}
    for fill in ctx.state.engine.fills(account_id, start_date=today, end_date=today):
        key = (fill.symbol, fill.side)
        out[key] = out.get(key, Decimal(0)) + fill.quantity
    return out


def register_balance_routes(bp: Blueprint, ctx: KisContext) -> None:
    """Add ``inquire-balance`` and ``inquire-psbl-order`` to the inquiry blueprint."""
    engine = ctx.state.engine

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-balance")
    def inquire_balance() -> Response:
        credential = account_inquiry(ctx, BALANCE_TR_IDS)
        view = engine.account(credential.account_id)
        fills = _today_fills(ctx, credential.account_id)
        holdings = sorted(
            (b for asset, b in view.balances.items() if asset in ctx.listings),
            key=lambda b: b.asset,
        )
        rows: list[dict[str, str]] = []
        totals = {"pchs": Decimal(0), "evlu": Decimal(0)}
        for held in holdings:
            bought = fills.get((held.asset, Side.BUY), Decimal(0))
            sold = fills.get((held.asset, Side.SELL), Decimal(0))
            if not held.total and not (bought or sold):
                continue  # a holding sold out today stays listed with 0 until settlement
            rows.append(_balance_row(ctx, ctx.listings[held.asset], held, bought, sold, totals))
        cash = view.balances.get("KRW")
        cash_total = cash.total if cash else Decimal(0)
        today = kst_now(ctx).date()
        buy_amt = sell_amt = fees = Decimal(0)
        for fill in engine.fills(credential.account_id, start_date=today, end_date=today):
            if fill.side is Side.BUY:
                buy_amt += fill.notional
            else:
                sell_amt += fill.notional
            fees += fill.fee + fill.tax
        summary = {
            "dnca_tot_amt": krw(cash_total),
            "nxdy_excc_amt": krw(cash_total),
            "prvs_rcdl_excc_amt": krw(cash_total),
            "cma_evlu_amt": "0",
            "bfdy_buy_amt": "0",
            "thdt_buy_amt": krw(buy_amt),
            "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": "0",
            "thdt_sll_amt": krw(sell_amt),
            "d2_auto_rdpt_amt": "0",
            "bfdy_tlex_amt": "0",
            "thdt_tlex_amt": krw(fees),
            "tot_loan_amt": "0",
            "scts_evlu_amt": krw(totals["evlu"]),
            "tot_evlu_amt": krw(cash_total + totals["evlu"]),
            "nass_amt": krw(cash_total + totals["evlu"]),
            "fncg_gld_auto_rdpt_yn": "",
            "pchs_amt_smtl_amt": krw(totals["pchs"]),
            "evlu_amt_smtl_amt": krw(totals["evlu"]),
            "evlu_pfls_smtl_amt": krw(totals["evlu"] - totals["pchs"]),
            "tot_stln_slng_chgs": "0",
            "bfdy_tot_asst_evlu_amt": krw(cash_total + totals["pchs"]),
            "asst_icdc_amt": krw(totals["evlu"] - totals["pchs"]),
            "asst_icdc_erng_rt": rate(
                totals["evlu"] - totals["pchs"], cash_total + totals["pchs"], "0.00000001"
            ),
        }
        filters = f"{credential.account_number}^{credential.product_code}^{arg('INQR_DVSN')}^"
        chunk, cursors, letter = page(ctx, rows, ctx.balance_page_size, filters)
        msg = page_message(ctx, letter)
        payload = ok({**cursors, "output1": list(chunk), "output2": [summary]}, *msg)
        return paged(payload, letter)

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-psbl-order")
    def inquire_psbl_order() -> Response:
        credential = account_inquiry(ctx, PSBL_ORDER_TR_IDS)
        cash = engine.balance(credential.account_id, "KRW").available
        symbol = arg("PDNO").strip()
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise KisReject("symbol", paper=ctx.paper)
        try:
            unit = Decimal(arg("ORD_UNPR").strip() or "0")
        except ArithmeticError:
            raise input_error("ORD_UNPR") from None
        if unit <= 0 or arg("ORD_DVSN").strip() == "01":
            # A price-less order is sized at the upper limit, as KIS reserves it.
            unit = price_limits(base_price(ctx, symbol))[0]
        qty = (cash / (unit * (1 + _FEE_RATE))).to_integral_value(rounding=ROUND_DOWN)
        amount = (qty * unit).to_integral_value(rounding=ROUND_DOWN)
        output = {
            "ord_psbl_cash": krw(cash),
            "ord_psbl_sbst": "0",
            "ruse_psbl_amt": "0",
            "fund_rpch_chgs": "0",
            "psbl_qty_calc_unpr": krw(unit),
            "nrcvb_buy_amt": krw(amount),
            "nrcvb_buy_qty": krw(qty),
            "max_buy_amt": krw(amount),
            "max_buy_qty": krw(qty),
            "cma_evlu_amt": "0",
            "ovrs_re_use_amt_wcrc": "0",
            "ord_psbl_frcr_amt_wcrc": "0",
        }
        return jsonify(ok({"output": output}, *done_message(ctx)))


def _balance_row(
    ctx: KisContext,
    listing: Listing,
    held: Any,
    bought: Decimal,
    sold: Decimal,
    totals: dict[str, Decimal],
) -> dict[str, str]:
    engine = ctx.state.engine
    price = engine.price(listing.symbol)
    base = base_price(ctx, listing.symbol)
    avg = held.avg_price
    purchase = (held.total * avg).to_integral_value(rounding=ROUND_DOWN)
    value = held.total * price
    totals["pchs"] += purchase
    totals["evlu"] += value
    return {
        "pdno": listing.symbol,
        "prdt_name": listing.name,
        "trad_dvsn_name": "현금",
        "bfdy_buy_qty": "0",
        "bfdy_sll_qty": "0",
        "thdt_buyqty": krw(bought),
        "thdt_buy_qty": krw(bought),
        "thdt_sll_qty": krw(sold),
        "hldg_qty": krw(held.total),
        "ord_psbl_qty": krw(held.available),
        "pchs_avg_pric": str(avg.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
        "pchs_amt": krw(purchase),
        "prpr": krw(price),
        "evlu_amt": krw(value),
        "evlu_pfls_amt": krw(value - purchase),
        "evlu_pfls_rt": rate(value - purchase, purchase),
        "evlu_erng_rt": rate(value - purchase, purchase, "0.00000001"),
        "loan_dt": "",
        "loan_amt": "0",
        "stln_slng_chgs": "0",
        "expd_dt": "",
        "fltt_rt": rate(price - base, base),
        "bfdy_cprs_icdc": krw(price - base),
        "item_mgna_rt_name": "20%",
        "grta_rt_name": "",
        "sbst_pric": "0",
        "stck_loan_unpr": "0.0000",
    }
