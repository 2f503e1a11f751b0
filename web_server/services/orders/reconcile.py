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
- Any other is looked up at the broker: by its number and KST day if we have one, by client order
  id where the broker keeps one (Upbit ``identifier``, Bithumb ``client_order_id``, Binance
  ``newClientOrderId``), and by the complete history of its days where it does not (KIS, Kiwoom:
  ``matching.py``). Found: settled from the broker's answer. Absence is final only once the
  answer can no longer arrive: for client ids, :data:`RECONCILE_GRACE` after the lease's end (the
  latest the request could reach the broker; the exchange looks the id up itself); without them,
  once the order's KST days are over as well (their sessions closed) — until then it waits. Then
  an UNKNOWN order (whose id the client has) ends REJECTED ``not_at_broker``, a PENDING_SUBMIT one
  is forgotten like a refusal before sending.
- Without client ids, two identical orders in doubt are never bound to each other's broker row:
  an ambiguous match stays UNKNOWN with ``attention`` listing every candidate row.
- A late acceptance is bound whenever it appears: REJECTED ``not_at_broker`` orders are looked
  for again for :data:`LATE_WATCH`; one the broker shows after all is bound and flagged for the
  operator (``lifecycle.bind_late_acceptance``).
- An UNKNOWN order that was never cleared to send ends REJECTED ``not_sent`` without asking.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from brokers import BrokerOrder
from web_server.errors import OrderNotFound
from web_server.extensions import db
from web_server.models import Account, Order, OrderIntent, OrderStatus
from web_server.services import clock
from web_server.services.brokers import adapter_for
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    SEND_WINDOW,
    advance,
    apply_answer,
    bind_late_acceptance,
    broker_row,
    each_order,
    forget,
    order_request,
)
from web_server.services.orders.matching import Match, match_by_history
from web_server.services.orders.polling import per_account

log = logging.getLogger(__name__)

# How long a broker may take to show an order we sent before "not found" means "never arrived".
RECONCILE_GRACE = dt.timedelta(seconds=60)
#: How long an order called REJECTED ``not_at_broker`` is still looked for, in case the broker
#: accepted it late (a request held in front of the broker: the simulators' ``late`` fault).
LATE_WATCH = dt.timedelta(hours=24)
_UNSETTLED = (OrderStatus.PENDING_SUBMIT.value, OrderStatus.UNKNOWN.value)


