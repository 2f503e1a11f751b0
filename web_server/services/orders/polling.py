"""Polling: moving open orders forward from what their brokers report (DESIGN §4).

``poll_open_orders`` (a leader job) reads each open order at its broker and records fills and
cancellations (PARTIALLY_FILLED, FILLED, CANCELLED), one order per transaction under the order's
advisory lock, so it never races the request, the reconciler or a cancel. Status only ever moves
forward, and the filled quantity never shrinks (``lifecycle.py``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers import utc_now
from brokers.statuses import OPEN_STATUSES
from web_server.extensions import db
from web_server.models import Account, Order
from web_server.services.brokers import adapter_for
from web_server.services.orders.lifecycle import apply_answer, each_order, symbol_of


def poll_open_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Refresh open orders from their brokers (fills, cancellations)."""
    now = now or utc_now()
    with Session(db.engine) as session:
        candidates = session.scalars(
            select(Order.id).where(Order.status.in_(sorted(s.value for s in OPEN_STATUSES)))
        ).all()
    counts: dict[str, int] = {}
    for order_id in candidates:
        outcome = each_order(order_id, lambda s, o: _poll_one(s, o, now))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _poll_one(session: Session, order: Order, now: dt.datetime) -> str:
    account = session.get(Account, order.account_id)
    assert account is not None
    if order.broker_order_id is None:
        return "no_broker_id"
    answer = adapter_for(account).get_order(order.broker_order_id, symbol=symbol_of(session, order))
    before = order.status
    apply_answer(order, answer, now)
    return order.status if order.status != before else "unchanged"
