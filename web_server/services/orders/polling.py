"""Polling: moving open orders forward from what their brokers report (DESIGN §4).

``poll_open_orders`` (a leader job) reads the open orders of each account at its broker in as few
calls as the broker allows, then records fills, cancels and lapses one order per transaction
under the order's advisory lock, so it never races the request, the reconciler or a cancel:

- KIS and Kiwoom: one complete read of each KST day that has open orders (``day_orders``: the
  day's history, every page), so 2,000 open orders of today cost one paged call, not 2,000.
  An open order of a past day comes back EXPIRED (day orders lapse at the close).
- Upbit, Bithumb, Binance: one read of the account's open orders (``open_orders``); an order
  missing from it has closed and is read on its own.

The candidates come from ``idx_orders_open`` (a partial index of open orders by account and
creation time), so the pass costs the same with 10 k or 1 M closed orders stored.

Two bounds keep an order from being polled for ever:

- an order older than :data:`HISTORY_WINDOW` (beyond what the brokers' order histories keep) is
  no longer asked about and gets ``attention`` (``beyond_history_window``);
- an order the broker reports unknown (not in its day's complete history, or the exchange's
  "unknown order") gets ``attention`` (``not_found_at_broker``).

The poller skips orders with ``attention``: the operator decides. A CANCEL_PENDING order whose
cancel was sent :func:`~web_server.services.orders.cancel.cancel_recheck` ago or more and that
the broker still shows open goes back to its open state (``reopen_after_lost_cancel``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from brokers import BrokerOrder
from brokers.statuses import OPEN_STATUSES, OrderStatus
from web_server.errors import OrderNotFound, is_database_unavailable
from web_server.extensions import db
from web_server.locks import lock_key
from web_server.models import Account, CryptoMarket, Order
from web_server.services import clock
from web_server.services.brokers import adapter_for
from web_server.services.orders.cancel import cancel_recheck
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    apply_answer,
    broker_identity,
    reopen_after_lost_cancel,
)

log = logging.getLogger(__name__)

#: How far back the brokers' order histories reach for the poller: KIS ``inquire-daily-ccld``
#: TTTC0081R covers three months; the others keep at least that. Older orders are flagged.
HISTORY_WINDOW = dt.timedelta(days=90)
#: How long after it was bound an order may be missing from its broker's read before it is
#: flagged (a history can lag its order desk by a moment).
NOT_FOUND_GRACE = dt.timedelta(seconds=60)
_OPEN = sorted(s.value for s in OPEN_STATUSES)


def order_number_key(value: Any) -> str:
    """An order number without its zero padding (KIS and Kiwoom pad to varying widths)."""
    return str(value or "").strip().lstrip("0")


BATCH = 500


def open_order_rows(session: Session, *, account_id: int | None = None) -> list[Any]:
    """Return what the poller needs of the open orders to poll, per account, oldest first.

    Served by ``idx_orders_open``; orders the operator must look at are left out.
    """
    statement = (
        select(
            Order.id,
            Order.account_id,
            Order.created_ts,
            Order.broker_order_date,
            Order.broker_order_id,
            Order.symbol,
            Order.crypto_market_id,
            Order.status,
            Order.filled_quantity,
        )
        .where(Order.status.in_(_OPEN), Order.attention.is_(None))
        .order_by(Order.account_id, Order.created_ts)
    )
    if account_id is not None:
        statement = statement.where(Order.account_id == account_id)
    return list(session.execute(statement).all())


def poll_open_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Refresh open orders from their brokers (fills, cancels, lapses); count the outcomes.

    Orders whose broker row says nothing new are counted ``unchanged`` without being locked or
    written; the others are settled in batches of :data:`BATCH`, each one transaction holding
    its orders' advisory locks (transaction-scoped: the same keys as ``order_lock``).
    """
    now = now or clock.now()
    with Session(db.engine) as session:
        rows = open_order_rows(session)
        wanted = {r.account_id for r in rows}
        accounts = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(wanted)))}
        session.expunge_all()
    counts: dict[str, int] = {}
    for account_id, group in itertools.groupby(rows, key=lambda r: r.account_id):
        orders = list(group)
        account = accounts[account_id]
        try:
            lookup = _account_reader(account, orders, now)
        except Exception as exc:  # noqa: BLE001 - one broker's failure must not stop the others
            log.warning("poll: account %s unreadable (%s)", account_id, type(exc).__name__)
            counts["unreadable"] = counts.get("unreadable", 0) + len(orders)
            continue
        work: list[tuple[Any, _Answer]] = []
        for row in orders:
            if _unchanged(row, lookup, now):
                counts["unchanged"] = counts.get("unchanged", 0) + 1
                continue
            try:  # broker calls happen here, outside any transaction
                answer = _answer_for(row, lookup, now)
            except Exception as exc:  # noqa: BLE001 - one bad order must not stop the job
                log.warning("order %s: unreadable (%s)", row.id, type(exc).__name__)
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            work.append((row.id, answer))
        for start in range(0, len(work), BATCH):
            for outcome, n in _settle_batch(work[start : start + BATCH], now).items():
                counts[outcome] = counts.get(outcome, 0) + n
    return counts


