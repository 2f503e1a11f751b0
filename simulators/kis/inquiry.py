"""KIS account and quote inquiries (kis_kiwoom.md §1.5.3–1.5.7).

``inquire-balance`` and ``inquire-daily-ccld`` page with ``ctx_area_fk100``/``ctx_area_nk100`` in
the body and the ``tr_cont`` response header: ``D`` single page, ``F`` first page with more, ``M``
middle page, ``E`` last page of a continued query (the real letters per position are
[UNVERIFIED]; only "F/M = more, D/E = last" is documented). The cursor ``ctx_area_nk100`` holds
the offset of the next row; ``ctx_area_fk100`` holds the query's filters, so a continued query
uses the filters of its first page (the official daily-ccld sample shuffles them on page 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Final

from flask import Blueprint, Response, jsonify, request

from simulators.engine import Order, OrderStatus, OrderType, Side
from simulators.kis.orders import base_price
from simulators.kis.protocol import (
    CancelRecord,
    Credential,
    KisContext,
    KisReject,
    arg,
    authenticate,
    input_error,
    krw,
    kst_now,
    ok,
    pad100,
    require_tr,
)
from simulators.krx import KST, Listing, price_limits

__all__ = ["create_inquiry_blueprint"]

BALANCE_TR_IDS: Final = {"TTTC8434R": "balance"}
CCLD_TR_IDS: Final = {
    "TTTC0081R": "recent",
    "TTTC8001R": "recent",
    "CTSC9215R": "old",
    "CTSC9115R": "old",
}
PSBL_ORDER_TR_IDS: Final = {"TTTC8908R": "psbl"}
PSBL_RVSECNCL_TR_IDS: Final = {"TTTC0084R": "psbl", "TTTC8036R": "psbl"}
PRICE_TR_IDS: Final = {"FHKST01010100": "price"}

_FEE_RATE: Final = Decimal("0.00015")


def _rate(numerator: Decimal, denominator: Decimal, places: str = "0.01") -> str:
    if not denominator:
        return str(Decimal(0).quantize(Decimal(places)))
    return str((numerator * 100 / denominator).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def _check_account(credential: Credential) -> None:
    if arg("CANO") != credential.account_number or arg("ACNT_PRDT_CD") != credential.product_code:
        raise KisReject("account")


def _page(
    ctx: KisContext, rows: Sequence[Any], size: int, filters: str
) -> tuple[Sequence[Any], dict[str, str], str]:
    """Cut one page; return (rows, cursor fields, tr_cont letter)."""
    continued = request.headers.get("tr_cont", "").strip().upper() == "N"
    cursor = arg("CTX_AREA_NK100").strip()
    start = int(cursor) if continued and cursor.isdigit() else 0
    chunk = rows[start : start + size]
    more = start + size < len(rows)
    # F first page with more, M middle, E last page of a continued query, D single page.
    letter = ("M" if start else "F") if more else ("E" if start else "D")
    cursors = {
        "ctx_area_fk100": pad100(filters),
        "ctx_area_nk100": pad100(str(start + size) if more else ""),
    }
    return chunk, cursors, letter


def _paged(payload: dict[str, Any], letter: str) -> Response:
    response = jsonify(payload)
    response.headers["tr_cont"] = letter
    return response


def _kst_date(value: datetime) -> str:
    return value.astimezone(KST).strftime("%Y%m%d")


def _kst_time(value: datetime) -> str:
    return value.astimezone(KST).strftime("%H%M%S")


def _today_fills(ctx: KisContext, account_id: str) -> dict[tuple[str, Side], Decimal]:
    today = kst_now(ctx).date()
    out: dict[tuple[str, Side], Decimal] = {}
    for fill in ctx.state.engine.fills(account_id, start_date=today, end_date=today):
        key = (fill.symbol, fill.side)
        out[key] = out.get(key, Decimal(0)) + fill.quantity
    return out


def create_inquiry_blueprint(ctx: KisContext) -> Blueprint:
    """Return the inquiry routes bound to ``ctx``."""
    bp = Blueprint("kis_inquiry", __name__)
    engine = ctx.state.engine

    def inquiry_msg() -> tuple[str, str]:
        return ctx.success_code(
            ("KIOK0510", "조회가 완료되었습니다"), ("20310000", "모의투자 조회가 완료되었습니다.")
        )

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-balance")
    def inquire_balance() -> Response:
        credential = authenticate(ctx)
        require_tr(ctx, BALANCE_TR_IDS)
        _check_account(credential)
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
            "asst_icdc_erng_rt": _rate(
                totals["evlu"] - totals["pchs"], cash_total + totals["pchs"], "0.00000001"
            ),
        }
        filters = f"{credential.account_number}^{credential.product_code}^{arg('INQR_DVSN')}^"
        chunk, cursors, letter = _page(ctx, rows, ctx.balance_page_size, filters)
        msg = inquiry_msg() if letter in {"D", "E"} else ("KIOK0490", "조회가 계속됩니다")
        payload = ok({**cursors, "output1": list(chunk), "output2": [summary]}, *msg)
        return _paged(payload, letter)

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-daily-ccld")
    def inquire_daily_ccld() -> Response:
        credential = authenticate(ctx)
        require_tr(ctx, CCLD_TR_IDS)
        _check_account(credential)
        continued = request.headers.get("tr_cont", "").strip().upper() == "N"
        saved = arg("CTX_AREA_FK100").strip()
        if continued and saved.count("^") >= 6:
            # Page 2+: trust the filters of page 1 (the official sample shuffles them).
            start_s, end_s, side_s, pdno, ccld, order_s, odno = saved.split("^")[:7]
        else:
            start_s, end_s = arg("INQR_STRT_DT").strip(), arg("INQR_END_DT").strip()
            side_s, pdno = arg("SLL_BUY_DVSN_CD").strip() or "00", arg("PDNO").strip()
            ccld, order_s = arg("CCLD_DVSN").strip() or "00", arg("INQR_DVSN").strip() or "00"
            odno = arg("ODNO").strip()
        today = kst_now(ctx).date()
        start_day = _parse_day(start_s, "INQR_STRT_DT", today)
        end_day = _parse_day(end_s, "INQR_END_DT", today)
        rows = _ccld_rows(ctx, credential, start_day, end_day, side_s, pdno, ccld, odno)
        rows.sort(key=lambda r: (r["ord_dt"], r["ord_tmd"], r["odno"]), reverse=order_s != "01")
        total_qty = sum((Decimal(r["ord_qty"]) for r in rows), Decimal(0))
        ccld_qty = sum((Decimal(r["tot_ccld_qty"]) for r in rows), Decimal(0))
        ccld_amt = sum((Decimal(r["tot_ccld_amt"]) for r in rows), Decimal(0))
        filters = "^".join([start_s, end_s, side_s, pdno, ccld, order_s, odno]) + "^"
        chunk, cursors, letter = _page(ctx, rows, ctx.ccld_page_size, filters)
        summary = {
            "tot_ord_qty": krw(total_qty),
            "tot_ccld_qty": krw(ccld_qty),
            "tot_ccld_amt": krw(ccld_amt),
            "prsm_tlex_smtl": krw(sum((Decimal(r["_fees"]) for r in rows), Decimal(0))),
            "pchs_avg_pric": str((ccld_amt / ccld_qty).quantize(Decimal("0.0001")))
            if ccld_qty
            else "0.0000",
        }
        output1 = [{k: v for k, v in r.items() if not k.startswith("_")} for r in chunk]
        msg = inquiry_msg() if letter in {"D", "E"} else ("KIOK0490", "조회가 계속됩니다")
        return _paged(ok({**cursors, "output1": output1, "output2": summary}, *msg), letter)

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-psbl-order")
    def inquire_psbl_order() -> Response:
        credential = authenticate(ctx)
        require_tr(ctx, PSBL_ORDER_TR_IDS)
        _check_account(credential)
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
        return jsonify(ok({"output": output}, *inquiry_msg()))

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl")
    def inquire_psbl_rvsecncl() -> Response:
        credential = authenticate(ctx)
        require_tr(ctx, PSBL_RVSECNCL_TR_IDS)
        _check_account(credential)
        rows = [
            _psbl_rvsecncl_row(ctx, order)
            for order in engine.orders(credential.account_id, open_only=True)
        ]
        chunk, cursors, letter = _page(ctx, rows, 50, credential.account_number + "^")
        return _paged(ok({**cursors, "output": list(chunk)}, *inquiry_msg()), letter)

    @bp.get("/uapi/domestic-stock/v1/quotations/inquire-price")
    def inquire_price() -> Response:
        authenticate(ctx)
        require_tr(ctx, PRICE_TR_IDS)
        market = arg("FID_COND_MRKT_DIV_CODE").strip().upper()
        if market not in {"J", "NX", "UN"}:
            reject = KisReject("symbol")
            reject.rt_cd, reject.msg_cd, reject.msg1 = (
                "2",
                "OPSQ2001",
                "ERROR : INPUT INVALID_CHECK_MRKT_DIV_CODE",
            )
            raise reject
        symbol = arg("FID_INPUT_ISCD").strip()
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise KisReject("symbol")
        return jsonify(
            ok({"output": _price_output(ctx, listing)}, "MCA00000", "정상처리 되었습니다.")
        )

    return bp


def _parse_day(value: str, name: str, default: date) -> date:
    if not value:
        return default
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise input_error(name) from None


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
        "evlu_pfls_rt": _rate(value - purchase, purchase),
        "evlu_erng_rt": _rate(value - purchase, purchase, "0.00000001"),
        "loan_dt": "",
        "loan_amt": "0",
        "stln_slng_chgs": "0",
        "expd_dt": "",
        "fltt_rt": _rate(price - base, base),
        "bfdy_cprs_icdc": krw(price - base),
        "item_mgna_rt_name": "20%",
        "grta_rt_name": "",
        "sbst_pric": "0",
        "stck_loan_unpr": "0.0000",
    }


def _division_code(order: Order) -> str:
    code = str(order.extra.get("ord_dvsn", ""))
    if code:
        return code
    return "00" if order.order_type is OrderType.LIMIT else "01"


def _ccld_rows(
    ctx: KisContext,
    credential: Credential,
    start_day: date,
    end_day: date,
    side_s: str,
    pdno: str,
    ccld: str,
    odno: str,
) -> list[dict[str, str]]:
    engine = ctx.state.engine
    wanted_side = {"01": Side.SELL, "02": Side.BUY}.get(side_s)
    rows: list[dict[str, str]] = []
    for order in engine.orders(
        credential.account_id, start_date=start_day, end_date=end_day, symbol=pdno or None
    ):
        if wanted_side is not None and order.side is not wanted_side:
            continue
        filled = order.filled_quantity
        remaining = order.remaining_quantity or Decimal(0)
        if (ccld == "01" and not filled) or (ccld == "02" and not remaining):
            continue
        if odno and odno.zfill(10) != order.order_no:
            continue
        rows.append(_ccld_order_row(ctx, order))
    if ccld != "01":
        for cancel in _cancels(ctx, credential.account_id, start_day, end_day):
            if (pdno and cancel.symbol != pdno) or (
                wanted_side is not None and cancel.side is not wanted_side
            ):
                continue
            if odno and odno.zfill(10) != cancel.odno:
                continue
            rows.append(_ccld_cancel_row(ctx, cancel))
    return rows


def _cancels(
    ctx: KisContext, account_id: str, start_day: date, end_day: date
) -> list[CancelRecord]:
    with ctx.lock:
        return [
            c
            for c in ctx.cancels
            if c.account_id == account_id and start_day <= c.time.date() <= end_day
        ]


def _side_codes(side: Side, kind: str = "") -> tuple[str, str]:
    if side is Side.BUY:
        return "02", f"현금매수{kind}"
    return "01", f"현금매도{kind}"


def _common_row(ctx: KisContext, symbol: str) -> dict[str, str]:
    listing = ctx.listings.get(symbol)
    return {
        "ord_gno_brno": ctx.branch,
        "pdno": symbol,
        "prdt_name": listing.name if listing else symbol,
        "loan_dt": "",
        "ordr_empno": "",
        "rjct_qty": "0",
        "ccld_cndt_name": "없음",
        "inqr_ip_addr": "",
        "cpbc_ordp_ord_rcit_dvsn_cd": "",
        "cpbc_ordp_infm_mthd_dvsn_cd": "",
        "infm_tmd": "",
        "ctac_tlno": "",
        "prdt_type_cd": "300",
        "excg_dvsn_cd": "01",  # KRX; python-kis maps this code and fails on unknown ones
        "cpbc_ordp_mtrl_dvsn_cd": "",
        "ord_orgno": "",
        "rsvn_ord_end_dt": "",
        "stpm_cndt_pric": "0",
        "stpm_efct_occr_dtmd": "",
    }


def _ccld_order_row(ctx: KisContext, order: Order) -> dict[str, str]:
    division = _division_code(order)
    code, name = _side_codes(order.side, "정정" if order.original_order_no else "")
    avg = order.average_price or Decimal(0)
    cancelled = order.cancelled_quantity if order.status is OrderStatus.CANCELLED else Decimal(0)
    return {
        **_common_row(ctx, order.symbol),
        "ord_dt": _kst_date(order.created_at),
        "odno": order.order_no,
        "orgn_odno": order.original_order_no or "",
        "ord_dvsn_name": {"00": "지정가", "01": "시장가"}.get(division, "지정가"),
        "sll_buy_dvsn_cd": code,
        "sll_buy_dvsn_cd_name": name,
        "ord_qty": krw(order.quantity or 0),
        "ord_unpr": krw(order.price or 0),
        "ord_tmd": _kst_time(order.created_at),
        "tot_ccld_qty": krw(order.filled_quantity),
        "avg_prvs": krw(avg.to_integral_value(rounding=ROUND_HALF_UP)),
        "cncl_yn": "N",
        "ccld_yn": "Y" if order.status is OrderStatus.CANCELLED else "N",
        "tot_ccld_amt": krw(order.filled_notional),
        "ord_dvsn_cd": division,
        "cnc_cfrm_qty": krw(cancelled),
        "rmn_qty": krw(order.remaining_quantity or 0),
        "excg_id_dvsn_cd": str(order.extra.get("exchange", "KRX")),
        "_fees": krw(order.fees + order.taxes),
    }


def _ccld_cancel_row(ctx: KisContext, cancel: CancelRecord) -> dict[str, str]:
    code, name = _side_codes(cancel.side, "취소")
    return {
        **_common_row(ctx, cancel.symbol),
        "ord_dt": _kst_date(cancel.time),
        "odno": cancel.odno,
        "orgn_odno": cancel.orgn_odno,
        "ord_dvsn_name": "지정가",
        "sll_buy_dvsn_cd": code,
        "sll_buy_dvsn_cd_name": name,
        "ord_qty": krw(cancel.quantity),
        "ord_unpr": "0",
        "ord_tmd": _kst_time(cancel.time),
        "tot_ccld_qty": "0",
        "avg_prvs": "0",
        "cncl_yn": "Y",
        "ccld_yn": "Y",
        "tot_ccld_amt": "0",
        "ord_dvsn_cd": "00",
        "cnc_cfrm_qty": krw(cancel.quantity),
        "rmn_qty": "0",
        "excg_id_dvsn_cd": "KRX",
        "_fees": "0",
    }


def _psbl_rvsecncl_row(ctx: KisContext, order: Order) -> dict[str, str]:
    listing = ctx.listings.get(order.symbol)
    code = "02" if order.side is Side.BUY else "01"
    return {
        "ord_gno_brno": ctx.branch,
        "odno": order.order_no,
        "orgn_odno": order.original_order_no or "",
        "ord_dvsn_name": "지정가" if order.order_type is OrderType.LIMIT else "시장가",
        "pdno": order.symbol,
        "prdt_name": listing.name if listing else order.symbol,
        "rvse_cncl_dvsn_name": "매수" if order.side is Side.BUY else "매도",
        "ord_qty": krw(order.quantity or 0),
        "ord_unpr": krw(order.price or 0),
        "ord_tmd": _kst_time(order.created_at),
        "tot_ccld_qty": krw(order.filled_quantity),
        "tot_ccld_amt": krw(order.filled_notional),
        "psbl_qty": krw(order.remaining_quantity or 0),
        "sll_buy_dvsn_cd": code,
        "ord_dvsn_cd": _division_code(order),
        "mgco_aptm_odno": "",
        "excg_dvsn_cd": "01",
        "excg_id_dvsn_cd": str(order.extra.get("exchange", "KRX")),
        "excg_id_dvsn_name": str(order.extra.get("exchange", "KRX")),
        "stpm_cndt_pric": "0",
        "stpm_efct_occr_yn": "",
    }


def _price_output(ctx: KisContext, listing: Listing) -> dict[str, str]:
    engine = ctx.state.engine
    price = engine.price(listing.symbol)
    base = base_price(ctx, listing.symbol)
    upper, lower = price_limits(base)
    change = price - base
    sign = "3" if not change else ("2" if change > 0 else "5")
    if price >= upper:
        sign = "1"
    elif price <= lower:
        sign = "4"
    tick = engine.instrument(listing.symbol).tick_rule(price)
    market_name = {"KOSPI": "KOSPI", "KOSDAQ": "KOSDAQ", "KONEX": "KONEX"}[listing.market]
    if listing.is_etf:
        market_name = "ETF"
    shares = listing.listed_shares_thousands * 1000
    return {
        "iscd_stat_cls_code": "58"
        if listing.halted
        else ("51" if listing.administrative else "55"),
        "marg_rate": "20.00",
        "rprs_mrkt_kor_name": market_name,
        "bstp_kor_isnm": "전기·전자" if listing.sector[1] == "0013" else "",
        "temp_stop_yn": "Y" if listing.halted else "N",
        "oprc_rang_cont_yn": "N",
        "clpr_rang_cont_yn": "N",
        "crdt_able_yn": "Y",
        "grmn_rate_cls_code": "40",
        "elw_pblc_yn": "N",
        "stck_prpr": krw(price),
        "prdy_vrss": krw(change),
        "prdy_vrss_sign": sign,
        "prdy_ctrt": _rate(change, base),
        "acml_tr_pbmn": "0",
        "acml_vol": "0",
        "prdy_vrss_vol_rate": "0.00",
        "stck_oprc": krw(base),
        "stck_hgpr": krw(max(base, price)),
        "stck_lwpr": krw(min(base, price)),
        "stck_mxpr": krw(upper),
        "stck_llam": krw(lower),
        "stck_sdpr": krw(base),
        "wghn_avrg_stck_prc": krw(price),
        "hts_frgn_ehrt": "0.00",
        "frgn_ntby_qty": "0",
        "pgtr_ntby_qty": "0",
        "pvt_scnd_dmrs_prc": "0",
        "pvt_frst_dmrs_prc": "0",
        "pvt_pont_val": "0",
        "pvt_frst_dmsp_prc": "0",
        "pvt_scnd_dmsp_prc": "0",
        "dmrs_val": "0",
        "dmsp_val": "0",
        "cpfn": str(listing.capital // 100_000_000),
        "rstc_wdth_prc": krw(upper - base),
        "stck_fcam": str(listing.par_value),
        "stck_sspr": krw(price * Decimal("0.6")),
        "aspr_unit": krw(tick),
        "hts_deal_qty_unit_val": "1",
        "lstn_stcn": str(shares),
        "hts_avls": str(int(price * shares / 100_000_000)),
        "per": "0.00",
        "pbr": "0.00",
        "stac_month": "12",
        "vol_tnrt": "0.00",
        "eps": "0.00",
        "bps": "0.00",
        "d250_hgpr": krw(upper),
        "d250_hgpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "d250_hgpr_vrss_prpr_rate": "0.00",
        "d250_lwpr": krw(lower),
        "d250_lwpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "d250_lwpr_vrss_prpr_rate": "0.00",
        "stck_dryy_hgpr": krw(upper),
        "dryy_hgpr_vrss_prpr_rate": "0.00",
        "dryy_hgpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "stck_dryy_lwpr": krw(lower),
        "dryy_lwpr_vrss_prpr_rate": "0.00",
        "dryy_lwpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "w52_hgpr": krw(upper),
        "w52_hgpr_vrss_prpr_ctrt": "0.00",
        "w52_hgpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "w52_lwpr": krw(lower),
        "w52_lwpr_vrss_prpr_ctrt": "0.00",
        "w52_lwpr_date": kst_now(ctx).strftime("%Y%m%d"),
        "whol_loan_rmnd_rate": "0.00",
        "ssts_yn": "Y",
        "stck_shrn_iscd": listing.symbol,
        "fcam_cnnm": str(listing.par_value),
        "cpfn_cnnm": f"{listing.capital // 100_000_000} 억",
        "frgn_hldn_qty": "0",
        "vi_cls_code": "N",
        "ovtm_vi_cls_code": "N",
        "last_ssts_cntg_qty": "0",
        "invt_caful_yn": "N",
        "mrkt_warn_cls_code": "00",
        "short_over_yn": "N",
        "sltr_yn": "N",
        "mang_issu_cls_code": "Y" if listing.administrative else "N",
    }
