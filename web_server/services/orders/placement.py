"""Placing an order: validated, committed as an intent, sent once, answered (DESIGN §4).

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
   the commit, leaves the order UNKNOWN for the reconciler (``reconcile.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from brokers import utc_now
from brokers.krx import krx_stock_tick
from web_server.errors import (
    BrokerRejected,
    BrokerUnavailable,
    Conflict,
    Forbidden,
    IdempotencyConflict,
    OrderStateUnknown,
    ValidationFailed,
)
from web_server.extensions import db
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderIntent, OrderStatus
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.orders.lifecycle import (
    advance,
    apply_answer,
    broker_text,
    order_lock,
    order_request,
)
from web_server.services.symbols import UnknownSymbol

log = logging.getLogger(__name__)

ROUTES = ("KRX", "NXT", "SOR")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


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

    with order_lock(order.id, wait=True):
        _submit(account, order, intent)
    return order, False


def _submit(account: Account, order: Order, intent: OrderIntent) -> None:
    """Send the committed order once and record the outcome (the caller holds its lock)."""
    now = utc_now()
    try:
        answer = adapter_for(account).place_order(order_request(db.session, order))
    except BrokerUnavailable:
        # Not sent: forget the intent so that a retry with the same key starts over.
        db.session.delete(order)
        db.session.delete(intent)
        db.session.commit()
        raise
    except BrokerRejected as exc:
        advance(order, OrderStatus.REJECTED, now)
        order.reject_code = exc.broker_code or exc.code
        order.reject_message = broker_text(exc)
        intent.status = OrderStatus.REJECTED.value
    except Exception as exc:  # noqa: BLE001 - sent or not, the reconciler will find out
        reason = exc if isinstance(exc, OrderStateUnknown) else None
        if reason is None:
            log.exception("order %s: unexpected failure while placing it", order.id)
        order.status = intent.status = OrderStatus.UNKNOWN.value
        order.reject_code = "order_state_unknown"
        order.reject_message = broker_text(reason) if reason else type(exc).__name__
        order.updated_ts = now
        log.warning("order %s: outcome unknown; the reconciler will settle it", order.id)
    else:
        apply_answer(order, answer, now)
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
        with order_lock(order.id) as free:
            if not free:
                raise Conflict(
                    "The first request with this Idempotency-Key is still at the broker; "
                    "retry in a few seconds.",
                    extra={"order_id": str(order.id)},
                )
        db.session.refresh(order)
    return order
