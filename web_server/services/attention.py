"""What needs the operator's attention, read from what the gateway recorded; no broker is asked.

The dashboard (``ui/dashboard.py``) shows six things, each a function here:

- :func:`token_problems`: KIS and Kiwoom tokens missing, expired, due (within the refresh margin
  of expiry) or whose last refresh failed (``securities_tokens`` and, for an account that never
  got a token, ``system.token_issuance_windows``).
- :func:`orders_in_doubt`: orders UNKNOWN at the broker or flagged ``attention`` by the poller or
  the reconciler (beyond the broker's history window, not found, an ambiguous match).
- :func:`syncs`: the stocks master's latest sync runs and size, each crypto exchange's markets.
- :func:`scheduler_leaders`: who leads the scheduler and how old its heartbeat is (stale after
  15 s, seed 004's query).
- :func:`rate_limit_use`: each broker budget's current use against its limit, from the shared
  limiter's store (Redis or ``system.rate_limit_buckets``). Budget keys hold hashes only
  (``brokers.limits.scope_id``); an account is named by hashing its own key the same way here,
  never by showing a key.
- :func:`broker_errors`: the last day's broker refusals and losses: orders rejected or in doubt
  (``trade.order_events``), token refusals, rate-limit bans.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, text

from brokers.limits import scope_id
from web_server.extensions import db
from web_server.models import Account, Order, OrderEvent, TokenIssuanceWindow
from web_server.services import clock, tokens
from web_server.services.orders.queries import order_view
from web_server.services.stocks_sync import latest_runs

__all__ = [
    "broker_errors",
    "dashboard",
    "orders_in_doubt",
    "rate_limit_use",
    "scheduler_leaders",
    "syncs",
    "token_problems",
]

log = logging.getLogger(__name__)

#: Seed 004's stale-leader threshold.
STALE_HEARTBEAT_SECONDS = 15
#: A stocks master not applied for this long is flagged (a long weekend and a holiday fit in it).
STOCKS_STALE = dt.timedelta(days=4)
#: How far back "recent" broker errors go.
ERRORS_WINDOW = dt.timedelta(hours=24)
#: A budget idle for longer than this is not listed (unless banned): it has nothing to say.
BUDGET_IDLE_SECONDS = 3600.0
MAX_ROWS = 100

# The brokers' counting units and the adapters' default limits (``_budgets`` of each client:
# securities/_http.py with kis/kiwoom ``rate_limits``, crypto_exchanges/*/client.py). The key
# names the unit; the numbers are not in the store, so they are repeated here, each under the
# same limit name the operator may override (GATEWAY_RATE_LIMITS__<NAME>).
_UNITS: dict[tuple[str, str], tuple[str, float, float]] = {
    ("kis", "app:REAL"): ("KIS_REAL_PER_SECOND", 20.0, 1.0),
    ("kis", "app:PAPER"): ("KIS_PAPER_PER_SECOND", 2.0, 1.0),
    ("kiwoom", "app:REAL"): ("KIWOOM_REAL_PER_SECOND", 5.0, 1.0),
    ("kiwoom", "app:PAPER"): ("KIWOOM_PAPER_PER_SECOND", 5.0, 1.0),
    ("upbit", "quotation"): ("UPBIT_QUOTATION_PER_SECOND", 10.0, 1.0),
    ("upbit", "order"): ("UPBIT_ORDER_PER_SECOND", 12.0, 1.0),
    ("upbit", "order-cancel-all"): ("UPBIT_CANCEL_ALL_PER_2S", 1.0, 2.0),
    ("upbit", "default"): ("UPBIT_EXCHANGE_PER_SECOND", 30.0, 1.0),
    ("bithumb", "public"): ("BITHUMB_PUBLIC_PER_SECOND", 150.0, 1.0),
    ("bithumb", "order"): ("BITHUMB_PRIVATE_PER_SECOND", 140.0, 1.0),
    ("bithumb", "cancel"): ("BITHUMB_PRIVATE_PER_SECOND", 140.0, 1.0),
    ("bithumb", "default"): ("BITHUMB_PRIVATE_PER_SECOND", 140.0, 1.0),
    ("binance", "weight"): ("BINANCE_WEIGHT_PER_MINUTE", 1200.0, 60.0),
    ("binance", "orders10s"): ("BINANCE_ORDERS_PER_10S", 50.0, 10.0),
    ("binance", "orders1d"): ("BINANCE_ORDERS_PER_DAY", 160_000.0, 86_400.0),
}
_HASH = re.compile(r"[0-9a-f]{16}")


def _now() -> dt.datetime:
    return clock.now()


def token_problems(at: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Return the KIS and Kiwoom accounts whose token is missing, expired, due or failing.

    Inactive accounts are listed only when a refresh failed.
    """
    at = at or _now()
    accounts = db.session.scalars(
        select(Account)
        .where(Account.account_type == "SECURITIES_STOCK")
        .order_by(Account.is_active.desc(), Account.id)
    ).all()
    problems = []
    for account in accounts:
        status = tokens.token_status(account, at)
        failing = bool(status.get("last_error"))
        if (status["state"] == "valid" or not account.is_active) and not failing:
            continue  # an inactive account's token is nobody's concern until it fails
        expires_at = status.get("expires_at")
        problems.append(
            {
                "account_id": account.id,
                "account_name": account.name,
                "exchange": account.exchange,
                "is_active": account.is_active,
                "state": status["state"],
                "failing": failing,
                "expires_at": expires_at,
                "expires_in": (expires_at - at).total_seconds() if expires_at else None,
                "last_error": status.get("last_error"),
                "last_error_at": status.get("last_error_at"),
                "refresh_attempts": status.get("refresh_attempts") or 0,
                "next_attempt_at": status.get("next_attempt_at"),
            }
        )
    return problems


