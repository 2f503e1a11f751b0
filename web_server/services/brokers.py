"""Pick and build the adapter for an account: the registry, credentials, base URL, shared session.

The registry (:func:`adapter_class`) is the one place that knows which package serves which
exchange; it lives here, in the service layer that composes everything, so the broker core and the
adapters never import each other's choice of broker, and loading the gateway does not import five
broker packages (each is imported on first use).

Every adapter gets the app's shared rate limiter (:func:`~web_server.services.rate_limits.
rate_limiter`): its requests are paced on the brokers' budgets across every process and host.

The base URL is, in order: the account's own ``base_url`` (a simulator, a testnet), the
configured ``GATEWAY_BROKERS__<EXCHANGE>__<ENVIRONMENT>_URL``, then the broker package's default
for the account's environment. So a real broker and a simulator differ only in URL.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import OrderedDict
from typing import Any

import requests
from flask import current_app

from brokers import Credentials, make_http_session
from web_server import metrics
from web_server.errors import ConfigError
from web_server.models import Account
from web_server.services import clock as gateway_clock
from web_server.services.accounts import securities_config
from web_server.services.market_rules import order_rule_source
from web_server.services.rate_limits import rate_limiter

#: Adapters kept per process (least recently used dropped first; see adapter_for).
ADAPTER_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()

#: Exchange → ``module:class`` of its adapter.
ADAPTERS: dict[str, str] = {
    "KIS": "securities.kis:KisAdapter",
    "KIWOOM": "securities.kiwoom:KiwoomAdapter",
    "UPBIT": "crypto_exchanges.upbit:UpbitAdapter",
    "BITHUMB": "crypto_exchanges.bithumb:BithumbAdapter",
    "BINANCE": "crypto_exchanges.binance:BinanceAdapter",
}


def adapter_class(exchange: str) -> type:
    """Return the adapter class of ``exchange`` (``KIS``, ``KIWOOM``, ``UPBIT``, …).

    Raises:
        KeyError: no adapter for that exchange.
    """
    module_name, class_name = ADAPTERS[exchange].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def broker_urls(exchange: str, environment: str) -> list[str]:
    """Return the hosts of a broker's environment: the configured one, then the official one.

    ``GATEWAY_BROKERS__<EXCHANGE>__<ENVIRONMENT>_URL`` first, then the broker package's
    ``DEFAULT_BASE_URLS``; empty when neither knows the environment (Upbit has no PAPER).
    """
    urls: list[str] = []
    brokers = current_app.config.get("BROKERS") or {}
    configured = brokers.get(exchange) or brokers.get(exchange.lower()) or {}
    url = configured.get(f"{environment}_URL") or configured.get(f"{environment.lower()}_url")
    if url:
        urls.append(str(url))
    if exchange in ADAPTERS:
        module = importlib.import_module(adapter_class(exchange).__module__.rsplit(".", 1)[0])
        defaults: dict[str, str] = getattr(module, "DEFAULT_BASE_URLS", {})
        if environment in defaults:
            urls.append(defaults[environment])
    return urls


def base_url_for(account: Account) -> str:
    """Return the URL the account's adapter talks to.

    Raises:
        ConfigError: nothing says where this broker's environment lives, or the account's own
            ``base_url`` is not a host its keys may travel to (set before the rule, or the
            allow-list changed since): the keys are not sent.
    """
    if account.base_url:
        from web_server.services.accounts import broker_url_problem

        problem = broker_url_problem(
            account.base_url, exchange=account.exchange, environment=account.environment
        )
        if problem is not None:
            raise ConfigError(
                f"Account {account.id}: its base_url is not allowed ({problem}); the operator "
                "must change it before the gateway sends its keys anywhere."
            )
        return account.base_url
    urls = broker_urls(account.exchange, account.environment)
    if not urls:
        raise ConfigError(
            f"No {account.environment} URL for {account.exchange}: set the account's base_url or "
            f"GATEWAY_BROKERS__{account.exchange}__{account.environment}_URL."
        )
    return urls[0]


def credentials_for(account: Account) -> Credentials:
    """Return the account's decrypted credentials (never logged: the secret is hidden in repr)."""
    config = securities_config(account)
    return Credentials(
        api_key=account.api_key,
        api_secret=account.api_secret,
        environment=account.environment,
        account_number=config.get("account_number"),
        product_code=config.get("product_code"),
        extra={k: v for k, v in config.items() if k not in ("account_number", "product_code")},
    )


def http_session(exchange: str) -> requests.Session:
    """Return the app's pooled session for one broker (one pool per broker, as DESIGN §6 asks)."""
    sessions: dict[str, requests.Session] = current_app.extensions.setdefault(
        "gateway.http_sessions", {}
    )
    if exchange not in sessions:
        sessions[exchange] = make_http_session()
    return sessions[exchange]


