"""The order event log: written with every change of an order, read in commit order.

Writers call :func:`record` (or :func:`record_change`, which names the event from the status
moved from and to) in the session whose transaction changes the order. The event is held on
the session and written by a ``before_commit`` hook, right before that transaction commits:

1. ``UPDATE trade.order_event_counter SET last_id = last_id + n RETURNING last_id`` takes the
   next ``n`` ids and the counter's row lock;
2. the events are inserted with those ids;
3. ``pg_notify('order_events', last_id)`` wakes the listeners — PostgreSQL delivers it at commit,
   so a listener never hears of an event it cannot read yet.

The row lock is held from step 1 to the commit, so transactions writing events commit one at a
time, in id order: a reader that sees event ``N`` sees every event below it, ids have no gaps
(a rolled-back transaction returns its ids with the lock), and "everything after ``N``" is a
safe place to resume. A sequence would not give that (a transaction holding a lower value can
commit after one holding a higher value, and a reader resuming after the higher one would never
see the lower one). Taking the ids in ``before_commit`` rather than when the event is recorded
keeps the lock for the span of an INSERT and a commit, never across a broker call that the
writer's transaction may still make.

A change and its event are one transaction: both commit, or neither does. If the transaction
rolls back, the pending events are dropped with it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from brokers.statuses import OrderStatus
from web_server.models import Order, OrderEvent, OrderEventCounter
from web_server.models.events import EVENT_TYPES

__all__ = [
    "CHANNEL",
    "EVENT_TYPES",
    "Event",
    "events_after",
    "jsonable",
    "latest_id",
    "record",
    "record_change",
    "transition_type",
]

#: The PostgreSQL channel the writers notify and each process's listener listens on.
CHANNEL = "order_events"
_PENDING = "gateway.pending_order_events"
_TOUCHED = "gateway.orders_touched"

#: The event that says an order reached a status.
_STATUS_EVENT = {
    OrderStatus.PENDING_SUBMIT: "accepted",
    OrderStatus.SUBMITTED: "submitted",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.PARTIALLY_FILLED: "partially_filled",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCEL_PENDING: "cancel_requested",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class Event:
    """One event as the API serves it; ``data`` is its JSON text, made once for every reader."""

    id: int
    account_id: int
    type: str
    data: str


def transition_type(old: str | None, new: str) -> str | None:
    """Return the event a status move is, or None when the status did not change.

    ``None`` → a status: the order was created (``accepted`` for PENDING_SUBMIT). An UNKNOWN
    order that comes out of it, and a REJECTED ``not_at_broker`` one the broker turns out to hold
    (a late acceptance), are ``reconciled``: the gateway learned where the order stands.
    """
    if old == new:
        return None
    target = OrderStatus(new)
    if (
        old is not None
        and OrderStatus(old) in (OrderStatus.UNKNOWN, OrderStatus.REJECTED)
        and (target not in (OrderStatus.UNKNOWN, OrderStatus.REJECTED, OrderStatus.PENDING_SUBMIT))
    ):
        return "reconciled"
    return _STATUS_EVENT[target]


def record_change(
    session: Session,
    order: Order,
    old_status: str | None,
    *,
    view: Mapping[str, Any] | None = None,
) -> str | None:
    """Record the event of ``order`` having moved from ``old_status`` to its status now.

    The one call a writer makes per state change: nothing is recorded when the status is the
    same. Returns the event type recorded, or None.
    """
    kind = transition_type(old_status, order.status)
    if kind is not None:
        record(session, order, kind, view=view)
    return kind


def record(
    session: Session,
    order: Order,
    type: str,  # noqa: A002 - the event's field is called type
    *,
    view: Mapping[str, Any] | None = None,
    fill: Any = None,
) -> None:
    """Record an event of ``order`` in ``session``'s transaction (written at its commit).

    Args:
        session: the session whose transaction changed the order.
        order: the order, as changed.
        type: one of :data:`EVENT_TYPES`.
        view: the order's API view after the change; by default built from ``order``.
        fill: for ``fill`` events, the execution (a ``trade.fills`` row, a ``brokers.Fill`` or a
            mapping with ``quantity``, ``price`` and the time).

    Raises:
        ValueError: an unknown type, or a fill event without its fill.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown order event type {type!r}")
    if (type == "fill") != (fill is not None):
        raise ValueError("a fill event carries its fill, and only a fill event does")
    payload: dict[str, Any] = {
        "order": jsonable(view if view is not None else _view(session, order))
    }
    if fill is not None:
        payload["fill"] = jsonable(fill_view(fill))
    _install()
    session.info.setdefault(_PENDING, []).append(
        {"account_id": order.account_id, "order_id": order.id, "type": type, "payload": payload}
    )


