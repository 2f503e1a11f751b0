"""Orders: idempotent placement, cancel, look-up, reconciliation and status polling (DESIGN §4).

Placement never loses an order and never sends one twice:

1. The request is validated (account active and allowed, symbol in the master and tradable, or a
   known crypto market; quantity and price shapes) before anything is written.
2. The intent and the order (PENDING_SUBMIT, with our client order id) are committed in their own
   short transaction *before* the broker is called (the deliberate exception of STYLE H8), keyed
   by ``<account>:<Idempotency-Key>``. The same key with the same body replays the stored order;
   with another body it is a conflict.
3. The broker is called once. Its answer makes the order SUBMITTED (or further) or REJECTED. A
   transient error before sending (``BrokerUnavailable``: the request never took effect) removes
   the intent again, so the client may retry with the same key. A lost answer
   (``OrderStateUnknown``) leaves the order UNKNOWN.
4. ``reconcile_orders`` (a leader job) settles UNKNOWN orders, and PENDING_SUBMIT ones a crash
   left behind: by client order id where the broker keeps one, by the day's history where it does
   not (KIS, Kiwoom). It never sends an order again. ``poll_open_orders`` moves open orders to
   PARTIALLY_FILLED, FILLED or CANCELLED.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from web_server.brokers import BrokerOrder, OrderRequest, OrderType, Side, utc_now
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
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderIntent, OrderStatus
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.symbols import UnknownSymbol

log = logging.getLogger(__name__)

OPEN_STATUSES = (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCEL_PENDING)
FINAL_STATUSES = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)
# How long a broker may take to show an order we sent before "not found" means "never arrived".
RECONCILE_GRACE = dt.timedelta(seconds=60)
ROUTES = ("KRX", "NXT", "SOR")


def request_hash(body: Mapping[str, Any]) -> str:
    """Return a stable hash of an order request (for telling a replay from a conflict)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
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
        and body["side"] == "BUY"
    ):
        problems["type"] = [
            f"{account.exchange} buys at market by amount, not quantity; send a LIMIT order"
        ]
    if problems:
        raise ValidationFailed("The order is not valid.", errors=problems)
    if account.account_type == "SECURITIES_STOCK":
        current_app.extensions["gateway.symbols"].validate_tradable(body["symbol"])
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


def _symbol_of(order: Order) -> str:
    if order.symbol is not None:
        return order.symbol
    market = db.session.get(CryptoMarket, order.crypto_market_id)
    assert market is not None
    return market.symbol


def _order_request(order: Order) -> OrderRequest:
    return OrderRequest(
        symbol=_symbol_of(order),
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        route=order.route,
    )


def _apply(order: Order, broker: BrokerOrder, now: dt.datetime) -> None:
    """Copy what the broker reports onto our order row."""
    order.broker_order_id = order.broker_order_id or broker.broker_order_id
    if broker.status not in (OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN):
        order.status = broker.status.value
    order.filled_quantity = broker.filled_quantity
    order.average_fill_price = broker.average_fill_price
    order.raw = json.loads(json.dumps(dict(broker.raw), default=str)) if broker.raw else None
    order.submitted_ts = order.submitted_ts or now
    order.updated_ts = now


