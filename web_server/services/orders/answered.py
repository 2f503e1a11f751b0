"""Recording the most common answer, a resting order's acceptance, in two statements.

Most orders the broker accepts rest on its book: the answer carries the broker's number and
nothing filled. Recording it through the ORM (``submission._write``: the order read ``FOR
UPDATE``, changed, flushed, its event captured from the flush and written by the commit hook)
was a fifth of the gateway's CPU per order and six round trips (issue 12). Here it is:

1. one UPDATE, only while the order is still PENDING_SUBMIT with nothing filled, that writes
   what ``lifecycle.apply_answer`` writes for such an answer and returns the row;
2. one statement that updates the intent, releases the order's advisory lock (the row lock of
   step 1 keeps everyone off until the commit) and writes the ``submitted`` event with the
   order's view made from that row (``events.WRITE_ONE_EVENT``).

Anything else — an answer with fills, another status, an order someone else moved — takes the
ORM's way (``record`` returns None and nothing was written).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from brokers import BrokerOrder, kst_date
from web_server.models import Order, OrderStatus
from web_server.services import events

#: ``lifecycle.apply_answer`` for a resting order's acceptance, and the end of its lease
#: (``submission._write``). Old values on the right: the date is bound with the number only.
_ANSWER = text(
    "UPDATE trade.orders SET broker_order_id = coalesce(broker_order_id, :broker_order_id),"
    " broker_order_date = CASE WHEN broker_order_id IS NULL AND symbol IS NOT NULL"
    " THEN CAST(:order_date AS date) ELSE broker_order_date END,"
    " status = 'SUBMITTED', reject_code = NULL, reject_message = NULL,"
    " average_fill_price = coalesce(CAST(:average_price AS numeric), average_fill_price),"
    " raw = coalesce(CAST(:raw AS jsonb), raw), submitted_ts = coalesce(submitted_ts, :now),"
    " updated_ts = :now, lease_until = :now"
    " WHERE id = :id AND status = 'PENDING_SUBMIT' AND filled_quantity = 0 RETURNING *"
)
#: The intent, the lock and the event. The unlock runs although nothing reads its CTE:
#: data-modifying CTEs always run to completion, RETURNING included.
_INTENT = (
    "WITH written_order AS (SELECT CAST(:order_id AS uuid) AS id,"
    " CAST(:account_id AS integer) AS account_id),"
    " intent AS (UPDATE trade.order_intents SET status = 'SUBMITTED', updated_ts = :now"
    " WHERE intent_id = :intent_id"
    " RETURNING CASE WHEN :unlock THEN pg_advisory_unlock(:key) END),"
)
_INTENT_AND_EVENT = text(_INTENT + events.WRITE_ONE_EVENT)


def is_resting(answer: BrokerOrder) -> bool:
    """Tell whether ``answer`` is an acceptance with nothing filled (this module's case)."""
    status = answer.status
    if status in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        status = OrderStatus.SUBMITTED  # the broker has it: that is what we learned
    return status == OrderStatus.SUBMITTED and answer.filled_quantity <= 0


def record(
    session: Session,
    order_id: Any,
    answer: BrokerOrder,
    now: dt.datetime,
    *,
    unlock_key: int | None,
) -> Order | None:
    """Record a resting order's acceptance in ``session``'s transaction; None: not this case.

    ``unlock_key``: the order's advisory lock, held by this session's connection, to release
    with the intent's update (None: not held).
    """
    row = session.execute(
        _ANSWER,
        {
            "id": order_id,
            "broker_order_id": answer.broker_order_id,
            "order_date": kst_date(answer.created_at or now),
            "average_price": answer.average_fill_price,
            "raw": json.dumps(dict(answer.raw), default=str) if answer.raw else None,
            "now": now,
        },
    ).one_or_none()
    if row is None:
        return None
    order = Order(**row._mapping)  # transient: the answer's view, never flushed
    session.execute(
        _INTENT_AND_EVENT,
        {
            "order_id": order.id,
            "account_id": order.account_id,
            "intent_id": order.intent_id,
            "now": now,
            "unlock": unlock_key is not None,
            "key": unlock_key or 0,
            "event_type": "submitted",
            "event_payload": events.payload_json(session, order),
            "channel": events.CHANNEL,
        },
    )
    return order
