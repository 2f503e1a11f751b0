"""Recording the most common answer, a resting order's acceptance, in one statement.

Most orders the broker accepts rest on its book: the answer carries the broker's number and
nothing filled. Recording it through the ORM (``submission._write``: BEGIN, the order read ``FOR
UPDATE``, changed, flushed, the intent updated, the event captured from the flush and written by
the commit hook, COMMIT) was a fifth of the gateway's CPU per order and six round trips (issue
12). Here it is one statement, its own transaction:

- the order's UPDATE, only while it is still PENDING_SUBMIT with nothing filled, writing what
  ``lifecycle.apply_answer`` writes for such an answer and ending the lease;
- the intent's status, and the release of the order's advisory lock (held by this connection
  since the claim);
- the ``submitted`` event (``events.WRITE_ONE_EVENT``), written only if the order was.

The event's view, and the order answered to the client, are the claimed row (``Held.claimed``:
no one else writes the order while its lock is held) with the same changes made in Python
(:func:`_answered`). If the UPDATE matched nothing — the order moved after all — nothing at all
was written, the lock is still held, and the caller takes the ORM's way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from brokers import BrokerOrder, kst_date
from web_server.models import Order, OrderStatus
from web_server.services import events

#: Old values on the right of SET: the date is bound together with the number only.
_ORDER_AND_INTENT = (
    "WITH updated AS (UPDATE trade.orders SET"
    " broker_order_id = coalesce(broker_order_id, :broker_order_id),"
    " broker_order_date = CASE WHEN broker_order_id IS NULL AND symbol IS NOT NULL"
    " THEN CAST(:order_date AS date) ELSE broker_order_date END,"
    " status = 'SUBMITTED', reject_code = NULL, reject_message = NULL,"
    " average_fill_price = coalesce(CAST(:average_price AS numeric), average_fill_price),"
    " raw = coalesce(CAST(:raw AS jsonb), raw), submitted_ts = coalesce(submitted_ts, :now),"
    " updated_ts = :now, lease_until = :now"
    " WHERE id = :id AND status = 'PENDING_SUBMIT' AND filled_quantity = 0"
    " RETURNING id, account_id, intent_id),"
    # The unlock runs although nothing reads this CTE: data-modifying CTEs always run to
    # completion, RETURNING included.
    " intent AS (UPDATE trade.order_intents SET status = 'SUBMITTED', updated_ts = :now"
    " FROM updated WHERE trade.order_intents.intent_id = updated.intent_id"
    " RETURNING pg_advisory_unlock(:key)),"
    " written_order AS (SELECT id, account_id FROM updated),"
)
_RECORD = text(_ORDER_AND_INTENT + events.WRITE_ONE_EVENT)


def is_resting(answer: BrokerOrder) -> bool:
    """Tell whether ``answer`` is an acceptance with nothing filled (this module's case)."""
    status = answer.status
    if status in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        status = OrderStatus.SUBMITTED  # the broker has it: that is what we learned
    return status == OrderStatus.SUBMITTED and answer.filled_quantity <= 0


def record(
    session: Session,
    claimed: Mapping[str, Any],
    answer: BrokerOrder,
    now: dt.datetime,
    *,
    unlock: int,
) -> Order | None:
    """Record a resting order's acceptance in one statement; None: nothing was written.

    Args:
        session: a session outside any transaction, on the connection holding the order's lock.
        claimed: the order's row as claimed (``Held.claimed``).
        answer: the broker's answer (:func:`is_resting`).
        now: the gateway's time of the answer.
        unlock: the order's advisory lock, released with the write.
    """
    raw = json.dumps(dict(answer.raw), default=str) if answer.raw else None
    order = _answered(claimed, answer, now, raw)
    written = session.execute(
        _RECORD,
        {
            "id": order.id,
            "broker_order_id": answer.broker_order_id,
            "order_date": kst_date(answer.created_at or now),
            # apply_fills: a zero average is no average (``or``), in SQL as in _answered.
            "average_price": answer.average_fill_price or None,
            "raw": raw,
            "now": now,
            "key": unlock,
            "event_type": "submitted",
            "event_payload": events.payload_json(session, order),
            "channel": events.CHANNEL,
        },
    ).first()
    return order if written is not None else None


def _answered(
    claimed: Mapping[str, Any], answer: BrokerOrder, now: dt.datetime, raw: str | None
) -> Order:
    """The claimed row with the changes :data:`_RECORD` makes, as a transient order."""
    row = dict(claimed)
    if row["broker_order_id"] is None:
        row["broker_order_id"] = answer.broker_order_id
        if row["symbol"] is not None:
            row["broker_order_date"] = kst_date(answer.created_at or now)
    row |= {
        "status": OrderStatus.SUBMITTED.value,
        "reject_code": None,
        "reject_message": None,
        "average_fill_price": answer.average_fill_price or row["average_fill_price"],
        "raw": json.loads(raw) if raw is not None else row["raw"],
        "submitted_ts": row["submitted_ts"] or now,
        "updated_ts": now,
        "lease_until": now,
    }
    return Order(**row)  # transient: the answer's view, never flushed
