"""Pure functions between Kiwoom REST wire shapes and the gateway's value objects (no I/O).

Every parser has a trimmed sample from Kiwoom's official spec above it
(``shared/brokers/kis_kiwoom.md`` §2.2–§2.5). Kiwoom sends numbers as strings, often signed and
zero-padded (``"-00000000196888"``), and stock codes in lists with a market prefix
(``"A005930"``). Money becomes ``Decimal``; KST wire times become aware UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from brokers import (
    Balance,
    BrokerOrder,
    IssuedToken,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from brokers.errors import InvalidOrder
from securities._http import from_kst, parse_decimal
from securities.common import (
    oldest_first,
    order_number_key,
    same_order_number,
)

__all__ = [
    "ROUTES",
    "Charges",
    "amend_body",
    "cancel_body",
    "order_body",
    "parse_balance",
    "parse_fill_charges",
    "parse_history_rows",
    "parse_holding",
    "parse_order_ack",
    "parse_token",
    "plain_symbol",
    "same_order_number",
    "with_reported_charges",
]

BROKER = "KIWOOM"
ROUTES = frozenset({"KRX", "NXT", "SOR"})
_TRDE_TP = {OrderType.LIMIT: "0", OrderType.MARKET: "3"}


# {"expires_dt": "20241107083713", "token_type": "bearer",
#  "token": "WQJCwyqInphKnR3bSRtB9NE1lv...", "return_code": 0,
#  "return_msg": "정상적으로 처리되었습니다"}
def parse_token(raw: Mapping[str, Any], *, now: dt.datetime) -> IssuedToken:
    """Map an ``au10001`` answer; ``expires_dt`` is KST ``YYYYMMDDhhmmss``.

    Kiwoom sends no lifetime in seconds, so ``expires_in`` is counted from ``now``.

    Raises:
        KeyError: ``token`` or ``expires_dt`` is missing.
        ValueError: the expiry does not parse.
    """
    expires_at = from_kst(str(raw["expires_dt"]), "%Y%m%d%H%M%S")
    return IssuedToken(
        access_token=str(raw["token"]),
        token_type=str(raw.get("token_type") or "bearer"),
        expires_in=max(0, int((expires_at - now).total_seconds())),
        expires_at=expires_at,
    )


def _whole(value: Decimal, what: str) -> str:
    if value <= 0 or value != value.to_integral_value():
        raise InvalidOrder(f"Kiwoom {what} must be a positive whole number", broker=BROKER)
    return str(int(value))


def _route(route: str | None) -> str:
    value = (route or "KRX").upper()
    if value not in ROUTES:
        raise InvalidOrder(f"Kiwoom route must be one of {sorted(ROUTES)}", broker=BROKER)
    return value


def order_body(request: OrderRequest) -> dict[str, str]:
    """Build the ``kt10000``/``kt10001`` body (limit ``trde_tp 0``, market ``3``).

    Raises:
        InvalidOrder: fractional shares, or a limit order without a whole-won price.
    """
    if request.order_type is OrderType.LIMIT:
        if request.limit_price is None:
            raise InvalidOrder("a Kiwoom limit order needs a limit price", broker=BROKER)
        price = _whole(request.limit_price, "limit price")
    else:
        price = ""  # market orders send no price
    return {
        "dmst_stex_tp": _route(request.route),
        "stk_cd": request.symbol,
        "ord_qty": _whole(request.quantity, "quantity"),
        "ord_uv": price,
        "trde_tp": _TRDE_TP[request.order_type],
        "cond_uv": "",
    }


def _original_route(original: BrokerOrder) -> str:
    value = str(original.raw.get("dmst_stex_tp") or "").upper()
    return value if value in ROUTES else "KRX"


def cancel_body(original: BrokerOrder) -> dict[str, str]:
    """Build the ``kt10003`` body cancelling all of ``original``'s remainder (``cncl_qty 0``)."""
    return {
        "dmst_stex_tp": _original_route(original),
        "orig_ord_no": original.broker_order_id,
        "stk_cd": original.symbol,
        "cncl_qty": "0",
    }


