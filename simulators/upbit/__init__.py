"""Upbit simulator: Upbit's REST protocol (``/v1/...``) over the shared exchange engine.

``create_app()`` returns a Flask app that ccxt, pyupbit and the official samples can use with only
the base URL changed (pyupbit needs its hard-coded host rewritten at the ``requests`` layer;
brokers/crypto.md §1.1). The ``/_sim/`` control surface comes from
:func:`simulators.control.install_control`; ``POST /_sim/accounts`` takes
``{"access_key", "secret_key", "balances": {"KRW": "…", "BTC": "…"}}`` (optional
``"key_expires_at"``, ISO 8601; keys otherwise expire a year after creation, as Upbit's do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask

from simulators.control import (
    AccountsCallback,
    AccountSpecError,
    SimState,
    install_control,
    parse_amounts,
    require_string,
)
from simulators.crypto_markets import KRW_MARKETS, KST, SpotMarket
from simulators.engine import ClientIdScope, FeeSchedule, SimClock, uuid_order_numbers
from simulators.upbit.auth import Credential, CredentialStore
from simulators.upbit.routes import UpbitApi

__all__ = ["create_app", "create_state", "make_accounts_callback"]

#: Upbit's KRW-market commission (0.05 %), charged in KRW on both sides.
UPBIT_FEE_RATE = Decimal("0.0005")
KEY_LIFETIME = timedelta(days=365)


def create_state(
    broker: str = "upbit",
    *,
    seed: int = 0,
    markets: Iterable[SpotMarket] = KRW_MARKETS,
    fee_rate: Decimal = UPBIT_FEE_RATE,
    order_numbers: Callable[[int], str] | None = None,
    client_id_scope: ClientIdScope = ClientIdScope.FOREVER,
    **options: Any,
) -> SimState:
    """Build the state of a KRW-market JWT exchange (Upbit, and Bithumb which reuses this).

    Money keeps 8 decimal places (KRW balances and fees are fractional at both venues). Client
    ids stay taken forever and are burned by rejected orders too (Upbit's documented rule).
    """
    liquidity = options.get("liquidity")
    clock: SimClock | None = options.pop("clock", None)
    return SimState.create(
        broker,
        seed=seed,
        clock=clock,
        instruments=[
            m.instrument(Decimal(str(liquidity)) if liquidity is not None else None)
            for m in markets
        ],
        options={"fee_rate": str(fee_rate), **options},
        fees=FeeSchedule(fee_rate=fee_rate),
        order_numbers=order_numbers or uuid_order_numbers(seed),
        money_places={"KRW": 8},
        client_id_scope=client_id_scope,
        burn_client_id_on_reject=True,
        timezone=KST,
    )


def make_accounts_callback(state: SimState, credentials: CredentialStore) -> AccountsCallback:
    """Return the ``POST /_sim/accounts`` callback for Upbit-shaped bodies."""

    def create_account(body: Mapping[str, Any]) -> Mapping[str, Any]:
        access_key = require_string(body, "access_key")
        secret_key = require_string(body, "secret_key")
        balances = parse_amounts(body, "balances")
        expires_at = state.clock.now() + KEY_LIFETIME
        if body.get("key_expires_at") is not None:
            try:
                expires_at = datetime.fromisoformat(str(body["key_expires_at"]))
            except ValueError:
                raise AccountSpecError("key_expires_at must be an ISO 8601 time") from None
            if expires_at.tzinfo is None:
                raise AccountSpecError("key_expires_at needs a UTC offset")
        state.engine.create_account(access_key, balances=balances, credential_id=access_key)
        credentials.add(Credential(access_key, secret_key, access_key, expires_at))
        return {
            "account_id": access_key,
            "access_key": access_key,
            "key_expires_at": expires_at.isoformat(),
            "balances": {k: str(v) for k, v in balances.items()},
        }

    return create_account


def create_app(state: SimState | None = None, *, seed: int = 0, **options: Any) -> Flask:
    """Build the Upbit simulator.

    Args:
        state: a ready state (tests share one); by default a fresh one with the KRW markets.
        seed: seeds the price path and the order uuids.
        **options: switches kept in ``state.options``: ``order_rate`` (order group per second;
            default 8, or 12 from 2026-08-21), ``exchange_rate`` (30), ``quotation_rate`` (10),
            ``cancel_all_rate`` (``DELETE /v1/orders/open`` requests per 2 s; 1),
            ``ban_after`` (10 refused requests in ``strike_window`` 60 s → 418),
            ``ban_seconds`` (60), ``rate_limit_body`` (``"text"``|``"json"``),
            ``post_response`` (``"accepted"``|``"current"``), ``liquidity`` (per-step quantity,
            default unlimited), ``orderbook_size``, ``clock`` (a SimClock, e.g. frozen for tests).
    """
    if state is None:
        state = create_state("upbit", seed=seed, **options)
    else:
        state.options.update(options)
    app = Flask("simulators.upbit")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    api = UpbitApi(state, KRW_MARKETS)
    install_control(app, state, make_accounts_callback(state, api.credentials))
    api.register(app)
    return app