def reconcile_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Settle UNKNOWN orders and orphaned PENDING_SUBMIT ones by asking the broker; never resend.

    Returns:
        How many orders came to each outcome (``found``, ``waiting``, ``never_arrived``,
        ``never_sent``, ``leased``, ``busy``, …).
    """
    now = now or clock.now()
    with Session(db.engine) as session:
        candidates = session.execute(
            select(Order.id, Order.account_id)
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
    histories: dict[Any, Any] = {}  # each (account, day) read once in this pass
    groups: dict[int, list[Any]] = {}
    for order_id, account_id in candidates:  # oldest first within each account
        groups.setdefault(account_id, []).append(order_id)

    def settle(_account_id: int, order_ids: list[Any]) -> list[str]:
        return [
            each_order(order_id, lambda s, o: _reconcile_one(s, o, now, histories))
            for order_id in order_ids
        ]

    # Accounts at a time (their brokers answer independently); one account's orders in order.
    for outcomes in per_account(groups, settle):
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
    # Orders still absent are no news; a late acceptance is.
    late = watch_late_acceptances(now, histories).get("late_acceptance", 0)
    if late:
        counts["late_acceptance"] = late
    if counts:
        log.info("reconcile: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def _lookup(adapter: Any, order: Order, request: Any) -> BrokerOrder | None:
    """Ask the broker for the order by its identity there (number and day, or client id)."""
    try:
        if order.broker_order_id:
            return adapter.get_order(
                order.broker_order_id, symbol=request.symbol, order_date=order.broker_order_date
            )
        return adapter.get_order(client_order_id=order.client_order_id, symbol=request.symbol)
    except OrderNotFound:
        return None


def _reconcile_one(
    session: Session, order: Order, now: dt.datetime, histories: dict[Any, Any] | None = None
) -> str:
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
    if order.broker_order_id or adapter.capabilities.client_order_id:
        found = _lookup(adapter, order, request)
        # A client id is looked up by the exchange itself: once it cannot find the order
        # RECONCILE_GRACE after the latest it could have arrived, the order is not there.
        final = now >= arrival_bound + RECONCILE_GRACE
    else:
        match = match_by_history(session, adapter, order, request, now, histories)
        if match.kind == "ambiguous":
            return _ambiguous(order, match, now)
        found = match.order
        final = match.kind == "absent_final" and now >= arrival_bound + RECONCILE_GRACE
    if found is not None:
        intent = session.get(OrderIntent, order.intent_id)
        assert intent is not None
        apply_answer(order, complete(adapter, order.filled_quantity, found), now)
        if order.replaces_order_id is not None:
            # A lost amend answer, found: the order it replaced learns its replacement (the
            # poller closes it from the broker's read).
            session.execute(
                update(Order)
                .where(Order.id == order.replaces_order_id, Order.replaced_by_order_id.is_(None))
                .values(replaced_by_order_id=order.id)
            )
        order.lease_until = None
        order.attention = None
        intent.status = OrderStatus.SUBMITTED.value
        return "found"
    if not final:
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


def _ambiguous(order: Order, match: Match, now: dt.datetime) -> str:
    """Leave an order whose history match is ambiguous UNKNOWN, flagged with every candidate."""
    rows = [broker_row(row) for row in match.candidates]
    if order.attention != {"reason": "ambiguous_match", "broker_rows": rows}:
        order.attention = {"reason": "ambiguous_match", "broker_rows": rows}
        log.error("order %s: %d broker orders could be it; flagged", order.id, len(rows))
    if order.status == OrderStatus.PENDING_SUBMIT:
        order.status = OrderStatus.UNKNOWN.value  # shown to the client and the operator
        order.reject_code = "order_state_unknown"
    order.lease_until = None
    order.updated_ts = now
    return "ambiguous"


def watch_late_acceptances(
    now: dt.datetime, histories: dict[Any, Any] | None = None
) -> dict[str, int]:
    """Look again for orders called REJECTED ``not_at_broker`` within :data:`LATE_WATCH`.

    A late acceptance is bound whenever it appears (``lifecycle.bind_late_acceptance``), and
    flagged for the operator. Served by ``idx_orders_not_at_broker``.
    """
    with Session(db.engine) as session:
        candidates = session.execute(
            select(Order.id, Order.account_id).where(
                Order.reject_code == "not_at_broker",  # served by idx_orders_not_at_broker
                Order.updated_ts > now - LATE_WATCH,
                Order.updated_ts <= now - RECONCILE_GRACE,  # not the ones rejected just now
            )
        ).all()
    groups: dict[int, list[Any]] = {}
    for order_id, account_id in candidates:
        groups.setdefault(account_id, []).append(order_id)

    def watch(_account_id: int, order_ids: list[Any]) -> list[str]:
        return [
            each_order(order_id, lambda s, o: _watch_one(s, o, now, histories))
            for order_id in order_ids
        ]

    counts: dict[str, int] = {}
    for outcomes in per_account(groups, watch):
        for outcome in outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _watch_one(
    session: Session, order: Order, now: dt.datetime, histories: dict[Any, Any] | None = None
) -> str:
    if order.status != OrderStatus.REJECTED or order.reject_code != "not_at_broker":
        return "settled"
    account = session.get(Account, order.account_id)
    assert account is not None
    adapter = adapter_for(account)
    request = order_request(session, order)
    if adapter.capabilities.client_order_id:
        found = _lookup(adapter, order, request)
    else:
        match = match_by_history(session, adapter, order, request, now, histories)
        found = match.order if match.kind == "found" else None
    if found is None:
        return "still_absent"
    bind_late_acceptance(order, found, now)
    intent = session.get(OrderIntent, order.intent_id)
    if intent is not None:
        intent.status = OrderStatus.SUBMITTED.value
    return "late_acceptance"


def _reject(session: Session, order: Order, now: dt.datetime, code: str, message: str) -> None:
    intent = session.get(OrderIntent, order.intent_id)
    assert intent is not None
    advance(order, OrderStatus.REJECTED, now)
    intent.status = OrderStatus.REJECTED.value
    order.reject_code = code
    order.reject_message = message
    order.lease_until = None
