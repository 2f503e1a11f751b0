"""Fills: every execution written once to ``trade.fills``, and the order's totals kept from them.

Where a fill comes from:

- **Upbit, Bithumb**: ``GET /v1/order``'s ``trades`` (a ``uuid`` per trade, price, volume; the fee
  only per order, ``paid_fee``); **Binance**: ``myTrades?orderId=`` or a FULL answer's ``fills``
  (trade id, commission and its asset). These are keyed by the broker's execution id. An answer
  that does not list executions (an open-orders page, a cancel answer) is completed with the
  adapter's ``order_with_fills`` before it is recorded (:func:`complete`: a broker call, so made
  outside the recording transaction where the caller can).
- **KIS, Kiwoom**: their histories give per order only the cumulative filled quantity and amount
  (or average price). A rise in the cumulative quantity is one fill, keyed
  ``cum:<cumulative quantity>`` — stable however often the same state is re-read, so the poller,
  the reconciler and a cancel may all see it and it is still written once — priced so that the
  order's fills add up to the broker's amount.

Charges (docs/trading-days.md §5): a fill the broker prices itself (Binance commission) keeps its
own fee. Otherwise the rise in the order's cumulative fee and tax as the broker reports them
(Upbit ``paid_fee``; Kiwoom ``ka10076`` ``tdy_trde_cmsn``/``tdy_trde_tax``) goes to the new fills,
by amount: the order's totals equal the broker's. Where the broker reports no charges for the
quantity read (KIS's order history never does; Kiwoom's for an earlier day, or when a fill landed
between its two reads) each new stock fill is charged by the KRX rule on its own amount — an
estimate, trued up later: by :func:`_true_up` when the broker reports the order's figures, and
for KIS per (day, stock) after the day by :func:`true_up_day` (``inquire-period-trade-profit``).

``net_filled_quantity`` is the filled quantity less fees charged in the base asset: a Binance buy
paying its commission in BTC adds ``qty − commission`` to the holdings.

:func:`record_fill` is the one place a fill is written (the event log hooks it); it runs in the
caller's transaction, under the order's lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, object_session

from brokers import BrokerOrder, Side
from brokers.errors import BrokerError
from brokers.krx import krx_charges
from web_server.models import CryptoMarket, Fill, Order
from web_server.services import clock, events

log = logging.getLogger(__name__)

__all__ = [
    "FillRow",
    "batch_fills",
    "broker_charges_enabled",
    "complete",
    "flush_fills",
    "order_fills",
    "record_fill",
    "reported_charges",
    "sync_fills",
    "true_up_day",
]


@dataclass(frozen=True)
class FillRow:
    """A fill about to be written: its key, size, price and charges."""

    key: str
    broker_fill_id: str | None
    ts: dt.datetime
    quantity: Decimal
    price: Decimal
    fee: Decimal | None
    tax: Decimal | None
    fee_currency: str | None


def complete(adapter: Any, recorded: Decimal | None, answer: BrokerOrder) -> BrokerOrder:
    """Return ``answer`` with its executions listed, asking the broker when it lacks them.

    Only when the broker reports more filled than ``recorded`` and the answer lists no
    executions, and only for brokers that list them (``order_with_fills``: the crypto
    exchanges); KIS and Kiwoom answers stay as they are (cumulative figures). A failed read
    leaves the answer as it was: the next read records the fills.
    """
    fetch = getattr(adapter, "order_with_fills", None)
    if (
        fetch is None
        or answer.fills is not None
        or not answer.broker_order_id
        or answer.filled_quantity <= (recorded or 0)
    ):
        return answer
    try:
        full: BrokerOrder = fetch(answer.broker_order_id, symbol=answer.symbol)
    except Exception as exc:  # noqa: BLE001 - the answer stands; the next read has the fills
        code = exc.code if isinstance(exc, BrokerError) else type(exc).__name__
        log.warning("order %s: fills unreadable (%s)", answer.broker_order_id, code)
        return answer
    newer = full.filled_quantity >= answer.filled_quantity
    return replace(
        answer,
        fills=full.fills,
        fee=full.fee,
        tax=full.tax,
        fee_asset=full.fee_asset,
        filled_quantity=max(answer.filled_quantity, full.filled_quantity),
        average_fill_price=(full.average_fill_price if newer else answer.average_fill_price)
        or answer.average_fill_price,
    )


_CACHE = "fills.batch"  # session.info: {order id: [Fill]} of a batch (see batch_fills)
_PENDING = "fills.pending"  # session.info: rows a batch writes at its end


def batch_fills(session: Session, order_ids: Sequence[Any]) -> None:
    """Read the fills of ``order_ids`` at once and defer their new fills to :func:`flush_fills`.

    For a writer that settles many orders in one transaction under their locks (the poller): one
    query instead of two per order, one multi-row insert instead of one per fill. Safe because
    every writer of an order's fills holds its lock, so the read stays the truth until the end.
    """
    cache: dict[Any, list[Fill]] = {i: [] for i in order_ids}
    if order_ids:
        for fill in session.scalars(
            select(Fill)
            .where(Fill.order_id.in_(list(order_ids)))
            .order_by(Fill.order_id, Fill.ts, Fill.broker_fill_key)
        ):
            cache[fill.order_id].append(fill)
    session.info[_CACHE] = cache
    session.info[_PENDING] = []


def flush_fills(session: Session) -> int:
    """Write the fills a batch deferred (one ``INSERT … ON CONFLICT DO NOTHING``); count them.

    Must run before the transaction commits: the event log reads this transaction's fills then.
    """
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    session.info.pop(_CACHE, None)
    if not pending:
        return 0
    # One short statement sent for every row (executemany, pipelined by psycopg), not one
    # statement with thousands of parameters, which psycopg would parse afresh each time. The
    # batch read every fill of these orders under their locks, so none is there already; the
    # conflict clause stays as the unique key's guard.
    session.execute(
        insert(Fill).on_conflict_do_nothing(index_elements=[Fill.order_id, Fill.broker_fill_key]),
        pending,
    )
    for order_id in {row["order_id"] for row in pending}:
        events.note_fill(session, order_id)
    return len(pending)


def record_fill(session: Session, order: Order, fill: Fill) -> bool:
    """Write one fill of ``order`` unless its key is already there; tell whether it was new.

    The one writer of ``trade.fills`` (``ON CONFLICT DO NOTHING`` on ``uq_fills_order_key``), in
    the caller's transaction under the order's lock: the event log hooks here. In a batch
    (:func:`batch_fills`) the row is written with the batch's others by :func:`flush_fills`.
    """
    values = {
        "fill_id": fill.fill_id,
        "order_id": order.id,
        "broker_fill_id": fill.broker_fill_id,
        "broker_fill_key": fill.broker_fill_key,
        "ts": fill.ts,
        "quantity": fill.quantity,
        "price": fill.price,
        "currency": fill.currency,
        "fee": fill.fee,
        "tax": fill.tax,
        "fee_currency": fill.fee_currency,
    }
    cache = session.info.get(_CACHE)
    if cache is not None and order.id in cache:
        if any(f.broker_fill_key == fill.broker_fill_key for f in cache[order.id]):
            return False
        fill.order_id = order.id
        cache[order.id].append(fill)  # not added to the session: the batch inserts it
        session.info[_PENDING].append(values)
        return True
    inserted = session.execute(
        insert(Fill)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Fill.order_id, Fill.broker_fill_key])
        .returning(Fill.fill_id)
    ).first()
    if inserted is None:
        return False
    events.note_fill(session, order.id)  # its fill event is written with the commit
    return True


def order_fills(session: Session, order_id: Any) -> Sequence[Fill]:
    """Return an order's fills, oldest first (from the batch's read inside a batch)."""
    cache = session.info.get(_CACHE)
    if cache is not None and order_id in cache:
        return sorted(cache[order_id], key=lambda f: (f.ts, f.broker_fill_key))
    return session.scalars(
        select(Fill).where(Fill.order_id == order_id).order_by(Fill.ts, Fill.broker_fill_key)
    ).all()


def _key(quantity: Decimal) -> str:
    return "cum:" + format(quantity.normalize(), "f")


def _new_rows(broker: BrokerOrder, have: Sequence[Fill], now: dt.datetime) -> list[FillRow]:
    """The fills the broker reports that are not written yet (charges not yet apportioned)."""
    keys = {f.broker_fill_key for f in have}
    rows: list[FillRow] = []
    if broker.fills is not None:
        for fill in broker.fills:
            key = fill.broker_fill_id or (
                f"{fill.filled_at.isoformat()}|{fill.quantity.normalize()}|{fill.price.normalize()}"
            )
            if key in keys:
                continue
            keys.add(key)
            rows.append(
                FillRow(
                    key=key,
                    broker_fill_id=fill.broker_fill_id,
                    ts=fill.filled_at,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    tax=fill.tax,
                    fee_currency=fill.fee_asset,
                )
            )
        return rows
    recorded = sum((f.quantity for f in have), Decimal(0))
    increment = broker.filled_quantity - recorded
    if increment <= 0 or broker.average_fill_price is None:
        return rows
    amount = broker.filled_quantity * broker.average_fill_price
    already = sum((f.quantity * f.price for f in have), Decimal(0))
    price = (amount - already) / increment
    if price <= 0:  # a rounded average below what is recorded: take the average itself
        price = broker.average_fill_price
    rows.append(
        FillRow(
            key=_key(broker.filled_quantity),
            broker_fill_id=None,
            ts=broker.updated_at or now,
            quantity=increment,
            price=price.quantize(Decimal("1e-8")).normalize(),
            fee=None,
            tax=None,
            fee_currency=None,
        )
    )
    return rows


def _apportion(rows: list[FillRow], total: Decimal, field: str) -> list[FillRow]:
    """Split ``total`` over the rows lacking ``field``, by amount; the last takes the remainder."""
    open_rows = [i for i, r in enumerate(rows) if getattr(r, field) is None]
    if not open_rows:
        return rows
    total = max(total, Decimal(0))
    weights = [rows[i].quantity * rows[i].price for i in open_rows]
    whole = sum(weights, Decimal(0))
    out = list(rows)
    left = total
    for n, i in enumerate(open_rows):
        if n == len(open_rows) - 1:
            share = left
        else:
            share = (total * weights[n] / whole).quantize(Decimal("1e-8")) if whole else Decimal(0)
        left -= share
        out[i] = replace(out[i], **{field: share})
    return out


def sync_fills(order: Order, broker: BrokerOrder, now: dt.datetime | None = None) -> int:
    """Write the fills ``broker`` reports that ``order`` lacks; refresh its totals; count them.

    Runs in the session that holds ``order`` (the caller's transaction, under the order's lock).
    """
    session = object_session(order)
    if session is None or order.id is None or broker.filled_quantity <= 0:
        return 0  # nothing filled: no read (most open orders, at every poll)
    have = list(order_fills(session, order.id))
    rows = _new_rows(broker, have, now or clock.now())
    base, quote = _assets(session, order)
    if rows:
        if order.crypto_market_id is None and not reported_charges(broker):
            # The broker did not report this quantity's charges (KIS's history never does;
            # Kiwoom's ka10076 only for today): each new fill is charged by the KRX rule on its
            # own amount, an estimate the broker's next figures true up (_true_up, true_up_day).
            rows = [_krx_charged(row, Side(order.side)) for row in rows]
        charge_asset = broker.fee_asset or quote
        if broker.fee is not None:
            paid = sum((f.fee or 0 for f in have), Decimal(0)) + sum(
                (r.fee for r in rows if r.fee is not None), Decimal(0)
            )
            rows = _apportion(rows, broker.fee - paid, "fee")
        if broker.tax is not None:
            taxed = sum((f.tax or 0 for f in have), Decimal(0))
            rows = _apportion(rows, broker.tax - taxed, "tax")
        written = 0
        for row in rows:
            fill = Fill(
                fill_id=uuid.uuid4(),
                broker_fill_id=row.broker_fill_id,
                broker_fill_key=row.key,
                ts=row.ts,
                quantity=row.quantity,
                price=row.price,
                currency=quote,
                fee=row.fee,
                tax=row.tax
                if row.tax is not None
                else (Decimal(0) if row.fee is not None else None),
                fee_currency=row.fee_currency or (charge_asset if row.fee is not None else None),
            )
            if record_fill(session, order, fill):
                written += 1
        have = list(order_fills(session, order.id))
    elif order.crypto_market_id is None and reported_charges(broker) and _true_up(have, broker):
        session.flush()
    _totals(order, have, base)
    return len(rows)


def broker_charges_enabled() -> bool:
    """The switch ``ORDERS_BROKER_CHARGES`` (default on): take the KRX brokers' own charges.

    Off, every KIS and Kiwoom fill keeps the KRX-rule estimate (the behaviour before the brokers'
    figures were read): the way back should a broker's figures turn out to mean something else
    than docs/trading-days.md §5 assumes.
    """
    return bool(current_app.config.get("ORDERS_BROKER_CHARGES", True))


def reported_charges(broker: BrokerOrder) -> bool:
    """Tell whether ``broker`` carries the broker's own fee and tax, to be recorded as they are."""
    return broker.fee is not None and broker.tax is not None and broker_charges_enabled()


