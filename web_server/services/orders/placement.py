"""Placing an order: validated, committed as an intent, sent once, answered (DESIGN §4).

Placement never loses an order, never sends one twice, and never hands out an order id that can
later disappear:

1. The request is validated (account active and allowed, symbol in the master and tradable or a
   known crypto market, quantity and price shapes, the KRX tick for stocks) before anything is
   written. A database failure here answers 503 and nothing is stored.
2. The intent and the order (PENDING_SUBMIT, with our client order id and a short lease) are
   committed in their own transaction *before* the broker is called (the deliberate exception of
   STYLE H8), keyed by ``<API key>:<Idempotency-Key>``. A commit whose acknowledgement is lost is
   looked up again rather than guessed at.
3. ``submission.py`` sends it once and records the answer, riding out a lost connection.

Replays: the same key with the same body answers the stored order once it has left
PENDING_SUBMIT — from then on its id is permanent; while it is PENDING_SUBMIT (its request still
at the broker, or an orphan the reconciler has yet to settle) a replay is 409 ``order_in_flight``
with ``Retry-After`` and no id, because the attempt may still be withdrawn (the broker refused it
before acting) and its key start over. The same key with another body (another account
included) is 409 ``idempotency_conflict``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select, text, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers import OrderRequest, OrderType, Side
from brokers.krx import krx_stock_tick
from web_server.database import retry_unavailable
from web_server.errors import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidOrder,
    OrderInFlight,
    ValidationFailed,
    is_database_unavailable,
)
from web_server.extensions import db
from web_server.models import Account, ApiKey, Order, OrderIntent, OrderStatus
from web_server.services import clock, events, risk
from web_server.services.accounts import get_account
from web_server.services.market_rules import stored_market
from web_server.services.orders import submission
from web_server.services.orders.lifecycle import START_LEASE
from web_server.services.symbols import UnknownSymbol

log = logging.getLogger(__name__)

#: How long committing the intent may keep trying while the database is unreachable.
COMMIT_BUDGET = 5.0
#: What a replay of an order still being placed is told to wait, in seconds: its request is
#: normally done within one; an orphan waits for the reconciler's next round.
IN_FLIGHT_RETRY_AFTER = 1
ORPHAN_RETRY_AFTER = 5

ROUTES = ("KRX", "NXT", "SOR")
#: Exchanges that buy at market by amount (Upbit ``ord_type=price``, Bithumb likewise): a MARKET
#: BUY there carries ``quote_amount`` (what to spend) instead of ``quantity``.
AMOUNT_BUYERS = ("UPBIT", "BITHUMB")
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
    quantity, quote_amount = body.get("quantity"), body.get("quote_amount")
    problems: dict[str, list[str]] = {}
    by_amount = (
        account.exchange in AMOUNT_BUYERS and order_type == "MARKET" and body["side"] == "BUY"
    )
    if (quantity is None) == (quote_amount is None):
        problems["quantity"] = ["send exactly one of quantity and quote_amount"]
    elif quote_amount is not None and not by_amount:
        problems["quote_amount"] = [
            "is only for a MARKET BUY on UPBIT or BITHUMB (they buy at market by amount); "
            "send quantity"
        ]
    elif by_amount and quote_amount is None:
        problems["type"] = [
            f"{account.exchange} buys at market by amount: send quote_amount, not quantity"
        ]
    if order_type == "LIMIT" and limit_price is None:
        problems["limit_price"] = ["is required for a LIMIT order"]
    if order_type == "MARKET" and limit_price is not None:
        problems["limit_price"] = ["must be absent for a MARKET order"]
    if account.account_type == "SECURITIES_STOCK":
        if quantity is not None and quantity != quantity.to_integral_value():
            problems["quantity"] = ["must be a whole number of shares"]
        if body.get("route") not in (None, *ROUTES):
            problems["route"] = [f"must be one of {', '.join(ROUTES)}"]
    elif body.get("route") is not None:
        problems["route"] = ["is for securities accounts only"]
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
    market = stored_market(account.exchange, body["symbol"])
    if market is None or not market.rule.is_tradable:
        raise UnknownSymbol(
            f"{body['symbol']} is not a tradable {account.exchange} market "
            "(run `gateway markets sync` if it was listed recently).",
            errors={"symbol": [body["symbol"]]},
        )
    return None, market.id


def check_market_rules(adapter: Any, account: Account, request: OrderRequest) -> None:
    """Refuse a crypto order that breaks its market's tick, lot or notional rule, storing nothing.

    The same check the adapter makes before sending, made before the intent is written: an order
    the exchange would refuse for its shape is a 422, not a stored REJECTED order.

    Raises:
        ValidationFailed: a rule is broken (``errors`` names the field and the rule).
    """
    if account.account_type != "CRYPTO":
        return
    market = stored_market(account.exchange, request.symbol)
    if market is None:
        return  # _validate refused it already
    try:
        adapter.check_order(request, market.rule)
    except InvalidOrder as exc:
        field = {"RULE_TICK": "limit_price", "RULE_MIN_NOTIONAL": "quantity"}.get(
            exc.broker_code or "", "quantity" if request.quote_amount is None else "quote_amount"
        )
        raise ValidationFailed(
            f"The order breaks a rule of {request.symbol} on {account.exchange}: {exc.detail}",
            errors={field: [f"{exc.broker_code}: {exc.detail}"]},
        ) from None


def place_order(key: ApiKey, body: Mapping[str, Any], idempotency_key: str) -> tuple[Order, bool]:
    """Place an order once per idempotency key; return it and whether it is a replay.

    Raises:
        ValidationFailed: the order or its symbol is not acceptable (nothing is written).
        IdempotencyConflict: the key was used with another body.
        OrderInFlight: the first request with this key has not settled its order yet; retry
            after ``retry_after`` seconds.
        Forbidden: the API key may not use the account.
        BrokerUnavailable: the broker refused before acting (rate limit, outage, unreachable);
            nothing is kept, so the same request may be retried with the same key.
        DatabaseUnavailable: the database did not answer; retry with the same key.
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
    order_id, client_order_id = uuid.uuid4(), new_client_order_id()
    # One connection carries the order from here to its answer (submission.Held): this read,
    # the intent, the claim, the answer and the unlock.
    held = submission.Held(order_id)
    try:
        return _place(key, body, action_key, digest, order_id, client_order_id, held)
    finally:
        held.release()


