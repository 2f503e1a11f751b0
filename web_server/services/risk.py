"""The pre-trade risk gate: every new order passes it in the transaction that writes its intent.

:func:`admit` runs inside placement's intent transaction, before the commit, so a refusal writes
nothing and sends nothing, and what it counts is exactly what is committed. It reads the kill
switches, the stock and whether a policy applies in one statement (``_FACTS``). When the API key
or the account has a policy, it then takes two transaction-scoped advisory locks, the API key's
then the account's (always in that order, so two requests cannot deadlock), and holds them to the
commit: two requests for the same key or account — in any worker, on any host — are admitted one
after the other, and the second counts the first's order. Without a policy nothing is counted, so
no lock is taken. In order:

1. kill switches (:mod:`web_server.services.kill_switches`): ``kill_switch_engaged``;
2. for a stock: NXT eligibility (``nxt_not_eligible``), the session of the route when
   ``GATEWAY_KRX_MARKET_HOURS`` is on (``krx_session_closed``), the ±30 % band of a LIMIT price
   (``krx_price_band``) — :mod:`web_server.services.krx_sessions`;
3. the API key's policy, then the account's (:mod:`web_server.services.risk_policies`):
   ``risk_side_not_allowed``, ``risk_symbol_not_allowed``, ``risk_designated``,
   ``risk_order_quantity``, ``risk_order_notional``, ``risk_notional_unknown``,
   ``risk_open_orders``, ``risk_daily_count``, ``risk_daily_notional``.

Every refusal is a 422 problem with its own code, the limit and the value in ``limit`` and
``value``, and the scope (``API_KEY`` or ``ACCOUNT``) in ``scope``.

A MARKET order's notional is its quantity × the upper limit of the day's band for a stock with a
base price (the most it can cost); with no reference price (a crypto market, a stock without a
base price) it cannot be known, so it is refused with ``risk_notional_unknown`` only where a
notional limit applies. Panic actions (:func:`panic_context`) skip the kill switches and the
policies — they reduce risk — but not the KRX checks, which the exchange would apply anyway.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import column, func, lateral, or_, select, text
from sqlalchemy.orm import Session

from brokers.krx import price_band
from web_server.errors import ValidationFailed
from web_server.models import CryptoMarket, Order, OrderIntent, RiskPolicy
from web_server.services import clock, kill_switches, krx_sessions

__all__ = ["RiskRefused", "admit", "panic_context"]

#: The advisory-lock class ids (the two-integer form) of the gate's key and account locks.
_KEY_LOCK, _ACCOUNT_LOCK = 0x5249534B, 0x52495341
#: Statuses of orders that are not final yet: they count as open.
_OPEN = ("PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "UNKNOWN")

_PANIC: contextvars.ContextVar[str | None] = contextvars.ContextVar("panic_action", default=None)


class RiskRefused(ValidationFailed):
    """An order breaks a risk policy; ``code`` names the rule."""

    title = "Refused by the risk policy"

    def __init__(
        self, code: str, detail: str, *, scope: str, limit: Any = None, value: Any = None
    ) -> None:
        extra = {"scope": scope}
        if limit is not None:
            extra["limit"] = str(limit)
        if value is not None:
            extra["value"] = str(value)
        super().__init__(detail, extra=extra)
        self.code = code


class IntentLike(Protocol):
    """What the gate reads of an order intent (``OrderIntent`` or any object alike)."""

    action_key: str
    account_id: int
    symbol: str | None
    crypto_market_id: int | None
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    route: str | None


@contextlib.contextmanager
def panic_context(action_id: str) -> Iterator[None]:
    """Mark the orders placed in this block as a panic action's (see the module)."""
    token = _PANIC.set(action_id)
    try:
        yield
    finally:
        _PANIC.reset(token)


def _key_id(intent: IntentLike) -> int:
    # Placement keys every intent as "<API key id>:<Idempotency-Key>".
    head = intent.action_key.split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def day_start(now: dt.datetime) -> dt.datetime:
    """Return 00:00 Asia/Seoul of ``now``'s KST day, as an aware datetime."""
    local = now.astimezone(krx_sessions.SEOUL)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


