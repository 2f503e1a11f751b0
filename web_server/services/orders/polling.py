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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from brokers import BrokerOrder, kst_date
from brokers.statuses import OPEN_STATUSES, OrderStatus
from web_server.errors import OrderNotFound, is_database_unavailable
from web_server.extensions import db
from web_server.locks import lock_key
from web_server.models import Account, CryptoMarket, Fill, Order
from web_server.services import clock
from web_server.services.brokers import adapter_for
from web_server.services.orders.cancel import cancel_recheck
from web_server.services.orders.fills import (
    batch_fills,
    broker_charges_enabled,
    complete,
    flush_fills,
    true_up_day,
)
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
            Order.fee_total,
            Order.tax_total,
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
    groups = {
        account_id: list(group)
        for account_id, group in itertools.groupby(rows, key=lambda r: r.account_id)
    }
    counts: dict[str, int] = {}
    for found in per_account(
        groups, lambda account_id, orders: _poll_account(accounts[account_id], orders, now)
    ):
        for outcome, n in found.items():
            counts[outcome] = counts.get(outcome, 0) + n
    trued = true_up_charges(now)
    if trued:
        counts["charges_trued_up"] = trued
    return counts


#: How many past KST days the charges true-up looks back over (a fill recorded late still gets
#: the broker's figures; KIS keeps them far longer).
TRUE_UP_DAYS = 7
#: (account, KST day) → (fills, quantity) when its charges were last trued up in this process: a
#: day is asked about again only when a fill was added since. A restart asks once more, which
#: changes nothing when the figures already agree.
_trued: dict[tuple[int, dt.date], tuple[int, Any]] = {}


def true_up_charges(now: dt.datetime) -> int:
    """True the estimated charges of each finished KST day up to the broker's own figures.

    For the securities accounts whose adapter reads charges per day (KIS ``day_charges``:
    ``inquire-period-trade-profit``, per day and stock), each day of the last
    :data:`TRUE_UP_DAYS` with fills, once it is over (KST), once per change of its fills. One
    transaction per account-day under its orders' advisory locks; a busy order or a failed read
    leaves the day for the next pass. Returns how many fills changed.
    """
    if not broker_charges_enabled():
        return 0
    today = kst_date(now)
    changed = 0
    with Session(db.engine) as session:
        accounts = session.scalars(
            select(Account).where(
                Account.account_type == "SECURITIES_STOCK", Account.is_active.is_(True)
            )
        ).all()
        session.expunge_all()
    for account in accounts:
        adapter = adapter_for(account)
        read = getattr(adapter, "day_charges", None)
        if read is None:
            continue  # the broker reports charges per order (Kiwoom): nothing to true up
        for day, signature in _days_with_fills(account.id, today):
            if _trued.get((account.id, day)) == signature:
                continue
            try:
                charges = read(day)
            except Exception as exc:  # noqa: BLE001 - the estimates stand until the next pass
                log.warning("true-up: account %s %s unreadable (%s)", account.id, day, exc)
                continue
            done = _true_up_account_day(account.id, day, charges)
            if done is not None:
                changed += done
                _trued[(account.id, day)] = signature
    return changed


def _days_with_fills(account_id: int, today: dt.date) -> list[tuple[dt.date, tuple[int, Any]]]:
    """The account's finished KST days with stock fills: (day, (fills, quantity)), oldest first."""
    with Session(db.engine) as session:
        rows = session.execute(
            select(Order.broker_order_date, func.count(Fill.fill_id), func.sum(Fill.quantity))
            .join(Fill, Fill.order_id == Order.id)
            .where(
                Order.account_id == account_id,
                Order.broker_order_date >= today - dt.timedelta(days=TRUE_UP_DAYS),
                Order.broker_order_date < today,
            )
            .group_by(Order.broker_order_date)
            .order_by(Order.broker_order_date)
        ).all()
    return [(day, (int(n), quantity)) for day, n, quantity in rows]


def _true_up_account_day(account_id: int, day: dt.date, charges: dict[str, Any]) -> int | None:
    """Apply the broker's day figures in one transaction; None when an order was busy."""
    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        ids = session.scalars(
            select(Order.id).where(Order.account_id == account_id, Order.broker_order_date == day)
        ).all()
        keys = [lock_key("order", str(i)) for i in ids]
        got = session.execute(
            text(
                "SELECT count(*) FROM unnest(CAST(:keys AS bigint[])) k"
                " WHERE pg_try_advisory_xact_lock(k)"
            ),
            {"keys": keys},
        ).scalar_one()
        if got != len(keys):
            return None  # a writer holds one of them: the next pass
        orders = session.scalars(select(Order).where(Order.id.in_(ids)).with_for_update()).all()
        return true_up_day(session, orders, charges)


def per_account(groups: Mapping[Any, Any], work: Callable[[Any, Any], Any]) -> list[Any]:
    """Run ``work(account_id, items)`` for each account, several accounts at a time.

    The accounts' brokers answer independently, so one slow broker (or one with thousands of
    open orders) does not hold the others' pass up. Each account's items stay in order, in one
    thread with an app context of its own. ``ORDERS_JOB_ACCOUNT_WORKERS`` (default 4) bounds
    the threads, and so the database connections the job takes.
    """
    if not groups:
        return []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    workers = max(1, int(app.config.get("ORDERS_JOB_ACCOUNT_WORKERS", 4)))
    if workers == 1 or len(groups) == 1:
        return [work(key, items) for key, items in groups.items()]

    def run(key: Any) -> Any:
        with app.app_context():
            return work(key, groups[key])

    with ThreadPoolExecutor(min(workers, len(groups)), thread_name_prefix="orders-job") as pool:
        return list(pool.map(run, list(groups)))


def _poll_account(account: Account, orders: list[Any], now: dt.datetime) -> dict[str, int]:
    """Poll one account's open orders: one broker read, then batches of the changed ones."""
    counts: dict[str, int] = {}
    try:
        lookup = _account_reader(account, orders, now)
    except Exception as exc:  # noqa: BLE001 - one broker's failure must not stop the others
        log.warning("poll: account %s unreadable (%s)", account.id, type(exc).__name__)
        return {"unreadable": len(orders)}
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
        and not _charges_to_true_up(row, answer)
    )


def _charges_to_true_up(row: Any, answer: BrokerOrder) -> bool:
    """A stock order charged by estimate whose broker now reports other charges (Kiwoom)."""
    if row.crypto_market_id is not None or not row.filled_quantity:
        return False
    if answer.fee is None or answer.tax is None or not broker_charges_enabled():
        return False
    return (answer.fee, answer.tax) != (row.fee_total or 0, row.tax_total or 0)


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
            # The batch's fills are read in one query and written in one insert (not two
            # reads and a write per order): the orders are locked, so no one else adds any.
            batch_fills(session, [o.id for o in orders])
            for order in orders:
                outcome = _poll_one(order, now, answers[order.id])
                counts[outcome] = counts.get(outcome, 0) + 1
            flush_fills(session)
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
