"""Holdings: the broker's truth, stored in ``trade.holdings`` with the time of the snapshot.

The API serves the stored snapshot and reads the broker again when asked or when the snapshot is
older than ``HOLDINGS_MAX_AGE_SECONDS`` (DESIGN §4); the operator's account page always reads the
broker. A snapshot replaces the previous one for the account: a position the broker no longer
reports is removed. A security the broker reports but the stocks master does not know cannot be
stored (its symbol is a foreign key to ``market.stocks``, the single source of truth): a fresh
read still shows it and names it in ``unlisted_symbols``, so the operator knows the master needs a
sync, but the stored snapshot leaves it out.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, func, select

from brokers import Position, utc_now
from web_server.extensions import db
from web_server.models import Account, Holding, Stock
from web_server.services.brokers import adapter_for

log = logging.getLogger(__name__)


@dataclass
class HoldingsSnapshot:
    """An account's holdings as last read from its broker (positions in domain terms)."""

    as_of: dt.datetime | None
    holdings: list[Position]
    unlisted_symbols: list[str] = field(default_factory=list)


def refresh_holdings(account: Account) -> HoldingsSnapshot:
    """Read the broker now and replace the stored snapshot; flush, the caller commits.

    Raises:
        BrokerError: the broker could not be read (the stored snapshot stays as it was).
    """
    positions = adapter_for(account).get_holdings()
    now = utc_now()
    unlisted: list[str] = []
    if account.account_type == "SECURITIES_STOCK":
        symbols = {p.symbol for p in positions if p.symbol}
        known = set(db.session.scalars(select(Stock.symbol).where(Stock.symbol.in_(symbols))))
        unlisted = sorted(symbols - known)
        if unlisted:
            log.warning(
                "account %s holds symbols the stocks master lacks: %s",
                account.id,
                ", ".join(unlisted),
            )
    positions = [p for p in positions if p.quantity]
    stored = [p for p in positions if p.symbol not in unlisted]
    db.session.execute(delete(Holding).where(Holding.account_id == account.id))
    db.session.add_all([_row(account, position, now) for position in stored])
    db.session.flush()
    return HoldingsSnapshot(as_of=now, holdings=positions, unlisted_symbols=unlisted)


def _row(account: Account, position: Position, now: dt.datetime) -> Holding:
    return Holding(
        account_id=account.id,
        symbol=position.symbol if account.account_type == "SECURITIES_STOCK" else None,
        asset=position.asset if account.account_type == "CRYPTO" else None,
        quantity=position.quantity,
        avg_price=position.avg_price,
        current_price=position.current_price,
        pnl=position.pnl,
        pnl_pct=position.pnl_pct,
        raw=json.loads(json.dumps(dict(position.raw), default=str)) if position.raw else None,
        updated_ts=now,
    )


def get_holdings(account: Account, *, refresh: bool = False) -> HoldingsSnapshot:
    """Return the stored snapshot, reading the broker first when asked or when it is stale.

    Raises:
        BrokerError: a refresh was needed and the broker could not be read.
    """
    as_of = db.session.scalar(
        select(func.max(Holding.updated_ts)).where(Holding.account_id == account.id)
    )
    max_age = dt.timedelta(seconds=current_app.config["HOLDINGS_MAX_AGE_SECONDS"])
    if refresh or as_of is None or utc_now() - as_of > max_age:
        return refresh_holdings(account)
    rows = db.session.scalars(
        select(Holding)
        .where(Holding.account_id == account.id)
        .order_by(Holding.symbol, Holding.asset)
    ).all()
    return HoldingsSnapshot(as_of=as_of, holdings=[_position(row) for row in rows])


def _position(row: Holding) -> Position:
    stock = current_app.extensions["gateway.symbols"].lookup(row.symbol) if row.symbol else None
    return Position(
        quantity=row.quantity,
        symbol=row.symbol,
        asset=row.asset,
        avg_price=row.avg_price,
        current_price=row.current_price,
        pnl=row.pnl,
        pnl_pct=row.pnl_pct,
        name=stock.name if stock else None,
    )