def payload_json(session: Session, order: Any) -> str:
    """Return the payload of a status event of ``order`` as JSON text.

    For a writer that inserts the event in its own statement (:data:`WRITE_ONE_EVENT`) instead of
    through :func:`record`.
    """
    return json.dumps({"order": jsonable(_view(session, order))}, separators=(",", ":"))


#: The event of one order written by the statement that writes the order, as CTEs appended to
#: it: the writer's CTE ``written_order`` returns the order's ``id`` and ``account_id`` — or no
#: row, and then nothing is counted, written or notified (ids keep having no gaps). The same
#: counter, ids and NOTIFY as :func:`_write_pending`, one round trip fewer; the statement returns
#: one row when the event was written. Its parameters: ``event_type``, ``event_payload``
#: (:func:`payload_json`) and ``channel`` (:data:`CHANNEL`).
WRITE_ONE_EVENT = (
    " counter AS (UPDATE trade.order_event_counter SET last_id = last_id + 1"
    " WHERE EXISTS (SELECT 1 FROM written_order) RETURNING last_id, clock_timestamp() AS ts),"
    " written_event AS (INSERT INTO trade.order_events"
    " (id, account_id, order_id, type, ts, payload)"
    " SELECT counter.last_id, written_order.account_id, written_order.id, :event_type,"
    " counter.ts, CAST(:event_payload AS jsonb) FROM counter, written_order)"
    " SELECT pg_notify(:channel, CAST(counter.last_id AS text)) FROM counter"
)


def latest_id(session: Session) -> int:
    """Return the id of the latest committed event (0 before the first)."""
    return int(session.scalar(select(OrderEventCounter.last_id)) or 0)


def events_after(
    session: Session,
    after: int,
    *,
    account_ids: Iterable[int] | None = None,
    types: Iterable[str] | None = None,
    limit: int = 500,
) -> list[Event]:
    """Return the committed events after ``after``, in id order, limited to some accounts."""
    statement = select(OrderEvent).where(OrderEvent.id > after).order_by(OrderEvent.id).limit(limit)
    if account_ids is not None:
        statement = statement.where(OrderEvent.account_id.in_(list(account_ids)))
    if types is not None:
        statement = statement.where(OrderEvent.type.in_(list(types)))
    return [to_event(row) for row in session.scalars(statement)]


def to_event(row: Any) -> Event:
    """Return an event row (ORM or plain) as the API serves it."""
    return Event(
        id=row.id,
        account_id=row.account_id,
        type=row.type,
        data=json.dumps(
            {
                "id": row.id,
                "type": row.type,
                "account_id": row.account_id,
                "order_id": str(row.order_id),
                "ts": row.ts.isoformat(),
                **row.payload,
            },
            separators=(",", ":"),
        ),
    )


def fill_view(fill: Any) -> dict[str, Any]:
    """Return an execution as events carry it."""
    if isinstance(fill, Mapping):
        return dict(fill)
    view = {
        "broker_fill_id": getattr(fill, "broker_fill_id", None),
        "quantity": fill.quantity,
        "price": fill.price,
        "ts": getattr(fill, "ts", None) or getattr(fill, "filled_at", None),
        "fee": getattr(fill, "fee", None),
        "tax": getattr(fill, "tax", None),
    }
    if getattr(fill, "fill_id", None) is not None:  # a stored fill (a broker's has no id yet)
        view["fill_id"] = fill.fill_id
    return view


_AS_IS = frozenset({str, int, bool, type(None)})