#: Adapter methods that do not call the broker (not timed as broker calls).
_LOCAL_METHODS = frozenset({"check_order"})


class _Observed:
    """An adapter whose broker calls are timed for ``/metrics`` (web_server/metrics.py).

    Only the public methods are wrapped; everything else (``exchange``, ``capabilities``) is the
    adapter's own. The operation label is the method's name: a small fixed set, never an id.
    ``tokens`` is the token provider the adapter was built with (KIS, Kiwoom; else None), so a
    caller that must make sure of the token before a call (``orders/submission.py``) asks the
    same one.
    """

    def __init__(self, adapter: Any, tokens: Any = None) -> None:
        self._adapter = adapter
        self.tokens = tokens

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter, name)
        if name.startswith("_") or name in _LOCAL_METHODS or not callable(value):
            return value
        exchange = str(getattr(self._adapter, "exchange", "?")).upper()

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            outcome = "ok"
            try:
                return value(*args, **kwargs)
            except Exception as exc:
                outcome = str(getattr(exc, "code", type(exc).__name__))
                raise
            finally:
                metrics.observe_broker_call(exchange, name, time.perf_counter() - start, outcome)

        return timed


def adapter_for(account: Account, *, token_provider: Any = None) -> Any:
    """Return a ready adapter for ``account``, its broker calls timed for ``/metrics``.

    One adapter per account and process is kept, with its credentials decrypted once (issue 12:
    an adapter per order cost a decryption, a session and, for KIS and Kiwoom, a token read).
    It is found again by what the account's row stores — its id, exchange, environment,
    ``base_url`` and its *encrypted* keys and broker configuration — and the app's settings it was
    built with, so finding it decrypts and hashes nothing. New keys (or the same keys encrypted
    anew: a rotation), a new URL, a new environment or a new account number are another entry:
    a new adapter (the old entry is never used again and ages out).

    For KIS and Kiwoom, ``token_provider`` defaults to the token service's provider of this
    account, so every call carries a valid token; an adapter given its own (issuance,
    revocation) is built for the caller and not kept.
    """
    if (
        token_provider is not None
        or account.id is None
        or account.__dict__.get("_pending_plaintext")
    ):
        return _build_adapter(account, token_provider)
    config = current_app.config
    identity: tuple[Any, ...] = (
        account.id,
        account.exchange,
        account.environment,
        account.base_url,
        account.api_key_ciphertext,
        account.api_secret_ciphertext,
        account.securities_config_ciphertext,
        # What decides the host and whether the keys may travel there (base_url_for), and the
        # calls' timeout: settings a test or an operator's reload may change.
        config.get("ENV"),
        repr(config.get("BROKERS")),
        repr(config.get("BROKER_URL_ALLOWLIST")),
        config.get("BROKER_TIMEOUT_SECONDS", 10.0),
        # The objects themselves (compared by identity): a key keeps them alive, so no later
        # object can take over their id.
        gateway_clock.source(),
        rate_limiter(),
    )
    cache: OrderedDict[tuple[Any, ...], Any] = current_app.extensions.setdefault(
        "gateway.adapters", OrderedDict()
    )
    with _CACHE_LOCK:
        adapter = cache.get(identity)
        if adapter is not None:
            cache.move_to_end(identity)
            return adapter
    adapter = _build_adapter(account, None)
    with _CACHE_LOCK:
        cache[identity] = adapter
        while len(cache) > ADAPTER_CACHE_SIZE:
            cache.popitem(last=False)
    return adapter


def _build_adapter(account: Account, token_provider: Any) -> _Observed:
    """Build an adapter for ``account`` (``token_provider``: see :func:`adapter_for`).

    Raises:
        ConfigError: the account's host is not one its keys may travel to (``base_url_for``).
    """
    cls = adapter_class(account.exchange)
    kwargs: dict[str, Any] = {
        "base_url": base_url_for(account),
        "session": http_session(account.exchange),
        "timeout": current_app.config.get("BROKER_TIMEOUT_SECONDS", 10.0),
        # The app's clock (services/clock.py): adapters date orders and histories by it.
        "clock": gateway_clock.source(),
        # Every request first asks the shared limiter (services/rate_limits.py): one budget per
        # broker counting unit across every process and host.
        "limiter": rate_limiter(),
    }
    if account.account_type == "SECURITIES_STOCK":
        from web_server.services.token_provider import AccountTokenProvider
        from web_server.services.tokens import provider_identity

        # The kept provider keeps this process's copy of the stored token (services/tokens.py).
        kwargs["token_provider"] = token_provider or AccountTokenProvider(
            account.id, provider_identity(account, kwargs["base_url"])
        )
    else:
        # Orders are checked against the stored market list (services/market_rules.py), never a
        # download of the exchange's.
        kwargs["order_rules"] = order_rule_source(account.exchange)
    return _Observed(cls(credentials_for(account), **kwargs), kwargs.get("token_provider"))
