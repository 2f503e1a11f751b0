"""KIS ``order-cash`` (buy/sell) and ``order-rvsecncl`` (amend/cancel), kis_kiwoom.md §1.5.1–2.

Both answer ``output`` with UPPERCASE keys ``KRX_FWDG_ORD_ORGNO``, ``ODNO``, ``ORD_TMD``; an amend
or a cancel gets a new ``ODNO`` from the same (daily) sequence as orders.

Sessions (trading-days.md §1.1–1.4, :mod:`simulators.krx_calendar`): an order is taken only while
a session of its route (``EXCG_ID_DVSN_CD`` KRX/NXT/SOR) takes its ``ORD_DVSN``, and lapses when
that session ends. ``05`` 장전 시간외 trades at the previous close (the base price), ``06`` 장후
시간외 at today's close, ``07`` 시간외 단일가 at its limit within ±10 % of today's close. Outside
a session the answer is KIOK0320 (real; APBK0918 with ``closed_code``) or 40570000/40580000
(paper), and the paper host refuses amends and cancels then too.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from flask import Blueprint, jsonify

from simulators.engine import (
    InsufficientFunds,
    InsufficientPosition,
    InvalidOrder,
    Order,
    OrderNotFound,
    OrderNotOpen,
    OrderType,
    RuleViolated,
    Side,
    UnknownInstrument,
    is_on_tick,
)
from simulators.kis.protocol import (
    CancelRecord,
    Credential,
    KisContext,
    KisReject,
    authenticate,
    body,
    field_value,
    input_error,
    kst_now,
    ok,
    require_tr,
)
from simulators.krx import KST, Listing, price_limits
from simulators.krx_calendar import Closed, ClosedReason, OrderKind, Window
from simulators.krx_day import NotOnVenue, admit

__all__ = [
    "DIVISION_NAMES",
    "ORDER_TR_IDS",
    "RVSECNCL_TR_IDS",
    "base_price",
    "create_orders_blueprint",
]

#: Real-host tr_ids (paper: V…): the 2024 generation and the legacy one.
ORDER_TR_IDS: Final = {
    "TTTC0012U": "buy",
    "TTTC0011U": "sell",
    "TTTC0802U": "buy",
    "TTTC0801U": "sell",
}
RVSECNCL_TR_IDS: Final = {"TTTC0013U": "rvsecncl", "TTTC0803U": "rvsecncl"}

# ORD_DVSN → engine order type. 00 지정가, 02 조건부지정가 rest as limits; 01 시장가,
# 03 최유리지정가 and 04 최우선지정가 take the current price like a market order.
_LIMIT_DIVISIONS: Final = {"00", "02"}
_MARKET_DIVISIONS: Final = {"01", "03", "04"}
DIVISION_NAMES: Final = {
    "00": "지정가",
    "01": "시장가",
    "02": "조건부지정가",
    "03": "최유리지정가",
    "04": "최우선지정가",
    "05": "장전 시간외",
    "06": "장후 시간외",
    "07": "시간외 단일가",
}
_EXCHANGES: Final = {"", "KRX", "NXT", "SOR"}
# 05 장전 시간외, 06 장후 시간외 (closing price), 07 시간외 단일가: sessions of their own.
_SESSION_KINDS: Final = {
    "05": OrderKind.PRE_CLOSE,
    "06": OrderKind.POST_CLOSE,
    "07": OrderKind.SINGLE_PRICE,
}
#: 시간외 단일가 orders must lie within ±10 % of today's close (trading-days.md §1.1).
_SINGLE_PRICE_BAND: Final = Decimal("0.10")


def base_price(ctx: KisContext, symbol: str) -> Decimal:
    """기준가 (yesterday's close): the path price at today's KST midnight."""
    midnight = kst_now(ctx).replace(hour=0, minute=0, second=0, microsecond=0)
    return ctx.state.engine.price(symbol, at=midnight)


def _check_account(data: dict[str, Any], credential: Credential, ctx: KisContext) -> None:
    cano = field_value(data, "CANO")
    product = field_value(data, "ACNT_PRDT_CD")
    if cano != credential.account_number or product != credential.product_code:
        raise KisReject("account")


def _quantity(value: str, name: str = "ORD_QTY") -> Decimal:
    try:
        qty = Decimal(value.strip() or "0")
    except ArithmeticError:
        raise input_error(name) from None
    if qty != qty.to_integral_value():
        raise input_error(name)
    return qty


def _price(value: str, name: str = "ORD_UNPR") -> Decimal:
    try:
        return Decimal(value.strip() or "0")
    except ArithmeticError:
        raise input_error(name) from None


def _engine_reject(exc: Exception, ctx: KisContext) -> KisReject:
    paper = ctx.paper
    if isinstance(exc, InsufficientFunds):
        return KisReject("funds", paper=paper)
    if isinstance(exc, InsufficientPosition):
        return KisReject("position", paper=paper)
    if isinstance(exc, UnknownInstrument):
        return KisReject("symbol", paper=paper)
    if isinstance(exc, InvalidOrder) and exc.rule is RuleViolated.PRICE_TICK:
        return KisReject("tick", paper=paper)
    return KisReject("quantity", paper=paper)


def _output(ctx: KisContext, odno: str) -> dict[str, str]:
    return {
        "KRX_FWDG_ORD_ORGNO": ctx.branch,
        "ODNO": odno,
        "ORD_TMD": kst_now(ctx).strftime("%H%M%S"),
    }


def create_orders_blueprint(ctx: KisContext) -> Blueprint:
    """Return the order routes bound to ``ctx``."""
    bp = Blueprint("kis_orders", __name__)
    engine = ctx.state.engine

    @bp.post("/uapi/domestic-stock/v1/trading/order-cash")
    def order_cash() -> Any:
        credential = authenticate(ctx)
        meaning = require_tr(ctx, ORDER_TR_IDS)
        data = body()
        _check_account(data, credential, ctx)
        symbol = field_value(data, "PDNO").strip()
        division = field_value(data, "ORD_DVSN")
        qty = _quantity(field_value(data, "ORD_QTY"))
        price = _price(field_value(data, "ORD_UNPR"))
        exchange = field_value(data, "EXCG_ID_DVSN_CD", required=False).strip().upper()
        if exchange not in _EXCHANGES:
            raise input_error("EXCG_ID_DVSN_CD")
        if ctx.paper and exchange in {"NXT", "SOR"}:
            raise input_error("EXCG_ID_DVSN_CD")  # the paper host trades KRX only
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise KisReject("symbol", paper=ctx.paper)
        if listing.halted:
            raise KisReject("halted", paper=ctx.paper)
        if qty <= 0:
            raise KisReject("quantity", paper=ctx.paper)
        side = Side.BUY if meaning == "buy" else Side.SELL
        route = exchange or "KRX"
        kind = _SESSION_KINDS.get(division, OrderKind.NORMAL)
        if kind is OrderKind.NORMAL and division not in _LIMIT_DIVISIONS | _MARKET_DIVISIONS:
            raise input_error("ORD_DVSN")
        window = _admit(ctx, route, kind, listing)
        extra = {
            "ord_dvsn": division,
            "exchange": route,
            "kind": kind.value,
            "session": window.session.name,
            "sll_type": field_value(data, "SLL_TYPE", required=False),
            "branch": ctx.branch,
        }
        kwargs: dict[str, Any]
        if kind is not OrderKind.NORMAL:
            price = _session_price(ctx, symbol, kind, price, window)
            kwargs = {"order_type": OrderType.LIMIT, "price": price}
        elif division in _LIMIT_DIVISIONS:
            if not is_on_tick(price, engine.instrument(symbol).tick_rule):
                raise KisReject("tick", paper=ctx.paper)
            upper, lower = price_limits(base_price(ctx, symbol))
            if not lower <= price <= upper:
                raise KisReject("limit", paper=ctx.paper)
            kwargs = {"order_type": OrderType.LIMIT, "price": price}
        else:
            kwargs = {"order_type": OrderType.MARKET}
        try:
            order = engine.place_order(
                credential.account_id,
                symbol,
                side,
                quantity=qty,
                extra=extra,
                active_from=window.active_from,
                expires_at=window.expires_at,
                **kwargs,
            )
        except (InsufficientFunds, InsufficientPosition, InvalidOrder, UnknownInstrument) as exc:
            raise _engine_reject(exc, ctx) from exc
        if side is Side.BUY:
            msg = ctx.success_code(
                ("APBK0013", "주문 전송 완료 되었습니다."),
                ("40600000", "모의투자 매수주문이 완료 되었습니다."),
            )
        else:
            # Paper sell msg_cd is unverified; 40610000 follows the 406x0000 pattern.
            msg = ctx.success_code(
                ("APBK0013", "주문 전송 완료 되었습니다."),
                ("40610000", "모의투자 매도주문이 완료 되었습니다."),
            )
        return jsonify(ok({"output": _output(ctx, order.order_no)}, *msg))

    @bp.post("/uapi/domestic-stock/v1/trading/order-rvsecncl")
    def order_rvsecncl() -> Any:
        credential = authenticate(ctx)
        require_tr(ctx, RVSECNCL_TR_IDS)
        data = body()
        _check_account(data, credential, ctx)
        original = field_value(data, "ORGN_ODNO").strip()
        kind = field_value(data, "RVSE_CNCL_DVSN_CD").strip()
        all_qty = field_value(data, "QTY_ALL_ORD_YN").strip().upper() == "Y"
        qty = None if all_qty else _quantity(field_value(data, "ORD_QTY"))
        # KRX_FWDG_ORD_ORGNO may be empty (the official backtester sends ""): never required.
        odno = original.zfill(10) if original.isdigit() else original
        try:
            # Order numbers are unique within a trading day: ORGN_ODNO names one of today's.
            today = kst_now(ctx).date()
            order = engine.get_order(credential.account_id, odno, day=today)
        except OrderNotFound:
            raise KisReject("order_not_found", paper=ctx.paper) from None
        if ctx.paper:
            _still_in_session(ctx, order)
        if not order.is_open or not order.remaining_quantity:
            raise KisReject("nothing_left", paper=ctx.paper)
        if qty is not None and (qty <= 0 or qty > order.remaining_quantity):
            raise KisReject("too_many", paper=ctx.paper)
        if kind == "02":
            return _cancel(ctx, credential, order, qty)
        if kind == "01":
            return _amend(ctx, credential, order, qty, data)
        raise input_error("RVSE_CNCL_DVSN_CD")

    return bp


def _admit(ctx: KisContext, route: str, kind: OrderKind, listing: Listing) -> Window:
    """The session taking this order now, or the broker's answer for why none does."""
    try:
        return admit(ctx.rules.hours, route, kind, nxt_listed=listing.nxt, at=ctx.state.clock.now())
    except NotOnVenue:
        raise input_error("EXCG_ID_DVSN_CD") from None  # [UNVERIFIED] answer for a non-NXT issue
    except Closed as closed:
        if closed.reason is ClosedReason.NOT_OFFERED:
            raise input_error("ORD_DVSN") from None  # e.g. 05/06/07 on NXT (§1.3)
        raise ctx.closed(closed.reason) from None


def _still_in_session(ctx: KisContext, order: Order) -> None:
    """Paper refuses amends and cancels outside the order's session too (40580000, §1.4)."""
    listing = ctx.listings[order.symbol]
    kind = OrderKind(str(order.extra.get("kind", OrderKind.NORMAL.value)))
    route = str(order.extra.get("exchange", "KRX"))
    _admit(ctx, route, kind, listing)


def _session_price(
    ctx: KisContext, symbol: str, kind: OrderKind, price: Decimal, window: Window
) -> Decimal:
    """The price of an after-hours order: a closing price, or a limit near today's close."""
    if kind is OrderKind.PRE_CLOSE:
        return base_price(ctx, symbol)  # yesterday's close
    close = ctx.state.engine.price(symbol, at=ctx.rules.hours.regular_close(window.day))
    if kind is OrderKind.POST_CLOSE:
        return close
    if not is_on_tick(price, ctx.state.engine.instrument(symbol).tick_rule):
        raise KisReject("tick", paper=ctx.paper)
    upper, lower = price_limits(base_price(ctx, symbol))
    band = close * _SINGLE_PRICE_BAND
    if not (max(lower, close - band) <= price <= min(upper, close + band)):
        raise KisReject("limit", paper=ctx.paper)
    return price


def _cancel(ctx: KisContext, credential: Credential, order: Order, qty: Decimal | None) -> Any:
    try:
        ctx.state.engine.cancel_order(credential.account_id, order.order_no, quantity=qty)
    except OrderNotOpen:
        raise KisReject("nothing_left", paper=ctx.paper) from None
    cancelled = qty if qty is not None else (order.remaining_quantity or Decimal(0))
    odno = ctx.next_odno()
    with ctx.lock:
        ctx.cancels.append(
            CancelRecord(
                odno=odno,
                orgn_odno=order.order_no,
                account_id=credential.account_id,
                symbol=order.symbol,
                side=order.side,
                quantity=cancelled,
                time=ctx.state.clock.now().astimezone(KST),
            )
        )
    msg = ctx.success_code(
        ("APBK0013", "취소주문이 완료 되었습니다."),
        ("40630000", "모의투자 취소주문이 완료 되었습니다."),
    )
    return jsonify(ok({"output": _output(ctx, odno)}, *msg))


def _amend(
    ctx: KisContext,
    credential: Credential,
    order: Order,
    qty: Decimal | None,
    data: dict[str, Any],
) -> Any:
    division = field_value(data, "ORD_DVSN", required=False).strip() or "00"
    if division not in _LIMIT_DIVISIONS or order.order_type is not OrderType.LIMIT:
        raise input_error("ORD_DVSN")  # the simulator amends limit orders to limit orders
    price = _price(field_value(data, "ORD_UNPR"))
    engine = ctx.state.engine
    if not is_on_tick(price, engine.instrument(order.symbol).tick_rule):
        raise KisReject("tick", paper=ctx.paper)
    upper, lower = price_limits(base_price(ctx, order.symbol))
    if not lower <= price <= upper:
        raise KisReject("limit", paper=ctx.paper)
    try:
        live = engine.amend_order(
            credential.account_id, order.order_no, new_price=price, new_quantity=qty
        )
    except OrderNotOpen:
        raise KisReject("nothing_left", paper=ctx.paper) from None
    except (InsufficientFunds, InsufficientPosition, InvalidOrder) as exc:
        raise _engine_reject(exc, ctx) from exc
    msg = ctx.success_code(
        ("APBK0013", "정정주문이 완료 되었습니다."),
        ("40620000", "모의투자 정정주문이 완료 되었습니다."),
    )
    return jsonify(ok({"output": _output(ctx, live.order_no)}, *msg))
