"""Pure functions between KIS wire shapes and the gateway's value objects (no I/O, no clock).

Every parser has a trimmed real sample above it (``shared/brokers/kis_kiwoom.md`` §1.2, §1.5).
KIS sends every number as a string; money becomes ``Decimal`` and times (KST on the wire) become
aware UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from brokers import (
    Balance,
    BrokerOrder,
    Credentials,
    IssuedToken,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from brokers.errors import InvalidOrder
from securities._http import from_kst, kst_date, parse_decimal
from securities.common import (
    oldest_first,
    order_number_key,
    same_order_number,
)

__all__ = [
    "ROUTES",
    "amend_body",
    "cancel_body",
    "kst_yyyymmdd",
    "order_cash_body",
    "parse_balance",
    "parse_ccld_rows",
    "parse_day_charges",
    "parse_holding",
    "parse_order_ack",
    "parse_token",
    "same_order_number",
    "tr_id",
]

BROKER = "KIS"
ROUTES = frozenset({"KRX", "NXT", "SOR"})
_ORD_DVSN = {OrderType.LIMIT: "00", OrderType.MARKET: "01"}


def tr_id(real_tr_id: str, *, paper: bool) -> str:
    """Return the TR id to send: paper trading uses the ``V`` variant of T/J/C order TRs.

    Same rule as KIS's own ``kis_auth._url_fetch`` (§1.3): ``TTTC0012U`` → ``VTTC0012U``.
    """
    if paper and real_tr_id[:1] in {"T", "J", "C"}:
        return "V" + real_tr_id[1:]
    return real_tr_id


# {"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.<payload>.<sig>",
#  "access_token_token_expired": "2025-02-05 13:39:00", "token_type": "Bearer",
#  "expires_in": 86400}
def parse_token(raw: Mapping[str, Any]) -> IssuedToken:
    """Map a ``/oauth2/tokenP`` answer; the expiry is KST ``%Y-%m-%d %H:%M:%S`` on the wire.

    Raises:
        KeyError: a required field is missing.
        ValueError: the expiry does not parse.
    """
    expires_at = from_kst(str(raw["access_token_token_expired"]), "%Y-%m-%d %H:%M:%S")
    return IssuedToken(
        access_token=str(raw["access_token"]),
        token_type=str(raw.get("token_type") or "Bearer"),
        expires_in=int(raw.get("expires_in") or 0),
        expires_at=expires_at,
    )


def _whole_shares(quantity: Decimal, what: str = "quantity") -> str:
    if quantity <= 0 or quantity != quantity.to_integral_value():
        raise InvalidOrder(f"KIS {what} must be a positive whole number of shares", broker=BROKER)
    return str(int(quantity))


def _price(price: Decimal | None) -> str:
    if price is None or price <= 0 or price != price.to_integral_value():
        raise InvalidOrder("KIS limit prices are positive whole won", broker=BROKER)
    return str(int(price))


def _route(route: str | None) -> str:
    value = (route or "KRX").upper()
    if value not in ROUTES:
        raise InvalidOrder(f"KIS route must be one of {sorted(ROUTES)}", broker=BROKER)
    return value


def order_cash_body(request: OrderRequest, credentials: Credentials) -> dict[str, str]:
    """Build the ``order-cash`` body (uppercase keys, strings only).

    Raises:
        InvalidOrder: the request cannot be expressed (fractional shares, no limit price…).
    """
    # KIS wants 0 for a market order (it reserves cash at the upper limit).
    price = _price(request.limit_price) if request.order_type is OrderType.LIMIT else "0"
    return {
        "CANO": credentials.account_number or "",
        "ACNT_PRDT_CD": credentials.product_code or "01",
        "PDNO": request.symbol,
        "ORD_DVSN": _ORD_DVSN[request.order_type],
        "ORD_QTY": _whole_shares(request.quantity),
        "ORD_UNPR": price,
        "EXCG_ID_DVSN_CD": _route(request.route),
        "SLL_TYPE": "01" if request.side is Side.SELL else "",
        "CNDT_PRIC": "",
    }


def _rvsecncl_common(credentials: Credentials, original: BrokerOrder) -> dict[str, str]:
    raw = original.raw
    return {
        "CANO": credentials.account_number or "",
        "ACNT_PRDT_CD": credentials.product_code or "01",
        "KRX_FWDG_ORD_ORGNO": str(raw.get("ord_gno_brno") or raw.get("KRX_FWDG_ORD_ORGNO") or ""),
        "ORGN_ODNO": original.broker_order_id,
        "EXCG_ID_DVSN_CD": _route(str(raw.get("excg_id_dvsn_cd") or "") or None),
        "CNDT_PRIC": "",
    }


def cancel_body(credentials: Credentials, original: BrokerOrder) -> dict[str, str]:
    """Build the ``order-rvsecncl`` body that cancels all of ``original``'s remainder."""
    return {
        **_rvsecncl_common(credentials, original),
        "ORD_DVSN": _ORD_DVSN[original.order_type],
        "RVSE_CNCL_DVSN_CD": "02",
        "ORD_QTY": "0",
        "ORD_UNPR": "0",
        "QTY_ALL_ORD_YN": "Y",
    }


