"""Kiwoom ``/api/dostk/ordr``: kt10000 buy, kt10001 sell, kt10002 amend, kt10003 cancel (§2.4).

Every answer carries a new 7-digit ``ord_no``; amend and cancel also echo ``base_orig_ord_no`` and
the quantity as a 12-digit zero-padded string.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from flask import Blueprint, Response

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
    is_on_tick,
)
from simulators.kiwoom.protocol import (
    Credential,
    KiwoomContext,
    KiwoomError,
    answer,
    authenticate,
    body,
    check_api_id,
    required,
)
from simulators.krx import KST, price_limits

__all__ = ["create_orders_blueprint", "base_price", "split_code"]

ORDER_APIS: Final = {"kt10000": "buy", "kt10001": "sell", "kt10002": "amend", "kt10003": "cancel"}

# trde_tp → engine type: 0 보통(지정가), 5 조건부지정가 rest as limits; 3 시장가, 6 최유리지정가,
# 7 최우선지정가 take the current price.
_LIMIT: Final = {"0", "5"}
_MARKET: Final = {"3", "6", "7"}
_EXCHANGES: Final = {"KRX", "NXT", "SOR"}
_SUFFIXES: Final = {"_NX": "NXT", "_AL": "SOR"}


def base_price(ctx: KiwoomContext, symbol: str) -> Decimal:
    """기준가 (yesterday's close): the path price at today's KST midnight."""
    now = ctx.state.clock.now().astimezone(KST)
    return ctx.state.engine.price(symbol, at=now.replace(hour=0, minute=0, second=0, microsecond=0))


def split_code(code: str) -> tuple[str, str | None]:
    """``039490_NX`` → (``039490``, ``NXT``); a bare code has no exchange."""
    for suffix, exchange in _SUFFIXES.items():
        if code.endswith(suffix):
            return code[: -len(suffix)], exchange
    return code, None


def _number(ctx: KiwoomContext, value: str, name: str) -> Decimal:
    try:
        number = Decimal(value or "0")
    except ArithmeticError:
        raise ctx.error(1517, f" ({name})") from None
    if number != number.to_integral_value() or number < 0:
        raise ctx.error(1517, f" ({name})")
    return number


def _check_price(ctx: KiwoomContext, symbol: str, price: Decimal) -> None:
    if not is_on_tick(price, ctx.state.engine.instrument(symbol).tick_rule):
        raise ctx.reject("tick")
    upper, lower = price_limits(base_price(ctx, symbol))
    if not lower <= price <= upper:
        raise ctx.reject("limit")


def _engine_error(ctx: KiwoomContext, exc: Exception) -> KiwoomError:
    if isinstance(exc, InsufficientFunds):
        return ctx.reject("funds")
    if isinstance(exc, InsufficientPosition):
        return ctx.reject("position")
    if isinstance(exc, InvalidOrder) and exc.rule is RuleViolated.PRICE_TICK:
        return ctx.reject("tick")
    return ctx.reject("quantity")


def create_orders_blueprint(ctx: KiwoomContext) -> Blueprint:
    """Return the order route bound to ``ctx``."""
    bp = Blueprint("kiwoom_orders", __name__)

    @bp.post("/api/dostk/ordr")
    def ordr() -> Response:
        api_id = check_api_id(ctx, ORDER_APIS)
        credential = authenticate(ctx, api_id)
        data = body()
        exchange = required(ctx, data, "dmst_stex_tp").upper()
        if exchange not in _EXCHANGES:
            raise ctx.error(1901)
        if ctx.paper and exchange != "KRX":
            raise ctx.reject("mock_exchange")
        symbol, _ = split_code(required(ctx, data, "stk_cd"))
        listing = ctx.listings.get(symbol)
        if listing is None:
            raise ctx.error(1902)
        kind = ORDER_APIS[api_id]
        if kind in {"buy", "sell"}:
            return _place(ctx, credential, api_id, kind, symbol, exchange, data)
        original = required(ctx, data, "orig_ord_no").zfill(7)
        try:
            order = ctx.state.engine.get_order(credential.account_id, original)
        except OrderNotFound:
            raise ctx.reject("order_not_found") from None
        if order.symbol != symbol:
            raise ctx.reject("order_not_found")
        if not order.is_open or not order.remaining_quantity:
            raise ctx.reject("nothing_left")
        if kind == "cancel":
            return _cancel(ctx, credential, api_id, order, exchange, data)
        return _amend(ctx, credential, api_id, order, exchange, data)

    return bp


def _place(
    ctx: KiwoomContext,
    credential: Credential,
    api_id: str,
    kind: str,
    symbol: str,
    exchange: str,
    data: dict[str, Any],
) -> Response:
    listing = ctx.listings[symbol]
    qty = _number(ctx, required(ctx, data, "ord_qty"), "ord_qty")
    trade_type = required(ctx, data, "trde_tp")
    if listing.halted:
        raise ctx.reject("halted")
    if qty <= 0:
        raise ctx.reject("quantity")
    extra = {"trde_tp": trade_type, "exchange": exchange}
    if trade_type in _LIMIT:
        price = _number(ctx, str(data.get("ord_uv") or ""), "ord_uv")
        _check_price(ctx, symbol, price)
        kwargs: dict[str, Any] = {"order_type": OrderType.LIMIT, "price": price}
    elif trade_type in _MARKET:
        kwargs = {"order_type": OrderType.MARKET}
    else:
        raise ctx.error(1517, " (trde_tp)")
    side = Side.BUY if kind == "buy" else Side.SELL
    try:
        order = ctx.state.engine.place_order(
            credential.account_id, symbol, side, quantity=qty, extra=extra, **kwargs
        )
    except (InsufficientFunds, InsufficientPosition, InvalidOrder) as exc:
        raise _engine_error(ctx, exc) from exc
    message = "매수주문이 완료되었습니다." if side is Side.BUY else "매도주문이 완료되었습니다."
    return answer({"ord_no": order.order_no, "dmst_stex_tp": exchange}, api_id, message=message)


def _quantity_or_all(ctx: KiwoomContext, value: str, name: str, order: Order) -> Decimal | None:
    qty = _number(ctx, value, name)
    if qty == 0:
        return None  # '0' means all that remains
    if qty > (order.remaining_quantity or Decimal(0)):
        raise ctx.reject("too_many")
    return qty


def _side_word(order: Order) -> str:
    return "매수" if order.side is Side.BUY else "매도"


def _amend(
    ctx: KiwoomContext,
    credential: Credential,
    api_id: str,
    order: Order,
    exchange: str,
    data: dict[str, Any],
) -> Response:
    qty = _quantity_or_all(ctx, required(ctx, data, "mdfy_qty"), "mdfy_qty", order)
    price = _number(ctx, required(ctx, data, "mdfy_uv"), "mdfy_uv")
    if order.order_type is not OrderType.LIMIT:
        raise ctx.error(1517, " (mdfy_uv)")
    _check_price(ctx, order.symbol, price)
    try:
        live = ctx.state.engine.amend_order(
            credential.account_id, order.order_no, new_price=price, new_quantity=qty
        )
    except OrderNotOpen:
        raise ctx.reject("nothing_left") from None
    except (InsufficientFunds, InsufficientPosition, InvalidOrder) as exc:
        raise _engine_error(ctx, exc) from exc
    moved = live.quantity or Decimal(0)
    return answer(
        {
            "ord_no": live.order_no,
            "base_orig_ord_no": order.order_no,
            "mdfy_qty": str(int(moved)).zfill(12),
            "dmst_stex_tp": exchange,
        },
        api_id,
        message=f"{_side_word(order)}정정 주문입력이 완료되었습니다",
    )


def _cancel(
    ctx: KiwoomContext,
    credential: Credential,
    api_id: str,
    order: Order,
    exchange: str,
    data: dict[str, Any],
) -> Response:
    qty = _quantity_or_all(ctx, required(ctx, data, "cncl_qty"), "cncl_qty", order)
    try:
        ctx.state.engine.cancel_order(credential.account_id, order.order_no, quantity=qty)
    except OrderNotOpen:
        raise ctx.reject("nothing_left") from None
    cancelled = qty if qty is not None else (order.remaining_quantity or Decimal(0))
    ord_no = ctx.next_ord_no()
    now: datetime = ctx.state.clock.now().astimezone(KST)
    with ctx.lock:
        ctx.cancels.append(
            {
                "ord_no": ord_no,
                "orig_ord_no": order.order_no,
                "account_id": credential.account_id,
                "symbol": order.symbol,
                "side": order.side,
                "quantity": cancelled,
                "time": now,
                "exchange": exchange,
            }
        )
    return answer(
        {
            "ord_no": ord_no,
            "base_orig_ord_no": order.order_no,
            "cncl_qty": str(int(cancelled)).zfill(12),
        },
        api_id,
        message=f"{_side_word(order)}취소 주문입력이 완료되었습니다",
    )
