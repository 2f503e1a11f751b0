"""The stocks master ``market.stocks`` (seed 000, Phase 1), with one deliberate change.

All of the seed's columns, its CHECKs (``chk_market``, ``chk_status``, ``chk_symbol_format``), its
four indexes (including the partial ``idx_stocks_tradable``) and the ``updated_ts`` trigger.

The change: the symbol check is ``^[0-9][0-9A-Z]{5}$``, not the seed's ``^\\d{6}$``. KRX now issues
alphanumeric short codes: in KIS's own master files of 2026-07-23, 361 of the 3,919 six-character
codes carry letters (``0001A0`` 덕양에너젠, ``0000D0`` an ETF, ``26490K`` 크라운제과우), every one
starting with a digit. The seed's regex would refuse real listings; this one still refuses the
seed's own bad example ``ABC123``, five- and seven-character codes, and lower case.

Extra columns: ``standard_code`` (the ISIN) and ``security_group`` (KIS's group code: ST stock, EF
ETF, …). Rollback plan (seed 000): the trade tables' foreign keys go with revision 0004's downgrade;
this downgrade drops the table, its trigger and its function, and the ``market`` schema if empty.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS market")
    op.create_table(
        "stocks",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("market", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("listing_date", sa.Date(), nullable=True),
        sa.Column("delisting_date", sa.Date(), nullable=True),
        sa.Column("sector", sa.Text(), nullable=True),
        sa.Column("industry", sa.Text(), nullable=True),
        sa.Column("market_cap", sa.BigInteger(), nullable=True),
        sa.Column("is_tradable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("trade_halt_reason", sa.Text(), nullable=True),
        sa.Column("standard_code", sa.Text(), nullable=True),
        sa.Column("security_group", sa.Text(), nullable=True),
        sa.Column(
            "created_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("symbol", name="pk_stocks"),
        sa.CheckConstraint("market IN ('KOSPI', 'KOSDAQ', 'KONEX')", name="chk_market"),
        sa.CheckConstraint("status IN ('ACTIVE', 'SUSPENDED', 'DELISTED')", name="chk_status"),
        sa.CheckConstraint("symbol ~ '^[0-9][0-9A-Z]{5}$'", name="chk_symbol_format"),
        schema="market",
    )
    op.create_index("idx_stocks_market", "stocks", ["market"], schema="market")
    op.create_index("idx_stocks_status", "stocks", ["status"], schema="market")
    op.create_index(
        "idx_stocks_tradable",
        "stocks",
        ["is_tradable"],
        schema="market",
        postgresql_where=sa.text("is_tradable = true"),
    )
    op.create_index("idx_stocks_name", "stocks", ["name"], schema="market")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION market.update_stocks_updated_ts()
        RETURNS TRIGGER AS $$
        BEGIN
            NEW.updated_ts = now();
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        """
    )
    op.execute(
        """
        CREATE TRIGGER trigger_update_stocks_updated_ts
            BEFORE UPDATE ON market.stocks
            FOR EACH ROW
            EXECUTE FUNCTION market.update_stocks_updated_ts();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trigger_update_stocks_updated_ts ON market.stocks")
    op.drop_table("stocks", schema="market")
    op.execute("DROP FUNCTION IF EXISTS market.update_stocks_updated_ts()")
    op.execute("DROP SCHEMA IF EXISTS market RESTRICT")