def amend_body(
    credentials: Credentials,
    original: BrokerOrder,
    *,
    quantity: Decimal | None,
    limit_price: Decimal | None,
) -> dict[str, str]:
    """Build the ``order-rvsecncl`` body that amends ``original`` to a limit order.

    ``quantity`` None amends all of the remainder (``QTY_ALL_ORD_YN "Y"``); ``limit_price`` None
    keeps the original price.

    Raises:
        InvalidOrder: bad quantity or price, or no price to keep (a market order).
    """
    price = limit_price if limit_price is not None else original.limit_price
    return {
        **_rvsecncl_common(credentials, original),
        "ORD_DVSN": "00",
        "RVSE_CNCL_DVSN_CD": "01",
        "ORD_QTY": "0" if quantity is None else _whole_shares(quantity),
        "ORD_UNPR": _price(price),
        "QTY_ALL_ORD_YN": "Y" if quantity is None else "N",
    }


def _kst_time_today(hhmmss: str | None, today: dt.date) -> dt.datetime | None:
    if not hhmmss or len(hhmmss.strip()) != 6:
        return None
    try:
        return from_kst(today.strftime("%Y%m%d") + hhmmss.strip(), "%Y%m%d%H%M%S")
    except ValueError:
        return None


# {"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.",
#  "output": {"KRX_FWDG_ORD_ORGNO": "06590", "ODNO": "0000006555", "ORD_TMD": "151059"}}
def parse_order_ack(
    output: Mapping[str, Any], request: OrderRequest, *, now: dt.datetime
) -> BrokerOrder:
    """Map an ``order-cash`` answer's ``output`` to a SUBMITTED order.

    ``KRX_FWDG_ORD_ORGNO`` (the branch that took the order) is kept in ``raw``: amend and cancel
    must send it back. ``now`` supplies the KST date that ``ORD_TMD`` (HHMMSS) lacks.
    """
    created = _kst_time_today(str(output.get("ORD_TMD") or ""), kst_date(now)) or now
    raw = {
        **{k: v for k, v in output.items()},
        "ord_gno_brno": output.get("KRX_FWDG_ORD_ORGNO", ""),
        "excg_id_dvsn_cd": _route(request.route),
    }
    return BrokerOrder(
        broker_order_id=str(output["ODNO"]),
        symbol=request.symbol,
        side=request.side,
        order_type=request.order_type,
        status=OrderStatus.SUBMITTED,
        quantity=request.quantity,
        limit_price=request.limit_price if request.order_type is OrderType.LIMIT else None,
        created_at=created,
        updated_at=created,
        raw=raw,
    )


def _zero(value: Any) -> Decimal:
    return parse_decimal(value) or Decimal(0)


def _side(code: str) -> Side:
    # sll_buy_dvsn_cd: 01 sell, 02 buy.
    return Side.SELL if code == "01" else Side.BUY


def _status(
    ord_qty: Decimal, filled: Decimal, remaining: Decimal, rejected: Decimal, cancelled: Decimal
) -> OrderStatus:
    if rejected > 0 and rejected >= ord_qty:
        return OrderStatus.REJECTED
    if ord_qty > 0 and filled >= ord_qty:
        return OrderStatus.FILLED
    if remaining > 0 and cancelled == 0:
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    # Nothing left open and not all filled: the rest was cancelled (or amended away, which
    # KIS does by cancelling the original and issuing a new order number).
    return OrderStatus.CANCELLED


def _is_cancel_row(row: Mapping[str, Any]) -> bool:
    """Tell whether a history row is a cancel instruction rather than an order of its own."""
    original = str(row.get("orgn_odno") or "").strip().lstrip("0")
    if not original or original == str(row.get("odno") or "").strip().lstrip("0"):
        return False
    if str(row.get("cncl_yn") or "").upper() == "Y":
        return True
    names = f"{row.get('sll_buy_dvsn_cd_name') or ''}{row.get('ord_dvsn_name') or ''}"
    return "취소" in names


