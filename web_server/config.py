"""Configuration: code defaults, then ``GATEWAY_*`` environment variables, then overrides.

``validate`` runs at start-up and raises ``ConfigError`` with a message that says how to fix the
problem. There are no default secrets; ``DEBUG`` and ``TESTING`` are never read from the
environment.
"""

from __future__ import annotations

import copy
import os
from typing import Any
from urllib.parse import urlsplit

from web_server.errors import ConfigError

ENVIRONMENTS = ("production", "development", "test")
LOG_FORMATS = ("text", "json")

DEFAULTS: dict[str, Any] = {
    "ENV": "production",
    # SECRET_KEY signs sessions and CSRF tokens; it is required and has no default.
    "SECRET_KEY": None,
    "ENCRYPTION_KEYS": None,
    "ENCRYPTION_KEY_FILE": None,
    "DATABASE_URL": None,
    "EMBEDDED_DB_DIR": None,
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "text",
    "TOKEN_REFRESH_MARGIN_SECONDS": 6 * 3600,
    "TOKEN_REFRESH_INTERVAL_SECONDS": 60,
    # Seconds between two token requests of one app key, per broker (KIS: one a minute), plus a
    # margin; both on the database's clock (services/tokens.py).
    "TOKEN_ISSUE_INTERVAL_SECONDS": {"KIS": 60, "KIWOOM": 1},
    "TOKEN_ISSUE_MARGIN_SECONDS": 2.0,
    "BROKER_TIMEOUT_SECONDS": 10.0,
    # Stocks master: where KIS publishes its master zips, who writes market.stocks, and when.
    "KIS_MASTER_URL": "https://new.real.download.dws.co.kr/common/master",
    "DATASYNC_DATABASE_URL": None,
    "DATASYNC_ROLE": "gateway_datasync",
    "STOCKS_SYNC_TIME": "07:30",
    "MARKETS_SYNC_INTERVAL_SECONDS": 6 * 3600,
    "ORDERS_POLL_INTERVAL_SECONDS": 5,
    # Accounts the poll and reconcile jobs work on side by side (each account's orders in turn).
    "ORDERS_JOB_ACCOUNT_WORKERS": 4,
    # Fees and taxes as the brokers report them (Kiwoom per order, KIS per day and stock after the
    # close; docs/trading-days.md §5); False keeps the gateway's own KRX estimates.
    "ORDERS_BROKER_CHARGES": True,
    # How long a process trusts an API key it has checked (revocation elsewhere takes this long).
    "API_KEY_CACHE_SECONDS": 2.0,
    # Orders at the brokers at once per process (each holds a connection meanwhile); None: a
    # third of the connection pool. Beyond it an order answers 503 gateway_busy, unsent.
    "ORDERS_MAX_IN_FLIGHT": None,
    "HOLDINGS_MAX_AGE_SECONDS": 30,
    # Failed logins per username (any name, existing or not) and per client address within
    # LOGIN_LOCKOUT_SECONDS before that name or address is refused for LOGIN_LOCKOUT_SECONDS.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LOGIN_LOCKOUT_SECONDS": 300,
    # A UI session ends after this many seconds without a request (Flask renews it on each one).
    "PERMANENT_SESSION_LIFETIME": 8 * 3600,
    # HSTS max-age sent in production (0: no header, e.g. while trying TLS out).
    "HSTS_SECONDS": 31536000,
    # /metrics: a bearer token that may read it (besides admin API keys); unset: admin keys only.
    "METRICS_TOKEN": None,
    # The largest request body read, in bytes; a larger one is a 413 problem (before it is read
    # when its length is declared; a chunked one as soon as it passes the limit).
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # Broker hosts an account's base_url may name besides the brokers' official ones (and, outside
    # production, loopback): origins such as "https://openapi.example.com:9443".
    "BROKER_URL_ALLOWLIST": [],
    # Order events (services/events.py, event_hub.py, webhooks.py): a stream's comment line after
    # this many quiet seconds; webhook receivers on private or loopback networks (None: allowed
    # outside production only) and hosts allowed whatever they resolve to; the retry schedule.
    "EVENTS_HEARTBEAT_SECONDS": 15,
    "WEBHOOK_ALLOW_PRIVATE": None,
    "WEBHOOK_ALLOWLIST": [],
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_RETRY_BASE_SECONDS": 5.0,
    "WEBHOOK_RETRY_MAX_SECONDS": 3600.0,
    "WEBHOOK_GIVE_UP_SECONDS": 25 * 3600,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_SECURE": True,
    "WTF_CSRF_TIME_LIMIT": 3600,
    # A token refresh holds up to three connections at once (the app key's lock, the token row,
    # the issuance window); the pool leaves room for a burst of them beside ordinary requests.
    # Waits are bounded (a free connection, a connect), so an outage answers 503 in seconds.
    # Connections are checked before use by database.install_liveness_check, which pings only
    # those in doubt, not by pool_pre_ping, which pings at every checkout.
    "SQLALCHEMY_ENGINE_OPTIONS": {
        "pool_pre_ping": False,
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": 5,
        "connect_args": {"connect_timeout": 5},
    },
    # flask-smorest / OpenAPI
    "API_TITLE": "Trading account gateway",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_REDOC_PATH": "docs",
    # Served by the gateway itself (vendored from npm's redoc 2.5.4): the docs work offline.
    "OPENAPI_REDOC_URL": "/static/vendor/redoc/redoc.standalone.js",
    "BROKERS": {},
    # Shared broker rate limits (services/rate_limits.py). With REDIS_URL the pacing state lives in
    # Redis (one Lua script), else in PostgreSQL (system.rate_limit_buckets).
    "REDIS_URL": None,
    "RATE_LIMIT_PREFIX": "gateway:rl:",
    # The share of each broker limit the gateway uses.
    "RATE_LIMIT_SAFETY": 0.95,
    # How long an order waits for its slot before answering 429 unsent; how long a read (polling,
    # holdings) looks for a free one.
    "RATE_LIMIT_ORDER_DEADLINE_SECONDS": 5.0,
    "RATE_LIMIT_READ_DEADLINE_SECONDS": 5.0,
    # Overrides of the brokers' limits by name (README "Rate limits"), e.g.
    # GATEWAY_RATE_LIMITS__KIS_REAL_PER_SECOND=20.
    "RATE_LIMITS": {},
}