def jsonable(value: Any) -> Any:
    """Return ``value`` with decimals as strings (never floats), ids and times as text."""
    kind = type(value)
    # Exact types first: every event's view passes here, and ``isinstance`` against the ABCs
    # below was most of its cost (issue 12).
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is Decimal:
        return format(value, "f")
    if kind is uuid.UUID:
        return str(value)
    if kind is dt.datetime or kind is dt.date:
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")  # as the API writes decimals: never an exponent
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _view(session: Session, order: Order) -> dict[str, Any]:
    """The order's API view (``services.orders.queries.order_view``), read through ``session``."""
    from web_server.models import CryptoMarket

    symbol = order.symbol
    if symbol is None and order.crypto_market_id is not None:
        market = session.get(CryptoMarket, order.crypto_market_id)
        symbol = market.symbol if market is not None else None
    return {
        "id": order.id,
        "account_id": order.account_id,
        "symbol": symbol,
        "side": order.side,
        "type": order.order_type,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "route": order.route,
        "status": order.status,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "broker_order_date": order.broker_order_date,
        "attention": order.attention,
        "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
        "reject_code": order.reject_code,
        "reject_message": order.reject_message,
        "created_at": order.created_ts,
        "updated_at": order.updated_ts,
    }


# -- writing at commit ------------------------------------------------------------------------


def install(session_class: Any = Session) -> None:
    """Record every order change made through the ORM, in every session (idempotent).

    Called by ``create_app``. Registers :func:`_capture` after each flush (when new rows have
    their ids and attribute histories still show what changed) and the writing of the events
    before each commit.
    """
    _install()
    if not sa_event.contains(session_class, "after_flush", _capture):
        sa_event.listen(session_class, "after_flush", _capture)


def _install() -> None:
    """Register the commit hooks on every session, once (lazily: nothing happens at import)."""
    if not sa_event.contains(Session, "before_commit", _write_pending):
        sa_event.listen(Session, "before_commit", _write_pending)
        sa_event.listen(Session, "after_soft_rollback", _drop_pending)


def _capture(session: Session, flush_context: Any) -> None:
    """Record the events of the order changes this flush wrote.

    A new order is its first status (``accepted`` for PENDING_SUBMIT); a changed status is the
    move from what the row held to what it holds now. An order deleted while PENDING_SUBMIT
    (never sent: ``orders.lifecycle.forget``) ends as ``rejected`` with ``reject_code``
    ``not_sent``, so a follower of the stream learns it is gone. Fills are not taken from here
    but from the ``trade.fills`` rows the transaction wrote (:func:`_fill_events`), whoever
    wrote them and however (the fills writer uses ``INSERT … ON CONFLICT``, which no flush sees).
    """
    from web_server.models import Fill

    touched: set[Any] = session.info.setdefault(_TOUCHED, set())
    with session.no_autoflush:
        for obj in list(session.new):
            if isinstance(obj, Fill):
                touched.add(obj.order_id)
            elif isinstance(obj, Order):
                record_change(session, obj, None)
        for obj in list(session.dirty):
            if isinstance(obj, Order) and session.is_modified(obj, include_collections=False):
                status = inspect(obj).attrs.status.history
                if status.deleted or status.added:
                    record_change(session, obj, status.deleted[0] if status.deleted else None)
        for obj in list(session.deleted):
            if isinstance(obj, Order) and obj.status == OrderStatus.PENDING_SUBMIT:
                view = {
                    **_view(session, obj),
                    "status": OrderStatus.REJECTED.value,
                    "reject_code": "not_sent",
                    "reject_message": "The order never reached the broker; it was withdrawn.",
                }
                record(session, obj, "rejected", view=view)


def note_fill(session: Session, order_id: Any) -> None:
    """Tell the event log that this transaction wrote a fill of ``order_id`` outside the ORM.

    The fills writer's ``INSERT … ON CONFLICT`` is seen by no flush; only the orders named here
    (and those with ORM-added fills) are looked for in ``trade.fills`` at the commit, so a
    transaction that wrote no fill costs no query.
    """
    session.info.setdefault(_TOUCHED, set()).add(order_id)


_NEW_FILLS = text(
    "SELECT fill_id, order_id, broker_fill_id, ts, quantity, price, fee, tax"
    " FROM trade.fills WHERE order_id = ANY(:orders) AND xmin = pg_current_xact_id()::xid"
    " ORDER BY order_id, ts, fill_id"
)


