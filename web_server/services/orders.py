"""Orders: idempotent placement, cancel, look-up, reconciliation and status polling (DESIGN §4).

Placement never loses an order and never sends one twice:

1. The request is validated (account active and allowed, symbol in the master and tradable or a
   known crypto market, quantity and price shapes, the KRX tick for stocks) before anything is
   written.
2. The intent and the order (PENDING_SUBMIT, with our client order id) are committed in their own
   short transaction *before* the broker is called (the deliberate exception of STYLE H8), keyed
   by ``<API key>:<Idempotency-Key>``. The same key with the same body replays the stored order;
   with another body (another account included) it is a conflict; while the first request is
   still at the broker, a replay is told to retry.
3. The broker is called once, while the request holds the order's advisory lock. Its answer makes
   the order SUBMITTED (or further) or REJECTED. A transient error before sending
   (``BrokerUnavailable``: the request never took effect) removes the intent, so the client may
   retry with the same key. A lost answer (``OrderStateUnknown``), or anything unexpected after
   the commit, leaves the order UNKNOWN.
4. ``reconcile_orders`` (a leader job) settles UNKNOWN orders, and PENDING_SUBMIT ones a crash
   left behind, by asking the broker: by client order id where the broker keeps one, by the
   day's history where it does not (KIS, Kiwoom). It never sends an order again, and never
   touches an order whose request is still running: every writer of an order's state (the
   request, the reconciler, the poller, a cancel) holds the order's advisory lock, which a live
   request keeps for its whole broker call and a dead one releases with its connection.
   ``poll_open_orders`` moves open orders forward (PARTIALLY_FILLED, FILLED, CANCELLED). Status
   only ever moves forward, and the filled quantity never shrinks.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers import BrokerOrder, OrderRequest, OrderType, Side, utc_now
from brokers.krx import krx_stock_tick
from web_server.errors import (
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    Conflict,
    Forbidden,
    GatewayError,
    IdempotencyConflict,
    NotFound,
    OrderNotFound,
    OrderStateUnknown,
    ValidationFailed,
)
from web_server.extensions import db
from web_server.locks import advisory_lock, lock_key
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderIntent, OrderStatus
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.symbols import UnknownSymbol

log = logging.getLogger(__name__)

OPEN_STATUSES = (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCEL_PENDING)
# How far an order's state may move: a later rank never goes back to an earlier one.
_RANK = {
    OrderStatus.PENDING_SUBMIT: 0,
    OrderStatus.UNKNOWN: 0,
    OrderStatus.SUBMITTED: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.CANCEL_PENDING: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
}
# A PENDING_SUBMIT order younger than this is left alone even without its lock: the request may
# not have taken the lock yet.
RECONCILE_AFTER = dt.timedelta(seconds=30)
# How long a broker may take to show an order we sent before "not found" means "never arrived".
RECONCILE_GRACE = dt.timedelta(seconds=60)
# The latest a broker can have received an order after we created it: token wait (30 s), token
# issuance and one re-issue (2 × 10 s), connect and read (2 × 10 s), with a margin. A history
# search for an order without client id looks no later than this, so a later identical order is
# never taken for it.
SUBMIT_WINDOW = dt.timedelta(seconds=120)
ROUTES = ("KRX", "NXT", "SOR")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def _order_lock_key(order_id: uuid.UUID) -> int:
    return lock_key("order", str(order_id))


@contextlib.contextmanager
def _order_lock(order_id: uuid.UUID, *, wait: bool = False) -> Iterator[bool]:
    with advisory_lock(db.engine, _order_lock_key(order_id), wait=wait, timeout="10s") as got:
        yield got


def canonical_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the request with numbers normalised, so ``"2"`` and ``"2.0"`` are the same order."""
    return {
        key: format(value.normalize(), "f") if isinstance(value, Decimal) else value
        for key, value in body.items()
    }


