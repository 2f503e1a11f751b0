"""Reconciliation: settling orders whose outcome is in doubt, by asking the broker (DESIGN §4).

``reconcile_orders`` (a leader job) settles UNKNOWN orders, and PENDING_SUBMIT ones whose placing
request is gone (it died, or gave up while the database was unreachable). It never sends an order
again, and never touches an order a request may still be working on: it works one order per
transaction, under the order's advisory lock and its row lock, and takes a PENDING_SUBMIT order
over only once the order's lease has run out (``lifecycle.py``) — the lock alone would not do,
since a live request whose connection was cut has lost it.

- A PENDING_SUBMIT orphan that was never cleared to send (``send_started_ts`` NULL) cannot be at
  the broker: it is forgotten, with its intent, as soon as its short lease ends, so its key starts
  over (no one was ever given its id).
- Any other is looked up at the broker: by its order number if we have one, by client order id
  where the broker keeps one, by the day's history where it does not (KIS, Kiwoom), between its
  creation and its lease's end (the latest it could have arrived). Found: settled from the
  broker's answer. Not found once the lease has ended plus :data:`RECONCILE_GRACE`: it never
  arrived — an UNKNOWN order (whose id the client has) ends REJECTED ``not_at_broker``, a
  PENDING_SUBMIT one is forgotten like a refusal before sending.
- An UNKNOWN order that was never cleared to send ends REJECTED ``not_sent`` without asking.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from brokers import BrokerOrder, utc_now
from web_server.errors import OrderNotFound
from web_server.extensions import db
from web_server.models import Account, Order, OrderIntent, OrderStatus
from web_server.services.brokers import adapter_for
from web_server.services.orders.lifecycle import (
    SEND_WINDOW,
    advance,
    apply_answer,
    each_order,
    forget,
    order_request,
)

log = logging.getLogger(__name__)

# How long a broker may take to show an order we sent before "not found" means "never arrived".
RECONCILE_GRACE = dt.timedelta(seconds=60)
_UNSETTLED = (OrderStatus.PENDING_SUBMIT.value, OrderStatus.UNKNOWN.value)


def reconcile_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Settle UNKNOWN orders and orphaned PENDING_SUBMIT ones by asking the broker; never resend.

    Returns:
        How many orders came to each outcome (``found``, ``waiting``, ``never_arrived``,
        ``never_sent``, ``leased``, ``busy``, …).
    """
    now = now or utc_now()
    with Session(db.engine) as session:
        candidates = session.scalars(
            select(Order.id)
            .where(
                Order.status.in_(_UNSETTLED),  # served by idx_orders_unsettled
                or_(
                    Order.status == OrderStatus.UNKNOWN.value,
                    Order.lease_until.is_(None),
                    Order.lease_until < now,
                ),
            )
            .order_by(Order.created_ts)
        ).all()
    counts: dict[str, int] = {}
    for order_id in candidates:
        outcome = each_order(order_id, lambda s, o: _reconcile_one(s, o, now))
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info("reconcile: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def _reconcile_one(session: Session, order: Order, now: dt.datetime) -> str:
    pending = order.status == OrderStatus.PENDING_SUBMIT
    if order.status not in _UNSETTLED:
        return "settled"  # its request recorded an answer since we looked
    if pending and order.lease_until is not None and order.lease_until > now:
        return "leased"  # its request may still send it, or record what the broker said
    if order.send_started_ts is None:
        if pending:
            forget(session, order)
            log.info("order %s: never sent and its request is gone; forgotten", order.id)
            return "never_sent"
        _reject(session, order, now, "not_sent", "The gateway never sent this order.")
        return "never_sent"
    # The latest the broker could have received it: the lease's end (legacy rows: the old rule).
    arrival_bound = order.lease_until or order.created_ts + SEND_WINDOW
    account = session.get(Account, order.account_id)
    assert account is not None
    adapter = adapter_for(account)
    request = order_request(session, order)
    found: BrokerOrder | None
    if order.broker_order_id:
        try:
            found = adapter.get_order(order.broker_order_id, symbol=request.symbol)
        except OrderNotFound:
            found = None
    elif adapter.capabilities.client_order_id:
        try:
            found = adapter.get_order(client_order_id=order.client_order_id, symbol=request.symbol)
        except OrderNotFound:
            found = None
    else:
        if _identical_order_in_flight(session, order):
            return "waiting"  # its twin may be the one at the broker: wait until it settles
        taken = set(
            session.scalars(
                select(Order.broker_order_id).where(
                    Order.account_id == order.account_id,
                    Order.broker_order_id.is_not(None),
                    Order.id != order.id,
                )
            )
        )
        found = adapter.find_order(request, order.created_ts, until=arrival_bound, exclude=taken)
    if found is not None:
        intent = session.get(OrderIntent, order.intent_id)
        assert intent is not None
        apply_answer(order, found, now)
        order.lease_until = None
        intent.status = OrderStatus.SUBMITTED.value
        return "found"
    if now < arrival_bound + RECONCILE_GRACE:
        return "waiting"
    if pending:
        # No one was given its id: forgotten like a refusal before sending, so the key starts over.
        forget(session, order)
    else:
        _reject(
            session,
            order,
            now,
            "not_at_broker",
            "The broker has no such order: the request never took effect.",
        )
    log.info("order %s: never arrived at the broker", order.id)
    return "never_arrived"


def _reject(session: Session, order: Order, now: dt.datetime, code: str, message: str) -> None:
    intent = session.get(OrderIntent, order.intent_id)
    assert intent is not None
    advance(order, OrderStatus.REJECTED, now)
    intent.status = OrderStatus.REJECTED.value
    order.reject_code = code
    order.reject_message = message
    order.lease_until = None


def _identical_order_in_flight(session: Session, order: Order) -> bool:
    """Tell whether another unsettled order with the same terms might be the broker's match."""
    twins = session.scalars(
        select(Order.id).where(
            Order.account_id == order.account_id,
            Order.id != order.id,
            Order.status.in_([OrderStatus.PENDING_SUBMIT.value, OrderStatus.UNKNOWN.value]),
            Order.symbol.is_not_distinct_from(order.symbol),
            Order.crypto_market_id.is_not_distinct_from(order.crypto_market_id),
            Order.side == order.side,
            Order.order_type == order.order_type,
            Order.quantity == order.quantity,
            Order.limit_price.is_not_distinct_from(order.limit_price),
            Order.created_ts.between(
                order.created_ts - SEND_WINDOW, order.created_ts + SEND_WINDOW
            ),
            Order.created_ts < order.created_ts,
        )
    ).all()
    # Older twins settle first (they own the earliest match); a twin still at the broker holds
    # its lock.
    return bool(twins)