def _true_up(have: Sequence[Fill], broker: BrokerOrder) -> bool:
    """Bring the recorded charges to the broker's cumulative figures when no fill is new.

    A fill charged by estimate (the broker's charges of its quantity were not known yet) is
    corrected once the broker reports the charges of exactly the recorded quantity: the
    difference goes to the newest fill. Tells whether anything changed.
    """
    if not have or broker.fee is None or broker.tax is None:
        return False
    if sum((f.quantity for f in have), Decimal(0)) != broker.filled_quantity:
        return False
    newest = max(have, key=lambda f: (f.ts, f.broker_fill_key))
    changed = False
    for name, total in (("fee", broker.fee), ("tax", broker.tax)):
        off = total - sum((getattr(f, name) or 0 for f in have), Decimal(0))
        if off:
            setattr(newest, name, (getattr(newest, name) or Decimal(0)) + off)
            changed = True
    return changed


def _krx_charged(row: FillRow, side: Side) -> FillRow:
    if row.fee is not None:
        return row
    fee, tax = krx_charges(side, row.quantity * row.price)
    return replace(row, fee=fee, tax=tax if row.tax is None else row.tax)


def _assets(session: Session, order: Order) -> tuple[str | None, str | None]:
    """The order's (base, quote) assets: (None, KRW) for a stock."""
    if order.crypto_market_id is None:
        return None, "KRW"
    market = session.get(CryptoMarket, order.crypto_market_id)
    return (market.base_asset, market.quote_asset) if market is not None else (None, None)