# Settings a user may not set from outside: they change what the code trusts.
_FORBIDDEN_FROM_ENV = ("DEBUG", "TESTING")


def load(config: dict[str, Any], overrides: dict[str, Any] | None) -> None:
    """Fill ``config`` from defaults, the environment and ``overrides``, in that order."""
    for key, value in DEFAULTS.items():
        # A copy: the environment loader nests into dicts in place (GATEWAY_BROKERS__…), and
        # one app's brokers must not leak into the next app made in the same process. An
        # assignment, not setdefault: Flask's own defaults (SESSION_COOKIE_SECURE=False,
        # SESSION_COOKIE_SAMESITE=None, MAX_CONTENT_LENGTH=None) are already in a new app's
        # config and must give way to the gateway's.
        config[key] = copy.deepcopy(value)
    kept = {key: config.get(key, False) for key in _FORBIDDEN_FROM_ENV}
    config.from_prefixed_env("GATEWAY")  # type: ignore[attr-defined]
    config.update(kept)
    if "DATABASE_URL" in os.environ and not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = os.environ["DATABASE_URL"]
    config.update(overrides or {})


def normalize_database_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver, the only one the gateway installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def validate(config: dict[str, Any]) -> None:
    """Refuse to start with settings that are missing or unsafe.

    Raises:
        ConfigError: a setting is missing or invalid; the message says how to fix it.
    """
    if config["ENV"] not in ENVIRONMENTS:
        raise ConfigError(f"GATEWAY_ENV={config['ENV']!r} is not one of {', '.join(ENVIRONMENTS)}.")
    secret_key = config.get("SECRET_KEY")
    if not secret_key or len(str(secret_key)) < 32:
        raise ConfigError(
            "GATEWAY_SECRET_KEY must be set to at least 32 random characters (it signs sessions "
            "and CSRF tokens). Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if config["LOG_FORMAT"] not in LOG_FORMATS:
        raise ConfigError(f"GATEWAY_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}.")
    url = config.get("DATABASE_URL")
    if url and not str(url).startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
        raise ConfigError(
            "DATABASE_URL must be a PostgreSQL URL (postgresql://user@host:5432/dbname); "
            "the gateway runs on PostgreSQL only. Leave it unset to use the embedded server."
        )
    margin = config["TOKEN_REFRESH_MARGIN_SECONDS"]
    if not isinstance(margin, int) or not 60 <= margin < 18 * 3600:
        raise ConfigError(
            "GATEWAY_TOKEN_REFRESH_MARGIN_SECONDS must be an integer from 60 to 64799: tokens "
            "live 24 h and KIS hands back the same token for 6 h after issuing it, so a refresh "
            "earlier than 18 h before expiry would get the old token again (default 21600)."
        )
    _validate_request_limits(config)
    _validate_numbers(config)
    _validate_rate_limits(config)
    _validate_broker_allowlist(config)
    if not isinstance(config.get("BROKERS"), dict):
        raise ConfigError(
            "GATEWAY_BROKERS must be a mapping; set one URL with "
            "GATEWAY_BROKERS__KIS__REAL_URL=https://… (double underscores nest)."
        )


#: Numeric settings: (smallest, largest, whole numbers only, None allowed). The environment gives
#: them as JSON numbers (``GATEWAY_ORDERS_MAX_IN_FLIGHT=10``); anything else used to pass start-up
#: and fail only where it was first used: every order a 500, the scheduler's crash.
_NUMBERS: dict[str, tuple[float, float, bool, bool]] = {
    "TOKEN_REFRESH_INTERVAL_SECONDS": (1, 86_400, False, False),
    "TOKEN_ISSUE_MARGIN_SECONDS": (0, 600, False, False),
    "BROKER_TIMEOUT_SECONDS": (0.01, 600, False, False),
    "MARKETS_SYNC_INTERVAL_SECONDS": (1, 30 * 86_400, False, False),
    "ORDERS_POLL_INTERVAL_SECONDS": (0.05, 86_400, False, False),
    "ORDERS_JOB_ACCOUNT_WORKERS": (1, 256, True, False),
    "ORDERS_CANCEL_RECHECK_SECONDS": (0, 86_400, False, True),
    "API_KEY_CACHE_SECONDS": (0, 3600, False, False),
    "ORDERS_MAX_IN_FLIGHT": (0, 100_000, True, True),  # None or 0: a third of the pool
    "HOLDINGS_MAX_AGE_SECONDS": (0, 7 * 86_400, False, False),
    "LOGIN_MAX_FAILURES": (1, 1_000_000, True, False),
    "LOGIN_MAX_FAILURES_PER_ADDRESS": (1, 1_000_000, True, False),
    "LOGIN_LOCKOUT_SECONDS": (1, 7 * 86_400, False, False),
    "HSTS_SECONDS": (0, 10 * 31_536_000, True, False),
    "EVENTS_HEARTBEAT_SECONDS": (0.05, 3600, False, False),
    "WEBHOOK_TIMEOUT_SECONDS": (0.1, 600, False, False),
    "WEBHOOK_RETRY_BASE_SECONDS": (0.01, 86_400, False, False),
    "WEBHOOK_RETRY_MAX_SECONDS": (0.01, 30 * 86_400, False, False),
    "WEBHOOK_GIVE_UP_SECONDS": (1, 365 * 86_400, False, False),
    "STOCKS_SYNC_MAX_DELIST_SHARE": (0, 1, False, True),
}


def _validate_numbers(config: dict[str, Any]) -> None:
    for name, (low, high, whole, optional) in _NUMBERS.items():
        value = config.get(name)
        if value is None and (optional or name not in config):
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not number
            or value != value
            or not low <= value <= high
            or (whole and not isinstance(value, int))
        ):
            kind = "a whole number" if whole else "a number"
            raise ConfigError(
                f"GATEWAY_{name}={value!r} must be {kind} from {low:g} to {high:g}"
                + (" (or unset)" if optional else "")
                + f"; default {DEFAULTS.get(name, 'unset')!r}."
            )
    sync_time = str(config.get("STOCKS_SYNC_TIME", "07:30"))
    hours, _, minutes = sync_time.partition(":")
    if not (
        len(hours) == 2
        and len(minutes) == 2
        and hours.isascii()
        and hours.isdigit()
        and minutes.isdigit()
        and int(hours) < 24
        and int(minutes) < 60
    ):
        raise ConfigError(
            f"GATEWAY_STOCKS_SYNC_TIME={sync_time!r} must be HH:MM, Asia/Seoul (default 07:30)."
        )


