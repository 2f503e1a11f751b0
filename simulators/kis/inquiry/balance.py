"""KIS balance inquiries: holdings and cash (inquire-balance), orderable cash, sellable quantity.

``inquire-balance`` pages (see :mod:`simulators.kis.inquiry`). Its cash figures settle T+2
(trading-days.md §3, :func:`simulators.krx_day.cash_figures`): ``dnca_tot_amt`` is today's cash
(D+0), ``nxdy_excc_amt`` D+1 and ``prvs_rcdl_excc_amt`` D+2, which is what the engine holds now;
``thdt_*`` are today's fills and ``bfdy_*`` the previous trading day's. ``inquire-psbl-order``
sizes the largest buy the cash allows at a price (the upper limit for a price-less order), and
``inquire-psbl-sell`` (매도가능수량조회, ``TTTC8408R``, [OFFICIAL] ``examples_llm/domestic_stock/
inquire_psbl_sell``) answers one holding's sellable quantity in ``output``.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Final

from flask import Blueprint, Response, jsonify

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
from simulators.krx_day import CashFigures, cash_figures

__all__ = ["BALANCE_TR_IDS", "PSBL_ORDER_TR_IDS", "PSBL_SELL_TR_IDS", "register_balance_routes"]

BALANCE_TR_IDS: Final = {"TTTC8434R": "balance"}
PSBL_ORDER_TR_IDS: Final = {"TTTC8908R": "psbl"}
#: Real only in the official samples; the paper twin is accepted like inquire-psbl-rvsecncl's
#: ([UNVERIFIED] whether the paper host serves it).
PSBL_SELL_TR_IDS: Final = {"TTTC8408R": "psbl_sell"}

_FEE_RATE: Final = Decimal("0.00015")


def register_balance_routes(bp: Blueprint, ctx: KisContext) -> None:
    """Add ``inquire-balance``, ``inquire-psbl-order`` and ``inquire-psbl-sell`` to ``bp``."""
    engine = ctx.state.engine

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-balance")
    def inquire_balance() -> Response:
        credential = account_inquiry(ctx, BALANCE_TR_IDS)
        view, cash = cash_figures(engine, ctx.rules.hours, credential.account_id, kst_now(ctx))
        holdings = sorted(
            (b for asset, b in view.balances.items() if asset in ctx.listings),
            key=lambda b: b.asset,
        )
        rows: list[dict[str, str]] = []
        totals = {"pchs": Decimal(0), "evlu": Decimal(0)}
        for held in holdings:
            traded = held.asset in cash.today.sold or held.asset in cash.today.bought
            if not held.total and not traded:
                continue  # a holding sold out today stays listed with 0 until the day ends
            rows.append(_balance_row(ctx, ctx.listings[held.asset], held, cash, totals))
        d0, d1, d2 = cash.cash
        today, before = cash.today, cash.previous
        summary = {
            "dnca_tot_amt": krw(d0),
            "nxdy_excc_amt": krw(d1),
            "prvs_rcdl_excc_amt": krw(d2),
            "cma_evlu_amt": "0",
            "bfdy_buy_amt": krw(before.buy_amount),
            "thdt_buy_amt": krw(today.buy_amount),
            "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": krw(before.sell_amount),
            "thdt_sll_amt": krw(today.sell_amount),
            "d2_auto_rdpt_amt": "0",
            "bfdy_tlex_amt": krw(before.costs),
            "thdt_tlex_amt": krw(today.costs),
            "tot_loan_amt": "0",
            "scts_evlu_amt": krw(totals["evlu"]),
            "tot_evlu_amt": krw(d2 + totals["evlu"]),
            "nass_amt": krw(d2 + totals["evlu"]),
            "fncg_gld_auto_rdpt_yn": "",
            "pchs_amt_smtl_amt": krw(totals["pchs"]),
            "evlu_amt_smtl_amt": krw(totals["evlu"]),
            "evlu_pfls_smtl_amt": krw(totals["evlu"] - totals["pchs"]),
            "tot_stln_slng_chgs": "0",
            "bfdy_tot_asst_evlu_amt": krw(d2 + totals["pchs"]),
            "asst_icdc_amt": krw(totals["evlu"] - totals["pchs"]),
            "asst_icdc_erng_rt": rate(
                totals["evlu"] - totals["pchs"], d2 + totals["pchs"], "0.00000001"
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

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-psbl-sell")
    def inquire_psbl_sell() -> Response:
        credential = account_inquiry(ctx, PSBL_SELL_TR_IDS)
        symbol = arg("PDNO").strip()
        if not symbol:
            raise input_error("PDNO")
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise KisReject("symbol", paper=ctx.paper)
        output = _psbl_sell_output(ctx, credential.account_id, listing)
        # The official sample pages this one: it reads the tr_cont header (a single page: "D").
        return paged(ok({"output": output}, *done_message(ctx)), "D")


def _psbl_sell_output(ctx: KisContext, account_id: str, listing: Listing) -> dict[str, str]:
    """매도가능수량조회 ``output``: one holding (zeros when not held).

    ``buy_qty``/``sll_qty`` are read as today's bought and sold quantities, ``nsvg_qty``
    (비저축수량) as the whole holding: the sample names the fields only ([UNVERIFIED] meanings).
    """
    engine = ctx.state.engine
    _, cash = cash_figures(engine, ctx.rules.hours, account_id, kst_now(ctx))
    held = engine.balance(account_id, listing.symbol)
    price = engine.price(listing.symbol)
    purchase = (held.total * held.avg_price).to_integral_value(rounding=ROUND_DOWN)
    value = held.total * price
    return {
        "pdno": listing.symbol,
        "buy_qty": krw(cash.today.bought.get(listing.symbol, Decimal(0))),
        "sll_qty": krw(cash.today.sold.get(listing.symbol, Decimal(0))),
        "cblc_qty": krw(held.total),
        "nsvg_qty": krw(held.total),
        "ord_psbl_qty": krw(held.available),
        "pchs_avg_pric": str(held.avg_price.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
        "pchs_amt": krw(purchase),
        "now_pric": krw(price),
        "evlu_amt": krw(value),
        "evlu_pfls_amt": krw(value - purchase),
        "evlu_pfls_rt": rate(value - purchase, purchase),
    }


def _balance_row(
    ctx: KisContext,
    listing: Listing,
    held: Any,
    cash: CashFigures,
    totals: dict[str, Decimal],
) -> dict[str, str]:
    engine = ctx.state.engine
    symbol = listing.symbol
    bought = cash.today.bought.get(symbol, Decimal(0))
    sold = cash.today.sold.get(symbol, Decimal(0))
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
        "bfdy_buy_qty": krw(cash.previous.bought.get(symbol, Decimal(0))),
        "bfdy_sll_qty": krw(cash.previous.sold.get(symbol, Decimal(0))),
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