def _unchanged(row: Any, lookup: Lookup, now: dt.datetime) -> bool:
    """Tell, from the broker's read alone, that polling would not change the order."""
    if row.broker_order_id is None or row.created_ts < now - HISTORY_WINDOW:
        return False
    if row.status == OrderStatus.CANCEL_PENDING.value:
        return False  # its cancel may need a re-check against the clock
    try:
        answer = lookup.peek(row)
    except Exception:  # noqa: BLE001 - the settling pass reports it
        return False
    return (
        answer is not None
        and answer.status.value == row.status
        and answer.filled_quantity == row.filled_quantity
    )


class _Answer:
    """The broker's row of an order (None: absent from a complete read), or "too old to ask"."""

    def __init__(self, row: BrokerOrder | None, *, beyond_window: bool = False) -> None:
        self.row, self.beyond_window = row, beyond_window


def _answer_for(row: Any, lookup: Lookup, now: dt.datetime) -> _Answer:
    if row.broker_order_id is None or row.created_ts < now - HISTORY_WINDOW:
        return _Answer(None, beyond_window=True)
    answer = lookup(row)
    if answer is not None and lookup.adapter is not None:
        # New fills on a crypto order: its executions are read now, outside the transaction.
        answer = complete(lookup.adapter, row.filled_quantity, answer)
    return _Answer(answer)


def _settle_batch(work: list[tuple[Any, _Answer]], now: dt.datetime) -> dict[str, int]:
    """Record a batch of answers in one transaction under the orders' (transaction) locks.

    Nothing here calls a broker: the answers were read before, so one transaction is safe.
    """
    answers = dict(work)
    ids = list(answers)
    counts: dict[str, int] = {}
    try:
        with Session(db.engine, expire_on_commit=False) as session, session.begin():
            keys = {lock_key("order", str(i)): i for i in ids}
            got = session.execute(
                text(
                    "SELECT k FROM unnest(CAST(:keys AS bigint[])) k"
                    " WHERE pg_try_advisory_xact_lock(k)"
                ),
                {"keys": list(keys)},
            ).scalars()
            free = [keys[k] for k in got]
            counts["busy"] = len(ids) - len(free)
            orders = session.scalars(
                select(Order).where(Order.id.in_(free)).with_for_update(skip_locked=True)
            ).all()
            for order in orders:
                outcome = _poll_one(order, now, answers[order.id])
                counts[outcome] = counts.get(outcome, 0) + 1
    except Exception as exc:  # noqa: BLE001 - the next pass tries again
        if not is_database_unavailable(exc):
            raise
        log.warning("poll: database unavailable (%s)", type(exc).__name__)
        counts = {"db_unavailable": len(ids)}
    return {k: v for k, v in counts.items() if v}