def _totals(order: Order, fills: Sequence[Fill], base: str | None) -> None:
    """Set the order's fee and tax totals, net quantity and (if missing) average from its fills."""
    if not fills:
        return
    order.fee_total = sum((f.fee or 0 for f in fills), Decimal(0))
    order.tax_total = sum((f.tax or 0 for f in fills), Decimal(0))
    currencies = {f.fee_currency for f in fills if f.fee_currency}
    order.fee_currency = currencies.pop() if len(currencies) == 1 else order.fee_currency
    in_base = sum(
        (f.fee or 0 for f in fills if base is not None and f.fee_currency == base), Decimal(0)
    )
    filled = max(order.filled_quantity or Decimal(0), sum((f.quantity for f in fills), Decimal(0)))
    order.net_filled_quantity = filled - in_base
    if order.average_fill_price is None:
        # A broker answer without a price (a cancel that reports fills): the fills' average.
        quantity = sum((f.quantity for f in fills), Decimal(0))
        if quantity > 0:
            order.average_fill_price = (
                sum((f.quantity * f.price for f in fills), Decimal(0)) / quantity
            )


def true_up_day(
    session: Session, orders: Sequence[Order], charges: dict[str, tuple[Decimal, Decimal]]
) -> int:
    """True the estimated charges of one account's KST day up to the broker's, per stock.

    ``orders`` are the account's stock orders of the day (locked by the caller); ``charges`` the
    broker's (commission, tax) of the day per stock (KIS ``inquire-period-trade-profit``). For a
    stock whose fills' sums differ, the difference is spread over its fills in whole won
    (:func:`_spread`) and the orders' totals are recomputed. A stock the broker does not list is
    left as it is. Returns how many fills changed.
    """
    by_symbol: dict[str, list[Fill]] = {}
    owner: dict[Any, Order] = {}
    for order in orders:
        for fill in order_fills(session, order.id):
            by_symbol.setdefault(order.symbol, []).append(fill)
            owner[fill.fill_id] = order
    changed: set[Any] = set()
    for symbol, fills in by_symbol.items():
        if symbol not in charges:
            continue
        for name, total in zip(("fee", "tax"), charges[symbol], strict=True):
            off = total - sum((getattr(f, name) or 0 for f in fills), Decimal(0))
            for fill, moved in zip(fills, _spread(off, fills), strict=True):
                if moved:
                    setattr(fill, name, (getattr(fill, name) or Decimal(0)) + moved)
                    changed.add(fill.fill_id)
    touched = {owner[i].id for i in changed}
    if touched:
        session.flush()
        for order in orders:
            if order.id in touched:
                _totals(order, order_fills(session, order.id), None)
    return len(changed)


