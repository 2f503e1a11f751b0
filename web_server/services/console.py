"""What the operator's console needs beyond the API's services: its identity, order searches.

**The operator's identity.** Orders go through the very services the API uses
(``services.orders.place_order``, ``amend_order``, ``cancel_order``, ``services.panic.run``),
which act as an API key: idempotency keys are scoped to it, the risk gate's per-key policies and
kill switches apply to it, and panic-by-key finds its orders. So each operator acts as their own
*console key*: an ``api_keys`` row labelled ``console:<username>`` with the scopes
``orders:read`` and ``orders:write``, on every account, created the first time the operator
trades. Its secret is thrown away when it is made: it can never be used over the API. It is
listed with the other keys, so an operator's console trading can be stopped like any key's — a
kill switch on it, a policy, or revoking it (then the console refuses that operator's orders
until an admin deletes or relabels the revoked row).

**Live pages.** :func:`operator_events` is the order event stream (``services.event_hub``, the
one ``GET /api/v1/events`` serves) for a logged-in operator: every account's events, as the
operator's console key, so revoking that key ends the stream at its next heartbeat.

**Searches.** The order list's filters (open only, status, symbol, account, a KST day) and an
order's page: the order, its fills, its event timeline from ``trade.order_events``, and the
currency its money is in.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select, text

from brokers.krx import krx_stock_tick
from web_server.errors import Forbidden, NotFound
from web_server.extensions import db
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderEvent
from web_server.services import api_keys, audit, event_hub, events
from web_server.services.orders.queries import fill_views, order_view

__all__ = [
    "KST",
    "OPEN",
    "console_label",
    "krx_tick",
    "operator_events",
    "operator_key",
    "order_events",
    "order_page",
    "search_orders",
]

KST = dt.timezone(dt.timedelta(hours=9), "KST")
#: Not closed yet: at the broker, being placed or cancelled, or in doubt.
OPEN = ("PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "UNKNOWN")
CONSOLE_SCOPES = ("orders:read", "orders:write")


def console_label(username: str) -> str:
    """Return the label of an operator's console key."""
    return f"console:{username}"


def operator_key(username: str) -> ApiKey:
    """Return the operator's console key, creating it (and committing it) the first time.

    Raises:
        Forbidden: the operator's console key was revoked.
    """
    label = console_label(username)
    # Two first orders at once must not make two keys.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:label))"), {"label": label})
    rows = db.session.scalars(select(ApiKey).where(ApiKey.label == label).order_by(ApiKey.id))
    keys = list(rows)
    live = next((k for k in keys if k.revoked_at is None), None)
    if live is not None:
        db.session.commit()
        return live
    if keys:
        db.session.rollback()
        raise Forbidden(
            f"The console key of {username} ({label}) is revoked: this operator may not trade "
            "from the console."
        )
    row, _secret = api_keys.create_api_key(label, CONSOLE_SCOPES, None)  # the secret is dropped
    audit.record(
        f"user:{username}",
        "api_key.create",
        f"api_key:{row.id}",
        None,
        {"label": label, "scopes": list(CONSOLE_SCOPES), "accounts": "all", "console": True},
    )
    db.session.commit()
    return row


def krx_tick(price: Any) -> Any:
    """Return the KRX tick of an ordinary stock at ``price`` (for the order ticket)."""
    return krx_stock_tick(price)


def _currencies(orders: Sequence[Order]) -> dict[int, str]:
    """The quote currency of each crypto market among ``orders``."""
    ids = {o.crypto_market_id for o in orders if o.crypto_market_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(
        select(CryptoMarket.id, CryptoMarket.quote_asset).where(CryptoMarket.id.in_(ids))
    )
    return {market_id: quote for market_id, quote in rows}


def _view(order: Order, currencies: dict[int, str], names: dict[int, str]) -> dict[str, Any]:
    currency = (
        "KRW" if order.crypto_market_id is None else currencies.get(order.crypto_market_id, "")
    )
    return {
        **order_view(order),
        "currency": currency,
        "account_name": names.get(order.account_id, f"#{order.account_id}"),
        "is_open": order.status in OPEN,
    }


def _names() -> dict[int, str]:
    return {i: n for i, n in db.session.execute(select(Account.id, Account.name))}


def search_orders(
    *,
    open_only: bool = False,
    status: str | None = None,
    symbol: str | None = None,
    account_id: int | None = None,
    day: dt.date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[dict[str, Any]], bool]:
    """Return a page of orders, newest first, as views, and whether another page follows.

    ``day`` is a KST calendar day (orders created from its 00:00 to the next day's, KST).
    """
    statement = select(Order).order_by(Order.created_ts.desc(), Order.id.desc())
    if open_only:
        statement = statement.where(Order.status.in_(OPEN))
    if status:
        statement = statement.where(Order.status == status)
    if account_id is not None:
        statement = statement.where(Order.account_id == account_id)
    if symbol:
        statement = statement.outerjoin(CryptoMarket).where(
            or_(Order.symbol == symbol, CryptoMarket.symbol == symbol)
        )
    if day is not None:
        start = dt.datetime.combine(day, dt.time(), KST)
        statement = statement.where(
            and_(Order.created_ts >= start, Order.created_ts < start + dt.timedelta(days=1))
        )
    page = max(page, 1)
    rows = db.session.scalars(statement.offset((page - 1) * per_page).limit(per_page + 1)).all()
    shown = rows[:per_page]
    currencies, names = _currencies(shown), _names()
    return [_view(o, currencies, names) for o in shown], len(rows) > per_page


def order_events(order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the order's events from ``trade.order_events``, oldest first."""
    rows = db.session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    )
    return [
        {
            "id": row.id,
            "type": row.type,
            "ts": row.ts,
            "status": (row.payload.get("order") or {}).get("status"),
            "filled_quantity": (row.payload.get("order") or {}).get("filled_quantity"),
            "fill": row.payload.get("fill"),
        }
        for row in rows
    ]


def order_page(order_id: uuid.UUID) -> dict[str, Any]:
    """Return an order's view with its fills, events and currency.

    Raises:
        NotFound: no such order.
    """
    order = db.session.get(Order, order_id)
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.")
    view = _view(order, _currencies([order]), _names())
    return {
        **view,
        "fills": fill_views(order),
        "events": order_events(order.id),
        # Where a live page's stream starts: nothing committed after this render is missed.
        "latest_event": events.latest_id(db.session),
    }


def operator_events(username: str, after: int | None) -> Iterator[str]:
    """Return the Server-Sent Events stream of every account's order events for an operator.

    ``after=None`` starts with what happens from now on. The request's database session is
    handed back first: the stream holds no connection between its reads.

    Raises:
        Forbidden: the operator's console key was revoked.
    """
    key_id = operator_key(username).id
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine = db.engine
    hub = event_hub.hub_of(app, engine)
    db.session.remove()
    return event_hub.stream(
        hub,
        engine,
        key_id=key_id,
        account_ids=None,
        after=after,
        heartbeat=float(app.config.get("EVENTS_HEARTBEAT_SECONDS", 15)),
    )