#: What the gate reads before anything else, in one statement: the kill switch covering the
#: key, the account or the gateway (the global one first, as ``kill_switches.check``), whether
#: the key and the account have a policy, and for a stock its NXT eligibility, designations and
#: the day's base price. Issue 12: these were six statements, and the gate's locks were taken
#: for every order although only a counting policy needs them. Always one row.
_FACTS_SQL = (
    "SELECT ks.scope, ks.reason, ks.set_by, ks.set_at,"
    " EXISTS (SELECT 1 FROM trade.risk_policies WHERE api_key_id = :key) AS key_policy,"
    " EXISTS (SELECT 1 FROM trade.risk_policies WHERE account_id = :account) AS account_policy,"
    " s.symbol AS stock, s.nxt_eligible, s.designations,"
    " (SELECT b.base_price FROM market.stock_base_prices b"
    "  WHERE b.symbol = :symbol AND b.trading_date = :day) AS base_price"
    " FROM (SELECT 1) AS one"
    " LEFT JOIN LATERAL (SELECT scope, reason, set_by, set_at FROM trade.kill_switches"
    "  WHERE scope = 'GLOBAL' OR (scope = 'API_KEY' AND target_id = :key)"
    "  OR (scope = 'ACCOUNT' AND target_id = :account)"
    "  ORDER BY scope DESC LIMIT 1) AS ks ON true"
    " LEFT JOIN market.stocks s ON s.symbol = :symbol"
)
_FACTS = text(_FACTS_SQL)
_FACT_NAMES = (
    "scope", "reason", "set_by", "set_at", "key_policy", "account_policy", "stock",
    "nxt_eligible", "designations", "base_price",
)  # fmt: skip


@functools.cache
def facts_lateral() -> Any:
    """The gate's facts as a LATERAL subquery, for a caller's first read to join (``ON true``).

    Placement reads them with the account in one round trip and hands the row to :func:`check`
    (``facts``); its parameters are :func:`facts_parameters`'.
    """
    columns = [column(name) for name in _FACT_NAMES]
    return lateral(text(_FACTS_SQL).columns(*columns), name="risk_facts")


def facts_parameters(key_id: int, account_id: int, symbol: str | None, now: dt.datetime) -> dict:
    """The parameters of the facts' statement for an order of ``key_id`` on ``account_id``."""
    day = krx_sessions.trading_date(now)
    return {"key": key_id, "account": account_id, "symbol": symbol, "day": day}


@dataclasses.dataclass(frozen=True)
class _StockFacts:
    """What the gate reads of a stock (``market.stocks``)."""

    symbol: str
    nxt_eligible: bool
    designations: list[str] | None


@dataclasses.dataclass(frozen=True)
class Gate:
    """What :func:`check` found: whether a policy must still count the order, and what with."""

    counts: bool  # the key or the account has a policy: apply_policies in the intent's commit
    stock: _StockFacts | None
    reference: Decimal | None  # the price the order's notional is counted at
    key_id: int
    now: dt.datetime


def admit(session: Session, intent: IntentLike) -> None:
    """Refuse the order unless every control lets it through; take the gate's locks if needed.

    :func:`check`, then :func:`apply_policies`, in the transaction that writes the intent,
    before its commit.

    Raises:
        KillSwitchEngaged: a kill switch covers the key, the account or the gateway.
        PriceOutsideBand, SessionClosed, NotNxtEligible: a KRX check failed.
        RiskRefused: a policy limit would be broken (its ``code`` names which).
    """
    gate = check(session, intent)
    if gate.counts:
        apply_policies(session, intent, gate)