def amend_body(
    original: BrokerOrder, *, quantity: Decimal | None, limit_price: Decimal | None
) -> dict[str, str]:
    """Build the ``kt10002`` body; ``quantity`` None amends all of the remainder (``'0'``).

    Raises:
        InvalidOrder: bad quantity or price, or no price to keep.
    """
    price = limit_price if limit_price is not None else original.limit_price
    if price is None:
        raise InvalidOrder("an amendment needs a limit price", broker=BROKER)
    return {
        "dmst_stex_tp": _original_route(original),
        "orig_ord_no": original.broker_order_id,
        "stk_cd": original.symbol,
        "mdfy_qty": "0" if quantity is None else _whole(quantity, "quantity"),
        "mdfy_uv": _whole(price, "limit price"),
        "mdfy_cond_uv": "",
    }


# {"ord_no": "0000138", "dmst_stex_tp": "KRX", "return_code": 0,
#  "return_msg": "매도주문이 완료되었습니다."}
def parse_order_ack(
    raw: Mapping[str, Any], request: OrderRequest, *, now: dt.datetime
) -> BrokerOrder:
    """Map a ``kt10000``/``kt10001`` answer to a SUBMITTED order (Kiwoom sends no time)."""
    return BrokerOrder(
        broker_order_id=str(raw["ord_no"]),
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        status=OrderStatus.SUBMITTED,
        quantity=request.quantity,
        limit_price=request.limit_price if request.order_type is OrderType.LIMIT else None,
        created_at=now,
        updated_at=now,
        raw={**dict(raw), "dmst_stex_tp": raw.get("dmst_stex_tp") or _route(request.route)},
    )


def plain_symbol(code: Any) -> str:
    """Strip Kiwoom's market prefix (``A`` stock, ``J`` ELW, ``Q`` ETN) and exchange suffixes."""
    text = str(code or "").strip()
    if len(text) == 7 and text[0] in "AJQ":
        text = text[1:]
    return text.split("_", 1)[0]


def _zero(value: Any) -> Decimal:
    return abs(parse_decimal(value) or Decimal(0))


def _is_cancel_row(row: Mapping[str, Any]) -> bool:
    """Tell whether a history row is a cancel instruction rather than an order of its own.

    ``io_tp_nm`` names the row's kind ("현금매수취소"); ``mdfy_cncl`` does not, since an amended
    order that was later cancelled also says "취소" there. It is only the fallback.
    """
    original = order_number_key(row.get("ori_ord") or row.get("orig_ord_no"))
    if not original or original == order_number_key(row.get("ord_no")):
        return False
    kind = str(row.get("io_tp_nm") or "").strip()
    if kind:
        return "취소" in kind
    return "취소" in str(row.get("mdfy_cncl") or "")


def _time(row: Mapping[str, Any], day: dt.date) -> dt.datetime | None:
    clock = str(row.get("ord_tm") or row.get("tm") or "").replace(":", "").strip()[:6]
    if len(clock) != 6 or not clock.isdigit():
        return None
    try:
        return from_kst(day.strftime("%Y%m%d") + clock, "%Y%m%d%H%M%S")
    except ValueError:
        return None


# kt00007 acnt_ord_cntr_prps_dtl[] row:
# {"ord_no": "0000050", "stk_cd": "A005930", "trde_tp": "보통", "crd_tp": "현금",
#  "ord_qty": "0000000010", "ord_uv": "0000070000", "cnfm_qty": "0000000010", "acpt_tp": "접수",
#  "ord_tm": "13:05:43", "ori_ord": "0000000", "stk_nm": "삼성전자", "io_tp_nm": "현금매수",
#  "cntr_qty": "0000000004", "cntr_uv": "0000070000", "ord_remnq": "0000000006",
#  "mdfy_cncl": "", "dmst_stex_tp": "KRX"}
def parse_history_rows(rows: Iterable[Mapping[str, Any]], day: dt.date) -> list[BrokerOrder]:
    """Map one KST day of ``kt00007`` rows to orders, oldest first.

    A cancellation is a row of its own (its ``ori_ord`` names the original); it is folded into
    the original instead of being reported as an order. An amendment is reported as the new
    order it is.
    """
    rows = list(rows)
    cancels: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if _is_cancel_row(row):
            cancels.setdefault(
                order_number_key(row.get("ori_ord") or row.get("orig_ord_no")), []
            ).append(row)
    orders = [
        _parse_history_row(row, day, cancels.get(order_number_key(row.get("ord_no")), []))
        for row in rows
        if not _is_cancel_row(row) and str(row.get("ord_no") or "").strip()
    ]
    return oldest_first(orders)