def _spread(off: Decimal, fills: Sequence[Fill]) -> list[Decimal]:
    """Split ``off`` (won) over ``fills`` so that the estimate's own error explains each share.

    The KRX-rule estimate of a fill that spans k executions is at most k − 1 won above the
    broker's (it truncates the sum once, the broker each execution), and k is at most the fill's
    quantity. So an estimate too high is taken back from fills in proportion to ``quantity − 1``
    and never more than that from one fill (a one-share fill was exact); the largest remainders
    get the odd won. What the estimate cannot explain (the broker charged more, or more than
    every fill's bound) is spread by amount, so it stays visible as a rate question.
    """
    units = int(abs(off))
    step = Decimal(1 if off > 0 else -1)
    shares = [0] * len(fills)
    if units and off < 0:
        caps = [max(int(f.quantity) - 1, 0) for f in fills]
        shares = _largest_remainder(min(units, sum(caps)), caps, caps)
        units -= sum(shares)
    if units:
        weights = [f.quantity * f.price for f in fills]
        extra = _largest_remainder(units, weights, None)
        shares = [a + b for a, b in zip(shares, extra, strict=True)]
    moved = [step * n for n in shares]
    fraction = off - step * int(abs(off))
    if fraction and fills:  # a fraction of a won (never from whole-won figures): the largest fill
        largest = max(range(len(fills)), key=lambda i: fills[i].quantity * fills[i].price)
        moved[largest] += fraction
    return moved


def _largest_remainder(units: int, weights: Sequence[Any], caps: Sequence[int] | None) -> list[int]:
    """``units`` split in proportion to ``weights`` (whole numbers, within ``caps``)."""
    whole = sum(weights)
    if not units or not whole:
        return [0] * len(weights)
    exact = [Decimal(units) * Decimal(w) / Decimal(whole) for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    left = units - sum(shares)
    while left > 0:
        progressed = False
        for i in order:
            if left and (caps is None or shares[i] < caps[i]):
                shares[i] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return shares
