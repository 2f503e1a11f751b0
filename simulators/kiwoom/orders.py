"""Kiwoom ``/api/dostk/ordr``: kt10000 buy, kt10001 sell, kt10002 amend, kt10003 cancel (§2.4).

Every answer carries a new 7-digit ``ord_no`` (a daily sequence); amend and cancel also echo
``base_orig_ord_no`` and the quantity as a 12-digit zero-padded string.

Sessions (trading-days.md §1.1–1.4, :mod:`simulators.krx_calendar`): an order is taken only while
a session of its route (``dmst_stex_tp``) takes its ``trde_tp`` (61 장시작전시간외, 81
장마감후시간외 and 62 시간외단일가 have sessions of their own; 61 trades at the previous close,
81 at today's close, 62 at its limit within ±10 % of today's close), and lapses when it ends.
Outside a session the real host answers 505217 and still takes cancels; the mock host answers
RC4058 (RC4010 on a day without trading) to amends and cancels as well ([UNVERIFIED] for those).
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
from simulators.krx import KST, Listing, price_limits
from simulators.krx_calendar import Closed, ClosedReason, OrderKind, Window
from simulators.krx_day import NotOnVenue, admit

__all__ = ["create_orders_blueprint", "base_price", "split_code"]

ORDER_APIS: Final = {"kt10000": "buy", "kt10001": "sell", "kt10002": "amend", "kt10003": "cancel"}

# trde_tp → engine type: 0 보통(지정가), 5 조건부지정가 rest as limits; 3 시장가, 6 최유리지정가,
# 7 최우선지정가 take the current price.
_LIMIT: Final = {"0", "5"}
_MARKET: Final = {"3", "6", "7"}
_EXCHANGES: Final = {"KRX", "NXT", "SOR"}
_SESSION_KINDS: Final = {
    "61": OrderKind.PRE_CLOSE,
    "81": OrderKind.POST_CLOSE,
    "62": OrderKind.SINGLE_PRICE,
}
_SINGLE_PRICE_BAND: Final = Decimal("0.10")
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
        today = ctx.state.clock.now().astimezone(KST).date()
        try:
            # ord_no is unique within a trading day: orig_ord_no names one of today's orders.
            order = ctx.state.engine.get_order(credential.account_id, original, day=today)
        except OrderNotFound:
            raise ctx.reject("order_not_found") from None
        if order.symbol != symbol:
            raise ctx.reject("order_not_found")
        if kind == "amend" or ctx.paper:  # the real host takes cancels while closed
            route = str(order.extra.get("exchange", "KRX"))
            _admit(ctx, route, _kind_of(order), ctx.listings[symbol])
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
    order_kind = _SESSION_KINDS.get(trade_type, OrderKind.NORMAL)
    if order_kind is OrderKind.NORMAL and trade_type not in _LIMIT | _MARKET:
        raise ctx.error(1517, " (trde_tp)")
    window = _admit(ctx, exchange, order_kind, listing)
    extra = {
        "trde_tp": trade_type,
        "exchange": exchange,
        "kind": order_kind.value,
        "session": window.session.name,
    }
    kwargs: dict[str, Any]
    if order_kind is not OrderKind.NORMAL:
        price = _number(ctx, str(data.get("ord_uv") or ""), "ord_uv")
        kwargs = {
            "order_type": OrderType.LIMIT,
            "price": _session_price(ctx, symbol, order_kind, price, window),
        }
    elif trade_type in _LIMIT:
        price = _number(ctx, str(data.get("ord_uv") or ""), "ord_uv")
        _check_price(ctx, symbol, price)
        kwargs = {"order_type": OrderType.LIMIT, "price": price}
    else:
        kwargs = {"order_type": OrderType.MARKET}
    side = Side.BUY if kind == "buy" else Side.SELL
    try:
        order = ctx.state.engine.place_order(
            credential.account_id,
            symbol,
            side,
            quantity=qty,
            extra=extra,
            active_from=window.active_from,
            expires_at=window.expires_at,
            **kwargs,
        )
    except (InsufficientFunds, InsufficientPosition, InvalidOrder) as exc:
        raise _engine_error(ctx, exc) from exc
    message = "매수주문이 완료되었습니다." if side is Side.BUY else "매도주문이 완료되었습니다."
    return answer({"ord_no": order.order_no, "dmst_stex_tp": exchange}, api_id, message=message)


def _kind_of(order: Order) -> OrderKind:
    return OrderKind(str(order.extra.get("kind", OrderKind.NORMAL.value)))


def _admit(ctx: KiwoomContext, route: str, kind: OrderKind, listing: Listing) -> Window:
    """The session taking this order now, or the broker's answer for why none does."""
    try:
        return admit(ctx.rules.hours, route, kind, nxt_listed=listing.nxt, at=ctx.state.clock.now())
    except NotOnVenue:
        raise ctx.error(1901) from None  # [UNVERIFIED] answer for an issue NXT does not list
    except Closed as closed:
        if closed.reason is ClosedReason.NOT_OFFERED:
            raise ctx.error(1517, " (trde_tp)") from None
        raise ctx.closed(closed.reason) from None


def _session_price(
    ctx: KiwoomContext, symbol: str, kind: OrderKind, price: Decimal, window: Window
) -> Decimal:
    """The price of an after-hours order: a closing price, or a limit near today's close."""
    if kind is OrderKind.PRE_CLOSE:
        return base_price(ctx, symbol)  # yesterday's close
    close = ctx.state.engine.price(symbol, at=ctx.rules.hours.regular_close(window.day))
    if kind is OrderKind.POST_CLOSE:
        return close
    if not is_on_tick(price, ctx.state.engine.instrument(symbol).tick_rule):
        raise ctx.reject("tick")
    upper, lower = price_limits(base_price(ctx, symbol))
    band = close * _SINGLE_PRICE_BAND
    if not (max(lower, close - band) <= price <= min(upper, close + band)):
        raise ctx.reject("limit")
    return price


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