def _parse_history_row(
    row: Mapping[str, Any], day: dt.date, cancel_rows: list[Mapping[str, Any]]
) -> BrokerOrder:
    quantity = _zero(row.get("ord_qty"))
    filled = _zero(row.get("cntr_qty"))
    remaining_raw = row.get("ord_remnq", row.get("oso_qty"))
    remaining = _zero(remaining_raw) if remaining_raw not in (None, "") else quantity - filled
    kind = f"{row.get('acpt_tp') or ''}{row.get('ord_stt') or ''}"
    if "거부" in kind:
        status = OrderStatus.REJECTED
    elif quantity > 0 and filled >= quantity:
        status = OrderStatus.FILLED
    elif remaining > 0 and not cancel_rows:
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    elif remaining > 0:
        status = OrderStatus.CANCEL_PENDING  # a cancel was sent, the remainder is still open
    elif not cancel_rows and not str(row.get("mdfy_cncl") or "").strip():
        # Closed with no cancel row and not amended: the day order lapsed at the close
        # (trading-days.md §2.3, [DERIVED]).
        status = OrderStatus.EXPIRED
    else:
        status = OrderStatus.CANCELLED  # closed without filling: cancelled or amended away
    trade = str(row.get("trde_tp") or "")
    order_type = OrderType.MARKET if ("시장" in trade or trade.strip() == "3") else OrderType.LIMIT
    side_text = str(row.get("io_tp_nm") or row.get("sell_tp") or "")
    side = Side.SELL if ("매도" in side_text or side_text.strip() == "1") else Side.BUY
    created = _time(row, day)
    fill_price = parse_decimal(row.get("cntr_uv") or row.get("cntr_pric"))
    limit_price = parse_decimal(row.get("ord_uv") or row.get("ord_pric"))
    raw = dict(row)
    raw["ord_dt"] = day.strftime("%Y%m%d")
    if cancel_rows:
        raw["cancel_rows"] = [dict(c) for c in cancel_rows]
    order = BrokerOrder(
        broker_order_id=str(row.get("ord_no")).strip(),
        symbol=plain_symbol(row.get("stk_cd")),
        side=side,
        order_type=order_type,
        status=status,
        quantity=quantity,
        filled_quantity=filled,
        limit_price=abs(limit_price) if order_type is OrderType.LIMIT and limit_price else None,
        average_fill_price=abs(fill_price) if filled > 0 and fill_price else None,
        created_at=created,
        updated_at=created,
        raw=raw,
    )
    return order  # kt00007 reports no charges: ka10076 adds them (with_reported_charges)


@dataclass(frozen=True)
class Charges:
    """What ``ka10076`` says of one order today: its filled quantity and charges so far (KRW)."""

    filled_quantity: Decimal
    fee: Decimal
    tax: Decimal


# ka10076 cntr[] row ([OFFICIAL] spec, kis_kiwoom.md §2.5):
# {"ord_no": "0000051", "stk_nm": "삼성전자", "io_tp_nm": "-매도", "ord_pric": "70000",
#  "ord_qty": "10", "cntr_pric": "70000", "cntr_qty": "10", "oso_qty": "0",
#  "tdy_trde_cmsn": "105", "tdy_trde_tax": "1400", "ord_stt": "체결", "trde_tp": "보통",
#  "orig_ord_no": "0000000", "ord_tm": "133517", "stk_cd": "005930", "stex_tp": "1", …}
def parse_fill_charges(rows: Iterable[Mapping[str, Any]]) -> dict[str, Charges]:
    """Map ``ka10076`` rows to each order's cumulative charges, keyed by unpadded number.

    ``tdy_trde_cmsn`` (당일매매수수료) and ``tdy_trde_tax`` (당일매매세금) are the order's
    commission and tax of today's executions, as Kiwoom charges them (trading-days.md §5). A row
    without a number or a filled quantity says nothing and is skipped.
    """
    found: dict[str, Charges] = {}
    for row in rows:
        number = order_number_key(row.get("ord_no"))
        filled = _zero(row.get("cntr_qty"))
        if not number or filled <= 0:
            continue
        found[number] = Charges(
            filled_quantity=filled,
            fee=_zero(row.get("tdy_trde_cmsn")),
            tax=_zero(row.get("tdy_trde_tax")),
        )
    return found


