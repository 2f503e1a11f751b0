"""The crypto markets' order rules as ``market.crypto_markets`` stores them, cached per process.

Placement checks an order against its market's tick, lot and minimum-notional rules before the
intent is written (a broken rule is a 422 and nothing is stored), and the adapter checks it again
just before sending: both read this cache, so no order downloads the exchange's market list (an
Upbit quotation call, 10 a second per address) and no order reads the table. The table is kept by
the markets sync (``gateway markets sync`` and the scheduler); the cache reads all of one
exchange's markets at most once a minute per process, and again after a few seconds when asked
for a market it does not have (one listed since).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers import MarketRule
from web_server.extensions import db
from web_server.models import CryptoMarket

#: How long one exchange's rules are served from memory.
TTL_SECONDS = 60.0
#: How soon a market missing from the cache is looked for in the table again.
MISS_SECONDS = 5.0


@dataclass(frozen=True)
class StoredMarket:
    """One market as stored: its row id (orders reference it) and its order rules."""

    id: int
    rule: MarketRule


def stored_market(exchange: str, symbol: str) -> StoredMarket | None:
    """Return ``symbol``'s stored market on ``exchange``, or None if the table lacks it."""
    cache: dict[str, tuple[float, dict[str, StoredMarket]]] = current_app.extensions.setdefault(
        "gateway.market_rules", {}
    )
    now = time.monotonic()
    loaded_at, markets = cache.get(exchange, (float("-inf"), {}))
    age = now - loaded_at
    if age < TTL_SECONDS and (symbol in markets or age < MISS_SECONDS):
        return markets.get(symbol)
    # No lock: two threads reloading at once read the same rows, and the later one wins.
    markets = _load(exchange)
    cache[exchange] = (time.monotonic(), markets)
    return markets.get(symbol)


def forget(exchange: str | None = None) -> None:
    """Drop the cached rules (after a markets sync in this process)."""
    cache = current_app.extensions.setdefault("gateway.market_rules", {})
    if exchange is None:
        cache.clear()
    else:
        cache.pop(exchange, None)


def order_rule_source(exchange: str):  # noqa: ANN201 - a closure over the app
    """Return ``symbol → MarketRule | None`` for an adapter, usable outside a request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def rule_of(symbol: str) -> MarketRule | None:
        with app.app_context():
            market = stored_market(exchange, symbol)
        return market.rule if market is not None else None

    return rule_of


def _load(exchange: str) -> dict[str, StoredMarket]:
    # Its own short session: this also runs inside a broker call, where the request's session
    # must not hold a connection.
    with Session(db.engine) as session:
        rows = session.scalars(select(CryptoMarket).where(CryptoMarket.exchange == exchange))
        return {
            row.symbol: StoredMarket(
                row.id,
                MarketRule(
                    symbol=row.symbol,
                    base_asset=row.base_asset,
                    quote_asset=row.quote_asset,
                    tick_size=row.tick_size,
                    lot_size=row.lot_size,
                    min_notional=row.min_notional,
                    is_tradable=row.is_tradable,
                    raw=row.raw or {},
                ),
            )
            for row in rows
        }