def _place(
    key: ApiKey,
    body: Mapping[str, Any],
    action_key: str,
    digest: str,
    order_id: uuid.UUID,
    client_order_id: str,
    held: submission.Held,
) -> tuple[Order, bool]:
    account_id = body["account_id"]
    # The account and whether the key was used, in one statement, then the risk gate's facts,
    # outside any transaction (two round trips, no BEGIN or COMMIT), on the connection that
    # will carry the order to its answer (Held: one checkout per order). No request waits for
    # a second connection while it holds one (a burst of new orders larger than the pool would
    # hold all of them and wait until the pool's timeout, 503s for all): the request's own
    # reads end first, and the held connection goes back before a replay, or a token, is read.
    key_id = key.id  # (read before the commit below expires the key's attributes)
    if db.session().in_transaction():  # (committing an idle session still runs its hooks)
        db.session.commit()  # the request's own reads (its API key, when not cached) end
    ready: _Ready | None = None
    with held.session(alone=True) as reader:
        parameters = risk.facts_parameters(key_id, account_id, body["symbol"], clock.now())
        found = reader.execute(
            _account_and_key(), {"action_key": action_key, "account_id": account_id, **parameters}
        ).first()
        if found is not None and found[1] is None:
            ready = _prepare(reader, found[0], body, action_key, client_order_id, held, found)
    if ready is None:
        held.release()
        existing = _replay(action_key, digest)
        if existing is not None:
            return existing, True
        account = found[0] if found is not None else get_account(account_id)
        db.session.commit()  # the request's reads end before the next connection is taken
        # The key's first attempt was withdrawn meanwhile: this one starts over.
        with held.session(alone=True) as reader:
            ready = _prepare(reader, account, body, action_key, client_order_id, held)
    if not ready.sender.token_in_memory():
        # The stored token into this process's copy now, with no connection held, so the send,
        # which holds one, reads none (issuing one, if needed, is left to the send as before).
        held.release()
        ready.sender.prefetch_token()
    lease = clock.now() + START_LEASE
    market_id = ready.values["crypto_market_id"]
    held.market = (market_id, body["symbol"]) if market_id is not None else None
    committed = _commit_intent(
        action_key, digest, ready.values, order_id, client_order_id, lease, held=held,
        gate=ready.gate,
    )  # fmt: skip
    if not committed:
        held.release()
        # The same key raced in from another request: replay it.
        existing = _replay(action_key, digest)
        if existing is None:  # that attempt was withdrawn in between: start over on retry
            raise OrderInFlight(_IN_FLIGHT, retry_after=IN_FLIGHT_RETRY_AFTER)
        return existing, True
    order = ready.sender.send(order_id, lease, ready.request)
    submission.known_market(db.session, held.market)  # for the answer's view
    return order, False


