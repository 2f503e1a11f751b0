"""What every writer of an order shares: its lock, its lease, and its forward-only state.

Every writer of an order's state (the placing request, the reconciler, the poller, a cancel)
holds the order's advisory lock, which a live request keeps for its whole broker call and a dead
one releases with its connection. The lock alone cannot tell a dead request from a live one whose
connection was cut, so an order being placed also carries a lease (``lease_until``): the
reconciler takes over an unsettled order only when its lock is free *and* its lease has run out,
and it takes the row ``FOR UPDATE`` first, so a request and the reconciler never both act on one
order. Status only ever moves forward, and the filled quantity never shrinks — with two named,
documented exceptions: :func:`reopen_after_lost_cancel` (a cancel whose outcome was lost, and
which the broker still shows open after the re-check bound, goes back to its open state so it can
be cancelled again) and :func:`bind_late_acceptance` (an order called REJECTED ``not_at_broker``
that the broker shows after all is bound and flagged for the operator).

The lease has two stages. Committing the order gives the request :data:`START_LEASE` to get
ready; being cleared to call the broker (``send_started_ts``) extends it to the end of the
longest possible broker call (:data:`SEND_WINDOW`). So an orphan whose request never started
sending is known never to have reached the broker as soon as its short lease ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from brokers import BrokerOrder, OrderRequest, OrderType, Side, kst_date
from web_server.errors import BrokerError, GatewayError, is_database_unavailable
from web_server.extensions import db
from web_server.locks import advisory_lock, lock_key
from web_server.models import CryptoMarket, Order, OrderIntent, OrderStatus
from web_server.services.orders.fills import sync_fills

log = logging.getLogger(__name__)

#: How long a placing request has, from committing its order, to be cleared to call the broker
#: (take the order's lock, read its token, ride out a database hiccup). Its retries stop earlier
#: (``placement.py``); after this the reconciler may find the order an orphan that was never sent.
START_LEASE = dt.timedelta(seconds=20)
#: The latest a broker can receive an order after the request was cleared to send it: token wait
#: (30 s), token issuance and one re-issue (2 × 10 s), connect and read (2 × 10 s), with a margin.
#: A history search for an order without client id looks no later than the lease this gives, so
#: a later identical order is never taken for it.
SEND_WINDOW = dt.timedelta(seconds=120)

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
    OrderStatus.EXPIRED: 4,
}
_REOPENABLE = (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)


@contextlib.contextmanager
def order_lock(order_id: uuid.UUID, *, wait: bool = False) -> Iterator[bool]:
    """Hold the order's advisory lock for the block; yield whether it was obtained.

    A lock whose connection was cut during the block is already released (the server ended its
    session); failing to say so again is not an error of the block's work.

    Raises:
        LockTimeout: ``wait=True`` and another actor kept the lock for 10 seconds.
    """
    lock = advisory_lock(db.engine, lock_key("order", str(order_id)), wait=wait, timeout="10s")
    got = lock.__enter__()
    try:
        yield got
    except BaseException as exc:
        if not lock.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        try:
            lock.__exit__(None, None, None)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            log.info("order %s: its lock's connection was lost; the server released it", order_id)


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
                # FOR UPDATE: a placing request whose lock was cut records its answer, or claims
                # the right to send, under the row lock; it waits for us, then sees what we did.
                order = session.get(Order, order_id, with_for_update=True)
                if order is None:
                    return "gone"
                return work(session, order)
    except GatewayError as exc:
        log.warning("order %s: %s", order_id, exc.code)
        return "unreadable"
    except Exception as exc:  # noqa: BLE001 - one bad order must not stop the job
        if is_database_unavailable(exc):
            log.warning("order %s: database unavailable (%s)", order_id, type(exc).__name__)
            return "db_unavailable"
        log.exception("order %s: job failed", order_id)
        return "error"


def symbol_of(session: Any, order: Order) -> str:
    """Return the broker's symbol of the order's instrument (a stock code or a crypto market)."""
    if order.symbol is not None:
        return order.symbol
    market = session.get(CryptoMarket, order.crypto_market_id)
    assert market is not None
    return market.symbol


def broker_identity(session: Any, order: Order) -> dict[str, Any]:
    """Return how the order's broker names it, as keyword arguments for an adapter call.

    The symbol (Binance ids are per symbol) and the KST order date (KIS and Kiwoom numbers
    restart each trading day): cancel, amend and look-up never take "the newest with that
    number".
    """
    return {"symbol": symbol_of(session, order), "order_date": order.broker_order_date}


def order_request(session: Any, order: Order) -> OrderRequest:
    """Return the adapter's request for a stored order, as it was (or will be) sent."""
    return OrderRequest(
        symbol=symbol_of(session, order),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        # A market buy by amount has no quantity: the adapters send its quote_amount.
        quantity=order.quantity if order.quantity is not None else Decimal(0),
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        route=order.route,
        quote_amount=order.quote_amount,
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


def reopen_after_lost_cancel(order: Order, broker: BrokerOrder, now: dt.datetime) -> bool:
    """Step a CANCEL_PENDING order back to its open state; tell whether it did.

    The one case where a status steps back: the cancel's outcome was lost (reset, 5xx, timeout),
    and after the re-check bound the broker still shows the order open with no cancel of its own
    pending. The order is then OPEN (SUBMITTED) or PARTIALLY_FILLED again, as the broker says, and
    may be cancelled again.
    """
    if order.status != OrderStatus.CANCEL_PENDING or broker.status not in _REOPENABLE:
        return False
    apply_fills(order, broker)
    order.status = (
        OrderStatus.PARTIALLY_FILLED.value
        if (order.filled_quantity or 0) > 0
        else OrderStatus.SUBMITTED.value
    )
    order.cancel_requested_ts = None
    order.updated_ts = now
    log.warning("order %s: its cancel was lost; open again at the broker", order.id)
    return True


def bind_late_acceptance(order: Order, broker: BrokerOrder, now: dt.datetime) -> None:
    """Bind an order we called REJECTED ``not_at_broker`` to the broker's order after all.

    A late acceptance is bound whenever it appears, even after the order was declared rejected:
    the broker holds a live order, so the gateway must track it. The status follows the broker's
    (the second documented step back), and ``attention`` tells the operator, who had been told
    the order was rejected.
    """
    was = {"status": order.status, "reject_code": order.reject_code}
    order.status = OrderStatus.PENDING_SUBMIT.value  # so that apply_answer may move it forward
    apply_answer(order, broker, now)
    order.attention = {
        "reason": "late_acceptance",
        "detail": "The broker accepted this order after the gateway had declared it rejected.",
        "was": was,
        "broker_rows": [broker_row(broker)],
    }
    log.error("order %s: accepted late by the broker after being called rejected", order.id)


def broker_row(broker: BrokerOrder) -> dict[str, Any]:
    """Return a broker order as shown to the operator in ``attention``."""
    return {
        "broker_order_id": broker.broker_order_id,
        "order_date": broker_date(broker),
        "symbol": broker.symbol,
        "side": str(broker.side),
        "type": str(broker.order_type),
        "status": str(broker.status),
        "quantity": str(broker.quantity),
        "filled_quantity": str(broker.filled_quantity),
        "limit_price": None if broker.limit_price is None else str(broker.limit_price),
        "created_at": None if broker.created_at is None else broker.created_at.isoformat(),
    }


def broker_date(broker: BrokerOrder) -> str | None:
    """Return the KST order date the broker keys the order by, as ISO text (None if undated)."""
    return None if broker.created_at is None else kst_date(broker.created_at).isoformat()


def apply_fills(order: Order, broker: BrokerOrder) -> None:
    """Take the broker's filled quantity and average price, never letting them shrink.

    The fills behind them are written once to ``trade.fills`` with the order's fee and tax
    totals (``fills.sync_fills``, which calls ``fills.record_fill`` per new fill).
    """
    if broker.filled_quantity >= (order.filled_quantity or 0):
        order.filled_quantity = broker.filled_quantity
        order.average_fill_price = broker.average_fill_price or order.average_fill_price
        sync_fills(order, broker)


def apply_answer(order: Order, broker: BrokerOrder, now: dt.datetime) -> None:
    """Copy what the broker reports onto our order row, forward only.

    Binding a KIS or Kiwoom number also binds its KST date: numbers restart each trading day.
    """
    if order.broker_order_id is None:
        order.broker_order_id = broker.broker_order_id
        if order.symbol is not None:
            order.broker_order_date = kst_date(broker.created_at or now)
    status = broker.status
    if status in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        status = OrderStatus.SUBMITTED  # the broker has it: that is what we learned
    advance(order, status, now)
    apply_fills(order, broker)
    order.raw = json.loads(json.dumps(dict(broker.raw), default=str)) if broker.raw else order.raw
    order.submitted_ts = order.submitted_ts or now
    order.updated_ts = now


def forget(session: Session, order: Order) -> bool:
    """Delete an order that never took effect at the broker, and its intent; tell whether it did.

    Only a PENDING_SUBMIT order is forgotten: no one has been told its id (a replay of its key is
    told to retry), so its key may start over. An order anything else has settled stays.
    """
    if order.status != OrderStatus.PENDING_SUBMIT:
        return False
    intent = session.get(OrderIntent, order.intent_id)
    session.delete(order)
    session.flush()  # the order references the intent (ON DELETE RESTRICT)
    if intent is not None:
        session.delete(intent)
    return True


def broker_text(exc: BrokerError) -> str:
    """Return a broker error as stored on a rejected or unknown order (code and message)."""
    return f"{exc.code}: {exc.broker_message or exc.detail}"[:500]