class Lookup:
    """What one read of an account's orders at its broker says about each of them.

    ``peek`` answers from the read alone (None: not in it); calling it may also ask the broker
    for an order the read lacks (bound after the read, or closed since: crypto).
    """

    def __init__(
        self,
        read: Mapping[Any, Mapping[str, BrokerOrder]],
        fetch: Callable[[Order], BrokerOrder | None],
        *,
        by_day: bool,
        adapter: Any = None,
    ) -> None:
        self._read, self._fetch, self._by_day = read, fetch, by_day
        #: The account's adapter, which lists an order's executions where its broker does.
        self.adapter = adapter

    def key(self, order: Any) -> str:
        """The order's key in the read: its number (by day), or market and id (crypto)."""
        number = order_number_key(order.broker_order_id)
        return number if self._by_day else f"{order.crypto_market_id}:{number}"

    def peek(self, order: Any) -> BrokerOrder | None:
        """Return the order's row in the read, or None when the read lacks it."""
        scope = self._read.get(order.broker_order_date if self._by_day else None)
        return None if scope is None else scope.get(self.key(order))

    def __call__(self, order: Order) -> BrokerOrder | None:
        """Return the broker's row of the order, asking for it alone if the read lacks it."""
        found = self.peek(order)
        if found is not None:
            return found
        scope = self._read.get(order.broker_order_date if self._by_day else None)
        if self._by_day and scope is not None:
            return None  # the day was read completely and does not have it
        return self._fetch(order)


def _account_reader(account: Account, orders: list[Any], now: dt.datetime) -> Lookup:
    """Read the account's open orders at the broker in one call (per KST day for securities)."""
    adapter = adapter_for(account)
    horizon = now - HISTORY_WINDOW

    def fetch(order: Order) -> BrokerOrder | None:
        try:
            return adapter.get_order(order.broker_order_id, **broker_identity(db.session, order))
        except OrderNotFound:
            return None

    if account.account_type == "SECURITIES_STOCK":
        days = sorted(
            {r.broker_order_date for r in orders if r.broker_order_date and r.created_ts > horizon}
        )
        read: dict[Any, Mapping[str, BrokerOrder]] = {
            day: {order_number_key(o.broker_order_id): o for o in adapter.day_orders(day)}
            for day in days
        }
        return Lookup(read, fetch, by_day=True, adapter=adapter)
    # Binance ids are per symbol: an open order is keyed by its market and id.
    markets = {
        m.symbol: m.id
        for m in db.session.scalars(
            select(CryptoMarket).where(
                CryptoMarket.id.in_({r.crypto_market_id for r in orders if r.crypto_market_id})
            )
        )
    }
    open_now = {
        f"{markets.get(o.symbol)}:{order_number_key(o.broker_order_id)}": o
        for o in adapter.open_orders()
    }
    return Lookup({None: open_now}, fetch, by_day=False, adapter=adapter)


def _poll_one(order: Order, now: dt.datetime, read: _Answer) -> str:
    if order.status not in _OPEN or order.attention is not None:
        return "settled"
    if order.broker_order_id is None:
        return "no_broker_id"
    if read.beyond_window:
        order.attention = {
            "reason": "beyond_history_window",
            "detail": "Older than the broker's order history: no longer polled.",
        }
        order.updated_ts = now
        return "beyond_window"
    answer = read.row
    if answer is None:
        if (order.submitted_ts or order.created_ts) > now - NOT_FOUND_GRACE:
            return "not_yet_shown"
        order.attention = {
            "reason": "not_found_at_broker",
            "detail": "The broker's complete read of the order's day lacks it: no longer polled.",
        }
        order.updated_ts = now
        log.error("order %s: no longer found at its broker; flagged", order.id)
        return "not_found"
    if order.status == OrderStatus.CANCEL_PENDING and answer.status in (
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
    ):
        sent = order.cancel_requested_ts or order.updated_ts
        if now - sent >= cancel_recheck() and reopen_after_lost_cancel(order, answer, now):
            return "reopened"
    before = order.status
    apply_answer(order, answer, now)
    return order.status if order.status != before else "unchanged"