@dataclasses.dataclass(frozen=True)
class _Ready:
    """An order checked and ready to commit (its values, request, sender and gate)."""

    values: dict[str, Any]
    request: OrderRequest
    sender: submission.Sender
    gate: risk.Gate


def _prepare(
    reader: Session,
    account: Account,
    body: Mapping[str, Any],
    action_key: str,
    client_order_id: str,
    held: submission.Held,
    facts: Any = None,
) -> _Ready:
    """Check the order (shape, instrument, market rules, kill switches, KRX) and build it.

    Everything the broker call needs is had now, while a refusal still costs nothing. ``facts``:
    the risk gate's, read with the account (``_account_and_key``), else read here.

    Raises:
        ValidationFailed, Conflict, KillSwitchEngaged, ...: the order is refused; nothing is
            written.
    """
    symbol, market_id = _validate(account, body)
    values = {
        "account_id": account.id,
        "symbol": symbol,
        "crypto_market_id": market_id,
        "side": body["side"],
        "order_type": body["type"],
        "quantity": body.get("quantity"),
        "quote_amount": body.get("quote_amount"),
        "limit_price": body.get("limit_price"),
        "route": body.get("route"),
    }
    request = OrderRequest(
        symbol=body["symbol"],
        side=Side(body["side"]),
        order_type=OrderType(body["type"]),
        # A market buy by amount has no quantity: the adapter sends quote_amount.
        quantity=body.get("quantity") or Decimal(0),
        client_order_id=client_order_id,
        limit_price=body.get("limit_price"),
        route=body.get("route"),
        quote_amount=body.get("quote_amount"),
    )
    sender = submission.Sender(account, held)
    check_market_rules(sender.adapter, account, request)
    view = _risk_view(_IntentView.of(action_key, {**_NO_TERMS, **values}))
    gate = risk.check(reader, view, facts)
    return _Ready(values=values, request=request, sender=sender, gate=gate)


@functools.cache
def _account_and_key() -> Any:
    """The first read of a placement (account, whether the key was used, gate facts), built once.

    The risk gate's facts (``risk.facts_lateral``: kill switches, policies, the stock) come with
    the account, so the gate reads nothing of its own: one round trip for all three.

    A statement built per order, and its cache key computed per order, were a measurable part of
    its CPU (issue 12); a built statement keeps its cache key.
    """
    facts = risk.facts_lateral()
    return (
        select(Account, OrderIntent.intent_id, *facts.c)
        .select_from(Account)
        .outerjoin(OrderIntent, OrderIntent.action_key == bindparam("action_key"))
        .join(facts, true())
        .where(Account.id == bindparam("account_id"))
    )


_IN_FLIGHT = (
    "The first request with this Idempotency-Key is still at the broker; retry in a few seconds "
    "with the same key."
)


