"""Bithumb simulator: Bithumb API 2.0 (JWT, ``/v1`` + ``/v2/orders``) over the shared engine.

Built for ccxt ≥ 4.5.85, whose Bithumb class speaks API 2.0 by default (brokers/crypto.md §2.1);
the ccxt base URL is the simulator's root (``urls['api'] = {'public': URL, 'private': URL}``).
``POST /_sim/accounts`` takes ``{"access_key", "secret_key", "balances": {"KRW": "…", …}}``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask

from simulators.bithumb.routes import BithumbApi
from simulators.control import SimState, install_control
from simulators.crypto_markets import KRW_MARKETS
from simulators.engine import ClientIdScope
from simulators.upbit import create_state, make_accounts_callback

__all__ = ["BITHUMB_FEE_RATE", "bithumb_order_numbers", "create_app"]

#: Bithumb's standard KRW-market commission (0.25 %; ccxt's sample shows 23.75 KRW on 9,500 KRW).
BITHUMB_FEE_RATE = Decimal("0.0025")


def bithumb_order_numbers(n: int) -> str:
    """Bithumb order ids: ``C0101`` and 15 digits (``C0101000003152350309``)."""
    return f"C0101{3_152_350_000 + n:015d}"


def create_app(state: SimState | None = None, *, seed: int = 0, **options: Any) -> Flask:
    """Build the Bithumb simulator.

    Args:
        state: a ready state; by default a fresh one with the KRW markets.
        seed: seeds the price path.
        **options: switches kept in ``state.options``: ``jwt_max_age_seconds`` (30),
            ``public_rate`` (150/s), ``private_rate`` (140/s), ``order_rate`` (= private),
            ``batch_rate`` (bulk cancels, 20/s),
            ``ban_after``/``strike_window``/``ban_seconds`` (429 → 418), ``post_response``,
            ``liquidity``, ``client_id_scope`` (``"forever"`` default, or ``"open_orders"``).
    """
    if state is None:
        scope = ClientIdScope(options.pop("client_id_scope", ClientIdScope.FOREVER))
        state = create_state(
            "bithumb",
            seed=seed,
            fee_rate=Decimal(str(options.pop("fee_rate", BITHUMB_FEE_RATE))),
            order_numbers=bithumb_order_numbers,
            client_id_scope=scope,
            **options,
        )
    else:
        state.options.update(options)
    state.options.setdefault("jwt_max_age_seconds", 30)
    app = Flask("simulators.bithumb")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    api = BithumbApi(state, KRW_MARKETS)
    install_control(app, state, make_accounts_callback(state, api.credentials))
    api.register(app)
    return app