def orders_in_doubt(limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Return orders UNKNOWN at the broker or flagged for the operator, oldest first."""
    rows = db.session.scalars(
        select(Order)
        .where(or_(Order.status == "UNKNOWN", Order.attention.is_not(None)))
        .order_by(Order.created_ts, Order.id)
        .limit(limit)
    ).all()
    names = _account_names()
    out = []
    for order in rows:
        view = order_view(order)
        attention = order.attention or {}
        out.append(
            {
                **view,
                "account_name": names.get(order.account_id, f"#{order.account_id}"),
                "reason": attention.get("reason") or "unknown_outcome",
                "detail": attention.get("detail")
                or "Sent, but the broker's answer never came: the reconciler is settling it.",
                "candidates": len(attention.get("broker_rows") or []),
            }
        )
    return out


def _account_names() -> dict[int, str]:
    return {i: n for i, n in db.session.execute(select(Account.id, Account.name))}


def syncs(at: dt.datetime | None = None) -> dict[str, Any]:
    """Return the stocks master's latest runs and size, and each crypto exchange's markets."""
    at = at or _now()
    runs = latest_runs(3)
    stocks = db.session.execute(
        text(
            "SELECT count(*) AS total, count(*) FILTER (WHERE is_tradable) AS tradable,"
            " max(updated_ts) AS changed FROM market.stocks"
        )
    ).one()
    applied = next((r for r in runs if r["outcome"] in ("APPLIED", "FORCED")), None)
    stocks_problem = None
    if not runs:
        stocks_problem = "The stocks master was never synced (`gateway stocks sync`)."
    elif runs[0]["outcome"] == "REFUSED":
        stocks_problem = f"The last sync was refused: {runs[0]['detail']}"
    elif applied is not None and at - applied["at"] > STOCKS_STALE:
        stocks_problem = "No sync applied for more than 4 days."
    markets = db.session.execute(
        text(
            "SELECT exchange, count(*) AS total, count(*) FILTER (WHERE is_tradable) AS tradable,"
            " max(updated_ts) AS changed FROM market.crypto_markets GROUP BY exchange"
            " ORDER BY exchange"
        )
    ).mappings()
    crypto_exchanges = {
        row.exchange
        for row in db.session.execute(
            select(Account.exchange).where(Account.account_type == "CRYPTO").distinct()
        )
    }
    market_rows = [dict(row) for row in markets]
    synced = {row["exchange"] for row in market_rows}
    return {
        "stocks": {
            "runs": runs,
            "total": stocks.total,
            "tradable": stocks.tradable,
            "changed": stocks.changed,
            "problem": stocks_problem,
        },
        "markets": market_rows,
        # An exchange with accounts but no markets refuses every order (no rules to check).
        "markets_missing": sorted(crypto_exchanges - synced),
    }


def scheduler_leaders() -> list[dict[str, Any]]:
    """Return each recorded leader with its heartbeat's age and whether it is stale."""
    rows = db.session.execute(
        text(
            "SELECT lock_name, instance_id, host, pid, acquired_ts, heartbeat_ts,"
            " EXTRACT(EPOCH FROM (now() - heartbeat_ts)) AS age"
            " FROM system.process_locks ORDER BY lock_name"
        )
    ).mappings()
    return [
        {**dict(row), "age": float(row["age"]), "stale": row["age"] > STALE_HEARTBEAT_SECONDS}
        for row in rows
    ]


@dataclass(frozen=True)
class _Bucket:
    key: str
    tat: float
    banned_until: float | None
    ban_reason: str | None
    now: float


def _postgres_buckets() -> list[_Bucket]:
    rows = db.session.execute(
        text(
            "SELECT key, tat, extract(epoch FROM banned_until) AS banned_until, ban_reason,"
            " extract(epoch FROM clock_timestamp()) AS now FROM system.rate_limit_buckets"
            " ORDER BY key LIMIT 1000"
        )
    )
    return [
        _Bucket(
            r.key,
            float(r.tat or 0),
            None if r.banned_until is None else float(r.banned_until),
            r.ban_reason,
            float(r.now),
        )
        for r in rows
    ]


def _redis_buckets(url: str, prefix: str) -> list[_Bucket]:
    import redis

    cached = current_app.extensions.get("gateway.attention.redis")
    if cached is None or cached[0] != url:
        # Short timeouts: the dashboard must answer even when Redis does not.
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        current_app.extensions["gateway.attention.redis"] = cached = (url, client)
    client = cached[1]
    seconds, micros = client.time()
    now = seconds + micros / 1_000_000
    keys: dict[str, dict[str, Any]] = {}
    for raw in client.scan_iter(match=f"{prefix}*", count=500):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind, _, key = name.removeprefix(prefix).partition(":")
        if kind in ("tat", "ban") and key:
            keys.setdefault(key, {})[kind] = name
        if len(keys) >= 1000:
            break
    names = [n for parts in keys.values() for n in parts.values()]
    values = dict(zip(names, client.mget(names), strict=True)) if names else {}
    out = []
    for key, parts in sorted(keys.items()):
        tat = values.get(parts.get("tat", ""))
        ban = values.get(parts.get("ban", ""))
        out.append(
            _Bucket(key, float(tat or 0), float(ban) if ban else None, "refused for rate", now)
        )
    return out


def _scopes(accounts: Sequence[Account]) -> dict[str, dict[str, Any]]:
    """Map each hashed scope id to the accounts it stands for, hashing keys as adapters do."""
    from web_server.services.brokers import base_url_for

    scopes: dict[str, dict[str, Any]] = {}
    for account in accounts:
        broker = account.exchange.upper()
        try:
            if account.account_type == "SECURITIES_STOCK":
                environment = str(account.environment or "REAL").upper()
                sid = scope_id(broker, environment, account.api_key)
                scopes[sid] = {"names": [account.name], "environment": environment}
                continue
            host = base_url_for(account).rstrip("/").split("://", 1)[-1].split("/", 1)[0]
        except Exception:  # noqa: BLE001 - an account that cannot be decrypted is left unnamed
            log.warning("dashboard: account %s not matched to its budgets", account.id)
            continue
        scopes[scope_id(broker, host, account.api_key)] = {"names": [account.name]}
        address = scopes.setdefault(scope_id(broker, host), {"names": [], "address": host})
        address["names"].append(account.name)
    return scopes


def rate_limit_use() -> list[dict[str, Any]]:
    """Return each active or banned broker budget: its use now against its limit.

    ``booked`` is how many requests' worth of the budget is taken ahead of now (the GCRA's
    theoretical arrival time minus now, in emission intervals); ``use_pct`` is that against the
    burst the limiter allows, 100 % meaning the next request has to wait.
    """
    config = current_app.config
    safety = float(config.get("RATE_LIMIT_SAFETY", 0.95))
    limits = {str(k).upper(): float(v) for k, v in (config.get("RATE_LIMITS") or {}).items()}
    try:
        if config.get("REDIS_URL"):
            buckets = _redis_buckets(str(config["REDIS_URL"]), config["RATE_LIMIT_PREFIX"])
        else:
            buckets = _postgres_buckets()
    except Exception as exc:  # noqa: BLE001 - the dashboard shows the store is unreadable
        log.warning("dashboard: rate-limit store unreadable (%s)", type(exc).__name__)
        return [{"error": f"The rate limiter's store could not be read ({type(exc).__name__})."}]
    scopes = _scopes(db.session.scalars(select(Account).order_by(Account.id)).all())
    out = []
    for bucket in buckets:
        banned = bucket.banned_until is not None and bucket.banned_until > bucket.now
        if bucket.now - bucket.tat > BUDGET_IDLE_SECONDS and not banned:
            continue
        parts = bucket.key.split(":")
        broker = parts[0]
        sid = next((p for p in parts[1:] if _HASH.fullmatch(p)), None)
        scope = scopes.get(sid or "", {})
        unit = ":".join(p for p in parts[1:] if p != sid)
        lookup = unit.split(":", 1)[0]
        if lookup == "app":
            lookup = f"app:{scope.get('environment', 'REAL')}"
        known = _UNITS.get((broker, lookup))
        row: dict[str, Any] = {
            "key": bucket.key,
            "broker": broker.upper(),
            "unit": unit,
            "accounts": scope.get("names") or [],
            "address": scope.get("address"),
            "banned": banned,
            "banned_for": (bucket.banned_until or 0) - bucket.now if banned else None,
            "ban_reason": bucket.ban_reason if banned else None,
            "idle_for": max(0.0, bucket.now - bucket.tat),
            "rate": None,
            "period": None,
            "booked": None,
            "use_pct": None,
        }
        if known is not None:
            name, default, period = known
            rate = limits.get(name, default)
            interval = period / (rate * safety)
            capacity = period * (1 - safety) + interval
            ahead = max(0.0, bucket.tat - bucket.now)
            row |= {
                "rate": rate,
                "period": period,
                "booked": ahead / interval,
                "use_pct": min(100.0, ahead / capacity * 100),
            }
        out.append(row)
    out.sort(key=lambda r: (not r.get("banned"), -(r.get("use_pct") or 0), r["key"]))
    return out


def broker_errors(
    at: dt.datetime | None = None,
    limit: int = 30,
    *,
    token_rows: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Return the last day's broker errors, newest first: orders, tokens, issuance windows.

    ``token_rows`` are :func:`token_problems`' rows when the caller has them already.
    """
    at = at or _now()
    since = at - ERRORS_WINDOW
    names = _account_names()
    errors: list[dict[str, Any]] = []
    events = db.session.execute(
        select(OrderEvent.ts, OrderEvent.type, Order)
        .join(Order, Order.id == OrderEvent.order_id)
        .where(OrderEvent.type.in_(("rejected", "unknown")), OrderEvent.ts >= since)
        .order_by(OrderEvent.id.desc())
        .limit(limit)
    )
    for ts, kind, order in events:
        errors.append(
            {
                "at": ts,
                "source": "order",
                "account_name": names.get(order.account_id, f"#{order.account_id}"),
                "account_id": order.account_id,
                "order_id": order.id,
                "code": order.reject_code or ("order_state_unknown" if kind == "unknown" else ""),
                "detail": order.reject_message
                or ("No answer from the broker." if kind == "unknown" else "Rejected."),
            }
        )
    for problem in token_problems(at) if token_rows is None else token_rows:
        if problem["last_error_at"] is not None and problem["last_error_at"] >= since:
            errors.append(
                {
                    "at": problem["last_error_at"],
                    "source": "token",
                    "account_name": problem["account_name"],
                    "account_id": problem["account_id"],
                    "order_id": None,
                    "code": "token_refresh_failed",
                    "detail": problem["last_error"],
                }
            )
    windows = db.session.scalars(
        select(TokenIssuanceWindow).where(TokenIssuanceWindow.last_error_at >= since)
    )
    seen = {(e["source"], e["detail"]) for e in errors}
    for window in windows:
        if ("token", window.last_error) in seen:
            continue  # the account's own token row already says it
        errors.append(
            {
                "at": window.last_error_at,
                "source": "token issuance",
                "account_name": f"{window.exchange} {window.environment} app key",
                "account_id": None,
                "order_id": None,
                "code": "token_issuance_failed",
                "detail": window.last_error,
            }
        )
    errors.sort(key=lambda e: e["at"], reverse=True)
    return errors[:limit]


def dashboard(at: dt.datetime | None = None) -> dict[str, Any]:
    """Return everything the dashboard shows, with a count of problems per section."""
    at = at or _now()
    token_rows = token_problems(at)
    doubt = orders_in_doubt()
    sync = syncs(at)
    leaders = scheduler_leaders()
    budgets = rate_limit_use()
    errors = broker_errors(at, token_rows=token_rows)
    scheduler_problem = None
    if not leaders:
        scheduler_problem = "No scheduler has ever led: start `gateway scheduler` (or the demo)."
    elif all(leader["stale"] for leader in leaders):
        scheduler_problem = "No leader's heartbeat is fresh: the scheduler is down."
    return {
        "at": at,
        "tokens": token_rows,
        "orders": doubt,
        "syncs": sync,
        "leaders": leaders,
        "scheduler_problem": scheduler_problem,
        "rate_limits": budgets,
        "errors": errors,
        "counts": {
            "tokens": len(token_rows),
            "orders": len(doubt),
            "syncs": int(sync["stocks"]["problem"] is not None) + len(sync["markets_missing"]),
            "scheduler": int(scheduler_problem is not None),
            "rate_limits": sum(
                1 for b in budgets if b.get("banned") or (b.get("use_pct") or 0) >= 90
            ),
            "errors": len(errors),
        },
    }
