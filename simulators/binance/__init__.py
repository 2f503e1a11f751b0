"""Binance spot simulator: ``/api/v3`` with HMAC-SHA256 signatures over the shared engine.

Clients reach it by base URL alone: python-binance through ``Client.API_URL = URL + "/api"``,
ccxt through ``urls['api'] = {'public': URL + '/api/v3', 'private': URL + '/api/v3', ...}`` with
``options = {'fetchMarkets': {'types': ['spot']}, 'fetchCurrencies': False,
'fetchMargins': False}`` so that ``load_markets`` needs only ``/api/v3/exchangeInfo``
(brokers/crypto.md §3.7); the ``/sapi``, ``/fapi`` and ``/dapi`` endpoints are not served.
``POST /_sim/accounts`` takes ``{"api_key", "secret_key", "balances": {"USDT": "…"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import Flask

from simulators.binance.auth import Credential, KeyStore
from simulators.binance.routes import BinanceApi
from simulators.control import SimState, install_control, parse_amounts, require_string
from simulators.crypto_markets import BINANCE_SPOT_MARKETS
from simulators.engine import ClientIdScope, FeeSchedule, SimClock, int_order_numbers

__all__ = ["BINANCE_FEE_RATE", "create_app", "create_state"]

#: Binance spot's base commission (0.1 %); buys pay it in the base asset, sells in the quote.
BINANCE_FEE_RATE = Decimal("0.001")


def create_state(*, seed: int = 0, **options: Any) -> SimState:
    """Build the Binance state: USDT symbols, integer ids, client ids unique among open orders."""
    liquidity = options.get("liquidity")
    fee_rate = Decimal(str(options.pop("fee_rate", BINANCE_FEE_RATE)))
    clock: SimClock | None = options.pop("clock", None)
    return SimState.create(
        "binance",
        seed=seed,
        clock=clock,
        instruments=[
            m.instrument(Decimal(str(liquidity)) if liquidity is not None else None)
            for m in BINANCE_SPOT_MARKETS
        ],
        options={"fee_rate": str(fee_rate), **options},
        fees=FeeSchedule(fee_rate=fee_rate, fee_in_base_on_buy=True),
        order_numbers=int_order_numbers(start=int(options.get("first_order_id", 1_000_001))),
        client_id_scope=ClientIdScope.OPEN_ORDERS,
        burn_client_id_on_reject=False,
    )


def create_app(state: SimState | None = None, *, seed: int = 0, **options: Any) -> Flask:
    """Build the Binance spot simulator.

    Args:
        state: a ready state; by default a fresh one with the USDT symbols.
        seed: seeds the price path.
        **options: switches kept in ``state.options``: ``weight_limit`` (6000 a minute),
            ``orders_per_10s`` (100), ``orders_per_day`` (200,000), ``ban_after`` (10 refused
            requests within ``strike_window`` 60 s → 418), ``ban_seconds`` (120, doubling),
            ``fee_rate`` (0.001), ``liquidity`` (per-step quantity; default unlimited),
            ``first_order_id`` (1000001), ``depth_size``, ``clock`` (a SimClock),
            ``unknown_path`` (``"json"`` {"code": -1020} | ``"html"`` page).
    """
    if state is None:
        state = create_state(seed=seed, **options)
    else:
        state.options.update(options)
    app = Flask("simulators.binance")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    api = BinanceApi(state, BINANCE_SPOT_MARKETS)
    keys: KeyStore = api.keys

    def create_account(body: Mapping[str, Any]) -> Mapping[str, Any]:
        api_key = require_string(body, "api_key")
        secret_key = require_string(body, "secret_key")
        balances = parse_amounts(body, "balances")
        state.engine.create_account(api_key, balances=balances, credential_id=api_key)
        keys.add(Credential(api_key, secret_key, api_key))
        return {
            "account_id": api_key,
            "api_key": api_key,
            "balances": {k: str(v) for k, v in balances.items()},
        }

    install_control(app, state, create_account)
    api.register(app)
    return app
