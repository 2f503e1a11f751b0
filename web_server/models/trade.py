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
# An order is sized by quantity, or (a market buy on Upbit or Bithumb) by quote amount.
_SIZE = "num_nonnulls(quantity, quote_amount) = 1"


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
        CheckConstraint(_SIZE, name="size"),
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
    quantity: Mapped[Decimal | None]
    # A market buy by amount (Upbit, Bithumb): what to spend, in the quote currency.
    quote_amount: Mapped[Decimal | None]
    limit_price: Mapped[Decimal | None]
    route: Mapped[str | None] = mapped_column(Text)
    # An amend's intent: the order it replaces (migration 0017). No foreign key: orders
    # reference intents, and a cycle would leave the tables without an order; the new order
    # row carries the key.
    replaces_order_id: Mapped[uuid.UUID | None]
    action_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="NEW")
    response: Mapped[dict[str, Any] | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class Order(Base):
    """An order as sent to a broker, keyed by our id and by what the broker guarantees.

    The broker's identity of an order is (account, KST order date, number) for KIS and Kiwoom,
    whose numbers restart each trading day, and (account, market, id) for crypto (migration 0013).

    While its placement is under way the placing request owns it until ``lease_until``;
    ``send_started_ts`` says whether (and from when) it may have reached the broker. The
    reconciler takes over an unsettled order only once its lease has run out
    (``services/orders/reconcile.py``).
    """

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_ONE_INSTRUMENT, name="one_instrument"),
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        CheckConstraint(_SIZE, name="size"),
        CheckConstraint(
            "symbol IS NULL OR broker_order_id IS NULL OR broker_order_date IS NOT NULL",
            name="broker_order_date",
        ),
        Index(
            "uq_orders_broker_day",
            "account_id",
            "broker_order_date",
            "broker_order_id",
            unique=True,
            postgresql_where=text("symbol IS NOT NULL AND broker_order_id IS NOT NULL"),
        ),
        Index(
            "uq_orders_broker_market",
            "account_id",
            "crypto_market_id",
            "broker_order_id",
            unique=True,
            postgresql_where=text("crypto_market_id IS NOT NULL AND broker_order_id IS NOT NULL"),
        ),
        Index("idx_orders_account_status", "account_id", "status", "created_ts"),
        Index("idx_orders_account_created", "account_id", "created_ts"),
        # The reconciler's watch for late acceptances of orders it called absent.
        Index(
            "idx_orders_not_at_broker",
            "updated_ts",
            postgresql_where=text("reject_code = 'not_at_broker'"),
        ),
        # The poller's open orders per account: only open orders are in it, however many closed
        # ones pile up.
        Index(
            "idx_orders_open",
            "account_id",
            "created_ts",
            postgresql_where=text("status IN ('SUBMITTED', 'PARTIALLY_FILLED', 'CANCEL_PENDING')"),
        ),
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
    quantity: Mapped[Decimal | None]
    quote_amount: Mapped[Decimal | None]
    limit_price: Mapped[Decimal | None]
    route: Mapped[str | None] = mapped_column(Text)
    client_order_id: Mapped[str] = mapped_column(Text, unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(Text)
    # The order's date at the broker (KST) for KIS and Kiwoom, whose numbers restart daily.
    broker_order_date: Mapped[dt.date | None]
    status: Mapped[str] = mapped_column(Text)
    filled_quantity: Mapped[Decimal] = mapped_column(server_default=text("0"))
    average_fill_price: Mapped[Decimal | None]
    # The sums of the order's fills (trade.fills), in fee_currency (migration 0017).
    fee_total: Mapped[Decimal] = mapped_column(server_default=text("0"))
    tax_total: Mapped[Decimal] = mapped_column(server_default=text("0"))
    fee_currency: Mapped[str | None] = mapped_column(Text)
    # The filled quantity less fees charged in the base asset (a Binance buy without BNB): what
    # the holdings changed by. NULL before the first fill.
    net_filled_quantity: Mapped[Decimal | None]
    # An amend is a new order replacing an open one; the old one ends CANCELLED, linked both ways.
    replaces_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trade.orders.id", ondelete="RESTRICT")
    )
    replaced_by_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trade.orders.id", ondelete="RESTRICT")
    )
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
    # When the last cancel was sent: a cancel whose outcome was lost is re-checked from then.
    cancel_requested_ts: Mapped[dt.datetime | None]
    # Why the operator must look at this order, with the broker rows concerned; NULL: nothing.
    attention: Mapped[dict[str, Any] | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    intent: Mapped[OrderIntent] = relationship(foreign_keys=[intent_id])


class Fill(Base):
    """One execution of an order, written once (``uq_fills_order_key``, migration 0017).

    ``broker_fill_key`` is the broker's execution id, or for KIS and Kiwoom (cumulative figures
    only) ``cum:<filled quantity>``: the increment up to that cumulative quantity.
    """

    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("order_id", "broker_fill_id", name="uq_fills_order_broker_fill"),
        Index("uq_fills_order_key", "order_id", "broker_fill_key", unique=True),
        Index("idx_fills_order_ts", "order_id", text("ts DESC")),
        {"schema": "trade"},
    )

    fill_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trade.orders.id", ondelete="RESTRICT"))
    broker_fill_id: Mapped[str | None] = mapped_column(Text)
    broker_fill_key: Mapped[str] = mapped_column(Text)
    ts: Mapped[dt.datetime]
    quantity: Mapped[Decimal]
    price: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[Decimal | None]
    tax: Mapped[Decimal | None]
    fee_currency: Mapped[str | None] = mapped_column(Text)


class Holding(Base):
    """The broker's truth of what an account holds, one row per position, with the snapshot time.

    Exactly one of three names the position: ``symbol`` (a security the stocks master knows, a
    foreign key), ``broker_symbol`` (the broker's code of a security the master does not know,
    kept all the same) or ``asset`` (crypto). Per account each position has one row, the key a
    refresh upserts on (migration 0014).
    """

    __tablename__ = "holdings"
    __table_args__ = (
        CheckConstraint("num_nonnulls(symbol, broker_symbol, asset) = 1", name="one_instrument"),
        Index(
            "uq_holdings_account_instrument",
            "account_id",
            text("coalesce(symbol, broker_symbol, asset)"),
            unique=True,
        ),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str | None] = mapped_column(Text, stock_symbol_fk())
    # The broker's code of a security the stocks master does not know (symbol is then NULL).
    broker_symbol: Mapped[str | None] = mapped_column(Text)
    asset: Mapped[str | None] = mapped_column(Text)
    # The broker's name of the position: the only name of a security the master does not know.
    name: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal]
    # What may be sold now (the rest is tied up in open sell orders); NULL: the broker did not say.
    available_quantity: Mapped[Decimal | None]
    avg_price: Mapped[Decimal | None]
    current_price: Mapped[Decimal | None]
    pnl: Mapped[Decimal | None]
    pnl_pct: Mapped[Decimal | None]
    raw: Mapped[dict[str, Any] | None]
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


__all__ = ["Fill", "Holding", "Order", "OrderIntent", "OrderStatus"]