def check(session: Session, intent: IntentLike, facts: Any = None) -> Gate:
    """Refuse the order if a kill switch covers it or a KRX check fails; tell what is left.

    One statement reads the kill switches, the stock and whether any policy applies (``facts``:
    a row of it the caller read already, with :func:`facts_lateral`). Without a
    policy nothing is counted, so nothing needs serialising: placement then writes its intent
    in one statement of its own, without a transaction around this read (issue 12). With one,
    :func:`apply_policies` must run in the intent's transaction.

    Raises:
        KillSwitchEngaged: a kill switch covers the key, the account or the gateway.
        PriceOutsideBand, SessionClosed, NotNxtEligible: a KRX check failed.
    """
    key_id, now = _key_id(intent), clock.now()
    if facts is None:
        parameters = facts_parameters(key_id, intent.account_id, intent.symbol, now)
        facts = session.execute(_FACTS, parameters).one()
    panic = _PANIC.get() is not None
    if not panic and facts.scope is not None:
        raise kill_switches.refusal(facts.scope, facts.reason, facts.set_by, facts.set_at)
    stock = None
    if intent.symbol and facts.stock is not None:
        stock = _StockFacts(facts.stock, bool(facts.nxt_eligible), facts.designations)
    reference: Decimal | None = intent.limit_price
    if stock is not None:
        reference = _krx_checks(intent, stock, now, facts.base_price)
    counts = not panic and bool(facts.key_policy or facts.account_policy)
    return Gate(counts=counts, stock=stock, reference=reference, key_id=key_id, now=now)


def apply_policies(session: Session, intent: IntentLike, gate: Gate) -> None:
    """Apply the key's and the account's policies, in the transaction that writes the intent.

    Raises:
        RiskRefused: a policy limit would be broken (its ``code`` names which).
    """
    key_id = gate.key_id
    # Held to the commit: two requests for the same key or account are admitted one after the
    # other, and the second counts the first's order.
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key), pg_advisory_xact_lock(:acls, :account)"),
        {"cls": _KEY_LOCK, "key": key_id, "acls": _ACCOUNT_LOCK, "account": intent.account_id},
    )
    policies = session.scalars(
        select(RiskPolicy).where(
            or_(RiskPolicy.api_key_id == key_id, RiskPolicy.account_id == intent.account_id)
        )
    ).all()
    for scope, policy in (
        ("API_KEY", next((p for p in policies if p.api_key_id == key_id), None)),
        ("ACCOUNT", next((p for p in policies if p.account_id == intent.account_id), None)),
    ):
        if policy is not None:
            _apply(session, scope, policy, intent, gate.stock, gate.reference, key_id, gate.now)


def _krx_checks(
    intent: IntentLike, stock: _StockFacts, now: dt.datetime, base: Decimal | None
) -> Decimal | None:
    """Run the KRX checks; return the price the order's notional is counted at."""
    krx_sessions.check_nxt(intent.route, stock.symbol, stock.nxt_eligible)
    config = current_app.config
    if krx_sessions.hours_enforced(config):
        krx_sessions.check_session(
            intent.route, intent.order_type, now, table=config.get("KRX_SESSIONS")
        )
    if intent.limit_price is not None:
        _check_price_band(stock.symbol, intent.limit_price, base)
        return intent.limit_price
    return price_band(base)[1] if base is not None else None


def _check_price_band(symbol: str, limit_price: Decimal, base: Decimal | None) -> None:
    """``krx_sessions.check_price_band`` on the base price the gate read with its facts."""
    if base is None:
        return  # a stock without a base price is let through
    lower, upper = price_band(base)
    if not lower <= limit_price <= upper:
        raise krx_sessions.PriceOutsideBand(
            f"{limit_price} is outside today's price limits for {symbol}: {lower} to {upper} "
            f"(base price {base}, ±30 %).",
            errors={"limit_price": [f"must be from {lower} to {upper}"]},
            extra={"lower_limit": str(lower), "upper_limit": str(upper), "base_price": str(base)},
        )


