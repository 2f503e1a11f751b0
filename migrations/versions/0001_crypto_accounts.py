"""Crypto-only accounts: the schema the seeds start from.

Before securities support (seed 002) the gateway held crypto exchange accounts only: a name, the
exchange, REAL or PAPER, and the API key and secret, both encrypted by the application (never
plain). ``base_url`` lets an account point at another host (a simulator, a testnet).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("exchange", sa.String(20), nullable=False),
        sa.Column("environment", sa.String(10), server_default="REAL", nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("api_secret", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
        sa.CheckConstraint(
            "exchange IN ('UPBIT', 'BITHUMB', 'BINANCE')", name="chk_accounts_exchange"
        ),
        sa.CheckConstraint("environment IN ('REAL', 'PAPER')", name="chk_accounts_environment"),
    )


def downgrade() -> None:
    op.drop_table("accounts")
