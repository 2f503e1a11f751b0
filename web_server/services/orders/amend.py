"""Amending an open order: a new order that replaces it, recorded like a placement (DESIGN §4).

**Representation.** Every amend is a *new order row* with ``replaces_order_id`` naming the order it
replaces; the old one ends CANCELLED with ``replaced_by_order_id``. One shape for every broker,
because at every broker the amended order is a new broker order: KIS and Kiwoom give the amended
remainder a new order number (정정: ``order-rvsecncl`` ``RVSE_CNCL_DVSN_CD=01`` answers a new
``ODNO``; ``kt10002`` a new ``ord_no``) and close the original; Upbit's
``POST /v1/orders/cancel_and_new``, Binance's ``POST /api/v3/order/cancelReplace``
(``STOP_ON_FAILURE``) and Bithumb's cancel followed by a new order (it has no amend) make a new
order id. Fills before the amend stay on the old row, fills after it on the new one.

**What may change**: the price and/or the quantity of an open LIMIT order (SUBMITTED or
PARTIALLY_FILLED). The new quantity is what the replacement is for (default: the old order's
unfilled remainder). KIS and Kiwoom amend the remainder as a whole: a quantity other than the
remainder is refused (422) — a KRX amendment of part of an order leaves the rest open on the old
number, which is not a replacement.

**Recorded like a placement**: the intent (its own ``Idempotency-Key``, kept apart from
placement keys) and the new PENDING_SUBMIT order are committed before the broker is called; then
``submission.Sender`` sends it once with the adapter's ``replace_order`` and records the answer.
A lost answer leaves the new order UNKNOWN and the reconciler settles it like a lost placement:
by client order id (Upbit ``new_identifier``, Binance ``newClientOrderId``, Bithumb
``client_order_id``), or in the day's history (KIS, Kiwoom: the amended row, same terms). The old
order is settled by the poller (the broker shows it closed); a replay of the same key and body
answers the new order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from brokers import TERMINAL_STATUSES, OrderRequest, OrderType, Side
from web_server.errors import Conflict, ValidationFailed
from web_server.extensions import db
from web_server.models import ApiKey, Order, OrderStatus
from web_server.services import clock
from web_server.services.accounts import get_account
from web_server.services.orders import placement, submission
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    START_LEASE,
    advance,
    apply_answer,
    broker_identity,
    order_lock,
    symbol_of,
)
from web_server.services.orders.queries import get_order

log = logging.getLogger(__name__)

_AMENDABLE = (OrderStatus.SUBMITTED.value, OrderStatus.PARTIALLY_FILLED.value)
#: Brokers whose amend changes the whole remainder only (KRX 정정 by a new order number).
_WHOLE_REMAINDER = ("KIS", "KIWOOM")


def action_key(key: ApiKey, idempotency_key: str) -> str:
    """The intent's key of an amend: apart from placements (a blank is never in a key)."""
    return f"{key.id}: amend {idempotency_key}"