def _apply(
    session: Session,
    scope: str,
    policy: RiskPolicy,
    intent: IntentLike,
    stock: _StockFacts | None,
    reference: Decimal | None,
    key_id: int,
    now: dt.datetime,
) -> None:
    who = "this API key" if scope == "API_KEY" else "this account"
    symbol = intent.symbol or _crypto_symbol(session, intent)
    if policy.allowed_sides is not None and intent.side not in policy.allowed_sides:
        raise RiskRefused(
            "risk_side_not_allowed",
            f"{intent.side} orders are not allowed for {who}.",
            scope=scope,
            limit=",".join(policy.allowed_sides),
            value=intent.side,
        )
    if policy.allowed_symbols is not None and symbol.upper() not in policy.allowed_symbols:
        raise RiskRefused(
            "risk_symbol_not_allowed",
            f"{symbol} is not among the symbols allowed for {who}.",
            scope=scope,
            value=symbol,
        )
    refused = set(policy.refused_designations or ())
    if stock is not None and refused and stock.designations:
        hit = sorted(
            set(stock.designations) if "*" in refused else refused & set(stock.designations)
        )
        if hit:
            raise RiskRefused(
                "risk_designated",
                f"{symbol} is designated {', '.join(hit)}, which {who} may not trade.",
                scope=scope,
                value=",".join(hit),
            )
    if policy.max_order_quantity is not None and intent.quantity > policy.max_order_quantity:
        raise RiskRefused(
            "risk_order_quantity",
            f"The quantity {intent.quantity} is over the {policy.max_order_quantity} allowed per "
            f"order for {who}.",
            scope=scope,
            limit=policy.max_order_quantity,
            value=intent.quantity,
        )
    notional = intent.quantity * reference if reference is not None else None
    if notional is None and (
        policy.max_order_notional is not None or policy.max_daily_notional is not None
    ):
        raise RiskRefused(
            "risk_notional_unknown",
            f"A notional limit applies to {who}, and this MARKET order has no reference price "
            "to count it at; send a LIMIT order.",
            scope=scope,
        )
    if (
        policy.max_order_notional is not None
        and notional is not None
        and notional > policy.max_order_notional
    ):
        raise RiskRefused(
            "risk_order_notional",
            f"The order's notional {notional} is over the {policy.max_order_notional} "
            f"allowed per order for {who}.",
            scope=scope,
            limit=policy.max_order_notional,
            value=notional,
        )
    if (
        policy.max_open_orders is None
        and policy.max_daily_orders is None
        and policy.max_daily_notional is None
    ):
        return
    scoped = _scope_filter(scope, intent.account_id, key_id)
    if policy.max_open_orders is not None:
        open_orders = session.scalar(
            select(func.count()).select_from(Order).where(scoped, Order.status.in_(_OPEN))
        )
        if (open_orders or 0) + 1 > policy.max_open_orders:
            raise RiskRefused(
                "risk_open_orders",
                f"{who.capitalize()} has {open_orders} open orders; at most "
                f"{policy.max_open_orders} are allowed.",
                scope=scope,
                limit=policy.max_open_orders,
                value=open_orders,
            )
    today = select(
        func.count(),
        func.coalesce(
            func.sum(
                func.coalesce(
                    Order.quantity * Order.limit_price,
                    # A buy by amount counts its amount, filled or not (as the gate counted it).
                    Order.quote_amount,
                    Order.filled_quantity * Order.average_fill_price,
                    0,
                )
            ),
            0,
        ),
    ).where(scoped, Order.created_ts >= day_start(now), Order.status != "REJECTED")
    count, total = session.execute(today).one()
    if policy.max_daily_orders is not None and count + 1 > policy.max_daily_orders:
        raise RiskRefused(
            "risk_daily_count",
            f"{who.capitalize()} has placed {count} orders today (KST); at most "
            f"{policy.max_daily_orders} are allowed.",
            scope=scope,
            limit=policy.max_daily_orders,
            value=count,
        )
    if (
        policy.max_daily_notional is not None
        and notional is not None
        and total + notional > policy.max_daily_notional
    ):
        raise RiskRefused(
            "risk_daily_notional",
            f"Today's notional of {who} would be {total + notional}, over the "
            f"{policy.max_daily_notional} allowed (KST day).",
            scope=scope,
            limit=policy.max_daily_notional,
            value=total + notional,
        )


def _scope_filter(scope: str, account_id: int, key_id: int) -> Any:
    if scope == "ACCOUNT":
        return Order.account_id == account_id
    return Order.intent_id.in_(
        select(OrderIntent.intent_id).where(
            func.split_part(OrderIntent.action_key, ":", 1) == str(key_id)
        )
    )


def _crypto_symbol(session: Session, intent: IntentLike) -> str:
    market = session.get(CryptoMarket, intent.crypto_market_id)
    return market.symbol if market is not None else ""
