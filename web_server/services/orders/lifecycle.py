"""What every writer of an order shares: the order's advisory lock and its forward-only state.

Every writer of an order's state (the placing request, the reconciler, the poller, a cancel)
holds the order's advisory lock, which a live request keeps for its whole broker call and a dead
one releases with its connection. Status only ever moves forward, and the filled quantity never
shrinks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from brokers import BrokerOrder, OrderRequest, OrderType, Side
from web_server.errors import BrokerError, GatewayError
from web_server.extensions import db
from web_server.locks import advisory_lock, lock_key
from web_server.models import CryptoMarket, Order, OrderStatus

log = logging.getLogger(__name__)

# How far an order's state may move: a later rank never goes back to an earlier one.
_RANK = {
    OrderStatus.PENDING_SUBMIT: 0,
    OrderStatus.UNKNOWN: 0,
    OrderStatus.SUBMITTED: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.CANCEL_PENDING: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
}


@contextlib.contextmanager
def order_lock(order_id: uuid.UUID, *, wait: bool = False) -> Iterator[bool]:
    """Hold the order's advisory lock for the block; yield whether it was obtained.

    Raises:
        LockTimeout: ``wait=True`` and another actor kept the lock for 10 seconds.
    """
    key = lock_key("order", str(order_id))
    with advisory_lock(db.engine, key, wait=wait, timeout="10s") as got:
        yield got


def each_order(order_id: uuid.UUID, work: Callable[[Session, Order], str]) -> str:
    """Run ``work(session, order)`` under the order's lock, in a transaction of its own.

    An order another actor holds (a request still at the broker, a cancel) is skipped; one that
    fails is logged and skipped, so a single bad order never stalls the others.

    Returns:
        What ``work`` returned, or ``busy``, ``gone``, ``unreadable`` or ``error``.
    """
    try:
        with order_lock(order_id) as free:
            if not free:
                return "busy"
            with Session(db.engine, expire_on_commit=False) as session, session.begin():
                order = session.get(Order, order_id)
                if order is None:
                    return "gone"
                return work(session, order)
    except GatewayError as exc:
        log.warning("order %s: %s", order_id, exc.code)
        return "unreadable"
    except Exception:  # noqa: BLE001 - one bad order must not stop the job
        log.exception("order %s: job failed", order_id)
        return "error"


def symbol_of(session: Any, order: Order) -> str:
    """Return the broker's symbol of the order's instrument (a stock code or a crypto market)."""
    if order.symbol is not None:
        return order.symbol
    market = session.get(CryptoMarket, order.crypto_market_id)
    assert market is not None
    return market.symbol


def order_request(session: Any, order: Order) -> OrderRequest:
    """Return the adapter's request for a stored order, as it was (or will be) sent."""
    return OrderRequest(
        symbol=symbol_of(session, order),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        route=order.route,
    )


def advance(order: Order, status: OrderStatus, now: dt.datetime) -> None:
    """Move ``order`` to ``status`` if that is forward; a late or stale answer never goes back."""
    current = OrderStatus(order.status)
    if _RANK[status] < _RANK[current] or (_RANK[current] == 4 and status is not current):
        return
    if current is OrderStatus.CANCEL_PENDING and status in (
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
    ):
        return  # the cancel is on its way; only its outcome (or a fill) moves the order on
    order.status = status.value
    if status is not OrderStatus.REJECTED:
        order.reject_code = order.reject_message = None
    order.updated_ts = now


def apply_answer(order: Order, broker: BrokerOrder, now: dt.datetime) -> None:
    """Copy what the broker reports onto our order row, forward only."""
    order.broker_order_id = order.broker_order_id or broker.broker_order_id
    status = broker.status
    if status in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        status = OrderStatus.SUBMITTED  # the broker has it: that is what we learned
    advance(order, status, now)
    if broker.filled_quantity >= (order.filled_quantity or 0):
        order.filled_quantity = broker.filled_quantity
        order.average_fill_price = broker.average_fill_price or order.average_fill_price
    order.raw = json.loads(json.dumps(dict(broker.raw), default=str)) if broker.raw else order.raw
    order.submitted_ts = order.submitted_ts or now
    order.updated_ts = now


def broker_text(exc: BrokerError) -> str:
    """Return a broker error as stored on a rejected or unknown order (code and message)."""
    return f"{exc.code}: {exc.broker_message or exc.detail}"[:500]