def _validate_request_limits(config: dict[str, Any]) -> None:
    limit = config.get("MAX_CONTENT_LENGTH")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1024 <= limit <= 16 * 2**20:
        raise ConfigError(
            "GATEWAY_MAX_CONTENT_LENGTH must be a number of bytes from 1024 to 16777216 (the "
            "largest request body the gateway reads; default 65536)."
        )


def _validate_rate_limits(config: dict[str, Any]) -> None:
    limits = config.get("RATE_LIMITS")
    if not isinstance(limits, dict):
        raise ConfigError(
            "GATEWAY_RATE_LIMITS must be a mapping of limit names to numbers; set one with "
            "GATEWAY_RATE_LIMITS__KIS_REAL_PER_SECOND=20 (double underscores nest)."
        )
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"GATEWAY_RATE_LIMITS__{name} must be a positive number.")
    safety = config.get("RATE_LIMIT_SAFETY")
    if isinstance(safety, bool) or not isinstance(safety, int | float) or not 0.5 <= safety <= 1:
        raise ConfigError("GATEWAY_RATE_LIMIT_SAFETY must be a number from 0.5 to 1 (0.95).")
    for key in ("RATE_LIMIT_ORDER_DEADLINE_SECONDS", "RATE_LIMIT_READ_DEADLINE_SECONDS"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
            raise ConfigError(f"GATEWAY_{key} must be a number of seconds from 0 to 60.")


def _validate_broker_allowlist(config: dict[str, Any]) -> None:
    allowlist = config.get("BROKER_URL_ALLOWLIST")
    if isinstance(allowlist, str):
        # One origin, or several separated by commas, are as welcome as a JSON list.
        allowlist = [item.strip() for item in allowlist.split(",") if item.strip()]
        config["BROKER_URL_ALLOWLIST"] = allowlist
    how = (
        "GATEWAY_BROKER_URL_ALLOWLIST must be a list of https origins, e.g. "
        "'[\"https://openapi.example.com:9443\"]' (scheme, host and port; no path, user or "
        "query)"
    )
    if not isinstance(allowlist, list | tuple):
        raise ConfigError(how + ".")
    for origin in allowlist:
        try:
            # An unbalanced bracket in the host, or a port that is not a number, raises.
            parts = urlsplit(origin) if isinstance(origin, str) else None
            _ = parts and parts.port
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme != "https"
            or not parts.hostname
            or parts.username
            or parts.password
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(f"{how}; {origin!r} is not one.")