def _commit_intent(
    action_key: str,
    digest: str,
    values: Mapping[str, Any],
    order_id: uuid.UUID,
    client_order_id: str,
    lease: dt.datetime,
    *,
    held: Any = None,
    gate: risk.Gate | None = None,
) -> bool:
    """Commit the intent and its PENDING_SUBMIT order; tell whether they are ours.

    False means the key is already taken by another request. A commit whose acknowledgement was
    lost with the connection is found again by the next attempt instead of being inserted twice.
    With ``held`` (``submission.Held``), on the connection that will carry the order to the
    broker; one that fails is discarded and the next attempt takes a new one. With ``gate``
    (``risk.check`` already passed), the policies are applied here if any exist; otherwise the
    intent is one statement outside a transaction. Without it (an amend) the whole gate runs here.

    Raises:
        DatabaseUnavailable: the database did not answer for :data:`COMMIT_BUDGET` seconds.
    """
    tried = False

    def attempt() -> bool:
        try:
            return work()
        except Exception as exc:
            if held is not None and is_database_unavailable(exc):
                held.drop()  # lost: the next attempt takes a new one
            raise

    # Without a policy to count (``gate`` says so), the intent is one statement on its own, its
    # own transaction: no BEGIN or COMMIT round trips.
    alone = gate is not None and not gate.counts and held is not None

    def work() -> bool:
        nonlocal tried
        session = held.session(alone=alone) if held is not None else Session(db.engine)
        with session:
            if held is not None:
                submission.known_market(session, held.market)
            if tried:
                owner = session.execute(
                    select(OrderIntent.intent_id, Order.id)
                    .outerjoin(Order, Order.intent_id == OrderIntent.intent_id)
                    .where(OrderIntent.action_key == action_key)
                ).first()
                if owner is not None:
                    return owner[1] == order_id
            tried = True
            # Stamped by the gateway's clock, not the database's: the reconciler compares them
            # with the broker's times and its own now (one simulated clock in the tests).
            stamp = clock.now()
            row = {**_NO_TERMS, **values}
            view = _risk_view(_IntentView.of(action_key, row))
            if gate is None:
                risk.admit(session, view)  # before any send
            elif gate.counts:
                risk.apply_policies(session, view, gate)  # the gate checked the rest already
            order = _NewOrder(**row, id=order_id, client_order_id=client_order_id, created_ts=stamp)
            try:
                # The intent, the order and its event in one statement, with no ORM objects
                # (issue 12: their flush and its bookkeeping were a fifth of the gateway's CPU
                # per order).
                session.execute(
                    _INSERT_INTENT_AND_ORDER,
                    {
                        **row,
                        "intent_id": uuid.uuid4(),
                        "order_id": order_id,
                        "action_key": action_key,
                        "request_hash": digest,
                        "client_order_id": client_order_id,
                        "lease": lease,
                        "stamp": stamp,
                        "event_type": "accepted",
                        "event_payload": events.payload_json(session, order),
                        "channel": events.CHANNEL,
                    },
                )
                session.commit()  # durable before the broker hears of it (STYLE H8)
            except IntegrityError as exc:
                diagnostics = getattr(exc.orig, "diag", None)
                if getattr(diagnostics, "constraint_name", None) != "uq_order_intents_action_key":
                    raise
                return False
            return True

    return retry_unavailable(attempt, budget=COMMIT_BUDGET, what=f"order {order_id}: intent")


def _replay(action_key: str, digest: str) -> Order | None:
    """Return the settled order of a key already used, or None if the key is new.

    Raises:
        IdempotencyConflict: the key was used with another body.
        OrderInFlight: the key's order is still PENDING_SUBMIT: no id is handed out yet.
    """
    intent = db.session.scalar(select(OrderIntent).where(OrderIntent.action_key == action_key))
    if intent is None:
        return None
    if intent.request_hash != digest:
        raise IdempotencyConflict(
            "This Idempotency-Key was used with a different order; use a new key for a new order."
        )
    order = db.session.scalar(select(Order).where(Order.intent_id == intent.intent_id))
    if order is None or order.status == OrderStatus.PENDING_SUBMIT:
        leased = order is None or order.lease_until is None or order.lease_until > clock.now()
        raise OrderInFlight(
            _IN_FLIGHT, retry_after=IN_FLIGHT_RETRY_AFTER if leased else ORPHAN_RETRY_AFTER
        )
    return order


