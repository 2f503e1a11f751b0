"""Panic actions: cancel every open order of an account or an API key; flatten an account.

Both are idempotent and recorded. A run is keyed by ``<API key id>:<Idempotency-Key>`` (the CLI
runs as key 0) in ``trade.panic_actions``, with a hash of what it was asked to do, who asked,
when, and its result; the same key again answers the recorded run (a replay), the same key for
another action is a 409 ``idempotency_conflict``, and a run still going is a 409
``panic_in_progress`` with ``Retry-After``. Each start and end also leaves an audit record in
``trade.risk_events``.

**Cancel-all** (``CANCEL_ALL``) of an account:

1. every order the gateway knows open (SUBMITTED, PARTIALLY_FILLED, CANCEL_PENDING) is
   cancelled through the public cancel service, :func:`web_server.services.orders.cancel_order`
   (under the order's lock; the order's record moves as for any cancel);
2. then the broker's own list of open orders is read — ``open_orders()`` on the crypto
   exchanges, today's (KST) order history ``day_orders()`` on KIS and Kiwoom — and every order
   still open there is cancelled too: an order the gateway never knew (placed by hand, by
   another tool), or one it knows only as PENDING_SUBMIT or UNKNOWN (its answer was lost; the
   reconciler settles its record later). Those go to the adapter's ``cancel_order`` one by one:
   each is paced by the shared rate limiter like any other call.

Of an API key: step 1 for the orders the key placed, on every account; a key's orders the
gateway does not know cannot be told apart at the broker, so there is no step 2.

**Flatten** (``FLATTEN``, accounts only): cancel-all, then one SELL per position the broker
reports (read after the cancels, so shares held by cancelled sells are free again), through the
normal placement service, so each is an order on record with its own idempotency key
(``panic-<run id>-<symbol>``). Stocks: a MARKET order (KRX 시장가) for the sellable quantity.
Crypto: a MARKET sell of the asset on its market in the account's cash currency (KRW on Upbit and
Bithumb; on Binance USDT first, then the other quote currencies the account holds), the quantity
rounded down to the market's lot; what is left below the lot, or worth less than the market's
minimum order, cannot be sold at all and is reported as ``dust`` in ``skipped``.

Panic orders run under :func:`web_server.services.risk.panic_context`: kill switches and risk
policies do not apply to them (panic reduces risk, and is what an operator reaches for *after*
engaging a switch); the KRX checks still do, as the exchange would apply them anyway.

The run ends ``DONE`` when everything it tried succeeded, ``FAILED`` when something did not (the
result names each failure with its code); both are final, and a new Idempotency-Key runs again.

A run whose process died (killed, host lost) would stay ``RUNNING`` and answer every replay with
``panic_in_progress`` for ever. A run is bounded (every broker call has a timeout and a run makes
a bounded number of them), so one still ``RUNNING`` after :data:`ABANDONED_AFTER` is over: the
next replay records it ``FAILED`` with the error ``abandoned`` (and an audit record) and answers
that, so the operator knows to run it again with a new key. Running it again is safe: cancel-all
repeats harmlessly, and flatten cancels the open orders (the dead run's sales included) before
it sells what the broker then reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from brokers import OPEN_STATUSES, utc_now
from web_server.errors import (
    Conflict,
    GatewayError,
    IdempotencyConflict,
    NotFound,
    ValidationFailed,
)
from web_server.extensions import db
from web_server.models import Account, ApiKey, CryptoMarket, Order, OrderIntent, PanicAction
from web_server.services import clock, krx_sessions, risk
from web_server.services import orders as orders_service
from web_server.services.accounts import get_account
from web_server.services.brokers import adapter_for
from web_server.services.risk_policies import audit

__all__ = ["KINDS", "SCOPES", "PanicInProgress", "cli_key", "get_action", "list_actions", "run"]

log = logging.getLogger(__name__)

KINDS = ("CANCEL_ALL", "FLATTEN")
SCOPES = ("API_KEY", "ACCOUNT")
#: What a replay of a run still going is told to wait, in seconds.
IN_PROGRESS_RETRY_AFTER = 2
#: A run still RUNNING this long after it started has lost its process (module docstring).
ABANDONED_AFTER = dt.timedelta(minutes=10)
#: Statuses of gateway orders the cancel service takes.
_CANCELLABLE = ("SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING")
#: Binance quote currencies to sell into, in order of preference.
_BINANCE_QUOTES = ("USDT", "USDC", "FDUSD", "BTC")


class PanicInProgress(Conflict):
    """The first request with this Idempotency-Key is still running its panic action."""

    code = "panic_in_progress"


def cli_key() -> ApiKey:
    """Return the stand-in key the CLI acts as: id 0, every account (never stored)."""
    return ApiKey(id=0, label="cli", prefix="cli", key_hash="", scopes=["admin"], account_ids=None)


def _hash(kind: str, scope: str, target_id: int) -> str:
    canonical = json.dumps({"kind": kind, "scope": scope, "target_id": target_id}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_action(action_id: uuid.UUID) -> PanicAction:
    """Return one recorded run.

    Raises:
        NotFound: no such run.
    """
    action = db.session.get(PanicAction, action_id)
    if action is None:
        raise NotFound(f"No panic action {action_id}.")
    return action


def list_actions(limit: int = 50) -> Sequence[PanicAction]:
    """Return the newest runs first."""
    return db.session.scalars(
        select(PanicAction).order_by(PanicAction.created_ts.desc()).limit(limit)
    ).all()


def action_view(action: PanicAction) -> dict[str, Any]:
    """Return a run as the API shows it."""
    return {
        "id": action.id,
        "kind": action.kind,
        "scope": action.scope,
        "target_id": action.target_id,
        "status": action.status,
        "requested_by": action.requested_by,
        "created_at": action.created_ts,
        "finished_at": action.finished_ts,
        "result": action.result,
    }


def run(
    kind: str, scope: str, target_id: int, *, key: ApiKey, idempotency_key: str, actor: str
) -> tuple[PanicAction, bool]:
    """Run a panic action once per idempotency key; return the run and whether it is a replay.

    ``key`` is the API key acting (its account restrictions apply to every cancel and order);
    the caller has checked that it may act on the target.

    Raises:
        ValidationFailed: no usable Idempotency-Key, or a flatten of something not an account.
        NotFound: no such account or key.
        IdempotencyConflict: the key was used for another action.
        PanicInProgress: the first request with this key is still running.
    """
    if not orders_service.IDEMPOTENCY_KEY.match(idempotency_key or ""):
        raise ValidationFailed(
            "The Idempotency-Key header is required: 1 to 200 printable ASCII characters.",
            errors={"Idempotency-Key": ["required, printable ASCII, at most 200 characters"]},
        )
    if kind not in KINDS or scope not in SCOPES or (kind == "FLATTEN" and scope != "ACCOUNT"):
        raise ValidationFailed(f"{kind} is not available for {scope}.")
    action_key = f"{key.id}:{idempotency_key}"
    digest = _hash(kind, scope, target_id)
    existing = _replay(action_key, digest)
    if existing is not None:
        return existing, True
    target = db.session.get(Account if scope == "ACCOUNT" else ApiKey, target_id)
    if target is None:
        raise NotFound(f"No {scope.lower().replace('_', ' ')} {target_id}.")
    action = PanicAction(
        id=uuid.uuid4(),
        action_key=action_key,
        request_hash=digest,
        kind=kind,
        scope=scope,
        target_id=target_id,
        requested_by=actor,
        status="RUNNING",
        created_ts=utc_now(),
    )
    db.session.add(action)
    audit(actor, f"panic_{kind.lower()}_started", scope, target_id, {"action_id": str(action.id)})
    try:
        db.session.commit()  # on record before anything is cancelled or sold
    except IntegrityError:
        db.session.rollback()
        existing = _replay(action_key, digest)  # the same key raced in from another request
        if existing is None:
            raise
        return existing, True
    action_id = action.id
    result: dict[str, Any] = {"cancelled": [], "sold": [], "skipped": [], "failed": []}
    try:
        with risk.panic_context(str(action_id)):
            if scope == "API_KEY":
                _cancel_known(key, _key_orders(target_id), result)
            else:
                _cancel_account(key, target_id, result)
                if kind == "FLATTEN":
                    _flatten(key, target_id, action_id, result)
            if scope == "ACCOUNT":
                result["open_orders_left"] = _still_open(target_id, result)
    except Exception:
        db.session.rollback()
        _finish(action_id, "FAILED", {**result, "error": "internal_error"}, actor)
        raise
    status = "FAILED" if result["failed"] else "DONE"
    return _finish(action_id, status, result, actor), False


def _replay(action_key: str, digest: str) -> PanicAction | None:
    action = db.session.scalar(select(PanicAction).where(PanicAction.action_key == action_key))
    if action is None:
        return None
    if action.request_hash != digest:
        raise IdempotencyConflict(
            "This Idempotency-Key was used for another panic action; use a new key."
        )
    if action.status == "RUNNING" and utc_now() - action.created_ts > ABANDONED_AFTER:
        return _abandon(action)
    if action.status == "RUNNING":
        raise PanicInProgress(
            "The first request with this Idempotency-Key is still running; retry shortly with "
            "the same key.",
            retry_after=IN_PROGRESS_RETRY_AFTER,
        )
    return action


def _abandon(action: PanicAction) -> PanicAction:
    """Record a run whose process died as FAILED, once (the row lock orders racing replays)."""
    locked = db.session.scalar(
        select(PanicAction)
        .where(PanicAction.id == action.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    if locked.status != "RUNNING":
        db.session.commit()
        return locked
    log.warning(
        "panic run %s has been RUNNING since %s: recorded as abandoned",
        locked.id,
        locked.created_ts,
    )
    result = {**(locked.result or {}), "error": "abandoned"}
    return _finish(locked.id, "FAILED", result, "gateway")


def _finish(action_id: uuid.UUID, status: str, result: dict[str, Any], actor: str) -> PanicAction:
    action = db.session.get(PanicAction, action_id)
    assert action is not None
    action.status, action.result, action.finished_ts = status, _jsonable(result), utc_now()
    audit(
        actor,
        f"panic_{action.kind.lower()}_{status.lower()}",
        action.scope,
        action.target_id,
        {"action_id": str(action_id), "failed": len(result.get("failed", []))},
    )
    db.session.commit()
    log.info(
        "panic %s of %s %s by %s: %s (%d cancelled, %d sold, %d failed)",
        action.kind,
        action.scope,
        action.target_id,
        actor,
        status,
        len(result.get("cancelled", [])),
        len(result.get("sold", [])),
        len(result.get("failed", [])),
    )
    return action


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, uuid.UUID | dt.date):
        return str(value)
    return value


def _failure(exc: GatewayError, **where: Any) -> dict[str, Any]:
    return {**where, "code": exc.code, "detail": exc.detail}


# -- cancel-all -------------------------------------------------------------------------------


def _key_orders(key_id: int) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order)
            .join(OrderIntent, Order.intent_id == OrderIntent.intent_id)
            .where(
                func.split_part(OrderIntent.action_key, ":", 1) == str(key_id),
                Order.status.in_(_CANCELLABLE),
            )
            .order_by(Order.created_ts)
        )
    )


def _account_orders(account_id: int) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.account_id == account_id, Order.status.in_(_CANCELLABLE))
            .order_by(Order.created_ts)
        )
    )


def _cancel_known(key: ApiKey, orders: list[Order], result: dict[str, Any]) -> set[str]:
    """Cancel gateway orders through the cancel service; return the broker ids tried."""
    tried: set[str] = set()
    for order in orders:
        order_id, broker_id = order.id, order.broker_order_id
        if broker_id:
            tried.add(broker_id)
        try:
            cancelled = orders_service.cancel_order(key, order_id)
        except GatewayError as exc:
            db.session.rollback()
            result["failed"].append(_failure(exc, order_id=order_id, broker_order_id=broker_id))
            continue
        result["cancelled"].append(
            {
                "order_id": order_id,
                "broker_order_id": broker_id,
                "status": cancelled.status,
                "source": "gateway",
            }
        )
    return tried


def _broker_open(adapter: Any, account: Account) -> list[Any]:
    """Return the orders the broker shows open for the account."""
    if account.account_type == "SECURITIES_STOCK":
        today = krx_sessions.trading_date(clock.now())
        return [o for o in adapter.day_orders(today) if o.status in OPEN_STATUSES]
    return list(adapter.open_orders())


def _cancel_account(key: ApiKey, account_id: int, result: dict[str, Any]) -> None:
    tried = _cancel_known(key, _account_orders(account_id), result)
    account = get_account(account_id)
    securities = account.account_type == "SECURITIES_STOCK"
    order_date = krx_sessions.trading_date(clock.now()) if securities else None
    try:
        adapter = adapter_for(account)
        remaining = _broker_open(adapter, account)
    except GatewayError as exc:
        result["failed"].append(_failure(exc, step="read the broker's open orders"))
        return
    for broker_order in remaining:
        broker_id = broker_order.broker_order_id
        known = db.session.scalar(
            select(Order).where(Order.account_id == account_id, Order.broker_order_id == broker_id)
        )
        if known is not None and known.status in _CANCELLABLE and broker_id not in tried:
            _cancel_known(key, [known], result)
            continue
        try:
            answer = adapter.cancel_order(
                broker_id, symbol=broker_order.symbol, order_date=order_date
            )
        except GatewayError as exc:
            result["failed"].append(
                _failure(exc, broker_order_id=broker_id, symbol=broker_order.symbol)
            )
            continue
        result["cancelled"].append(
            {
                "order_id": known.id if known is not None else None,
                "broker_order_id": broker_id,
                "symbol": broker_order.symbol,
                "status": str(answer.status),
                "source": "broker",
            }
        )


def _still_open(account_id: int, result: dict[str, Any]) -> int | None:
    """Count what the broker still shows open (None: it could not be read)."""
    account = get_account(account_id)
    try:
        return len(_broker_open(adapter_for(account), account))
    except GatewayError as exc:
        result["failed"].append(_failure(exc, step="re-read the broker's open orders"))
        return None


# -- flatten ----------------------------------------------------------------------------------


def _flatten(key: ApiKey, account_id: int, action_id: uuid.UUID, result: dict[str, Any]) -> None:
    account = get_account(account_id)
    try:
        adapter = adapter_for(account)
        positions = adapter.get_holdings()
        cash = (
            [b.currency for b in adapter.get_balance()]
            if account.account_type != "SECURITIES_STOCK"
            else []
        )
    except GatewayError as exc:
        result["failed"].append(_failure(exc, step="read the broker's holdings"))
        return
    for position in positions:
        if account.account_type == "SECURITIES_STOCK":
            body, skipped = _stock_sale(account, position)
        else:
            body, skipped = _crypto_sale(account, position, cash)
        if skipped is not None:
            result["skipped"].append(skipped)
        if body is None:
            continue
        idempotency_key = f"panic-{action_id}-{body['symbol']}"
        try:
            order, _ = orders_service.place_order(key, body, idempotency_key)
        except GatewayError as exc:
            db.session.rollback()
            result["failed"].append(_failure(exc, symbol=body["symbol"], quantity=body["quantity"]))
            continue
        result["sold"].append(
            {
                "order_id": order.id,
                "symbol": body["symbol"],
                "quantity": body["quantity"],
                "type": body["type"],
                "status": order.status,
                "reject_code": order.reject_code,
            }
        )
        if order.status == "REJECTED":
            result["failed"].append(
                {
                    "symbol": body["symbol"],
                    "order_id": order.id,
                    "code": "broker_rejected",
                    "detail": order.reject_message or "",
                }
            )


def _stock_sale(account: Account, position: Any) -> tuple[dict[str, Any] | None, Any]:
    sellable = position.available_quantity
    quantity = (sellable if sellable is not None else position.quantity).to_integral_value(
        ROUND_DOWN
    )
    if quantity <= 0:
        return None, {
            "symbol": position.symbol,
            "quantity": position.quantity,
            "reason": "nothing sellable now",
        }
    return {
        "account_id": account.id,
        "symbol": position.symbol,
        "side": "SELL",
        "type": "MARKET",
        "quantity": quantity,
    }, None


def _market_for(account: Account, asset: str, cash: list[str]) -> CryptoMarket | None:
    markets = {
        m.quote_asset: m
        for m in db.session.scalars(
            select(CryptoMarket).where(
                CryptoMarket.exchange == account.exchange,
                CryptoMarket.base_asset == asset,
                CryptoMarket.is_tradable.is_(True),
            )
        )
    }
    preferred = _BINANCE_QUOTES if account.exchange == "BINANCE" else ("KRW",)
    for quote in (*preferred, *cash):
        if quote in markets:
            return markets[quote]
    return None


def _crypto_sale(
    account: Account, position: Any, cash: list[str]
) -> tuple[dict[str, Any] | None, Any]:
    asset = position.asset or ""
    available = position.available_quantity
    quantity = available if available is not None else position.quantity
    market = _market_for(account, asset, cash)
    if market is None:
        return None, {
            "asset": asset,
            "quantity": quantity,
            "reason": f"no tradable {account.exchange} market sells {asset} for cash "
            "(run `gateway markets sync` if it was listed recently)",
        }
    held = quantity
    if market.lot_size:
        quantity = (quantity / market.lot_size).to_integral_value(ROUND_DOWN) * market.lot_size
    price = position.current_price or position.avg_price
    worth = quantity * price if price else None
    if quantity <= 0 or (
        market.min_notional is not None and worth is not None and worth < market.min_notional
    ):
        return None, {
            "asset": asset,
            "symbol": market.symbol,
            "quantity": position.quantity,
            "reason": "dust: below the market's lot or minimum order",
        }
    remainder = held - quantity
    return {
        "account_id": account.id,
        "symbol": market.symbol,
        "side": "SELL",
        "type": "MARKET",
        "quantity": quantity.normalize(),
    }, (
        {
            "asset": asset,
            "symbol": market.symbol,
            "quantity": remainder,
            "reason": "dust: below the market's lot",
        }
        if remainder > 0
        else None
    )