# {"ord_dt": "20250204", "ord_gno_brno": "06590", "odno": "0000006555", "orgn_odno": "",
#  "ord_dvsn_name": "지정가", "sll_buy_dvsn_cd": "02", "sll_buy_dvsn_cd_name": "현금매수",
#  "pdno": "005930", "prdt_name": "삼성전자", "ord_qty": "10", "ord_unpr": "70000",
#  "ord_tmd": "151059", "tot_ccld_qty": "4", "avg_prvs": "70000", "cncl_yn": "N",
#  "tot_ccld_amt": "280000", "ord_dvsn_cd": "00", "cnc_cfrm_qty": "0", "rmn_qty": "6",
#  "rjct_qty": "0", "excg_dvsn_cd": "01", "excg_id_dvsn_cd": "KRX"}
def parse_ccld_rows(rows: Iterable[Mapping[str, Any]]) -> list[BrokerOrder]:
    """Map ``inquire-daily-ccld`` ``output1`` rows to orders, oldest first.

    A cancel is a row of its own in KIS's history (its ``orgn_odno`` names the original); it is
    folded into the original (CANCELLED, or CANCEL_PENDING until confirmed) instead of being
    reported as an order. An amendment is a new order number and is reported as the order it is.
    """
    rows = list(rows)
    cancels: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        if _is_cancel_row(row):
            key = (str(row.get("ord_dt") or ""), order_number_key(row.get("orgn_odno")))
            cancels.setdefault(key, []).append(row)
    orders: list[BrokerOrder] = []
    for row in rows:
        if _is_cancel_row(row):
            continue
        order = _parse_ccld_row(
            row, cancels.get((str(row.get("ord_dt") or ""), order_number_key(row.get("odno"))), [])
        )
        if order is not None:
            orders.append(order)
    return oldest_first(orders)


def _parse_ccld_row(
    row: Mapping[str, Any], cancel_rows: list[Mapping[str, Any]]
) -> BrokerOrder | None:
    odno = str(row.get("odno") or "").strip()
    if not odno:
        return None
    ord_qty = _zero(row.get("ord_qty"))
    filled = _zero(row.get("tot_ccld_qty"))
    remaining = (
        _zero(row.get("rmn_qty")) if row.get("rmn_qty") not in (None, "") else (ord_qty - filled)
    )
    rejected = _zero(row.get("rjct_qty"))
    cancelled = _zero(row.get("cnc_cfrm_qty"))
    for cancel in cancel_rows:
        cancelled += _zero(cancel.get("cnc_cfrm_qty")) or _zero(cancel.get("tot_ccld_qty"))
    status = _status(ord_qty, filled, remaining, rejected, cancelled)
    if status is OrderStatus.CANCELLED and not cancel_rows and _zero(row.get("cnc_cfrm_qty")) > 0:
        # The remainder was closed without a cancel of ours (a cancel is always a row of its
        # own): the day order lapsed at the close (trading-days.md §2.3, [DERIVED]).
        status = OrderStatus.EXPIRED
    if cancel_rows and status in {OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED}:
        status = OrderStatus.CANCEL_PENDING  # cancel sent, not confirmed yet
    ord_dvsn = str(row.get("ord_dvsn_cd") or "").strip()
    order_type = OrderType.MARKET if ord_dvsn == "01" else OrderType.LIMIT
    created: dt.datetime | None = None
    ord_dt = str(row.get("ord_dt") or "").strip()
    ord_tmd = str(row.get("ord_tmd") or "").strip()
    if len(ord_dt) == 8 and len(ord_tmd) == 6:
        try:
            created = from_kst(ord_dt + ord_tmd, "%Y%m%d%H%M%S")
        except ValueError:
            created = None
    # The exact average is the filled amount over the quantity; avg_prvs is rounded to the won.
    amount = parse_decimal(row.get("tot_ccld_amt"))
    avg = amount / filled if amount and filled > 0 else parse_decimal(row.get("avg_prvs"))
    raw = dict(row)
    if cancel_rows:
        raw["cancel_rows"] = [dict(c) for c in cancel_rows]
    order = BrokerOrder(
        broker_order_id=odno,
        symbol=str(row.get("pdno") or "").strip(),
        side=_side(str(row.get("sll_buy_dvsn_cd") or "").strip()),
        order_type=order_type,
        status=status,
        quantity=ord_qty,
        filled_quantity=filled,
        limit_price=(parse_decimal(row.get("ord_unpr")) if order_type is OrderType.LIMIT else None),
        average_fill_price=avg if filled > 0 and avg else None,
        created_at=created,
        updated_at=created,
        raw=raw,
    )
    # inquire-daily-ccld reports no charges per order (output2's prsm_tlex_smtl is an estimated
    # sum over the query): fee and tax stay unknown; inquire-period-trade-profit has the
    # broker's figures per day and stock (parse_day_charges).
    return order


