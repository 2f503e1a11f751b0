"""Order events out: an append-only event log, its counter, and outbound webhooks.

Before, a strategy learned of a fill only by polling its order; nothing was pushed and nothing
could be subscribed to.

- ``trade.order_events``: one row per change of an order's state and per fill, written in the
  transaction of the change. ``id`` is gap-free and in commit order: it is not a sequence (a
  transaction holding a lower sequence value may commit after one holding a higher value, and a
  reader resuming "after id N" would skip it) but is taken from ``trade.order_event_counter``
  with ``UPDATE … RETURNING`` just before the commit, so the writers of events commit one after
  another, in id order. ``payload`` is the order's API view after the change (and the fill, for
  ``fill`` events). No foreign keys: the log is append-only and outlives what it describes.
- ``trade.order_event_counter``: the single row holding the last id handed out.
- ``trade.webhook_subscriptions``: per API key, a receiver URL, the event types and accounts it
  wants, its signing secret (encrypted, ``web_server.crypto``), and the event id it starts after.
- ``trade.webhook_deliveries``: one per event and subscription, with its attempts and outcome;
  ``(subscription_id, event_id)`` is unique, so fanning out twice never sends twice.
- ``trade.webhook_cursor``: the single row holding the last event fanned out to deliveries.

Downgrade drops the five tables (nothing else refers to them).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

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
_TYPES = ", ".join(f"'{t}'" for t in EVENT_TYPES)
DELIVERY_STATUSES = "status IN ('pending', 'delivered', 'failed')"


def upgrade() -> None:
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.CheckConstraint(f"type IN ({_TYPES})", name=op.f("chk_order_events_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        schema="trade",
    )
    op.create_index(
        "idx_order_events_account", "order_events", ["account_id", "id"], schema="trade"
    )
    op.create_index("idx_order_events_order", "order_events", ["order_id", "id"], schema="trade")
    op.create_table(
        "order_event_counter",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("singleton", name=op.f("chk_order_event_counter_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_order_event_counter")),
        schema="trade",
    )
    op.execute("INSERT INTO trade.order_event_counter (singleton, last_id) VALUES (true, 0)")
    op.create_table(
        "webhook_cursor",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("singleton", name=op.f("chk_webhook_cursor_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_webhook_cursor")),
        schema="trade",
    )
    op.execute("INSERT INTO trade.webhook_cursor (singleton, last_event_id) VALUES (true, 0)")
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", ARRAY(sa.Text()), nullable=True),
        sa.Column("account_ids", ARRAY(sa.Integer()), nullable=True),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("start_after_event_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_webhook_subscriptions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
        schema="trade",
    )
    op.create_index(
        "idx_webhook_subscriptions_key", "webhook_subscriptions", ["api_key_id"], schema="trade"
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(DELIVERY_STATUSES, name=op.f("chk_webhook_deliveries_status")),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["trade.webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "subscription_id", "event_id", name=op.f("uq_webhook_deliveries_subscription_event")
        ),
        schema="trade",
    )
    op.create_index(
        "idx_webhook_deliveries_pending",
        "webhook_deliveries",
        ["next_attempt_ts"],
        schema="trade",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "idx_webhook_deliveries_order",
        "webhook_deliveries",
        ["subscription_id", "order_id", "event_id"],
        schema="trade",
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries", schema="trade")
    op.drop_table("webhook_subscriptions", schema="trade")
    op.drop_table("webhook_cursor", schema="trade")
    op.drop_table("order_event_counter", schema="trade")
    op.drop_table("order_events", schema="trade")