def with_reported_charges(
    orders: Iterable[BrokerOrder], charges: Mapping[str, Charges]
) -> tuple[list[BrokerOrder], bool]:
    """Give each filled order Kiwoom's charges where ``ka10076`` shows the same filled quantity.

    Returns the orders and whether every filled order got them. An order whose quantities differ
    (a fill between the two reads) or that ``ka10076`` lacks keeps ``fee``/``tax`` None: the
    charges of that quantity are unknown, not zero.
    """
    out: list[BrokerOrder] = []
    agreed = True
    for order in orders:
        if order.filled_quantity <= 0:
            out.append(order)
            continue
        known = charges.get(order_number_key(order.broker_order_id))
        if known is None or known.filled_quantity != order.filled_quantity:
            agreed = False
            out.append(replace(order, fee=None, tax=None, fee_asset=None))
            continue
        out.append(replace(order, fee=known.fee, tax=known.tax, fee_asset="KRW"))
    return out, agreed


# kt00018 acnt_evlt_remn_indv_tot[] row:
# {"stk_cd": "A005930", "stk_nm": "삼성전자", "evltv_prft": "-00000000196888",
#  "prft_rt": "-52.71", "pur_pric": "000000000124500", "rmnd_qty": "000000000000003",
#  "trde_able_qty": "000000000000003", "cur_prc": "000000059000"}
def parse_holding(row: Mapping[str, Any]) -> Position | None:
    """Map a ``kt00018`` holding row; None for a zero quantity."""
    quantity = _zero(row.get("rmnd_qty"))
    if quantity <= 0:
        return None
    current = parse_decimal(row.get("cur_prc"))
    return Position(
        quantity=quantity,
        symbol=plain_symbol(row.get("stk_cd")),
        available_quantity=parse_decimal(row.get("trde_able_qty")),
        avg_price=parse_decimal(row.get("pur_pric")),
        current_price=abs(current) if current is not None else None,  # signed by direction
        pnl=parse_decimal(row.get("evltv_prft")),
        pnl_pct=parse_decimal(row.get("prft_rt")),
        name=str(row.get("stk_nm")).strip() or None if row.get("stk_nm") else None,
        raw=dict(row),
    )


# kt00001 (qry_tp 3):
# {"entr": "000000000017534", "ord_alow_amt": "000000000017534", "pymn_alow_amt": "…",
#  "d2_entra": "000000000017534", "return_code": 0, "return_msg": "조회가 완료되었습니다"}
def parse_balance(raw: Mapping[str, Any]) -> Balance:
    """Map ``kt00001``: deposit (``entr``), orderable (``ord_alow_amt``) and the difference.

    The settlement figures are Kiwoom's own (trading-days.md §3): ``entr`` today's cash (D+0),
    ``d2_entra`` the estimated D+2 cash (the estimate view, ``qry_tp 3``). ``locked`` is what
    open orders hold back: the D+2 cash less the orderable amount (which counts unsettled
    trades), the deposit when Kiwoom gave no D+2 figure; never negative.
    """
    total = parse_decimal(raw.get("entr")) or Decimal(0)
    settled_d2 = parse_decimal(raw.get("d2_entra"))
    available = parse_decimal(raw.get("ord_alow_amt"))
    if available is None:
        available = settled_d2 if settled_d2 is not None else total
    return Balance(
        currency="KRW",
        total=total,
        available=available,
        locked=max(Decimal(0), (settled_d2 if settled_d2 is not None else total) - available),
        settled_today=parse_decimal(raw.get("entr")),
        settled_d2=settled_d2,
        raw={k: v for k, v in raw.items() if k not in ("return_code", "return_msg")},
    )
