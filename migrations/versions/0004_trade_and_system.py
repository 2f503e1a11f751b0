"""Trade tables, crypto markets and process locks (seed 004 adapted; seed 000 Phase 3).

- ``market.crypto_markets``: each crypto exchange's markets with their tick, lot and notional rules.
- ``trade.order_intents``: an accepted order request, unique by ``action_key`` (the idempotency key,
  ``uq_order_intents_action_key``), with ``idx_order_intents_status`` as in seed 004.
- ``trade.orders``: our id, the intent, the client order id (unique), the broker's order number
  (unique per account), status, fills so far.
- ``trade.fills`` (``idx_fills_order_ts``) and ``trade.holdings`` (the broker's truth per account
  and symbol or crypto asset).
- ``system.process_locks`` exactly as seed 004, with ``idx_process_locks_heartbeat``.

Every securities symbol column references ``market.stocks(symbol)`` ON DELETE RESTRICT (seed 000
Phase 3): a stock that an order or a holding names cannot be deleted. Crypto rows reference
``market.crypto_markets`` instead; a CHECK keeps exactly one of the two set. Quantities and prices
are NUMERIC (seed 004 had BIGINT quantities; crypto trades fractions).

Downgrade drops these tables and the two schemas (seed 000's rollback, Phase 3 first).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATUSES = (
    "'PENDING_SUBMIT', 'SUBMITTED', 'PARTIALLY_FILLED', 'FILLED', 'CANCEL_PENDING', "
    "'CANCELLED', 'REJECTED', 'UNKNOWN'"
)
ONE_INSTRUMENT = "num_nonnulls(symbol, crypto_market_id) = 1"


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if default else None,
        nullable=nullable,
    )


def _instrument_columns(table: str) -> list:
    return [
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("crypto_market_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["symbol"],
            ["market.stocks.symbol"],
            ondelete="RESTRICT",
            name=f"fk_{table}_symbol_stocks",
        ),
        sa.ForeignKeyConstraint(
            ["crypto_market_id"],
            ["market.crypto_markets.id"],
            ondelete="RESTRICT",
            name=f"fk_{table}_crypto_market_id_crypto_markets",
        ),
        sa.CheckConstraint(ONE_INSTRUMENT, name=f"chk_{table}_one_instrument"),
    ]


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS trade")
    op.execute("CREATE SCHEMA IF NOT EXISTS system")

    op.create_table(
        "crypto_markets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("exchange", sa.String(20), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("base_asset", sa.Text(), nullable=False),
        sa.Column("quote_asset", sa.Text(), nullable=False),
        sa.Column("tick_size", sa.Numeric(), nullable=True),
        sa.Column("lot_size", sa.Numeric(), nullable=True),
        sa.Column("min_notional", sa.Numeric(), nullable=True),
        sa.Column("is_tradable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("raw", postgresql.JSONB(), nullable=True),
        _ts("updated_ts"),
        sa.PrimaryKeyConstraint("id", name="pk_crypto_markets"),
        sa.UniqueConstraint("exchange", "symbol", name="uq_crypto_markets_exchange_symbol"),
        sa.CheckConstraint(
            "exchange IN ('UPBIT', 'BITHUMB', 'BINANCE')", name="chk_crypto_markets_exchange"
        ),
        schema="market",
    )

    op.create_table(
        "order_intents",
        sa.Column("intent_id", sa.Uuid(), primary_key=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        *_instrument_columns("order_intents"),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("limit_price", sa.Numeric(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("action_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="NEW", nullable=False),
        sa.Column("response", postgresql.JSONB(), nullable=True),
        _ts("created_ts"),
        _ts("updated_ts"),
        sa.PrimaryKeyConstraint("intent_id", name="pk_order_intents"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            ondelete="RESTRICT",
            name="fk_order_intents_account_id_accounts",
        ),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name="chk_order_intents_side"),
        sa.CheckConstraint(
            "order_type IN ('LIMIT', 'MARKET')", name="chk_order_intents_order_type"
        ),
        sa.CheckConstraint("quantity > 0", name="chk_order_intents_quantity_positive"),
        schema="trade",
    )
    op.create_index(
        "uq_order_intents_action_key", "order_intents", ["action_key"], unique=True, schema="trade"
    )
    op.create_index(
        "idx_order_intents_status", "order_intents", ["status", "created_ts"], schema="trade"
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("intent_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        *_instrument_columns("orders"),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("limit_price", sa.Numeric(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("broker_order_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("filled_quantity", sa.Numeric(), server_default=sa.text("0"), nullable=False),
        sa.Column("average_fill_price", sa.Numeric(), nullable=True),
        sa.Column("reject_code", sa.Text(), nullable=True),
        sa.Column("reject_message", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(), nullable=True),
        _ts("submitted_ts", nullable=True, default=False),
        _ts("created_ts"),
        _ts("updated_ts"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.ForeignKeyConstraint(
            ["intent_id"],
            ["trade.order_intents.intent_id"],
            ondelete="RESTRICT",
            name="fk_orders_intent_id_order_intents",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            ondelete="RESTRICT",
            name="fk_orders_account_id_accounts",
        ),
        sa.UniqueConstraint("intent_id", name="uq_orders_intent_id"),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
        sa.UniqueConstraint("account_id", "broker_order_id", name="uq_orders_account_broker_order"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="chk_orders_status"),
        schema="trade",
    )
    op.create_index(
        "idx_orders_account_status",
        "orders",
        ["account_id", "status", "created_ts"],
        schema="trade",
    )

    op.create_table(
        "fills",
        sa.Column("fill_id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("broker_fill_id", sa.Text(), nullable=True),
        _ts("ts", default=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("fee", sa.Numeric(), nullable=True),
        sa.Column("tax", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("fill_id", name="pk_fills"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["trade.orders.id"], ondelete="RESTRICT", name="fk_fills_order_id_orders"
        ),
        sa.UniqueConstraint("order_id", "broker_fill_id", name="uq_fills_order_broker_fill"),
        schema="trade",
    )
    op.create_index("idx_fills_order_ts", "fills", ["order_id", sa.text("ts DESC")], schema="trade")

    op.create_table(
        "holdings",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("asset", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("avg_price", sa.Numeric(), nullable=True),
        sa.Column("current_price", sa.Numeric(), nullable=True),
        sa.Column("pnl", sa.Numeric(), nullable=True),
        sa.Column("pnl_pct", sa.Numeric(), nullable=True),
        sa.Column("raw", postgresql.JSONB(), nullable=True),
        _ts("updated_ts"),
        sa.PrimaryKeyConstraint("id", name="pk_holdings"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            ondelete="CASCADE",
            name="fk_holdings_account_id_accounts",
        ),
        sa.ForeignKeyConstraint(
            ["symbol"],
            ["market.stocks.symbol"],
            ondelete="RESTRICT",
            name="fk_holdings_symbol_stocks",
        ),
        sa.CheckConstraint("num_nonnulls(symbol, asset) = 1", name="chk_holdings_one_instrument"),
        schema="trade",
    )
    op.create_index(
        "uq_holdings_account_symbol",
        "holdings",
        ["account_id", "symbol"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("symbol IS NOT NULL"),
    )
    op.create_index(
        "uq_holdings_account_asset",
        "holdings",
        ["account_id", "asset"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("asset IS NOT NULL"),
    )

    op.create_table(
        "process_locks",
        sa.Column("lock_name", sa.Text(), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=False),
        sa.Column("acquired_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lock_name", name="pk_process_locks"),
        schema="system",
    )
    op.create_index(
        "idx_process_locks_heartbeat",
        "process_locks",
        [sa.text("heartbeat_ts DESC")],
        schema="system",
    )


def downgrade() -> None:
    op.drop_table("process_locks", schema="system")
    op.drop_table("holdings", schema="trade")
    op.drop_table("fills", schema="trade")
    op.drop_table("orders", schema="trade")
    op.drop_table("order_intents", schema="trade")
    op.drop_table("crypto_markets", schema="market")
    op.execute("DROP SCHEMA IF EXISTS system RESTRICT")
    op.execute("DROP SCHEMA IF EXISTS trade RESTRICT")
