"""Leases on orders being placed: who owns an unsettled order, and whether it was ever sent.

Before, the reconciler took over a PENDING_SUBMIT order 30 s after its creation and declared it
"never arrived" 180 s after, whatever its placing request was doing: a request that had lost its
database connection (and with it the order's advisory lock) but was alive and about to record the
broker's answer looked exactly like a dead one, and an order that was never sent waited three
minutes like one that might still reach the broker.

- ``trade.orders.send_started_ts``: when the placing request was cleared to call the broker
  (committed before the call); NULL means the broker cannot have the order.
- ``trade.orders.lease_until``: until then the placing request owns the order and nobody else
  settles it; once sending started it is also the latest the broker can receive the order.
- ``idx_orders_unsettled``: the reconciler's look-up, a partial index over the few unsettled
  (PENDING_SUBMIT, UNKNOWN) orders.

Existing orders are given what the old rule assumed: each may have been sent when it was created,
and an unsettled one could have reached the broker until 120 s later.

Downgrade drops the index and the two columns (the old rule needs neither).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNSETTLED = "status IN ('PENDING_SUBMIT', 'UNKNOWN')"


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("send_started_ts", sa.DateTime(timezone=True), nullable=True),
        schema="trade",
    )
    op.add_column(
        "orders",
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        schema="trade",
    )
    op.execute("UPDATE trade.orders SET send_started_ts = created_ts")
    op.execute(
        "UPDATE trade.orders SET lease_until = created_ts + interval '120 seconds'"
        " WHERE status IN ('PENDING_SUBMIT', 'UNKNOWN')"
    )
    op.create_index(
        "idx_orders_unsettled",
        "orders",
        ["lease_until"],
        schema="trade",
        postgresql_where=sa.text(UNSETTLED),
    )


def downgrade() -> None:
    op.drop_index("idx_orders_unsettled", table_name="orders", schema="trade")
    op.drop_column("orders", "lease_until", schema="trade")
    op.drop_column("orders", "send_started_ts", schema="trade")
