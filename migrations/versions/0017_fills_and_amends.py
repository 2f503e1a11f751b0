"""Fills written once with their charges, order totals, amends, and market buys by amount.

Before, ``trade.fills`` stayed empty, fees and taxes were dropped (Binance buys that pay the fee in
the base asset overstated what the account holds), there was no amend, and a market buy on Upbit
or Bithumb (which buy at market by amount) could not be placed.

- ``trade.fills.broker_fill_key``: what makes a fill unique within its order — the broker's
  execution id (Upbit/Bithumb trade ``uuid``, Binance trade ``id``), or for KIS and Kiwoom, whose
  histories give only cumulative figures per order, ``cum:<filled quantity>`` (the increment up
  to that cumulative quantity: stable across re-reads). ``uq_fills_order_key`` (order_id,
  broker_fill_key) makes every fill be written once however often the poller, the reconciler or
  a cancel re-reads it. Existing rows get their ``broker_fill_id`` or their own id.
- ``trade.fills.currency`` (of the price: KRW, USDT), ``fee_currency`` (of fee and tax: the quote,
  or the base asset for a Binance buy without BNB).
- ``trade.orders.fee_total``, ``tax_total``, ``fee_currency``: the sums of the order's fills;
  ``net_filled_quantity``: the filled quantity less fees charged in the base asset (what the
  holdings grew or shrank by).
- ``quote_amount`` on orders and intents: a MARKET BUY by amount (Upbit ``ord_type=price``,
  Bithumb likewise); such an order has no ``quantity`` (NULL), so quantity becomes nullable with
  ``chk_…_size``: exactly one of the two.
- ``replaces_order_id`` on orders (a foreign key) and intents (none: orders reference intents),
  ``replaced_by_order_id`` on orders: an amend is a new order row linked to the one it replaces
  (``services/orders/amend.py``); the old one ends CANCELLED with ``replaced_by_order_id``.

Downgrade drops the columns and the index; it fails (NOT NULL) if an order by amount exists,
which the old schema cannot hold.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_SIZE = "num_nonnulls(quantity, quote_amount) = 1"


def upgrade() -> None:
    op.add_column("fills", sa.Column("broker_fill_key", sa.Text(), nullable=True), schema="trade")
    op.execute("UPDATE trade.fills SET broker_fill_key = coalesce(broker_fill_id, fill_id::text)")
    op.alter_column("fills", "broker_fill_key", nullable=False, schema="trade")
    op.add_column("fills", sa.Column("currency", sa.Text(), nullable=True), schema="trade")
    op.add_column("fills", sa.Column("fee_currency", sa.Text(), nullable=True), schema="trade")
    op.create_index(
        "uq_fills_order_key", "fills", ["order_id", "broker_fill_key"], unique=True, schema="trade"
    )
    for name in ("fee_total", "tax_total"):
        op.add_column(
            "orders",
            sa.Column(name, sa.Numeric(), server_default=sa.text("0"), nullable=False),
            schema="trade",
        )
    op.add_column("orders", sa.Column("fee_currency", sa.Text(), nullable=True), schema="trade")
    op.add_column(
        "orders", sa.Column("net_filled_quantity", sa.Numeric(), nullable=True), schema="trade"
    )
    for table in ("orders", "order_intents"):
        op.add_column(table, sa.Column("quote_amount", sa.Numeric(), nullable=True), schema="trade")
        op.alter_column(table, "quantity", nullable=True, schema="trade")
        op.create_check_constraint("size", table, _SIZE, schema="trade")
    # The intent's link has no foreign key: orders reference intents, so one back would be a
    # cycle; the order row carries it.
    op.add_column(
        "order_intents", sa.Column("replaces_order_id", sa.Uuid(), nullable=True), schema="trade"
    )
    op.add_column(
        "orders",
        sa.Column(
            "replaces_order_id",
            sa.Uuid(),
            sa.ForeignKey("trade.orders.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        schema="trade",
    )
    op.add_column(
        "orders",
        sa.Column(
            "replaced_by_order_id",
            sa.Uuid(),
            sa.ForeignKey("trade.orders.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        schema="trade",
    )


def downgrade() -> None:
    op.drop_column("orders", "replaced_by_order_id", schema="trade")
    for table in ("order_intents", "orders"):
        op.drop_column(table, "replaces_order_id", schema="trade")
        op.drop_constraint(op.f(f"chk_{table}_size"), table, schema="trade", type_="check")
        op.alter_column(table, "quantity", nullable=False, schema="trade")
        op.drop_column(table, "quote_amount", schema="trade")
    op.drop_column("orders", "net_filled_quantity", schema="trade")
    op.drop_column("orders", "fee_currency", schema="trade")
    op.drop_column("orders", "tax_total", schema="trade")
    op.drop_column("orders", "fee_total", schema="trade")
    op.drop_index("uq_fills_order_key", table_name="fills", schema="trade")
    op.drop_column("fills", "fee_currency", schema="trade")
    op.drop_column("fills", "currency", schema="trade")
    op.drop_column("fills", "broker_fill_key", schema="trade")
