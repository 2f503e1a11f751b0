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

**Token states.** :func:`token_events` streams the state of every securities account's token
(the badge of the accounts list): the current states when a page connects, then a state each
time one changes. The token service announces each issuance, failure and revocation on
PostgreSQL's ``token_events`` channel (the account id only); one listener per process
(:class:`TokenWatch`) wakes the streams, which re-read the states. A state also changes with
time alone (valid, then due, then expired), so each stream re-reads them at every heartbeat.

**The ticket.** :func:`search_symbols` suggests what an account can trade: the stocks master
(code prefix or part of the Korean name) for a securities account, the exchange's stored
markets for a crypto one. :func:`price_tick` is the price step at a price: the KRX table for
stocks, the market's tick (fixed, or by price band on Upbit and Bithumb's KRW markets).

**Searches.** The order list's filters (open only, status, symbol, account, a KST day) and an
order's page: the order, its fills, its event timeline from ``trade.order_events``, and the
currency its money is in.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from flask import Flask, current_app
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import selectinload

from brokers.krx import krx_stock_tick
from web_server.errors import Forbidden, NotFound
from web_server.extensions import db
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderEvent, Stock
from web_server.services import api_keys, audit, event_hub, events, tokens
from web_server.services.brokers import adapter_class
from web_server.services.orders.queries import fill_views, order_view
from web_server.services.stocks import search_stocks

__all__ = [
    "KST",
    "OPEN",
    "console_label",
    "krx_tick",
    "latest_event",
    "operator_events",
    "operator_key",
    "order_events",
    "order_page",
    "price_tick",
    "search_orders",
    "search_symbols",
    "token_events",
    "token_states",
]

log = logging.getLogger(__name__)

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


def _stock_names(orders: Sequence[Order]) -> dict[str, str]:
    """The Korean name of each stock among ``orders`` (the stocks master's)."""
    symbols = {o.symbol for o in orders if o.symbol}
    if not symbols:
        return {}
    rows = db.session.execute(select(Stock.symbol, Stock.name).where(Stock.symbol.in_(symbols)))
    return {symbol: name for symbol, name in rows}


def _view(
    order: Order,
    currencies: dict[int, str],
    names: dict[int, str],
    stocks: dict[str, str] | None = None,
) -> dict[str, Any]:
    currency = (
        "KRW" if order.crypto_market_id is None else currencies.get(order.crypto_market_id, "")
    )
    return {
        **order_view(order),
        "currency": currency,
        "account_name": names.get(order.account_id, f"#{order.account_id}"),
        "symbol_name": (stocks or {}).get(order.symbol or ""),
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
    order_id: uuid.UUID | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[dict[str, Any]], bool]:
    """Return a page of orders, newest first, as views, and whether another page follows.

    ``day`` is a KST calendar day (orders created from its 00:00 to the next day's, KST).
    ``order_id`` keeps only that order: whether it matches the other filters (a live list
    adding a new order asks this).
    """
    statement = select(Order).order_by(Order.created_ts.desc(), Order.id.desc())
    if order_id is not None:
        statement = statement.where(Order.id == order_id)
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
    currencies, names, stocks = _currencies(shown), _names(), _stock_names(shown)
    return [_view(o, currencies, names, stocks) for o in shown], len(rows) > per_page


def latest_event() -> int:
    """Return the latest committed event id: where a live page's stream starts.

    Read it before what the page shows: an event committed in between is then sent again
    (pages apply events idempotently) rather than missed.
    """
    return events.latest_id(db.session)


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
    view = _view(order, _currencies([order]), _names(), _stock_names([order]))
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


# -- the order ticket ---------------------------------------------------------------------------


