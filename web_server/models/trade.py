"""Order intents, orders, fills and holdings (seed 004, adapted to a multi-broker gateway).

Every row is about either a Korean security or a crypto market, never both: ``symbol`` references
``market.stocks`` (ON DELETE RESTRICT, seed 000 Phase 3) and ``crypto_market_id`` references
``market.crypto_markets``; a CHECK keeps exactly one of them set. Holdings of crypto are per asset
(``BTC``), not per market, so ``trade.holdings`` carries ``asset`` in place of a market.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from brokers import OrderStatus
from web_server.database import Base
from web_server.models.market import stock_symbol_fk

_ONE_INSTRUMENT = "num_nonnulls(symbol, crypto_market_id) = 1"


_STATUSES = ", ".join(f"'{status}'" for status in OrderStatus)


class OrderIntent(Base):
    """An accepted order request, keyed by its idempotency key (``action_key``).

    Committed before the broker is called, so a crash or a timeout always leaves a record to
    reconcile. ``request_hash`` tells a replay (same body) from a conflict (another body).
    """

    __tablename__ = "order_intents"
    __table_args__ = (
        CheckConstraint(_ONE_INSTRUMENT, name="one_instrument"),
        CheckConstraint("side IN ('BUY', 'SELL')", name="side"),
        CheckConstraint("order_type IN ('LIMIT', 'MARKET')", name="order_type"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("uq_order_intents_action_key", "action_key", unique=True),
        Index("idx_order_intents_status", "status", "created_ts"),
        {"schema": "trade"},
    )

    intent_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    symbol: Mapped[str | None] = mapped_column(Text, stock_symbol_fk())
    crypto_market_id: Mapped[int | None] = mapped_column(
        ForeignKey("market.crypto_markets.id", ondelete="RESTRICT")
    )
    side: Mapped[str] = mapped_column(Text)
    order_type: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal]
    limit_price: Mapped[Decimal | None]
    route: Mapped[str | None] = mapped_column(Text)
    action_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="NEW")
    response: Mapped[dict[str, Any] | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class Order(Base):
    """An order as sent to a broker, keyed by our id; the broker's number is unique per account.

    While its placement is under way the placing request owns it until ``lease_until``;
    ``send_started_ts`` says whether (and from when) it may have reached the broker. The
    reconciler takes over an unsettled order only once its lease has run out
    (``services/orders/reconcile.py``).
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_ONE_INSTRUMENT, name="one_instrument"),
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        UniqueConstraint("account_id", "broker_order_id", name="uq_orders_account_broker_order"),
        Index("idx_orders_account_status", "account_id", "status", "created_ts"),
        # The reconciler's question, "which unsettled orders are no longer leased?", on an index
        # that only ever holds the handful of unsettled orders.
        Index(
            "idx_orders_unsettled",
            "lease_until",
            postgresql_where=text("status IN ('PENDING_SUBMIT', 'UNKNOWN')"),
        ),
        {"schema": "trade"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    intent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trade.order_intents.intent_id", ondelete="RESTRICT"), unique=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    symbol: Mapped[str | None] = mapped_column(Text, stock_symbol_fk())
    crypto_market_id: Mapped[int | None] = mapped_column(
        ForeignKey("market.crypto_markets.id", ondelete="RESTRICT")
    )
    side: Mapped[str] = mapped_column(Text)
    order_type: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal]
    limit_price: Mapped[Decimal | None]
    route: Mapped[str | None] = mapped_column(Text)
    client_order_id: Mapped[str] = mapped_column(Text, unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    filled_quantity: Mapped[Decimal] = mapped_column(server_default=text("0"))
    average_fill_price: Mapped[Decimal | None]
    reject_code: Mapped[str | None] = mapped_column(Text)
    reject_message: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None]
    submitted_ts: Mapped[dt.datetime | None]
    # When the placing request was cleared to call the broker (NULL: it never was, so the broker
    # cannot have the order). Set, and committed, before the call.
    send_started_ts: Mapped[dt.datetime | None]
    # Until then the placing request owns the order and nobody else settles it; once sending
    # started, also the latest the broker can have received it. NULL: nobody owns it.
    lease_until: Mapped[dt.datetime | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    intent: Mapped[OrderIntent] = relationship()


class Fill(Base):
    """One execution of an order."""

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("order_id", "broker_fill_id", name="uq_fills_order_broker_fill"),
        Index("idx_fills_order_ts", "order_id", text("ts DESC")),
        {"schema": "trade"},
    )

    fill_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trade.orders.id", ondelete="RESTRICT"))
    broker_fill_id: Mapped[str | None] = mapped_column(Text)
    ts: Mapped[dt.datetime]
    quantity: Mapped[Decimal]
    price: Mapped[Decimal]
    fee: Mapped[Decimal | None]
    tax: Mapped[Decimal | None]


class Holding(Base):
    """The broker's truth of what an account holds, with the time of the snapshot."""

    __tablename__ = "holdings"
    __table_args__ = (
        CheckConstraint("num_nonnulls(symbol, asset) = 1", name="one_instrument"),
        Index(
            "uq_holdings_account_symbol",
            "account_id",
            "symbol",
            unique=True,
            postgresql_where=text("symbol IS NOT NULL"),
        ),
        Index(
            "uq_holdings_account_asset",
            "account_id",
            "asset",
            unique=True,
            postgresql_where=text("asset IS NOT NULL"),
        ),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str | None] = mapped_column(Text, stock_symbol_fk())
    asset: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal]
    avg_price: Mapped[Decimal | None]
    current_price: Mapped[Decimal | None]
    pnl: Mapped[Decimal | None]
    pnl_pct: Mapped[Decimal | None]
    raw: Mapped[dict[str, Any] | None]
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


__all__ = ["Fill", "Holding", "Order", "OrderIntent", "OrderStatus"]