def amend_order(
    key: ApiKey, order_id: uuid.UUID, body: Mapping[str, Any], idempotency_key: str
) -> tuple[Order, bool]:
    """Replace an open order by one with a new quantity and/or price; tell if it is a replay.

    Raises:
        ValidationFailed: a bad key, nothing to change, or a change the broker does not allow.
        NotFound: no such order for this key.
        Conflict: the order is not open (or has no broker number yet).
        IdempotencyConflict, OrderInFlight: as for a placement.
        BrokerError: as for a placement (a refusal before acting withdraws the amend).
    """
    if not placement.IDEMPOTENCY_KEY.match(idempotency_key):
        raise ValidationFailed(
            "The Idempotency-Key header is required: 1 to 200 printable ASCII characters.",
            errors={"Idempotency-Key": ["required, printable ASCII, at most 200 characters"]},
        )
    old = get_order(key, order_id)
    action = action_key(key, idempotency_key)
    digest = placement.request_hash({"amend_of": str(order_id), **body})
    existing = placement.replay(action, digest)
    if existing is not None:
        return existing, True
    if not body.get("quantity") and not body.get("limit_price"):
        raise ValidationFailed(
            "Send a new quantity, a new limit_price, or both.",
            errors={"quantity": ["quantity or limit_price is required"]},
        )
    if old.status not in _AMENDABLE or old.broker_order_id is None:
        raise Conflict(f"Order {order_id} is {old.status}; only open orders can be amended.")
    if old.order_type != OrderType.LIMIT.value:
        raise ValidationFailed(
            "Only LIMIT orders can be amended.", errors={"order": ["is a MARKET order"]}
        )
    account = get_account(old.account_id)
    assert old.quantity is not None  # a LIMIT order has a quantity
    remaining = old.quantity - (old.filled_quantity or 0)
    quantity: Decimal = body.get("quantity") or remaining
    price: Decimal = body.get("limit_price") or old.limit_price
    if account.exchange in _WHOLE_REMAINDER and quantity != remaining:
        raise ValidationFailed(
            f"{account.exchange} amends an order's whole remainder ({remaining}); send that "
            "quantity or none (to change the rest, cancel and place a new order).",
            errors={"quantity": [f"must be the remainder, {remaining}"]},
        )
    if quantity == remaining and price == old.limit_price:
        raise ValidationFailed(
            "The amend changes nothing.", errors={"limit_price": ["same as the order's"]}
        )
    symbol = symbol_of(db.session, old)
    terms = {
        "account_id": old.account_id,
        "symbol": symbol,
        "side": old.side,
        "type": OrderType.LIMIT.value,
        "quantity": quantity,
        "limit_price": price,
        "route": old.route,
    }
    stock_symbol, market_id = placement.validate(account, terms)
    values = {
        "account_id": old.account_id,
        "symbol": stock_symbol,
        "crypto_market_id": market_id,
        "side": old.side,
        "order_type": OrderType.LIMIT.value,
        "quantity": quantity,
        "quote_amount": None,
        "limit_price": price,
        "route": old.route,
        "replaces_order_id": old.id,
    }
    new_id, client_order_id = uuid.uuid4(), placement.new_client_order_id()
    request = OrderRequest(
        symbol=symbol,
        side=Side(old.side),
        order_type=OrderType.LIMIT,
        quantity=quantity,
        client_order_id=client_order_id,
        limit_price=price,
        route=old.route,
    )
    identity = broker_identity(db.session, old)
    old_number = old.broker_order_id
    sender = submission.Sender(account)
    db.session.commit()
    lease = clock.now() + START_LEASE
    if not placement.commit_intent(action, digest, values, new_id, client_order_id, lease):
        existing = placement.replay(action, digest)
        if existing is None:
            raise placement.in_flight()
        return existing, True

    def call(req: OrderRequest) -> Any:
        return sender.adapter.replace_order(old_number, req, **identity)

    new = sender.send(new_id, lease, request, call=call)
    if new.broker_order_id is not None and new.status not in (
        OrderStatus.REJECTED.value,
        OrderStatus.UNKNOWN.value,
    ):
        _close_replaced(sender.adapter, old.id, new.id, identity)
    return new, False


def _close_replaced(adapter: Any, old_id: uuid.UUID, new_id: uuid.UUID, identity: Any) -> None:
    """Link the replaced order to its replacement and read it at the broker (now closed).

    A read that fails leaves it CANCEL_PENDING: the poller settles it from the broker.
    """
    now = clock.now()
    with order_lock(old_id, wait=True):
        old = db.session.get(Order, old_id)
        if old is None:
            return
        db.session.refresh(old)
        broker_order_id, recorded = old.broker_order_id, old.filled_quantity
        assert broker_order_id is not None
        # No transaction stays open while the broker answers (the read and its fills'): the
        # order's lock keeps every other writer off, and its row is read again, locked, when
        # the answer is written (the lock's own connection may be cut meanwhile; the row lock
        # then still keeps the poller's write and ours apart).
        db.session.commit()
        try:
            answer = adapter.get_order(broker_order_id, **identity)
            answer = complete(adapter, recorded, answer)
        except Exception as exc:  # noqa: BLE001 - the poller reads it later
            log.warning("order %s: replaced, not read back (%s)", old_id, type(exc).__name__)
            answer = None
        old = db.session.get(Order, old_id, with_for_update=True, populate_existing=True)
        if old is None:
            return
        old.replaced_by_order_id = new_id
        if answer is not None and answer.status in TERMINAL_STATUSES:
            apply_answer(old, answer, now)
        else:
            old.cancel_requested_ts = now
            advance(old, OrderStatus.CANCEL_PENDING, now)
        old.updated_ts = now
        db.session.commit()
