"""The order event log and outbound webhooks (migration 0015).

``trade.order_events`` is append-only. Its ids come from the one-row
``trade.order_event_counter``, taken just before each writing transaction commits, so that they are
gap-free and in commit order (``web_server.services.events``); a sequence would not be: a
transaction holding a lower value may commit after one holding a higher value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from web_server.crypto import Encrypted
from web_server.database import Base

EVENT_TYPES = (
    "accepted",
    "submitted",
    "rejected",
    "partially_filled",
    "filled",
    "cancel_requested",
    "cancelled",
    "expired",
    "unknown",
    "reconciled",
    "fill",
)
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class OrderEvent(Base):
    """One change of an order's state, or one fill, with the order's view after it."""

    __tablename__ = "order_events"
    __table_args__ = (
        CheckConstraint("type IN (" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + ")", name="type"),
        Index("idx_order_events_account", "account_id", "id"),
        Index("idx_order_events_order", "order_id", "id"),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(Text)
    ts: Mapped[dt.datetime]
    payload: Mapped[dict[str, Any]]


class OrderEventCounter(Base):
    """The last event id handed out (one row); taken with ``UPDATE … RETURNING`` at commit."""

    __tablename__ = "order_event_counter"
    __table_args__ = (
        CheckConstraint("singleton", name="singleton"),
        {"schema": "trade"},
    )

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    last_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class WebhookCursor(Base):
    """The last event fanned out to webhook deliveries (one row)."""

    __tablename__ = "webhook_cursor"
    __table_args__ = (
        CheckConstraint("singleton", name="singleton"),
        {"schema": "trade"},
    )

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    last_event_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class WebhookSubscription(Base):
    """An API key's receiver of order events, with its signing secret (encrypted)."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        Index("idx_webhook_subscriptions_key", "api_key_id"),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    # NULL: every type; else only these.
    event_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # NULL: every account the key may see; else only these (and only those the key may see).
    account_ids: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    # Events up to this id happened before the subscription and are not sent.
    start_after_event_id: Mapped[int] = mapped_column(BigInteger)
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    secret = Encrypted("secret_ciphertext")


class WebhookDelivery(Base):
    """One event to one subscription: its attempts and outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in DELIVERY_STATUSES) + ")", name="status"
        ),
        UniqueConstraint(
            "subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"
        ),
        Index(
            "idx_webhook_deliveries_pending",
            "next_attempt_ts",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("idx_webhook_deliveries_order", "subscription_id", "order_id", "event_id"),
        {"schema": "trade"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("trade.webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_ts: Mapped[dt.datetime]
    last_attempt_ts: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_ts: Mapped[dt.datetime | None]
    created_ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
