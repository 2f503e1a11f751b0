"""Cancelling an open order at its broker, under the order's lock (DESIGN §4).

Cancel is safe to repeat. A CANCEL_PENDING order may be cancelled again: the cancel is sent once
more (the broker answers an order with nothing left as it is, and the adapter then sends
nothing). A cancel whose outcome is unknown (reset, 5xx, timeout) leaves the order
CANCEL_PENDING with ``cancel_requested_ts``; the poller re-checks it at the broker, and when the
broker still shows it open :data:`CANCEL_RECHECK` after the cancel was sent, the order goes back
to its open state (``lifecycle.reopen_after_lost_cancel``) and can be cancelled again.

An amend (``amend.py``) is a new order that replaces this one; the old one ends CANCELLED.
"""

from __future__ import annotations

import datetime as dt
import uuid

from flask import current_app

from brokers import TERMINAL_STATUSES
from web_server.errors import BrokerRejected, Conflict, OrderNotFound, OrderStateUnknown
from web_server.extensions import db
from web_server.models import ApiKey, Order, OrderStatus
from web_server.services import clock
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    advance,
    apply_answer,
    apply_fills,
    broker_identity,
    order_lock,
)
from web_server.services.orders.queries import get_order

#: How long after a cancel was sent an order the broker still shows open goes back to its open
#: state (``ORDERS_CANCEL_RECHECK_SECONDS`` overrides it).
CANCEL_RECHECK = dt.timedelta(seconds=60)

_CANCELLABLE = (
    OrderStatus.SUBMITTED,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.CANCEL_PENDING,
)


def cancel_recheck() -> dt.timedelta:
    """Return the configured re-check bound of a cancel whose outcome was lost."""
    seconds = current_app.config.get("ORDERS_CANCEL_RECHECK_SECONDS")
    return CANCEL_RECHECK if seconds is None else dt.timedelta(seconds=float(seconds))


def cancel_order(key: ApiKey, order_id: uuid.UUID) -> Order:
    """Ask the broker to cancel an open (or CANCEL_PENDING) order.

    A cancel whose answer is lost leaves the order CANCEL_PENDING; the poller learns the outcome.

    Raises:
        NotFound: no such order for this key.
        Conflict: the order is closed, or another request is working on it right now.
        BrokerError: the broker refused or could not be reached.
    """
    order = get_order(key, order_id)
    with order_lock(order.id) as free:
        if not free:
            raise Conflict(f"Order {order_id} is being updated; retry in a moment.", retry_after=1)
        db.session.refresh(order)
        if order.status not in _CANCELLABLE:
            raise Conflict(
                f"Order {order_id} is {order.status}; only open orders can be cancelled."
            )
        account = get_account(order.account_id)
        broker_order_id = order.broker_order_id
        assert broker_order_id is not None
        adapter = adapter_for(account)
        identity = broker_identity(db.session, order)
        again = order.status == OrderStatus.CANCEL_PENDING
        recorded = order.filled_quantity  # (no one else changes it while the lock is held)
        # The request's reads end before the broker is asked: no transaction stays open while it
        # answers (a TRUNCATE or a migration would queue behind its snapshot, and everyone
        # behind them). The order's lock keeps every other writer off meanwhile; its row is read
        # again, as it is, when the answer is written — after every broker call, the reads of
        # the answer's fills (``complete``) included: touching the order begins a transaction.
        db.session.commit()
        now = clock.now()
        try:
            answer = adapter.cancel_order(broker_order_id, **identity)
        except OrderStateUnknown:
            order.cancel_requested_ts = now
            advance(order, OrderStatus.CANCEL_PENDING, now)  # the poller learns the outcome
        except (OrderNotFound, BrokerRejected):
            if not again:
                raise
            # A repeated cancel the broker refuses: the first one may have done its work. Read
            # the order; if it is closed, that is the answer, otherwise the refusal stands.
            answer = adapter.get_order(broker_order_id, **identity)
            if answer.status not in TERMINAL_STATUSES:
                raise
            apply_answer(order, complete(adapter, recorded, answer), now)
        else:
            # A cancel that reports fills: their executions and price are recorded too.
            answer = complete(adapter, recorded, answer)
            order.cancel_requested_ts = now
            if answer.status in TERMINAL_STATUSES:
                apply_answer(order, answer, now)  # filled, cancelled or lapsed already
            else:
                apply_fills(order, answer)
                advance(order, OrderStatus.CANCEL_PENDING, now)
        db.session.commit()
    return order