def request_hash(body: Mapping[str, Any]) -> str:
    """Return a stable hash of an order request (for telling a replay from a conflict)."""
    canonical = json.dumps(canonical_body(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_client_order_id() -> str:
    """Return a client order id every broker accepts (Binance: ≤ 36 of ``[A-Za-z0-9_-]``)."""
    return "gw" + uuid.uuid4().hex  # 34 characters


def _validate(account: Account, body: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """Check the order against the account and the instrument lists; return (symbol, market id).

    Raises:
        ValidationFailed: a field is invalid, or the symbol is not tradable (``symbol_*``).
        Conflict: the account is deactivated.
    """
    if not account.is_active:
        raise Conflict(f"Account {account.id} is deactivated.")
    order_type, limit_price = body["type"], body.get("limit_price")
    problems: dict[str, list[str]] = {}
    if order_type == "LIMIT" and limit_price is None:
        problems["limit_price"] = ["is required for a LIMIT order"]
    if order_type == "MARKET" and limit_price is not None:
        problems["limit_price"] = ["must be absent for a MARKET order"]
    if account.account_type == "SECURITIES_STOCK":
        if body["quantity"] != body["quantity"].to_integral_value():
            problems["quantity"] = ["must be a whole number of shares"]
        if body.get("route") not in (None, *ROUTES):
            problems["route"] = [f"must be one of {', '.join(ROUTES)}"]
    elif body.get("route") is not None:
        problems["route"] = ["is for securities accounts only"]
    elif (
        account.exchange in ("UPBIT", "BITHUMB")
        and order_type == "MARKET"
        and (body["side"] == "BUY")
    ):
        problems["type"] = [
            f"{account.exchange} buys at market by amount, not quantity; send a LIMIT order"
        ]
    if problems:
        raise ValidationFailed("The order is not valid.", errors=problems)
    if account.account_type == "SECURITIES_STOCK":
        stock = current_app.extensions["gateway.symbols"].validate_tradable(body["symbol"])
        if limit_price is not None and stock.security_group == "ST":
            tick = krx_stock_tick(limit_price)
            if limit_price % tick:
                raise ValidationFailed(
                    f"{limit_price} is not on the KRX price tick ({tick} won at this price).",
                    errors={"limit_price": [f"must be a multiple of {tick}"]},
                )
        return body["symbol"], None
    market = db.session.scalar(
        select(CryptoMarket).where(
            CryptoMarket.exchange == account.exchange, CryptoMarket.symbol == body["symbol"]
        )
    )
    if market is None or not market.is_tradable:
        raise UnknownSymbol(
            f"{body['symbol']} is not a tradable {account.exchange} market "
            "(run `gateway markets sync` if it was listed recently).",
            errors={"symbol": [body["symbol"]]},
        )
    return None, market.id


def _symbol_of(session: Any, order: Order) -> str:
    if order.symbol is not None:
        return order.symbol
    market = session.get(CryptoMarket, order.crypto_market_id)
    assert market is not None
    return market.symbol


def _order_request(session: Any, order: Order) -> OrderRequest:
    return OrderRequest(
        symbol=_symbol_of(session, order),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        route=order.route,
    )


def _advance(order: Order, status: OrderStatus, now: dt.datetime) -> None:
    """Move ``order`` to ``status`` if that is forward; a late or stale answer never goes back."""
    current = OrderStatus(order.status)
    if _RANK[status] < _RANK[current] or (_RANK[current] == 4 and status is not current):
        return
    if current is OrderStatus.CANCEL_PENDING and status in (
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
    ):
        return  # the cancel is on its way; only its outcome (or a fill) moves the order on
    order.status = status.value
    if status is not OrderStatus.REJECTED:
        order.reject_code = order.reject_message = None
    order.updated_ts = now


def _apply(order: Order, broker: BrokerOrder, now: dt.datetime) -> None:
    """Copy what the broker reports onto our order row, forward only."""
    order.broker_order_id = order.broker_order_id or broker.broker_order_id
    status = broker.status
    if status in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        status = OrderStatus.SUBMITTED  # the broker has it: that is what we learned
    _advance(order, status, now)
    if broker.filled_quantity >= (order.filled_quantity or 0):
        order.filled_quantity = broker.filled_quantity
        order.average_fill_price = broker.average_fill_price or order.average_fill_price
    order.raw = json.loads(json.dumps(dict(broker.raw), default=str)) if broker.raw else order.raw
    order.submitted_ts = order.submitted_ts or now
    order.updated_ts = now


def place_order(key: ApiKey, body: Mapping[str, Any], idempotency_key: str) -> tuple[Order, bool]:
    """Place an order once per idempotency key; return it and whether it is a replay.

    Raises:
        ValidationFailed: the order or its symbol is not acceptable (nothing is written).
        IdempotencyConflict: the key was used with another body.
        Conflict: the first request with this key is still at the broker; retry shortly.
        Forbidden: the API key may not use the account.
        BrokerUnavailable: the broker could not be reached; nothing was sent or stored, so the
            same request may be retried with the same key.
    """
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise ValidationFailed(
            "The Idempotency-Key header is required: 1 to 200 printable ASCII characters.",
            errors={"Idempotency-Key": ["required, printable ASCII, at most 200 characters"]},
        )
    account_id = body["account_id"]
    if not key.allows_account(account_id):
        raise Forbidden(f"This API key may not use account {account_id}.")
    action_key = f"{key.id}:{idempotency_key}"
    digest = request_hash(body)
    existing = _replay(action_key, digest)
    if existing is not None:
        return existing, True
    account = get_account(account_id)
    symbol, market_id = _validate(account, body)

    values = {
        "account_id": account_id,
        "symbol": symbol,
        "crypto_market_id": market_id,
        "side": body["side"],
        "order_type": body["type"],
        "quantity": body["quantity"],
        "limit_price": body.get("limit_price"),
        "route": body.get("route"),
    }
    intent = OrderIntent(
        **values,
        action_key=action_key,
        request_hash=digest,
        status=OrderStatus.PENDING_SUBMIT.value,
    )
    order = Order(
        **values,
        intent=intent,
        client_order_id=new_client_order_id(),
        status=OrderStatus.PENDING_SUBMIT.value,
    )
    db.session.add_all([intent, order])
    try:
        db.session.commit()  # durable before the broker hears of it (STYLE H8)
    except IntegrityError:
        db.session.rollback()  # the same key raced in from another request: replay it
        existing = _replay(action_key, digest)
        if existing is None:
            raise
        return existing, True

    with _order_lock(order.id, wait=True):
        _submit(account, order, intent)
    return order, False


def _submit(account: Account, order: Order, intent: OrderIntent) -> None:
    """Send the committed order once and record the outcome (the caller holds its lock)."""
    now = utc_now()
    try:
        answer = adapter_for(account).place_order(_order_request(db.session, order))
    except BrokerUnavailable:
        # Not sent: forget the intent so that a retry with the same key starts over.
        db.session.delete(order)
        db.session.delete(intent)
        db.session.commit()
        raise
    except BrokerRejected as exc:
        _advance(order, OrderStatus.REJECTED, now)
        order.reject_code = exc.broker_code or exc.code
        order.reject_message = _broker_text(exc)
        intent.status = OrderStatus.REJECTED.value
    except Exception as exc:  # noqa: BLE001 - sent or not, the reconciler will find out
        reason = exc if isinstance(exc, OrderStateUnknown) else None
        if reason is None:
            log.exception("order %s: unexpected failure while placing it", order.id)
        order.status = intent.status = OrderStatus.UNKNOWN.value
        order.reject_code = "order_state_unknown"
        order.reject_message = _broker_text(reason) if reason else type(exc).__name__
        order.updated_ts = now
        log.warning("order %s: outcome unknown; the reconciler will settle it", order.id)
    else:
        _apply(order, answer, now)
        intent.status = OrderStatus.SUBMITTED.value
    intent.updated_ts = now
    try:
        db.session.commit()
    except IntegrityError:
        # The broker's number is already bound to another of our orders: only a wrong
        # reconciliation can do that. Leave this one UNKNOWN for the reconciler to settle.
        db.session.rollback()
        log.error("order %s: broker order number already recorded elsewhere", order.id)
        db.session.refresh(order)


def _broker_text(exc: BrokerError) -> str:
    return f"{exc.code}: {exc.broker_message or exc.detail}"[:500]


def _replay(action_key: str, digest: str) -> Order | None:
    intent = db.session.scalar(select(OrderIntent).where(OrderIntent.action_key == action_key))
    if intent is None:
        return None
    if intent.request_hash != digest:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different order; use a new key for a new order."
        )
    order = db.session.scalar(select(Order).where(Order.intent_id == intent.intent_id))
    if order is None:
        return None
    if order.status == OrderStatus.PENDING_SUBMIT:
        with _order_lock(order.id) as free:
            if not free:
                raise Conflict(
                    "The first request with this Idempotency-Key is still at the broker; "
                    "retry in a few seconds.",
                    extra={"order_id": str(order.id)},
                )
        db.session.refresh(order)
    return order


def get_order(key: ApiKey, order_id: uuid.UUID) -> Order:
    """Return an order the key may see.

    Raises:
        NotFound: no such order, or not one of the key's accounts.
    """
    order = db.session.get(Order, order_id)
    if order is None or not key.allows_account(order.account_id):
        raise NotFound(f"Order {order_id} does not exist.")
    return order


def list_orders(
    key: ApiKey,
    *,
    account_id: int | None = None,
    status: str | None = None,
    symbol: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[Sequence[Order], str | None]:
    """Return a page of orders, newest first, and the cursor of the next page (or None).

    Raises:
        ValidationFailed: the cursor is not one this API issued.
    """
    statement = select(Order).order_by(Order.created_ts.desc(), Order.id.desc()).limit(limit + 1)
    if key.account_ids is not None:
        statement = statement.where(Order.account_id.in_(key.account_ids))
    if account_id is not None:
        statement = statement.where(Order.account_id == account_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if symbol is not None:
        statement = statement.outerjoin(CryptoMarket).where(
            or_(Order.symbol == symbol, CryptoMarket.symbol == symbol)
        )
    if cursor:
        created, last_id = _decode_cursor(cursor)
        statement = statement.where(
            or_(Order.created_ts < created, and_(Order.created_ts == created, Order.id < last_id))
        )
    rows = db.session.scalars(statement).all()
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _encode_cursor(order: Order) -> str:
    raw = f"{order.created_ts.isoformat()}|{order.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, order_id = raw.split("|")
        return dt.datetime.fromisoformat(created), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("The cursor is not valid.", errors={"cursor": ["invalid"]}) from None


def cancel_order(key: ApiKey, order_id: uuid.UUID) -> Order:
    """Ask the broker to cancel an open order.

    Raises:
        NotFound: no such order for this key.
        Conflict: the order is not open, or another request is working on it right now.
        BrokerError: the broker refused or could not be reached.
    """
    order = get_order(key, order_id)
    with _order_lock(order.id) as free:
        if not free:
            raise Conflict(f"Order {order_id} is being updated; retry in a moment.")
        db.session.refresh(order)
        if order.status not in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
            raise Conflict(
                f"Order {order_id} is {order.status}; only open orders can be cancelled."
            )
        account = get_account(order.account_id)
        assert order.broker_order_id is not None
        now = utc_now()
        try:
            answer = adapter_for(account).cancel_order(
                order.broker_order_id, symbol=_symbol_of(db.session, order)
            )
        except OrderStateUnknown:
            _advance(order, OrderStatus.CANCEL_PENDING, now)  # the poller learns the outcome
        else:
            if answer.filled_quantity > order.filled_quantity:
                order.filled_quantity = answer.filled_quantity
            cancelled = answer.status == OrderStatus.CANCELLED
            _advance(order, OrderStatus.CANCELLED if cancelled else OrderStatus.CANCEL_PENDING, now)
        db.session.commit()
    return order


def reconcile_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Settle UNKNOWN orders and stale PENDING_SUBMIT ones by asking the broker; never resend."""
    now = now or utc_now()
    with Session(db.engine) as session:
        candidates = session.scalars(
            select(Order.id)
            .where(
                or_(
                    Order.status == OrderStatus.UNKNOWN,
                    and_(
                        Order.status == OrderStatus.PENDING_SUBMIT,
                        Order.created_ts < now - RECONCILE_AFTER,
                    ),
                )
            )
            .order_by(Order.created_ts)
        ).all()
    counts: dict[str, int] = {}
    for order_id in candidates:
        outcome = _each_order(order_id, lambda s, o: _reconcile_one(s, o, now))
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info("reconcile: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def poll_open_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Refresh open orders from their brokers (fills, cancellations)."""
    now = now or utc_now()
    with Session(db.engine) as session:
        candidates = session.scalars(
            select(Order.id).where(Order.status.in_([s.value for s in OPEN_STATUSES]))
        ).all()
    counts: dict[str, int] = {}
    for order_id in candidates:
        outcome = _each_order(order_id, lambda s, o: _poll_one(s, o, now))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _each_order(order_id: uuid.UUID, work: Any) -> str:
    """Run ``work(session, order)`` under the order's lock, in a transaction of its own.

    An order another actor holds (a request still at the broker, a cancel) is skipped; one that
    fails is logged and skipped, so a single bad order never stalls the others.
    """
    try:
        with _order_lock(order_id) as free:
            if not free:
                return "busy"
            with Session(db.engine, expire_on_commit=False) as session, session.begin():
                order = session.get(Order, order_id)
                if order is None:
                    return "gone"
                return work(session, order)  # type: ignore[no-any-return]
    except GatewayError as exc:
        log.warning("order %s: %s", order_id, exc.code)
        return "unreadable"
    except Exception:  # noqa: BLE001 - one bad order must not stop the job
        log.exception("order %s: job failed", order_id)
        return "error"


def _reconcile_one(session: Session, order: Order, now: dt.datetime) -> str:
    account = session.get(Account, order.account_id)
    assert account is not None
    adapter = adapter_for(account)
    request = _order_request(session, order)
    found: BrokerOrder | None
    if order.broker_order_id:
        try:
            found = adapter.get_order(order.broker_order_id, symbol=request.symbol)
        except OrderNotFound:
            found = None
    elif adapter.capabilities.client_order_id:
        try:
            found = adapter.get_order(client_order_id=order.client_order_id, symbol=request.symbol)
        except OrderNotFound:
            found = None
    else:
        if _identical_order_in_flight(session, order):
            return "waiting"  # its twin may be the one at the broker: wait until it settles
        taken = set(
            session.scalars(
                select(Order.broker_order_id).where(
                    Order.account_id == order.account_id,
                    Order.broker_order_id.is_not(None),
                    Order.id != order.id,
                )
            )
        )
        found = adapter.find_order(
            request, order.created_ts, until=order.created_ts + SUBMIT_WINDOW, exclude=taken
        )
    intent = session.get(OrderIntent, order.intent_id)
    assert intent is not None
    if found is not None:
        _apply(order, found, now)
        intent.status = OrderStatus.SUBMITTED.value
        return "found"
    if now - order.created_ts < SUBMIT_WINDOW + RECONCILE_GRACE:
        return "waiting"
    _advance(order, OrderStatus.REJECTED, now)
    intent.status = OrderStatus.REJECTED.value
    order.reject_code = "not_at_broker"
    order.reject_message = "The broker has no such order: the request never took effect."
    return "never_arrived"


def _identical_order_in_flight(session: Session, order: Order) -> bool:
    """Tell whether another unsettled order with the same terms might be the broker's match."""
    twins = session.scalars(
        select(Order.id).where(
            Order.account_id == order.account_id,
            Order.id != order.id,
            Order.status.in_([OrderStatus.PENDING_SUBMIT.value, OrderStatus.UNKNOWN.value]),
            Order.symbol.is_not_distinct_from(order.symbol),
            Order.crypto_market_id.is_not_distinct_from(order.crypto_market_id),
            Order.side == order.side,
            Order.order_type == order.order_type,
            Order.quantity == order.quantity,
            Order.limit_price.is_not_distinct_from(order.limit_price),
            Order.created_ts.between(
                order.created_ts - SUBMIT_WINDOW, order.created_ts + SUBMIT_WINDOW
            ),
            Order.created_ts < order.created_ts,
        )
    ).all()
    # Older twins settle first (they own the earliest match); a twin still at the broker holds
    # its lock.
    return bool(twins)


def _poll_one(session: Session, order: Order, now: dt.datetime) -> str:
    account = session.get(Account, order.account_id)
    assert account is not None
    if order.broker_order_id is None:
        return "no_broker_id"
    answer = adapter_for(account).get_order(
        order.broker_order_id, symbol=_symbol_of(session, order)
    )
    before = order.status
    _apply(order, answer, now)
    return order.status if order.status != before else "unchanged"


def order_view(order: Order) -> dict[str, Any]:
    """Return the order as the API contract names its fields (DESIGN §5)."""
    return {
        "id": order.id,
        "account_id": order.account_id,
        "symbol": _symbol_of(db.session, order),
        "side": order.side,
        "type": order.order_type,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "route": order.route,
        "status": order.status,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
        "reject_code": order.reject_code,
        "reject_message": order.reject_message,
        "created_at": order.created_ts,
        "updated_at": order.updated_ts,
    }
