"""Cancelling an open order at its broker, under the order's lock (DESIGN §4).

The gateway offers no amend yet (the adapters declare ``amend_order``): a changed order is a
cancel and a new order.
"""

from __future__ import annotations

import uuid

from brokers import utc_now
from web_server.errors import Conflict, OrderStateUnknown
from web_server.extensions import db
from web_server.models import ApiKey, Order, OrderStatus
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.orders.lifecycle import advance, order_lock, symbol_of
from web_server.services.orders.queries import get_order


def cancel_order(key: ApiKey, order_id: uuid.UUID) -> Order:
    """Ask the broker to cancel an open order.

    A cancel whose answer is lost leaves the order CANCEL_PENDING; the poller learns the outcome.

    Raises:
        NotFound: no such order for this key.
        Conflict: the order is not open, or another request is working on it right now.
        BrokerError: the broker refused or could not be reached.
    """
    order = get_order(key, order_id)
    with order_lock(order.id) as free:
        if not free:
            raise Conflict(f"Order {order_id} is being updated; retry in a moment.", retry_after=1)
        db.session.refresh(order)
        if order.status not in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
            raise Conflict(
                f"Order {order_id} is {order.status}; only open orders can be cancelled."
            )
        account = get_account(order.account_id)
        assert order.broker_order_id is not None
        now = utc_now()
        try:
            answer = adapter_for(account).cancel_order(
                order.broker_order_id, symbol=symbol_of(db.session, order)
            )
        except OrderStateUnknown:
            advance(order, OrderStatus.CANCEL_PENDING, now)  # the poller learns the outcome
        else:
            if answer.filled_quantity > order.filled_quantity:
                order.filled_quantity = answer.filled_quantity
            cancelled = answer.status == OrderStatus.CANCELLED
            advance(order, OrderStatus.CANCELLED if cancelled else OrderStatus.CANCEL_PENDING, now)
        db.session.commit()
    return order
