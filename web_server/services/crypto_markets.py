"""Sync ``market.crypto_markets`` from each crypto exchange's market list.

The list is public, so any account of an exchange (or none: the configured host) serves to read it.
A market that vanished from the list is kept (orders and fills reference it) and marked not
tradable; nothing is deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from brokers import Credentials, MarketRule
from web_server.extensions import db
from web_server.models import Account, CryptoMarket
from web_server.services import market_rules
from web_server.services.brokers import adapter_class, base_url_for, http_session
from web_server.services.rate_limits import rate_limiter

log = logging.getLogger(__name__)
CRYPTO_EXCHANGES = ("UPBIT", "BITHUMB", "BINANCE")


@dataclass
class MarketsSummary:
    """What a markets sync did for one exchange."""

    exchange: str
    added: int = 0
    changed: int = 0
    retired: int = 0
    total: int = 0

    def line(self) -> str:
        """Return a one-line summary."""
        return (
            f"{self.exchange}: {self.total} markets (added {self.added}, changed {self.changed}, "
            f"no longer listed {self.retired})"
        )


def _source_account(exchange: str) -> Account:
    """Return an account whose host serves the exchange's market list (an unsaved one if none)."""
    account = db.session.scalar(
        select(Account)
        .where(Account.exchange == exchange, Account.is_active.is_(True))
        .order_by(Account.id)
    )
    return account or Account(exchange=exchange, environment="REAL", account_type="CRYPTO")


def fetch_markets(exchange: str) -> list[MarketRule]:
    """Read the exchange's market list through its adapter.

    Raises:
        BrokerError: the exchange could not be read.
    """
    account = _source_account(exchange)
    # The market list needs no signature: empty credentials keep keys out of this path. It is a
    # public quotation call, paced like every other on the address's shared budget (an Upbit
    # address over 10 a second is banned for all its accounts).
    adapter = adapter_class(exchange)(
        Credentials(api_key="", api_secret=""),
        base_url=base_url_for(account),
        session=http_session(exchange),
        timeout=current_app.config.get("BROKER_TIMEOUT_SECONDS", 10.0),
        limiter=rate_limiter(),
    )
    return list(adapter.list_markets())


def sync_markets(exchange: str, markets: list[MarketRule]) -> MarketsSummary:
    """Upsert ``markets`` into ``market.crypto_markets``; flush, the caller commits."""
    summary = MarketsSummary(exchange=exchange, total=len(markets))
    existing = {
        m.symbol: m
        for m in db.session.scalars(select(CryptoMarket).where(CryptoMarket.exchange == exchange))
    }
    seen = set()
    for rule in markets:
        seen.add(rule.symbol)
        values = {
            "base_asset": rule.base_asset,
            "quote_asset": rule.quote_asset,
            "tick_size": rule.tick_size,
            "lot_size": rule.lot_size,
            "min_notional": rule.min_notional,
            "is_tradable": rule.is_tradable,
        }
        row = existing.get(rule.symbol)
        if row is None:
            db.session.add(CryptoMarket(exchange=exchange, symbol=rule.symbol, **values))
            summary.added += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            summary.changed += 1
    for symbol, row in existing.items():
        if symbol not in seen and row.is_tradable:
            row.is_tradable = False
            summary.retired += 1
    db.session.flush()
    market_rules.forget(exchange)  # this process's orders see the new rules at once
    return summary


def sync_all_markets(exchanges: tuple[str, ...] = CRYPTO_EXCHANGES) -> list[MarketsSummary]:
    """Sync every crypto exchange's markets; an exchange that fails is logged and skipped."""
    from web_server.errors import GatewayError

    summaries = []
    for exchange in exchanges:
        try:
            markets = fetch_markets(exchange)
        except GatewayError as exc:
            log.warning("markets sync: %s unavailable (%s)", exchange, exc.code)
            continue
        summaries.append(sync_markets(exchange, markets))
    return summaries
