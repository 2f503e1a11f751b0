"""KIS quotation inquiry: the current price of a stock (inquire-price).

Prices come from the engine's path; 기준가 (the base price the change, limits and sign refer to)
is the path price at today's KST midnight (:func:`simulators.kis.orders.base_price`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from flask import Blueprint, Response, jsonify

from simulators.kis.inquiry.conventions import rate
from simulators.kis.orders import base_price
from simulators.kis.protocol import (
    KisContext,
    KisReject,
    arg,
    authenticate,
    krw,
    kst_now,
    ok,
    require_tr,
)
from simulators.krx import Listing, price_limits

__all__ = ["PRICE_TR_IDS", "register_quote_routes"]

PRICE_TR_IDS: Final = {"FHKST01010100": "price"}


def register_quote_routes(bp: Blueprint, ctx: KisContext) -> None:
    """Add ``inquire-price`` to the inquiry blueprint."""

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
        "prdy_ctrt": rate(change, base),
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
