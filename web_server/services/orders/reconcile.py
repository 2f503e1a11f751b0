"""Reconciliation: settling orders whose outcome is in doubt, by asking the broker (DESIGN §4).

``reconcile_orders`` (a leader job) settles UNKNOWN orders, and PENDING_SUBMIT ones a crash left
behind, by asking the broker: by its order number if we have one, by client order id where the
broker keeps one, by the day's history where it does not (KIS, Kiwoom). It never sends an order
again, and never touches an order whose request is still running: it works one order per
transaction under the order's advisory lock (``lifecycle.py``), which a live request keeps for
its whole broker call and a dead one releases with its connection.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from brokers import BrokerOrder, utc_now
from web_server.errors import OrderNotFound
from web_server.extensions import db
from web_server.models import Account, Order, OrderIntent, OrderStatus
from web_server.services.brokers import adapter_for
from web_server.services.orders.lifecycle import advance, apply_answer, each_order, order_request

log = logging.getLogger(__name__)

# A PENDING_SUBMIT order younger than this is left alone even without its lock: the request may
# not have taken the lock yet.
RECONCILE_AFTER = dt.timedelta(seconds=30)
# How long a broker may take to show an order we sent before "not found" means "never arrived".
RECONCILE_GRACE = dt.timedelta(seconds=60)
# The latest a broker can have received an order after we created it: token wait (30 s), token
# issuance and one re-issue (2 × 10 s), connect and read (2 × 10 s), with a margin. A history
# search for an order without client id looks no later than this, so a later identical order is
# never taken for it.
SUBMIT_WINDOW = dt.timedelta(seconds=120)


def reconcile_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Settle UNKNOWN orders and stale PENDING_SUBMIT ones by asking the broker; never resend."""
    now = now or utc_now()
    with Session(db.engine) as session:
        candidates = session.scalars(
            select(Order.id)
            .where(
                or_(
                    Order.status == OrderStatus.UNKNOWN,
                    and_(
                        Order.status == OrderStatus.PENDING_SUBMIT,
                        Order.created_ts < now - RECONCILE_AFTER,
                    ),
                )
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
        found = adapter.find_order(
            request, order.created_ts, until=order.created_ts + SUBMIT_WINDOW, exclude=taken
        )
    intent = session.get(OrderIntent, order.intent_id)
    assert intent is not None
    if found is not None:
        apply_answer(order, found, now)
        intent.status = OrderStatus.SUBMITTED.value
        return "found"
    if now - order.created_ts < SUBMIT_WINDOW + RECONCILE_GRACE:
        return "waiting"
    advance(order, OrderStatus.REJECTED, now)
    intent.status = OrderStatus.REJECTED.value
    order.reject_code = "not_at_broker"
    order.reject_message = "The broker has no such order: the request never took effect."
    return "never_arrived"


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
                order.created_ts - SUBMIT_WINDOW, order.created_ts + SUBMIT_WINDOW
            ),
            Order.created_ts < order.created_ts,
        )
    ).all()
    # Older twins settle first (they own the earliest match); a twin still at the broker holds
    # its lock.
    return bool(twins)