def _risk_view(intent: _IntentView) -> _IntentView:
    """What the risk gate reads of an intent; a buy by amount counts as its amount's worth.

    The gate counts quantity × price: an order by amount is shown as quantity = amount at price
    1, so its notional is right (a per-order *quantity* limit then compares the amount: it
    refuses rather than lets through).
    """
    if intent.quote_amount is None:
        return intent
    return dataclasses.replace(intent, quantity=intent.quote_amount, limit_price=Decimal(1))


@dataclasses.dataclass(frozen=True)
class _IntentView:
    """An intent's terms as the risk gate reads them."""

    action_key: str
    account_id: int
    symbol: str | None
    crypto_market_id: int | None
    side: str
    order_type: str
    quantity: Decimal | None
    quote_amount: Decimal | None
    limit_price: Decimal | None
    route: str | None

    @classmethod
    def of(cls, action_key: str, row: Mapping[str, Any]) -> _IntentView:
        """The view of an intent's row (its terms: ``values`` with ``_NO_TERMS``)."""
        terms = (field.name for field in dataclasses.fields(cls) if field.name != "action_key")
        return cls(action_key=action_key, **{name: row[name] for name in terms})


@dataclasses.dataclass(frozen=True)
class _NewOrder:
    """A just-inserted PENDING_SUBMIT order as its ``accepted`` event shows it (events._view)."""

    id: uuid.UUID
    account_id: int
    symbol: str | None
    crypto_market_id: int | None
    side: str
    order_type: str
    quantity: Decimal | None
    quote_amount: Decimal | None
    limit_price: Decimal | None
    route: str | None
    client_order_id: str
    created_ts: dt.datetime
    replaces_order_id: uuid.UUID | None = None
    status: str = OrderStatus.PENDING_SUBMIT.value
    broker_order_id: None = None
    broker_order_date: None = None
    attention: None = None
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: None = None
    reject_code: None = None
    reject_message: None = None

    @property
    def updated_ts(self) -> dt.datetime:
        return self.created_ts


#: The terms an intent and its order share, absent from a placement's (an amend's replaces).
_NO_TERMS: dict[str, Any] = {"quote_amount": None, "replaces_order_id": None}

#: The intent, its order and the order's ``accepted`` event in one statement (one round trip):
#: the order takes the intent's terms from the intent's RETURNING, so each value is bound once
#: and typed by its column. A key already used fails on ``uq_order_intents_action_key`` as an ORM
#: insert did, and then nothing of it is written.
_INTENT_AND_ORDER = (
    "WITH intent AS (INSERT INTO trade.order_intents (intent_id, account_id, symbol,"
    " crypto_market_id, side, order_type, quantity, quote_amount, limit_price, route,"
    " replaces_order_id, action_key, request_hash, status, created_ts, updated_ts)"
    " VALUES (:intent_id, :account_id, :symbol, :crypto_market_id, :side, :order_type, :quantity,"
    " :quote_amount, :limit_price, :route, :replaces_order_id, :action_key, :request_hash,"
    " 'PENDING_SUBMIT', :stamp, :stamp) RETURNING *),"
    " written_order AS (INSERT INTO trade.orders (id, intent_id, account_id, symbol,"
    " crypto_market_id, side, order_type, quantity, quote_amount, limit_price, route,"
    " replaces_order_id, client_order_id, status, lease_until, created_ts, updated_ts)"
    " SELECT :order_id, intent_id, account_id, symbol, crypto_market_id, side, order_type,"
    " quantity, quote_amount, limit_price, route, replaces_order_id, :client_order_id, status,"
    " :lease, created_ts, updated_ts FROM intent RETURNING id, account_id),"
)
_INSERT_INTENT_AND_ORDER = text(_INTENT_AND_ORDER + events.WRITE_ONE_EVENT)


# The names the amend (amend.py) shares with placement.
validate = _validate
replay = _replay
commit_intent = _commit_intent


def in_flight() -> OrderInFlight:
    """The 409 a request gets while its key's first attempt is still being placed."""
    return OrderInFlight(_IN_FLIGHT, retry_after=IN_FLIGHT_RETRY_AFTER)