def search_symbols(account: Account, query: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """Return what ``account`` may trade matching ``query``, tradable first, for suggestions.

    Raises:
        ValidationFailed: the query holds a control character (stocks master search).
    """
    query = query.strip()
    if not query:
        return []
    if account.account_type == "SECURITIES_STOCK":
        found = search_stocks(query, limit=limit)
        return [
            {
                "symbol": s.symbol,
                "name": s.name,
                "market": s.market,
                "tradable": s.is_tradable,
            }
            for s in sorted(found, key=lambda s: (not s.is_tradable, s.symbol))
        ]
    pattern = query.upper()
    rows = db.session.scalars(
        select(CryptoMarket)
        .where(
            CryptoMarket.exchange == account.exchange,
            or_(
                CryptoMarket.symbol.contains(pattern, autoescape=True),
                CryptoMarket.base_asset.startswith(pattern, autoescape=True),
            ),
        )
        .order_by(CryptoMarket.is_tradable.desc(), CryptoMarket.symbol)
        .limit(limit)
    )
    return [
        {
            "symbol": m.symbol,
            "name": f"{m.base_asset}/{m.quote_asset}",
            "market": m.quote_asset,
            "tradable": m.is_tradable,
        }
        for m in rows
    ]


def price_tick(account: Account, symbol: str, price: Decimal) -> Decimal | None:
    """Return the price step of ``symbol`` at ``price`` on the account's venue (None: unknown)."""
    if account.account_type == "SECURITIES_STOCK":
        return krx_tick(price) if db.session.get(Stock, symbol) is not None else None
    market = db.session.scalar(
        select(CryptoMarket).where(
            CryptoMarket.exchange == account.exchange, CryptoMarket.symbol == symbol
        )
    )
    if market is None:
        return None
    if market.tick_size is not None:
        return market.tick_size
    # Upbit and Bithumb: the tick depends on the price (their published band tables).
    dialect = getattr(adapter_class(account.exchange), "dialect", None)
    return dialect.tick_for(market.quote_asset, price) if dialect is not None else None


# -- token states, live -------------------------------------------------------------------------


def token_states() -> dict[int, dict[str, Any]]:
    """Return the token state of every securities account (no secret), by account id."""
    accounts = db.session.scalars(
        select(Account)
        .where(Account.account_type == "SECURITIES_STOCK")
        .options(selectinload(Account.token))
        .order_by(Account.id)
    )
    return {a.id: events.jsonable({"account_id": a.id, **tokens.token_status(a)}) for a in accounts}


class TokenWatch:
    """The process's one listener on ``token_events``: a counter the token streams wait on."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.version = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        """Start listening (once), and wait a little for the listener to be in place."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="token-events", daemon=True)
            self._thread.start()
        self.ready.wait(10)

    def wait(self, version: int, timeout: float) -> int:
        """Wait until a change after ``version`` is heard, at most ``timeout`` s; return it."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != version, timeout)
            return self.version

    def _bump(self) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def _run(self) -> None:
        pause = 0.1
        while True:
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {tokens.CHANNEL}")
                    self.ready.set()
                    self._bump()  # what changed while nobody listened: streams re-read
                    pause = 0.1
                    for _ in conn.notifies():
                        self._bump()
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a database outage
                log.warning("token events listener: %s; listening again shortly", exc)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


_WATCH_LOCK = threading.Lock()


def _token_watch(app: Flask) -> TokenWatch:
    watch = app.extensions.get("gateway.token_watch")
    if watch is None:
        with _WATCH_LOCK:
            watch = app.extensions.get("gateway.token_watch")
            if watch is None:
                dsn = db.engine.url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                )
                watch = TokenWatch(dsn)
                app.extensions["gateway.token_watch"] = watch
    watch.start()
    return watch


def token_events(username: str) -> Iterator[str]:
    """Return the Server-Sent Events stream of the securities accounts' token states.

    Starts with every state (what changed since the page was drawn), then sends a state when
    it changes. Ends when the operator's console key is revoked (checked at each heartbeat).

    Raises:
        Forbidden: the operator's console key was revoked.
    """
    key_id = operator_key(username).id
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    watch = _token_watch(app)
    heartbeat = float(app.config.get("EVENTS_HEARTBEAT_SECONDS", 15))
    db.session.remove()

    def states() -> dict[int, dict[str, Any]]:
        with app.app_context():  # its session is removed when the context ends
            return token_states()

    def alive() -> bool:
        with app.app_context():
            revoked = db.session.execute(
                select(ApiKey.revoked_at).where(ApiKey.id == key_id)
            ).one_or_none()
            return revoked is not None and revoked[0] is None

    def generate() -> Iterator[str]:
        yield "retry: 1000\n: token states\n\n"
        sent: dict[int, dict[str, Any]] = {}
        version = watch.version
        while True:
            now = states()
            changed = [state for key, state in now.items() if sent.get(key) != state]
            sent = now
            if changed:
                yield "".join(
                    f"event: token\ndata: {json.dumps(state, separators=(',', ':'))}\n\n"
                    for state in changed
                )
            heard = watch.wait(version, heartbeat)
            if heard == version:  # a heartbeat: nothing heard, time may have changed a state
                if not alive():
                    return
                yield ": heartbeat\n\n"
            version = heard

    return generate()