# inquire-period-trade-profit output1 row ([OFFICIAL] chk_inquire_period_trade_profit.py names):
# {"trad_dt": "20261222", "pdno": "005930", "prdt_name": "삼성전자", "trad_dvsn_name": "현금",
#  "buy_qty": "10", "buy_amt": "700000", "sll_qty": "5", "sll_amt": "355000", "fee": "157",
#  "tl_tax": "710", "rlzt_pfls": "0", "loan_int": "0", …}
def parse_day_charges(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[dt.date, str], tuple]:
    """Map ``TTTC8715R`` rows to {(KST day, stock): (commission, tax)} in whole won.

    ``fee`` (수수료) and ``tl_tax`` (제세금) are the broker's charges of the day's executions of
    the stock, both sides; rows of one day and stock (e.g. per ``trad_dvsn_name``) add up.
    """
    found: dict[tuple[dt.date, str], tuple] = {}
    for row in rows:
        day_s, symbol = str(row.get("trad_dt") or "").strip(), str(row.get("pdno") or "").strip()
        try:
            day = dt.datetime.strptime(day_s, "%Y%m%d").date()  # noqa: DTZ007 - a KST date
        except ValueError:
            continue
        fee = abs(parse_decimal(row.get("fee")) or Decimal(0))
        tax = abs(parse_decimal(row.get("tl_tax")) or Decimal(0))
        before = found.get((day, symbol), (Decimal(0), Decimal(0)))
        found[(day, symbol)] = (before[0] + fee, before[1] + tax)
    return found


# {"pdno": "005930", "prdt_name": "삼성전자", "trad_dvsn_name": "현금", "hldg_qty": "10",
#  "ord_psbl_qty": "10", "pchs_avg_pric": "70000.0000", "pchs_amt": "700000", "prpr": "75000",
#  "evlu_amt": "750000", "evlu_pfls_amt": "50000", "evlu_pfls_rt": "7.14"}
def parse_holding(row: Mapping[str, Any]) -> Position | None:
    """Map an ``inquire-balance`` ``output1`` row; None for a position sold out today.

    KIS keeps a sold-out holding in the list with ``hldg_qty 0`` until settlement (D+2).
    """
    quantity = _zero(row.get("hldg_qty"))
    if quantity <= 0:
        return None
    return Position(
        quantity=quantity,
        symbol=str(row.get("pdno") or "").strip(),
        available_quantity=parse_decimal(row.get("ord_psbl_qty")),
        avg_price=parse_decimal(row.get("pchs_avg_pric")),
        current_price=parse_decimal(row.get("prpr")),
        pnl=parse_decimal(row.get("evlu_pfls_amt")),
        pnl_pct=parse_decimal(row.get("evlu_pfls_rt")),
        name=(str(row.get("prdt_name")).strip() or None) if row.get("prdt_name") else None,
        raw=dict(row),
    )


# output2[0] of inquire-balance:
# {"dnca_tot_amt": "1000000", "nxdy_excc_amt": "1000000", "prvs_rcdl_excc_amt": "1000000",
#  "scts_evlu_amt": "750000", "tot_evlu_amt": "1750000", "nass_amt": "1750000"}
# output of inquire-psbl-order:
# {"ord_psbl_cash": "1000000", "nrcvb_buy_amt": "1000000", "nrcvb_buy_qty": "14",
#  "max_buy_amt": "1000000", "max_buy_qty": "14", "psbl_qty_calc_unpr": "70000"}
def parse_balance(summary: Mapping[str, Any], orderable: Mapping[str, Any] | None) -> Balance:
    """Map the KRW cash: deposit (``dnca_tot_amt``) and what new orders may use.

    ``available`` is ``ord_psbl_cash`` from ``inquire-psbl-order`` when given (it accounts for
    open buy orders), else the D+2 settlement estimate ``prvs_rcdl_excc_amt``. The settlement
    figures are KIS's own (trading-days.md §3): ``dnca_tot_amt`` today's cash (D+0),
    ``prvs_rcdl_excc_amt`` the D+2 cash. ``locked`` is what open orders hold back: the D+2 cash
    less what orders may use (orderable cash counts unsettled trades, so measuring it against
    today's deposit would call a pending settlement "locked"), the deposit when KIS gave no D+2
    figure; never negative.
    """
    total = _zero(summary.get("dnca_tot_amt"))
    settled_d2 = parse_decimal(summary.get("prvs_rcdl_excc_amt"))
    available: Decimal | None = None
    if orderable is not None:
        available = parse_decimal(orderable.get("ord_psbl_cash"))
    if available is None:
        available = settled_d2
    if available is None:
        available = total
    return Balance(
        currency="KRW",
        total=total,
        available=available,
        locked=max(Decimal(0), (settled_d2 if settled_d2 is not None else total) - available),
        settled_today=parse_decimal(summary.get("dnca_tot_amt")),
        settled_d2=settled_d2,
        raw={"summary": dict(summary), "orderable": dict(orderable or {})},
    )


def kst_yyyymmdd(day: dt.date) -> str:
    """Format a KST date the way KIS queries want it."""
    return day.strftime("%Y%m%d")
