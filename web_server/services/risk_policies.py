"""Risk policies per API key and per account, and the audit trail of every risk control.

A policy holds limits; a NULL limit is no limit, and a key or account without a policy has none.
The gate (:mod:`web_server.services.risk`) applies the key's policy and the account's policy to
every new order; both must pass.

- ``max_order_notional``, ``max_order_quantity``: one order's quantity × price, and quantity.
- ``max_daily_notional``, ``max_daily_orders``: the totals of the KST trading day (from 00:00
  Asia/Seoul), counting every order not REJECTED (cancelled and filled ones included: what was
  sent counts).
- ``max_open_orders``: orders not yet final (PENDING_SUBMIT, SUBMITTED, PARTIALLY_FILLED,
  CANCEL_PENDING, UNKNOWN).
- ``allowed_symbols`` (stock codes or crypto markets), ``allowed_sides``.
- ``refused_designations``: designation codes of the stocks master (``ADMINISTRATIVE``,
  ``INVESTMENT_WARNING``, ``INVESTMENT_RISK``, ``LIQUIDATION_TRADING``, …), or ``["*"]`` for all.

Notional is in the instrument's own quote currency (KRW, USDT) and is simply added up: give a key
spanning KRW and USDT accounts per-account notional limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from brokers import utc_now
from web_server.errors import NotFound, ValidationFailed
from web_server.extensions import db
from web_server.models import Account, ApiKey, RiskEvent, RiskPolicy

__all__ = [
    "DESIGNATION_CODES",
    "LIMIT_FIELDS",
    "audit",
    "delete_policy",
    "get_policy",
    "list_events",
    "list_policies",
    "policy_view",
    "require_target",
    "set_policy",
]

LIMIT_FIELDS = (
    "max_order_notional",
    "max_order_quantity",
    "max_daily_notional",
    "max_daily_orders",
    "max_open_orders",
    "allowed_symbols",
    "allowed_sides",
    "refused_designations",
)
DESIGNATION_CODES = (
    "ADMINISTRATIVE",
    "INVESTMENT_CAUTION",
    "INVESTMENT_WARNING",
    "INVESTMENT_RISK",
    "LIQUIDATION_TRADING",
    "UNFAITHFUL_DISCLOSURE",
    "SHORT_TERM_OVERHEAT",
    "INVESTMENT_ATTENTION",
)
_TARGETS = {"API_KEY": (ApiKey, RiskPolicy.api_key_id), "ACCOUNT": (Account, RiskPolicy.account_id)}


def audit(
    actor: str,
    action: str,
    scope: str | None = None,
    target_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> RiskEvent:
    """Add an audit record to the session (committed with the change it records)."""
    event = RiskEvent(
        actor=actor,
        action=action,
        scope=scope,
        target_id=target_id,
        detail=dict(detail) if detail is not None else None,
        at=utc_now(),
    )
    db.session.add(event)
    return event


def list_events(limit: int = 100) -> Sequence[RiskEvent]:
    """Return the newest audit records first."""
    return db.session.scalars(select(RiskEvent).order_by(RiskEvent.id.desc()).limit(limit)).all()


def _target_exists(scope: str, target_id: int) -> None:
    model, _ = _TARGETS[scope]
    if db.session.get(model, target_id) is None:
        raise NotFound(f"No {scope.lower().replace('_', ' ')} {target_id}.")


def require_target(scope: str, target_id: int) -> None:
    """Check that the API key or account a policy would belong to exists.

    Raises:
        NotFound: no such key or account.
    """
    _target_exists(scope, target_id)


def list_policies() -> list[tuple[str, int, RiskPolicy]]:
    """Return every policy as (scope, target id, policy): the keys' first, then the accounts'."""
    rows = db.session.scalars(
        select(RiskPolicy).order_by(RiskPolicy.account_id.nulls_first(), RiskPolicy.api_key_id)
    ).all()
    listed: list[tuple[str, int, RiskPolicy]] = []
    for policy in rows:
        if policy.api_key_id is not None:
            listed.append(("API_KEY", policy.api_key_id, policy))
        elif policy.account_id is not None:
            listed.append(("ACCOUNT", policy.account_id, policy))
    return listed


def get_policy(scope: str, target_id: int) -> RiskPolicy | None:
    """Return the policy of an API key or an account, or None if it has none."""
    _, column = _TARGETS[scope]
    return db.session.scalar(select(RiskPolicy).where(column == target_id))


def _clean(limits: Mapping[str, Any]) -> dict[str, Any]:
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        value = limits.get(name)
        if name.startswith("max_") and value is not None:
            if isinstance(value, bool) or Decimal(value) <= 0:
                problems[name] = ["must be greater than 0, or null for no limit"]
            elif name in ("max_daily_orders", "max_open_orders"):
                value = int(value)
            else:
                value = Decimal(value)
        elif value is not None:
            value = sorted({str(item).strip().upper() for item in value})
            if name == "allowed_sides" and not set(value) <= {"BUY", "SELL"}:
                problems[name] = ["may hold BUY and SELL only"]
            if name == "refused_designations" and not set(value) <= {"*", *DESIGNATION_CODES}:
                problems[name] = [f"may hold {', '.join(DESIGNATION_CODES)} or *"]
        values[name] = value
    if problems:
        raise ValidationFailed("The risk policy is not valid.", errors={"json": problems})
    return values


def set_policy(scope: str, target_id: int, limits: Mapping[str, Any], actor: str) -> RiskPolicy:
    """Create or replace the policy of a key or an account (fields left out: no limit); commit.

    Raises:
        NotFound: no such key or account.
        ValidationFailed: a limit is not acceptable.
    """
    _target_exists(scope, target_id)
    values = _clean(limits)
    policy = get_policy(scope, target_id)
    if policy is None:
        policy = RiskPolicy(
            api_key_id=target_id if scope == "API_KEY" else None,
            account_id=target_id if scope == "ACCOUNT" else None,
        )
        db.session.add(policy)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.updated_by = actor
    policy.updated_ts = utc_now()
    audit(actor, "policy_set", scope, target_id, policy_view(policy, scope, target_id)["limits"])
    db.session.commit()
    return policy


def delete_policy(scope: str, target_id: int, actor: str) -> None:
    """Remove the policy of a key or an account (no limits any more); commit.

    Raises:
        NotFound: the key or account has no policy.
    """
    policy = get_policy(scope, target_id)
    if policy is None:
        raise NotFound(f"{scope.lower().replace('_', ' ')} {target_id} has no risk policy.")
    db.session.delete(policy)
    audit(actor, "policy_deleted", scope, target_id)
    db.session.commit()


def policy_view(policy: RiskPolicy | None, scope: str, target_id: int) -> dict[str, Any]:
    """Return a policy as the API shows it (decimals as strings; no policy: every limit null)."""
    limits: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        value = getattr(policy, name) if policy is not None else None
        limits[name] = format(value.normalize(), "f") if isinstance(value, Decimal) else value
    return {
        "scope": scope,
        "target_id": target_id,
        "limits": limits,
        "updated_by": policy.updated_by if policy is not None else None,
        "updated_at": policy.updated_ts if policy is not None else None,
    }
