"""Finding an order in doubt at a broker without client order ids (KIS, Kiwoom), by its day.

An order whose answer was lost is matched against the **complete** history of the KST days its
request could have reached the broker on (``day_orders``: every page), on symbol, side, type,
quantity and limit price, from its send (less :data:`CLOCK_SKEW`) to the end of the KST day of the
latest it could have arrived (its lease's end): a broker may act on a request long after the
gateway gave up on it. Rows already bound to another of our orders (by date and number: numbers
restart daily) are left out.

- One candidate, which no other unsettled identical order could also own: it is the order.
- None: the order is absent — final only once every searched day is over (its sessions closed,
  nothing can still arrive in its history); until then the reconciler waits.
- Anything else is **ambiguous**: two identical orders in doubt are never bound to each other's
  row. The order stays UNKNOWN and is flagged for the operator with every candidate row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers import KST, BrokerOrder, OrderRequest, OrderType, kst_date
from web_server.models import Order, OrderStatus
from web_server.services import clock
from web_server.services.orders.lifecycle import SEND_WINDOW

#: Tolerance between our clock and the broker's when matching by time.
CLOCK_SKEW = dt.timedelta(seconds=60)


@dataclasses.dataclass(frozen=True)
class Match:
    """What a day's history says about an order in doubt."""

    kind: str  # "found", "absent", "absent_final" or "ambiguous"
    order: BrokerOrder | None = None
    candidates: tuple[BrokerOrder, ...] = ()


def _key(value: Any) -> str:
    return str(value or "").strip().lstrip("0")


def _window(order: Order) -> tuple[dt.datetime, dt.datetime]:
    """From its send (less the skew) to the end of the KST day it could last have arrived on.

    Not only to its lease's end: a broker may act on a request long after the gateway gave up
    on it (a request held in front of the order desk), and a late acceptance is bound whenever
    it appears. A later identical order of ours is either bound already (its row is taken) or
    in doubt too (a twin: the match is ambiguous), so the longer window never steals its row.
    """
    start = order.send_started_ts or order.created_ts
    bound = max(order.lease_until or order.created_ts + SEND_WINDOW, start) + CLOCK_SKEW
    day_end = dt.datetime.combine(kst_date(bound) + dt.timedelta(days=1), dt.time(), tzinfo=KST)
    return start - CLOCK_SKEW, day_end


def _same_terms(row: BrokerOrder, request: OrderRequest) -> bool:
    if row.symbol != request.symbol or row.side is not request.side:
        return False
    if row.order_type is not request.order_type or row.quantity != request.quantity:
        return False
    if request.order_type is OrderType.LIMIT:
        return row.limit_price is not None and row.limit_price == request.limit_price
    return True


def match_by_history(
    session: Session,
    adapter: Any,
    order: Order,
    request: OrderRequest,
    now: dt.datetime,
    histories: dict[tuple[int, dt.date], list[BrokerOrder]] | None = None,
) -> Match:
    """Match ``order`` against the complete history of its days (see the module docstring).

    ``histories`` keeps each (account, day) read for the rest of one reconcile pass: the orders
    waiting in a pass share their days, and each read is a complete (paged) history.

    Raises:
        BrokerError: a day's history could not be read completely.
    """
    low, high = _window(order)
    first, last = kst_date(low), kst_date(high - dt.timedelta(microseconds=1))
    rows: list[BrokerOrder] = []
    day = first
    while day <= last:
        memo = (order.account_id, day)
        if histories is not None and memo in histories:
            rows.extend(histories[memo])
        else:
            read = list(adapter.day_orders(day))
            if histories is not None:
                histories[memo] = read
            rows.extend(read)
        day += dt.timedelta(days=1)
    taken = {
        (d, _key(n))
        for d, n in session.execute(
            select(Order.broker_order_date, Order.broker_order_id).where(
                Order.account_id == order.account_id,
                Order.broker_order_date.between(first, last),
                Order.broker_order_id.is_not(None),
                Order.id != order.id,
            )
        )
    }
    candidates = [
        row
        for row in rows
        if _same_terms(row, request)
        and (row.created_at is None or low <= row.created_at < high)
        and (kst_date(row.created_at or now), _key(row.broker_order_id)) not in taken
    ]
    if not candidates:
        return Match("absent_final" if clock.kst_day_over(last, now) else "absent")
    twins = _twins(session, order, request)
    contested = [
        row
        for row in candidates
        if row.created_at is None
        or any(_window(twin)[0] <= row.created_at <= _window(twin)[1] for twin in twins)
    ]
    if len(candidates) == 1 and not contested:
        return Match("found", candidates[0])
    return Match("ambiguous", candidates=tuple(candidates))


def _twins(session: Session, order: Order, request: OrderRequest) -> list[Order]:
    """Other orders of the account with the same terms that are in doubt too (or were)."""
    return list(
        session.scalars(
            select(Order).where(
                Order.account_id == order.account_id,
                Order.id != order.id,
                Order.broker_order_id.is_(None),
                Order.send_started_ts.is_not(None),
                Order.status.in_([OrderStatus.PENDING_SUBMIT.value, OrderStatus.UNKNOWN.value]),
                Order.symbol == request.symbol,
                Order.side == order.side,
                Order.order_type == order.order_type,
                Order.quantity == order.quantity,
                Order.limit_price.is_not_distinct_from(order.limit_price),
                Order.created_ts.between(
                    order.created_ts - 2 * (SEND_WINDOW + CLOCK_SKEW),
                    order.created_ts + 2 * (SEND_WINDOW + CLOCK_SKEW),
                ),
            )
        )
    )
