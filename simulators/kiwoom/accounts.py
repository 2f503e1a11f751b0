"""Kiwoom account TRs at ``/api/dostk/acnt`` and ka10001 at ``/api/dostk/stkinfo`` (§2.5–2.6).

Account TRs: ka00001, kt00018, kt00001, ka10075, ka10076, kt00007.

List TRs page with ``cont-yn``/``next-key`` (the ``next-key`` value is the offset of the next row;
its real format is [UNVERIFIED]). kt00007 and ka10076 are the order and fill history a gateway
uses to settle an order whose answer it never got (Kiwoom has no client order id).

The trading day (trading-days.md §2–3): ka10075 lists today's open orders (a lapsed day order is
gone), ka10076 today's fills, kt00007 the orders of the day ``ord_dt`` names (today by default;
numbers restart daily, so ``fr_ord_no`` counts within that day). A lapsed order keeps its kt00007
row with ``ord_remnq`` 0 (switch ``expired_in_history="remaining"``: the remainder still shows;
[UNVERIFIED] either way, and no cancel row appears). kt00001's ``entr``/``d1_entra``/``d2_entra``
are the cash after the trades settled by D+0, D+1 and D+2 (T+2, :func:`simulators.krx_day.
cash_figures`), with the buys and sells due on each day in ``d1_``/``d2_buy_exct_amt`` …;
kt00018's ``pred_``/``tdy_buyq``/``sellq`` are the previous and this trading day's fills.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from flask import Blueprint, Response

from simulators.engine import Order, OrderStatus, OrderType, Side
from simulators.kiwoom.orders import base_price, split_code
from simulators.kiwoom.protocol import (
    KiwoomContext,
    answer,
    authenticate,
    body,
    check_api_id,
    padded,
    page,
    signed,
)
from simulators.krx import KST, price_limits
from simulators.krx_day import CashFigures, cash_figures

__all__ = ["create_accounts_blueprint"]

ACCOUNT_APIS: Final = {
    "ka00001": "account_number",
    "kt00018": "balance",
    "kt00001": "deposit",
    "ka10075": "open_orders",
    "ka10076": "fills",
    "kt00007": "order_history",
}
STKINFO_APIS: Final = {"ka10001": "basic_info"}
_INQUIRY_DONE: Final = "조회가 완료되었습니다"
_FEE_RATE: Final = Decimal("0.00015")


def _rate(numerator: Decimal, denominator: Decimal) -> str:
    if not denominator:
        return "0.00"
    return str((numerator * 100 / denominator).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _kst(value: datetime) -> datetime:
    return value.astimezone(KST)


def create_accounts_blueprint(ctx: KiwoomContext) -> Blueprint:
    """Return the account and stock-info routes bound to ``ctx``."""
    bp = Blueprint("kiwoom_accounts", __name__)
    engine = ctx.state.engine

    @bp.post("/api/dostk/acnt")
    def acnt() -> Response:
        api_id = check_api_id(ctx, ACCOUNT_APIS)
        credential = authenticate(ctx, api_id)
        data = body()
        account_id = credential.account_id
        kind = ACCOUNT_APIS[api_id]
        if kind == "account_number":
            return answer({"acctNo": credential.account_number}, api_id)
        if kind == "balance":
            return _balance(ctx, account_id, api_id)
        if kind == "deposit":
            _, figures = cash_figures(engine, ctx.rules.hours, account_id, ctx.state.clock.now())
            return answer(_deposit(figures), api_id, message=_INQUIRY_DONE)
        if kind == "open_orders":
            rows = [
                _open_row(ctx, credential.account_number, o)
                for o in engine.orders(account_id, open_only=True)
                if _matches(o, data)
            ]
            chunk, cont, key = page(ctx, rows)
            return answer({"oso": chunk}, api_id, message=_INQUIRY_DONE, cont_yn=cont, next_key=key)
        if kind == "fills":
            today = _kst(ctx.state.clock.now()).date()
            rows = [
                _fill_row(ctx, o)
                for o in reversed(engine.orders(account_id, start_date=today, end_date=today))
                if o.filled_quantity
                and _matches(o, data)
                and (not data.get("ord_no") or o.order_no < str(data["ord_no"]).zfill(7))
            ]
            chunk, cont, key = page(ctx, rows)
            return answer(
                {"cntr": chunk}, api_id, message=_INQUIRY_DONE, cont_yn=cont, next_key=key
            )
        return _order_history(ctx, account_id, api_id, data)

    @bp.post("/api/dostk/stkinfo")
    def stkinfo() -> Response:
        api_id = check_api_id(ctx, STKINFO_APIS)
        authenticate(ctx, api_id)
        code = str(body().get("stk_cd") or "").strip()
        if not code:
            raise ctx.error(1511, ". 필수입력 파라미터=stk_cd")
        symbol, _ = split_code(code)
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise ctx.error(1902)
        price = engine.price(symbol)
        base = base_price(ctx, symbol)
        upper, lower = price_limits(base)
        change = price - base
        sign = "3" if not change else ("2" if change > 0 else "5")
        shares_k = listing.listed_shares_thousands
        return answer(
            {
                "stk_cd": code,
                "stk_nm": listing.name,
                "setl_mm": "12",
                "fav": f"{listing.par_value:04d}",
                "cap": str(listing.capital // 100_000_000),
                "flo_stk": str(shares_k),
                "crd_rt": "+0.00",
                "oyr_hgst": signed(upper),
                "oyr_lwst": signed(-lower),
                "mac": str(int(price * shares_k * 1000 / 100_000_000)),
                "mac_wght": "",
                "for_exh_rt": "0.00",
                "repl_pric": str(int(price * Decimal("0.6"))),
                "per": "",
                "eps": "",
                "roe": "",
                "pbr": "",
                "ev": "",
                "bps": "",
                "sale_amt": "0",
                "bus_pro": "0",
                "cup_nga": "0",
                "250hgst": signed(upper),
                "250lwst": signed(-lower),
                "high_pric": signed(max(price, base)),
                "open_pric": signed(base),
                "low_pric": signed(min(price, base)),
                "upl_pric": signed(upper),
                "lst_pric": signed(-lower),
                "base_pric": str(int(base)),
                "exp_cntr_pric": "0",
                "exp_cntr_qty": "0",
                "250hgst_pric_dt": _kst(ctx.state.clock.now()).strftime("%Y%m%d"),
                "250hgst_pric_pre_rt": "0.00",
                "250lwst_pric_dt": _kst(ctx.state.clock.now()).strftime("%Y%m%d"),
                "250lwst_pric_pre_rt": "0.00",
                "cur_prc": signed(price if change >= 0 else -price),
                "pre_sig": sign,
                "pred_pre": signed(change),
                "flu_rt": ("+" if change > 0 else "") + _rate(change, base),
                "trde_qty": "0",
                "trde_pre": "0.00",
                "fav_unit": "원",
                "dstr_stk": str(shares_k),
                "dstr_rt": "100.00",
            },
            api_id,
        )

    return bp


def _deposit(figures: CashFigures) -> dict[str, Any]:
    """kt00001: cash now and at D+1/D+2, what settles on each, what may be ordered or paid out."""
    (d0, d1, d2), available = figures.cash, figures.cash[2] - figures.locked
    return {
        "entr": padded(d0),
        "profa_ch": padded(0),
        "ord_alow_amt": padded(available),
        "pymn_alow_amt": padded(figures.withdrawable(0)),
        "100stk_ord_alow_amt": padded(available),
        "d1_entra": padded(d1),
        "d1_slby_exct_amt": padded(figures.sells_due[1] - figures.buys_due[1]),
        "d1_buy_exct_amt": padded(figures.buys_due[1]),
        "d1_out_rep_mor": padded(0),
        "d1_sel_exct_amt": padded(figures.sells_due[1]),
        "d1_pymn_alow_amt": padded(figures.withdrawable(1)),
        "d2_entra": padded(d2),
        "d2_slby_exct_amt": padded(figures.sells_due[2] - figures.buys_due[2]),
        "d2_buy_exct_amt": padded(figures.buys_due[2]),
        "d2_out_rep_mor": padded(0),
        "d2_sel_exct_amt": padded(figures.sells_due[2]),
        "d2_pymn_alow_amt": padded(figures.withdrawable(2)),
        "stk_entr_prst": [],
    }


def _matches(order: Order, data: dict[str, Any]) -> bool:
    code = str(data.get("stk_cd") or "").strip()
    if code and split_code(code)[0] != order.symbol:
        return False
    side = str(data.get("trde_tp") or data.get("sell_tp") or "0")
    if side == "1" and order.side is not Side.SELL:
        return False
    return not (side == "2" and order.side is not Side.BUY)


def _balance(ctx: KiwoomContext, account_id: str, api_id: str) -> Response:
    engine = ctx.state.engine
    view, figures = cash_figures(engine, ctx.rules.hours, account_id, ctx.state.clock.now())
    today, before = figures.today, figures.previous
    rows: list[dict[str, str]] = []
    total_pur = total_evlt = Decimal(0)
    for asset in sorted(a for a in view.balances if a in ctx.listings):
        held = view.balances[asset]
        if not held.total:
            continue
        listing = ctx.listings[asset]
        price = engine.price(asset)
        base = base_price(ctx, asset)
        purchase = int(held.total * held.avg_price)
        value = held.total * price
        sell_fee = int(value * _FEE_RATE)
        tax = int(value * engine.fees.sell_tax_rate)
        total_pur += purchase
        total_evlt += value
        rows.append(
            {
                "stk_cd": f"A{asset}",
                "stk_nm": listing.name,
                "evltv_prft": padded(value - purchase),
                "prft_rt": _rate(value - purchase, Decimal(purchase)),
                "pur_pric": padded(held.avg_price.to_integral_value(rounding=ROUND_HALF_UP)),
                "pred_close_pric": padded(base, 12),
                "rmnd_qty": padded(held.total),
                "trde_able_qty": padded(held.available),
                "cur_prc": padded(price, 12),
                "pred_buyq": padded(before.bought.get(asset, 0)),
                "pred_sellq": padded(before.sold.get(asset, 0)),
                "tdy_buyq": padded(today.bought.get(asset, 0)),
                "tdy_sellq": padded(today.sold.get(asset, 0)),
                "pur_amt": padded(purchase),
                "pur_cmsn": padded(int(purchase * _FEE_RATE)),
                "evlt_amt": padded(value),
                "sell_cmsn": padded(sell_fee),
                "tax": padded(tax),
                "sum_cmsn": padded(int(purchase * _FEE_RATE) + sell_fee),
                "poss_rt": "0.00",
                "crd_tp": "00",
                "crd_tp_nm": "",
                "crd_loan_dt": "",
            }
        )
    cash = view.balances.get("KRW")
    cash_total = cash.total if cash else Decimal(0)
    for row in rows:
        row["poss_rt"] = _rate(Decimal(int(row["evlt_amt"])), total_evlt)
    chunk, cont, key = page(ctx, rows)
    return answer(
        {
            "tot_pur_amt": padded(total_pur),
            "tot_evlt_amt": padded(total_evlt),
            "tot_evlt_pl": padded(total_evlt - total_pur),
            "tot_prft_rt": _rate(total_evlt - total_pur, total_pur),
            "prsm_dpst_aset_amt": padded(cash_total + total_evlt),
            "tot_loan_amt": padded(0),
            "tot_crd_loan_amt": padded(0),
            "tot_crd_ls_amt": padded(0),
            "acnt_evlt_remn_indv_tot": chunk,
        },
        api_id,
        message=_INQUIRY_DONE,
        cont_yn=cont,
        next_key=key,
    )


def _io(order_side: Side) -> str:
    return "+매수" if order_side is Side.BUY else "-매도"


def _trade_type_name(order: Order) -> str:
    return "보통" if order.order_type is OrderType.LIMIT else "시장가"


def _open_row(ctx: KiwoomContext, account_number: str, order: Order) -> dict[str, str]:
    price = ctx.state.engine.price(order.symbol)
    listing = ctx.listings[order.symbol]
    exchange = str(order.extra.get("exchange", "KRX"))
    return {
        "acnt_no": account_number,
        "ord_no": order.order_no,
        "mang_empno": "",
        "stk_cd": order.symbol,
        "tsk_tp": "",
        "ord_stt": "접수" if not order.filled_quantity else "체결",
        "stk_nm": listing.name,
        "ord_qty": str(int(order.quantity or 0)),
        "ord_pric": str(int(order.price or 0)),
        "oso_qty": str(int(order.remaining_quantity or 0)),
        "cntr_tot_amt": str(int(order.filled_notional)),
        "orig_ord_no": order.original_order_no or "0000000",
        "io_tp_nm": _io(order.side),
        "trde_tp": _trade_type_name(order),
        "tm": _kst(order.created_at).strftime("%H%M%S"),
        "cntr_no": "",
        "cntr_pric": str(int(order.average_price or 0)),
        "cntr_qty": str(int(order.filled_quantity)),
        "cur_prc": signed(price),
        "sel_bid": "0",
        "buy_bid": signed(price),
        "unit_cntr_pric": "",
        "unit_cntr_qty": "",
        "tdy_trde_cmsn": str(int(order.fees)),
        "tdy_trde_tax": str(int(order.taxes)),
        "ind_invsr": "",
        "stex_tp": {"KRX": "1", "NXT": "2"}.get(exchange, "0"),
        "stex_tp_txt": exchange,
        "sor_yn": "Y" if exchange == "SOR" else "N",
        "stop_pric": "",
    }


def _fill_row(ctx: KiwoomContext, order: Order) -> dict[str, str]:
    exchange = str(order.extra.get("exchange", "KRX"))
    return {
        "ord_no": order.order_no,
        "stk_nm": ctx.listings[order.symbol].name,
        "io_tp_nm": _io(order.side),
        "ord_pric": str(int(order.price or 0)),
        "ord_qty": str(int(order.quantity or 0)),
        "cntr_pric": str(int(order.average_price or 0)),
        "cntr_qty": str(int(order.filled_quantity)),
        "oso_qty": str(int(order.remaining_quantity or 0)),
        "tdy_trde_cmsn": str(int(order.fees)),
        "tdy_trde_tax": str(int(order.taxes)),
        "ord_stt": "체결",
        "trde_tp": _trade_type_name(order),
        "orig_ord_no": order.original_order_no or "0000000",
        "ord_tm": _kst(order.created_at).strftime("%H%M%S"),
        "stk_cd": order.symbol,
        "stex_tp": {"KRX": "1", "NXT": "2"}.get(exchange, "0"),
        "stex_tp_txt": exchange,
        "sor_yn": "Y" if exchange == "SOR" else "N",
        "stop_pric": "",
    }


def _order_history(
    ctx: KiwoomContext, account_id: str, api_id: str, data: dict[str, Any]
) -> Response:
    """kt00007 계좌별주문체결내역상세: orders, amendments and cancels of one day."""
    engine = ctx.state.engine
    day_s = str(data.get("ord_dt") or "").strip()
    try:
        day = datetime.strptime(day_s, "%Y%m%d").date() if day_s else None
    except ValueError:
        raise ctx.error(1517, " (ord_dt)") from None
    today = _kst(ctx.state.clock.now()).date()
    day = day or today
    query = str(data.get("qry_tp") or "1")
    rows: list[dict[str, str]] = []
    for order in engine.orders(account_id, start_date=day, end_date=day):
        if not _matches(order, data):
            continue
        if query == "3" and not (order.is_open or _lapsed_but_shown(ctx, order)):
            continue
        if query == "4" and not order.filled_quantity:
            continue
        rows.append(_history_row(ctx, order))
    if query in {"1", "2"}:
        rows.extend(_cancel_rows(ctx, account_id, day, data))
    rows.sort(key=lambda r: r["ord_no"], reverse=query == "2")
    start_no = str(data.get("fr_ord_no") or "").strip()
    if start_no:
        rows = [r for r in rows if r["ord_no"] >= start_no.zfill(7)]
    chunk, cont, key = page(ctx, rows)
    return answer(
        {"acnt_ord_cntr_prps_dtl": chunk}, api_id, message=_INQUIRY_DONE, cont_yn=cont, next_key=key
    )


def _lapsed_but_shown(ctx: KiwoomContext, order: Order) -> bool:
    """A lapsed order whose remainder still shows (``expired_in_history="remaining"``)."""
    return order.status is OrderStatus.EXPIRED and ctx.rules.expired_in_history == "remaining"


def _history_row(ctx: KiwoomContext, order: Order) -> dict[str, str]:
    amended = order.status is OrderStatus.REPLACED
    left = order.remaining_quantity or Decimal(0)
    if _lapsed_but_shown(ctx, order):
        left = order.expired_quantity
    return {
        "ord_no": order.order_no,
        "stk_cd": f"A{order.symbol}",
        "trde_tp": _trade_type_name(order),
        "crd_tp": "보통매매",
        "ord_qty": padded(order.quantity or 0, 10),
        "ord_uv": padded(order.price or 0, 10),
        "cnfm_qty": padded(order.quantity or 0, 10),
        "acpt_tp": "접수",
        "rsrv_tp": "",
        "ord_tm": _kst(order.created_at).strftime("%H:%M:%S"),
        "ori_ord": order.original_order_no or "0000000",
        "stk_nm": ctx.listings[order.symbol].name,
        "io_tp_nm": ("현금매수" if order.side is Side.BUY else "현금매도")
        + ("정정" if order.original_order_no else ""),
        "loan_dt": "",
        "cntr_qty": padded(order.filled_quantity, 10),
        "cntr_uv": padded((order.average_price or Decimal(0)).to_integral_value(), 10),
        "ord_remnq": padded(left, 10),
        "comm_ord_tp": "REST API",
        "mdfy_cncl": "정정"
        if amended
        else ("취소" if order.status is OrderStatus.CANCELLED else ""),
        "cnfm_tm": _kst(order.updated_at).strftime("%H:%M:%S"),
        "dmst_stex_tp": str(order.extra.get("exchange", "KRX")),
        "cond_uv": padded(0, 10),
    }


def _cancel_rows(
    ctx: KiwoomContext, account_id: str, day: date, data: dict[str, Any]
) -> list[dict[str, str]]:
    with ctx.lock:
        cancels = [
            c for c in ctx.cancels if c["account_id"] == account_id and c["time"].date() == day
        ]
    code = split_code(str(data.get("stk_cd") or "").strip())[0]
    return [
        {
            "ord_no": c["ord_no"],
            "stk_cd": f"A{c['symbol']}",
            "trde_tp": "보통",
            "crd_tp": "보통매매",
            "ord_qty": padded(c["quantity"], 10),
            "ord_uv": padded(0, 10),
            "cnfm_qty": padded(c["quantity"], 10),
            "acpt_tp": "확인",
            "rsrv_tp": "",
            "ord_tm": c["time"].strftime("%H:%M:%S"),
            "ori_ord": c["orig_ord_no"],
            "stk_nm": ctx.listings[c["symbol"]].name,
            "io_tp_nm": "현금매수취소" if c["side"] is Side.BUY else "현금매도취소",
            "loan_dt": "",
            "cntr_qty": padded(0, 10),
            "cntr_uv": padded(0, 10),
            "ord_remnq": padded(0, 10),
            "comm_ord_tp": "REST API",
            "mdfy_cncl": "취소",
            "cnfm_tm": c["time"].strftime("%H:%M:%S"),
            "dmst_stex_tp": c["exchange"],
            "cond_uv": padded(0, 10),
        }
        for c in cancels
        if not code or c["symbol"] == code
    ]
