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

Charges: a fill the broker prices itself (Binance commission) keeps its own fee. Otherwise the
rise in the order's cumulative fee and tax (Upbit ``paid_fee``; for KIS and Kiwoom the adapters'
KRX-rule figures: the commission and the 0.20 % sell tax, truncated to the won) is apportioned to
the new fills by amount. So the order's totals always equal what the broker reports.

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

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, object_session

from brokers import BrokerOrder, Side
from brokers.errors import BrokerError
from brokers.krx import krx_charges
from web_server.models import CryptoMarket, Fill, Order
from web_server.services import clock, events

log = logging.getLogger(__name__)

__all__ = ["FillRow", "complete", "order_fills", "record_fill", "sync_fills"]


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


def record_fill(session: Session, order: Order, fill: Fill) -> bool:
    """Write one fill of ``order`` unless its key is already there; tell whether it was new.

    The one writer of ``trade.fills`` (``ON CONFLICT DO NOTHING`` on ``uq_fills_order_key``), in
    the caller's transaction under the order's lock: the event log hooks here.
    """
    inserted = session.execute(
        insert(Fill)
        .values(
            fill_id=fill.fill_id,
            order_id=order.id,
            broker_fill_id=fill.broker_fill_id,
            broker_fill_key=fill.broker_fill_key,
            ts=fill.ts,
            quantity=fill.quantity,
            price=fill.price,
            currency=fill.currency,
            fee=fill.fee,
            tax=fill.tax,
            fee_currency=fill.fee_currency,
        )
        .on_conflict_do_nothing(index_elements=[Fill.order_id, Fill.broker_fill_key])
        .returning(Fill.fill_id)
    ).first()
    if inserted is None:
        return False
    events.note_fill(session, order.id)  # its fill event is written with the commit
    return True


def order_fills(session: Session, order_id: Any) -> Sequence[Fill]:
    """Return an order's fills, oldest first."""
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
        if order.crypto_market_id is None:
            # A stock's fills are derived from cumulative figures; each is charged by the KRX
            # rule on its own amount, as the brokers truncate per execution.
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
    _totals(order, have, base)
    return len(rows)


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