def place_order(key: ApiKey, body: Mapping[str, Any], idempotency_key: str) -> tuple[Order, bool]:
    """Place an order once per idempotency key; return it and whether it is a replay.

    Raises:
        ValidationFailed: the order or its symbol is not acceptable (nothing is written).
        IdempotencyConflict: the key was used with another body.
        Forbidden: the API key may not use the account.
        BrokerUnavailable: the broker could not be reached; nothing was sent or stored, so the
            same request may be retried with the same key.
    """
    if not 1 <= len(idempotency_key) <= 200:
        raise ValidationFailed(
            "The Idempotency-Key header is required (1 to 200 characters).",
            errors={"Idempotency-Key": ["required"]},
        )
    account_id = body["account_id"]
    if not key.allows_account(account_id):
        raise Forbidden(f"This API key may not use account {account_id}.")
    action_key = f"{account_id}:{idempotency_key}"
    digest = request_hash(body)
    existing = _replay(action_key, digest)
    if existing is not None:
        return existing, True
    account = get_account(account_id)
    symbol, market_id = _validate(account, body)

    intent = OrderIntent(
        account_id=account_id,
        symbol=symbol,
        crypto_market_id=market_id,
        side=body["side"],
        order_type=body["type"],
        quantity=body["quantity"],
        limit_price=body.get("limit_price"),
        route=body.get("route"),
        action_key=action_key,
        request_hash=digest,
        status=OrderStatus.PENDING_SUBMIT.value,
    )
    order = Order(
        intent=intent,
        account_id=account_id,
        symbol=symbol,
        crypto_market_id=market_id,
        side=body["side"],
        order_type=body["type"],
        quantity=body["quantity"],
        limit_price=body.get("limit_price"),
        route=body.get("route"),
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

    now = utc_now()
    try:
        answer = adapter_for(account).place_order(_order_request(order))
    except OrderStateUnknown as exc:
        order.status = intent.status = OrderStatus.UNKNOWN.value
        order.reject_code, order.reject_message = exc.code, _broker_text(exc)
        order.updated_ts = intent.updated_ts = now
        db.session.commit()
        log.warning(
            "order %s: outcome unknown (%s); the reconciler will settle it",
            order.id,
            exc.broker_code or exc.code,
        )
        return order, False
    except BrokerUnavailable:
        # Not sent: forget the intent so that a retry with the same key starts over.
        db.session.delete(order)
        db.session.delete(intent)
        db.session.commit()
        raise
    except BrokerRejected as exc:
        order.status = intent.status = OrderStatus.REJECTED.value
        order.reject_code = exc.broker_code or exc.code
        order.reject_message = _broker_text(exc)
        order.updated_ts = intent.updated_ts = now
        db.session.commit()
        return order, False
    _apply(order, answer, now)
    if order.status == OrderStatus.PENDING_SUBMIT:
        order.status = OrderStatus.SUBMITTED.value
    intent.status = OrderStatus.SUBMITTED.value
    intent.updated_ts = now
    db.session.commit()
    return order, False


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
    return db.session.scalar(select(Order).where(Order.intent_id == intent.intent_id))


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
        Conflict: the order is not open (already final, or not yet known to the broker).
        BrokerError: the broker refused or could not be reached.
    """
    order = get_order(key, order_id)
    if order.status not in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
        raise Conflict(f"Order {order_id} is {order.status}; only open orders can be cancelled.")
    account = db.session.get(Account, order.account_id)
    assert account is not None and order.broker_order_id is not None
    now = utc_now()
    try:
        answer = adapter_for(account).cancel_order(order.broker_order_id, symbol=_symbol_of(order))
    except OrderStateUnknown:
        order.status = OrderStatus.CANCEL_PENDING.value  # the poller will learn the outcome
        order.updated_ts = now
        db.session.commit()
        return order
    order.filled_quantity = answer.filled_quantity or order.filled_quantity
    order.status = (
        OrderStatus.CANCELLED.value
        if answer.status == OrderStatus.CANCELLED
        else OrderStatus.CANCEL_PENDING.value
    )
    order.updated_ts = now
    db.session.commit()
    return order


def reconcile_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Settle UNKNOWN orders and stale PENDING_SUBMIT ones by asking the broker; never resend."""
    now = now or utc_now()
    counts: dict[str, int] = {}
    with Session(db.engine, expire_on_commit=False) as session:
        pending = session.scalars(
            select(Order)
            .where(
                or_(
                    Order.status == OrderStatus.UNKNOWN,
                    and_(
                        Order.status == OrderStatus.PENDING_SUBMIT,
                        Order.created_ts < now - dt.timedelta(seconds=30),
                    ),
                )
            )
            .order_by(Order.created_ts)
            .with_for_update(skip_locked=True)
        ).all()
        for order in pending:
            account = session.get(Account, order.account_id)
            assert account is not None
            outcome = _reconcile_one(session, adapter_for(account), order, now)
            counts[outcome] = counts.get(outcome, 0) + 1
        session.commit()
    if counts:
        log.info("reconcile: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def _reconcile_one(session: Session, adapter: Any, order: Order, now: dt.datetime) -> str:
    symbol = order.symbol or session.get(CryptoMarket, order.crypto_market_id).symbol  # type: ignore[union-attr]
    request = OrderRequest(
        symbol=symbol,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        route=order.route,
    )
    try:
        if adapter.capabilities.client_order_id:
            try:
                found = adapter.get_order(client_order_id=order.client_order_id, symbol=symbol)
            except OrderNotFound:
                found = None
        else:
            taken = set(
                session.scalars(
                    select(Order.broker_order_id).where(
                        Order.account_id == order.account_id, Order.broker_order_id.is_not(None)
                    )
                )
            )
            found = adapter.find_order(request, order.created_ts, exclude=taken)
    except GatewayError as exc:
        log.warning("reconcile order %s: broker not readable (%s)", order.id, exc.code)
        return "unreadable"
    intent = session.get(OrderIntent, order.intent_id)
    assert intent is not None
    if found is not None:
        _apply(order, found, now)
        if order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING_SUBMIT):
            order.status = OrderStatus.SUBMITTED.value
        intent.status = OrderStatus.SUBMITTED.value
        return "found"
    if now - order.created_ts < RECONCILE_GRACE:
        return "waiting"
    order.status = intent.status = OrderStatus.REJECTED.value
    order.reject_code = "not_at_broker"
    order.reject_message = "The broker has no such order: the request never took effect."
    order.updated_ts = now
    return "never_arrived"


def poll_open_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Refresh open orders from their brokers (fills, cancellations)."""
    now = now or utc_now()
    counts: dict[str, int] = {}
    with Session(db.engine, expire_on_commit=False) as session:
        open_orders = session.scalars(
            select(Order)
            .where(Order.status.in_([s.value for s in OPEN_STATUSES]))
            .with_for_update(skip_locked=True)
        ).all()
        for order in open_orders:
            account = session.get(Account, order.account_id)
            assert account is not None and order.broker_order_id is not None
            symbol = order.symbol or session.get(CryptoMarket, order.crypto_market_id).symbol  # type: ignore[union-attr]
            try:
                answer = adapter_for(account).get_order(order.broker_order_id, symbol=symbol)
            except GatewayError as exc:
                log.warning("poll order %s: %s", order.id, exc.code)
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            before = order.status
            _apply(order, answer, now)
            outcome = order.status if order.status != before else "unchanged"
            counts[outcome] = counts.get(outcome, 0) + 1
        session.commit()
    return counts


def order_view(order: Order) -> dict[str, Any]:
    """Return the order as the API contract names its fields (DESIGN §5)."""
    return {
        "id": order.id,
        "account_id": order.account_id,
        "symbol": _symbol_of(order),
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
