"""KIS order inquiries: the daily order history and the orders that can still be changed.

``inquire-daily-ccld`` lists the orders of a date range (``INQR_STRT_DT``..``INQR_END_DT``, KST
order dates) with their fills; ``inquire-psbl-rvsecncl`` today's open orders that can still be
amended or cancelled.

Cancels are listed as orders of their own (KIS gives a cancel its own order number). Order numbers
restart every trading day, so an ``ODNO`` filter matches one order per day of the range. A day
order that lapsed at its session's close keeps its row; how it reads is the switch
``expired_in_history`` (:data:`simulators.krx_day.EXPIRED_IN_HISTORY`): by default ``rmn_qty`` 0
and the remainder in ``cnc_cfrm_qty`` (trading-days.md §2.3 suggests it; [UNVERIFIED]).

Both generations of the history TR are served alike: ``TTTC0081R`` (≤ 3 months) and
``CTSC9215R`` (older), with their paper twins; the simulator does not hold back today's rows from
the older one (the real one may lag during the session) nor limit the newer one to 3 months.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from flask import Blueprint, Response, request

from simulators.engine import Order, OrderStatus, OrderType, Side
from simulators.kis.inquiry.conventions import (
    account_inquiry,
    done_message,
    page,
    page_message,
    paged,
)
from simulators.kis.orders import DIVISION_NAMES
from simulators.kis.protocol import (
    CancelRecord,
    Credential,
    KisContext,
    arg,
    input_error,
    krw,
    kst_now,
    ok,
)
from simulators.krx import KST

__all__ = ["CCLD_TR_IDS", "PSBL_RVSECNCL_TR_IDS", "register_history_routes"]

CCLD_TR_IDS: Final = {
    "TTTC0081R": "recent",
    "TTTC8001R": "recent",
    "CTSC9215R": "old",
    "CTSC9115R": "old",
}
PSBL_RVSECNCL_TR_IDS: Final = {"TTTC0084R": "psbl", "TTTC8036R": "psbl"}


def _kst_date(value: datetime) -> str:
    return value.astimezone(KST).strftime("%Y%m%d")


def _kst_time(value: datetime) -> str:
    return value.astimezone(KST).strftime("%H%M%S")


def register_history_routes(bp: Blueprint, ctx: KisContext) -> None:
    """Add ``inquire-daily-ccld`` and ``inquire-psbl-rvsecncl`` to the inquiry blueprint."""
    engine = ctx.state.engine

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-daily-ccld")
    def inquire_daily_ccld() -> Response:
        credential = account_inquiry(ctx, CCLD_TR_IDS)
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
        # Rows are built only for the page asked for: sorting and the summary need only the
        # orders' own figures, and a poller pages through thousands of rows of a day.
        items = _ccld_items(ctx, credential, start_day, end_day, side_s, pdno, ccld, odno)
        items.sort(key=_sort_key, reverse=order_s != "01")
        total_qty = sum((_figures(i)[0] for i in items), Decimal(0))
        ccld_qty = sum((_figures(i)[1] for i in items), Decimal(0))
        ccld_amt = sum((_figures(i)[2] for i in items), Decimal(0))
        filters = "^".join([start_s, end_s, side_s, pdno, ccld, order_s, odno]) + "^"
        chunk_items, cursors, letter = page(ctx, items, ctx.ccld_page_size, filters)
        chunk = [_item_row(ctx, i) for i in chunk_items]
        summary = {
            "tot_ord_qty": krw(total_qty),
            "tot_ccld_qty": krw(ccld_qty),
            "tot_ccld_amt": krw(ccld_amt),
            "prsm_tlex_smtl": krw(sum((_figures(i)[3] for i in items), Decimal(0))),
            "pchs_avg_pric": str((ccld_amt / ccld_qty).quantize(Decimal("0.0001")))
            if ccld_qty
            else "0.0000",
        }
        output1 = chunk
        msg = page_message(ctx, letter)
        return paged(ok({**cursors, "output1": output1, "output2": summary}, *msg), letter)

    @bp.get("/uapi/domestic-stock/v1/trading/inquire-psbl-rvsecncl")
    def inquire_psbl_rvsecncl() -> Response:
        credential = account_inquiry(ctx, PSBL_RVSECNCL_TR_IDS)
        rows = [
            _psbl_rvsecncl_row(ctx, order)
            for order in engine.orders(credential.account_id, open_only=True)
        ]
        chunk, cursors, letter = page(ctx, rows, 50, credential.account_number + "^")
        return paged(ok({**cursors, "output": list(chunk)}, *done_message(ctx)), letter)


def _parse_day(value: str, name: str, default: date) -> date:
    if not value:
        return default
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise input_error(name) from None


def _division_code(order: Order) -> str:
    code = str(order.extra.get("ord_dvsn", ""))
    if code:
        return code
    return "00" if order.order_type is OrderType.LIMIT else "01"


def _ccld_items(
    ctx: KisContext,
    credential: Credential,
    start_day: date,
    end_day: date,
    side_s: str,
    pdno: str,
    ccld: str,
    odno: str,
) -> list[Order | CancelRecord]:
    """The orders and cancels the query selects (rows are built per page: :func:`_item_row`)."""
    engine = ctx.state.engine
    wanted_side = {"01": Side.SELL, "02": Side.BUY}.get(side_s)
    items: list[Order | CancelRecord] = []
    for order in engine.orders(
        credential.account_id, start_date=start_day, end_date=end_day, symbol=pdno or None
    ):
        if wanted_side is not None and order.side is not wanted_side:
            continue
        filled = order.filled_quantity
        remaining = _shown_remaining(ctx, order)
        if (ccld == "01" and not filled) or (ccld == "02" and not remaining):
            continue
        if odno and odno.zfill(10) != order.order_no:
            continue
        items.append(order)
    if ccld != "01":
        for cancel in _cancels(ctx, credential.account_id, start_day, end_day):
            if (pdno and cancel.symbol != pdno) or (
                wanted_side is not None and cancel.side is not wanted_side
            ):
                continue
            if odno and odno.zfill(10) != cancel.odno:
                continue
            items.append(cancel)
    return items


def _sort_key(item: Order | CancelRecord) -> tuple[str, str, str]:
    """(``ord_dt``, ``ord_tmd``, ``odno``) of the item's row."""
    if isinstance(item, CancelRecord):
        return _kst_date(item.time), _kst_time(item.time), item.odno
    return _kst_date(item.created_at), _kst_time(item.created_at), item.order_no


