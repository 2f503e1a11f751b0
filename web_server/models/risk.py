"""Pre-trade risk controls: policies, kill switches, panic actions, their audit trail.

Also the two tables the KRX checks and the stocks-sync guard keep: the base price of each stock
per trading day (``market.stock_base_prices``) and the record of every sync's outcome
(``system.stocks_sync_runs``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from web_server.database import Base

KILL_SWITCH_SCOPES = ("GLOBAL", "API_KEY", "ACCOUNT")
POLICY_SCOPES = ("API_KEY", "ACCOUNT")
PANIC_KINDS = ("CANCEL_ALL", "FLATTEN")


class StockBasePrice(Base):
    """A stock's base price (기준가) for one KRX trading day: the centre of the ±30 % band."""

    __tablename__ = "stock_base_prices"
    __table_args__ = (
        CheckConstraint("base_price > 0", name="base_price_positive"),
        CheckConstraint("source IN ('MASTER', 'OPERATOR')", name="source"),
        {"schema": "market"},
    )

    symbol: Mapped[str] = mapped_column(
        Text, ForeignKey("market.stocks.symbol", ondelete="CASCADE"), primary_key=True
    )
    trading_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    base_price: Mapped[Decimal]
    source: Mapped[str] = mapped_column(Text)
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class RiskPolicy(Base):
    """The limits of one API key or one account; a NULL limit is no limit."""

    __tablename__ = "risk_policies"
    __table_args__ = (
        CheckConstraint("num_nonnulls(api_key_id, account_id) = 1", name="one_target"),
        CheckConstraint(
            "allowed_sides IS NULL OR allowed_sides <@ ARRAY['BUY', 'SELL']::text[]",
            name="allowed_sides",
        ),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), unique=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    max_order_notional: Mapped[Decimal | None]
    max_order_quantity: Mapped[Decimal | None]
    max_daily_notional: Mapped[Decimal | None]
    max_daily_orders: Mapped[int | None] = mapped_column(Integer)
    max_open_orders: Mapped[int | None] = mapped_column(Integer)
    allowed_symbols: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    allowed_sides: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    refused_designations: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    updated_by: Mapped[str] = mapped_column(Text)
    updated_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class KillSwitch(Base):
    """An engaged kill switch: no new order for its target until it is released (deleted)."""

    __tablename__ = "kill_switches"
    __table_args__ = (
        CheckConstraint("scope IN ('GLOBAL', 'API_KEY', 'ACCOUNT')", name="scope"),
        CheckConstraint("(scope = 'GLOBAL') = (target_id = 0)", name="global_has_no_target"),
        UniqueConstraint("scope", "target_id", name="uq_kill_switches_scope_target"),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    # 0 for the global switch; an API key's or an account's id otherwise (no foreign key: a
    # switch on a key that is later deleted stays visible until the operator releases it).
    target_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(Text)
    set_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class RiskEvent(Base):
    """The audit trail of risk controls: who changed a switch or a policy, or ran a panic action."""

    __tablename__ = "risk_events"
    __table_args__ = (Index("idx_risk_events_at", "at"), {"schema": "trade"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None]


class PanicAction(Base):
    """One cancel-all or flatten, keyed by its idempotency key, with what it did."""

    __tablename__ = "panic_actions"
    __table_args__ = (
        CheckConstraint("kind IN ('CANCEL_ALL', 'FLATTEN')", name="kind"),
        CheckConstraint("scope IN ('API_KEY', 'ACCOUNT')", name="scope"),
        CheckConstraint("status IN ('RUNNING', 'DONE', 'FAILED')", name="status"),
        {"schema": "trade"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    action_key: Mapped[str] = mapped_column(Text, unique=True)
    request_hash: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    target_id: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    finished_ts: Mapped[dt.datetime | None]


class StocksSyncRun(Base):
    """What a stocks sync did: applied, refused by the delisting guard, or forced past it."""

    __tablename__ = "stocks_sync_runs"
    __table_args__ = (
        CheckConstraint("outcome IN ('APPLIED', 'REFUSED', 'FORCED')", name="outcome"),
        Index("idx_stocks_sync_runs_at", "at"),
        {"schema": "system"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    outcome: Mapped[str] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    delist_shares: Mapped[dict[str, Any] | None]