def _fill_events(session: Session, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``pending`` with a ``fill`` event per fill row this transaction wrote.

    A row written by this transaction carries its id in ``xmin``. Each order's fills come just
    before its first status event (a fill, then ``partially_filled`` or ``filled``), with the
    order's view of that event; an order with fills and no status change gets them at the end.
    """
    touched = session.info.pop(_TOUCHED, None)
    if not touched:
        return pending
    rows = session.execute(_NEW_FILLS, {"orders": list(touched)}).all()
    if not rows:
        return pending
    told = {
        str(event["payload"]["fill"].get("fill_id"))
        for event in pending
        if event["type"] == "fill" and event["payload"]["fill"].get("fill_id")
    }
    fills: dict[Any, list[Any]] = {}
    for row in rows:
        if str(row.fill_id) not in told:
            fills.setdefault(row.order_id, []).append(row)
    merged: list[dict[str, Any]] = []

    def fill_events(order_id: Any, view: Any, account_id: int) -> list[dict[str, Any]]:
        return [
            {
                "account_id": account_id,
                "order_id": order_id,
                "type": "fill",
                "payload": {
                    "order": view,
                    "fill": jsonable({**fill_view(row), "fill_id": row.fill_id}),
                },
            }
            for row in fills.pop(order_id, [])
        ]

    for event in pending:
        if event["order_id"] in fills and event["type"] != "fill":
            merged.extend(
                fill_events(event["order_id"], event["payload"]["order"], event["account_id"])
            )
        merged.append(event)
    for order_id in list(fills):
        order = session.get(Order, order_id)
        if order is not None:
            merged.extend(fill_events(order_id, jsonable(_view(session, order)), order.account_id))
    return merged


#: The three steps of the module docstring in one statement: one round trip while the counter's
#: row lock is held instead of three (every event-writing commit in every process queues on it).
#: The INSERT and the NOTIFY run whether or not the outer SELECT reads them (data-modifying CTEs
#: always run to completion); the NOTIFY still reaches listeners only at the commit. The events
#: travel as one JSON array (``a``ccount, ``o``rder, ``t``ype, ``p``ayload): one parameter to
#: encode instead of four arrays whose every element the driver escapes.
_WRITE_EVENTS = text(
    "WITH counter AS ("
    " UPDATE trade.order_event_counter SET last_id = last_id + :n"
    " RETURNING last_id, clock_timestamp() AS ts),"
    " written AS ("
    " INSERT INTO trade.order_events (id, account_id, order_id, type, ts, payload)"
    " SELECT counter.last_id - :n + e.ordinal, CAST(e.value->>'a' AS integer),"
    " CAST(e.value->>'o' AS uuid), e.value->>'t', counter.ts, e.value->'p'"
    " FROM counter, jsonb_array_elements(CAST(:events AS jsonb))"
    " WITH ORDINALITY AS e(value, ordinal))"
    " SELECT pg_notify(:channel, CAST(counter.last_id AS text)) FROM counter"
)


def _write_pending(session: Session) -> None:
    # Flush first: commit flushes only after this hook, and that flush's changes have events.
    session.flush()
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, None) or []
    pending = _fill_events(session, pending)
    if not pending:
        return
    session.execute(
        _WRITE_EVENTS,
        {
            "n": len(pending),
            "events": json.dumps(
                [
                    {
                        "a": row["account_id"],
                        "o": str(row["order_id"]),
                        "t": row["type"],
                        "p": row["payload"],
                    }  # fmt: skip
                    for row in pending
                ],
                separators=(",", ":"),
            ),
            "channel": CHANNEL,
        },
    )


def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction rolled back
        session.info.pop(_PENDING, None)
        session.info.pop(_TOUCHED, None)


def pending_count(session: Session) -> int:
    """Return how many events ``session`` will write at its next commit (for tests)."""
    return len(session.info.get(_PENDING, ()))


def page(
    session: Session, *, account_ids: Iterable[int] | None, after: int, limit: int
) -> tuple[list[Event], int, int]:
    """Return a page of events after ``after``, where the next page starts, and the latest id.

    The latest id is read first and bounds the page: every event up to it has committed (ids
    are in commit order), so ``next_after`` never skips one that commits later.
    """
    latest = latest_id(session)
    statement = (
        select(OrderEvent)
        .where(OrderEvent.id > after, OrderEvent.id <= latest)
        .order_by(OrderEvent.id)
        .limit(limit)
    )
    if account_ids is not None:
        statement = statement.where(OrderEvent.account_id.in_(list(account_ids)))
    events = [to_event(row) for row in session.scalars(statement)]
    if len(events) == limit:
        return events, events[-1].id, latest
    return events, max(after, latest), latest