def _figures(item: Order | CancelRecord) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The row's (``ord_qty``, ``tot_ccld_qty``, ``tot_ccld_amt``, charges) for ``output2``."""
    if isinstance(item, CancelRecord):
        return Decimal(item.quantity), Decimal(0), Decimal(0), Decimal(0)
    return (
        Decimal(item.quantity or 0),
        item.filled_quantity,
        item.filled_notional,
        item.fees + item.taxes,
    )


def _item_row(ctx: KisContext, item: Order | CancelRecord) -> dict[str, str]:
    if isinstance(item, CancelRecord):
        return _ccld_cancel_row(ctx, item)
    return _ccld_order_row(ctx, item)


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


def _lapsed_as_cancelled(ctx: KisContext, order: Order) -> bool:
    return (
        order.status is OrderStatus.EXPIRED and ctx.rules.expired_in_history == "cancel_confirmed"
    )


def _shown_remaining(ctx: KisContext, order: Order) -> Decimal:
    """``rmn_qty``: what is left, or for a lapsed order what lapsed (``expired_in_history``)."""
    if order.status is OrderStatus.EXPIRED and not _lapsed_as_cancelled(ctx, order):
        return order.expired_quantity
    return order.remaining_quantity or Decimal(0)


def _ccld_order_row(ctx: KisContext, order: Order) -> dict[str, str]:
    division = _division_code(order)
    code, name = _side_codes(order.side, "정정" if order.original_order_no else "")
    avg = order.average_price or Decimal(0)
    if order.status is OrderStatus.CANCELLED:
        cancelled = order.cancelled_quantity
    elif _lapsed_as_cancelled(ctx, order):
        cancelled = order.cancelled_quantity + order.expired_quantity
    else:
        cancelled = Decimal(0)
    closed = order.status is OrderStatus.CANCELLED or _lapsed_as_cancelled(ctx, order)
    return {
        **_common_row(ctx, order.symbol),
        "ord_dt": _kst_date(order.created_at),
        "odno": order.order_no,
        "orgn_odno": order.original_order_no or "",
        "ord_dvsn_name": DIVISION_NAMES.get(division, "지정가"),
        "sll_buy_dvsn_cd": code,
        "sll_buy_dvsn_cd_name": name,
        "ord_qty": krw(order.quantity or 0),
        "ord_unpr": krw(order.price or 0),
        "ord_tmd": _kst_time(order.created_at),
        "tot_ccld_qty": krw(order.filled_quantity),
        "avg_prvs": krw(avg.to_integral_value(rounding=ROUND_HALF_UP)),
        "cncl_yn": "N",
        "ccld_yn": "Y" if closed else "N",
        "tot_ccld_amt": krw(order.filled_notional),
        "ord_dvsn_cd": division,
        "cnc_cfrm_qty": krw(cancelled),
        "rmn_qty": krw(_shown_remaining(ctx, order)),
        "excg_id_dvsn_cd": str(order.extra.get("exchange", "KRX")),
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
