"""The stocks master (seed 000) and the crypto markets list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import conv

from web_server.database import Base

# KRX short codes: six characters, a digit first, then digits or capital letters (KRX has issued
# alphanumeric codes such as 0001A0 since 2024). Seed 000 wrote ^\d{6}$, which refuses real
# listings.
SYMBOL_PATTERN = r"^[0-9][0-9A-Z]{5}$"


class Stock(Base):
    """A Korean listed security: the single source of truth for symbols (seed 000, Phase 1).

    Only ``gateway_datasync`` writes this table; delisting is soft (``status='DELISTED'``).
    ``standard_code`` and ``security_group`` are extra columns filled from KIS's master files.
    """

    __tablename__ = "stocks"
    __table_args__ = (
        CheckConstraint("market IN ('KOSPI', 'KOSDAQ', 'KONEX')", name=conv("chk_market")),
        CheckConstraint("status IN ('ACTIVE', 'SUSPENDED', 'DELISTED')", name=conv("chk_status")),
        CheckConstraint(f"symbol ~ '{SYMBOL_PATTERN}'", name=conv("chk_symbol_format")),
        Index("idx_stocks_market", "market"),
        Index("idx_stocks_status", "status"),
        Index("idx_stocks_tradable", "is_tradable", postgresql_where=text("is_tradable = true")),
        Index("idx_stocks_name", "name"),
        {"schema": "market"},
    )

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    market: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    listing_date: Mapped[dt.date | None] = mapped_column(Date)
    delisting_date: Mapped[dt.date | None] = mapped_column(Date)
    sector: Mapped[str | None] = mapped_column(Text)
    industry: Mapped[str | None] = mapped_column(Text)
    market_cap: Mapped[int | None] = mapped_column(BigInteger)
    is_tradable: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    trade_halt_reason: Mapped[str | None] = mapped_column(Text)
    standard_code: Mapped[str | None] = mapped_column(Text)
    security_group: Mapped[str | None] = mapped_column(Text)
    # Designations KRX puts on a listed stock (administrative issue, investment warning or risk,
    # liquidation trading, …) as stable codes (``web_server.services.stocks.DESIGNATIONS``). They
    # do not stop trading at the exchange, so they are not folded into ``is_tradable``; a key's
    # risk policy may refuse them.
    designations: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]")
    )
    # Whether Nextrade (NXT) trades the stock: derived by the sync (trading-days.md §1.2).
    nxt_eligible: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    def __repr__(self) -> str:
        return f"<Stock {self.symbol} {self.name} {self.market} {self.status}>"


class CryptoMarket(Base):
    """A crypto exchange's market (``KRW-BTC`` on Upbit, ``BTCUSDT`` on Binance) and its rules."""

    __tablename__ = "crypto_markets"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", name="uq_crypto_markets_exchange_symbol"),
        CheckConstraint("exchange IN ('UPBIT', 'BITHUMB', 'BINANCE')", name="exchange"),
        {"schema": "market"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange: Mapped[str] = mapped_column(String(20))
    symbol: Mapped[str] = mapped_column(Text)
    base_asset: Mapped[str] = mapped_column(Text)
    quote_asset: Mapped[str] = mapped_column(Text)
    tick_size: Mapped[Decimal | None]
    lot_size: Mapped[Decimal | None]
    min_notional: Mapped[Decimal | None]
    is_tradable: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    raw: Mapped[dict[str, Any] | None]
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


def stock_symbol_fk() -> ForeignKey:
    """Return the foreign key every securities symbol column uses (seed 000 Phase 3)."""
    return ForeignKey("market.stocks.symbol", ondelete="RESTRICT")
