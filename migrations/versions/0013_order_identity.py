"""Order identity by trading day, EXPIRED, lost cancels, operator attention, index-backed polling.

KIS and Kiwoom number orders per trading day (their histories are keyed by date and number), yet
``uq_orders_account_broker_order`` made a number unique per account for all time: when a number
came back on a later day the answer could not be recorded and a live order ended REJECTED.

- ``trade.orders.broker_order_date``: the order's date at the broker, in the broker's time zone
  (KST), for KIS and Kiwoom; NULL for crypto, whose ids do not restart. Existing securities
  orders with a number get the KST date of their creation.
- The all-time constraint is replaced by what each broker guarantees, as two partial unique
  indexes (rather than one expression index, so that each is a plain index the planner uses for
  look-ups and a NULL date can never slip past uniqueness):
  ``uq_orders_broker_day`` (account, date, number) for securities orders, and
  ``uq_orders_broker_market`` (account, market, id) for crypto orders (Binance ids are per
  symbol). ``chk_orders_broker_order_date`` makes a securities order with a number carry its date.
- ``EXPIRED`` joins the statuses: a day order the broker lapsed at the close, or an order the
  exchange expired itself (Binance ``EXPIRED``).
- ``cancel_requested_ts``: when the last cancel was sent; a cancel whose outcome was lost is
  re-checked from then, and the order goes back to its open state when the broker still shows it
  open after the bound (``services/orders/cancels.py``).
- ``attention``: why the operator must look at an order (JSON with a ``reason`` and the broker
  rows concerned: an ambiguous match of identical orders, a late acceptance of an order called
  rejected, an order beyond the broker's history window); NULL for the rest. The poller skips
  open orders that carry it.
- ``idx_orders_open``: the poller's and reconciler's open orders per account, a partial index that
  holds only open orders however many closed ones accumulate; ``idx_orders_account_created``:
  an account's orders newest first (the order list); ``idx_orders_not_at_broker``: the few
  orders called absent, which the reconciler still watches for a late acceptance.

Downgrade maps EXPIRED back to CANCELLED (the old meaning of a lapsed order) and restores the
all-time constraint; it fails with a unique violation if a number has already repeated on
another day, which the old schema cannot hold.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_OLD = (
    "'PENDING_SUBMIT', 'SUBMITTED', 'PARTIALLY_FILLED', 'FILLED', 'CANCEL_PENDING', "
    "'CANCELLED', 'REJECTED', 'UNKNOWN'"
)
_NEW = _OLD + ", 'EXPIRED'"
OPEN = "status IN ('SUBMITTED', 'PARTIALLY_FILLED', 'CANCEL_PENDING')"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("broker_order_date", sa.Date(), nullable=True), schema="trade"
    )
    op.add_column(
        "orders",
        sa.Column("cancel_requested_ts", sa.DateTime(timezone=True), nullable=True),
        schema="trade",
    )
    op.add_column(
        "orders", sa.Column("attention", postgresql.JSONB(), nullable=True), schema="trade"
    )
    op.execute(
        "UPDATE trade.orders SET broker_order_date = (created_ts AT TIME ZONE 'Asia/Seoul')::date"
        " WHERE symbol IS NOT NULL AND broker_order_id IS NOT NULL"
    )
    op.drop_constraint("uq_orders_account_broker_order", "orders", schema="trade", type_="unique")
    op.create_index(
        "uq_orders_broker_day",
        "orders",
        ["account_id", "broker_order_date", "broker_order_id"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("symbol IS NOT NULL AND broker_order_id IS NOT NULL"),
    )
    op.create_index(
        "uq_orders_broker_market",
        "orders",
        ["account_id", "crypto_market_id", "broker_order_id"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("crypto_market_id IS NOT NULL AND broker_order_id IS NOT NULL"),
    )
    op.create_check_constraint(
        "broker_order_date",
        "orders",
        "symbol IS NULL OR broker_order_id IS NULL OR broker_order_date IS NOT NULL",
        schema="trade",
    )
    # 0004 created it as chk_orders_chk_orders_status (the convention applied to a full name).
    op.drop_constraint(
        op.f("chk_orders_chk_orders_status"), "orders", schema="trade", type_="check"
    )
    op.create_check_constraint("status", "orders", f"status IN ({_NEW})", schema="trade")
    op.create_index(
        "idx_orders_open",
        "orders",
        ["account_id", "created_ts"],
        schema="trade",
        postgresql_where=sa.text(OPEN),
    )
    op.create_index(
        "idx_orders_account_created", "orders", ["account_id", "created_ts"], schema="trade"
    )
    op.create_index(
        "idx_orders_not_at_broker",
        "orders",
        ["updated_ts"],
        schema="trade",
        postgresql_where=sa.text("reject_code = 'not_at_broker'"),
    )


def downgrade() -> None:
    op.drop_index("idx_orders_not_at_broker", table_name="orders", schema="trade")
    op.drop_index("idx_orders_account_created", table_name="orders", schema="trade")
    op.drop_index("idx_orders_open", table_name="orders", schema="trade")
    op.execute("UPDATE trade.orders SET status = 'CANCELLED' WHERE status = 'EXPIRED'")
    op.drop_constraint(op.f("chk_orders_status"), "orders", schema="trade", type_="check")
    op.create_check_constraint(
        op.f("chk_orders_chk_orders_status"), "orders", f"status IN ({_OLD})", schema="trade"
    )
    op.drop_constraint(
        op.f("chk_orders_broker_order_date"), "orders", schema="trade", type_="check"
    )
    op.drop_index("uq_orders_broker_market", table_name="orders", schema="trade")
    op.drop_index("uq_orders_broker_day", table_name="orders", schema="trade")
    op.create_unique_constraint(
        "uq_orders_account_broker_order",
        "orders",
        ["account_id", "broker_order_id"],
        schema="trade",
    )
    op.drop_column("orders", "attention", schema="trade")
    op.drop_column("orders", "cancel_requested_ts", schema="trade")
    op.drop_column("orders", "broker_order_date", schema="trade")
