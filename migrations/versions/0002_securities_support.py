"""Securities support (seed 002): account types, encrypted broker config, OAuth tokens.

Exactly seed 002's change: ``accounts`` gains ``account_type`` (NOT NULL DEFAULT 'CRYPTO', so every
existing row becomes CRYPTO), ``securities_config`` (encrypted JSON), and the legacy per-account
``access_token`` / ``token_expires_at`` (kept for fidelity to the seed; new code stores tokens in
``securities_tokens``), plus ``idx_account_type``. ``securities_tokens`` holds one token per
account (UNIQUE, ON DELETE CASCADE) with the seed's three indexes. Timestamps are ``timestamptz``
(DESIGN §3). The refresh job's bookkeeping columns (attempts, last error, next attempt) are extra.

KIS and Kiwoom join the allowed exchanges, and a CHECK keeps account type and exchange consistent.

Downgrade refuses while securities accounts exist, rather than delete them: delete those accounts
(which revokes their tokens at the broker) first. Seed 002's rollback script deleted them silently.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("account_type", sa.String(20), server_default="CRYPTO", nullable=False),
    )
    op.add_column("accounts", sa.Column("securities_config", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("access_token", sa.Text(), nullable=True))
    op.add_column(
        "accounts", sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("idx_account_type", "accounts", ["account_type"])
    op.drop_constraint("chk_accounts_exchange", "accounts", type_="check")
    op.create_check_constraint(
        "chk_accounts_exchange",
        "accounts",
        "exchange IN ('UPBIT', 'BITHUMB', 'BINANCE', 'KIS', 'KIWOOM')",
    )
    op.create_check_constraint(
        "chk_accounts_account_type_exchange",
        "accounts",
        "(account_type = 'CRYPTO' AND exchange IN ('UPBIT', 'BITHUMB', 'BINANCE'))"
        " OR (account_type = 'SECURITIES_STOCK' AND exchange IN ('KIS', 'KIWOOM'))",
    )

    op.create_table(
        "securities_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("token_type", sa.String(20), server_default="Bearer", nullable=False),
        sa.Column("expires_in", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.current_timestamp(),
            nullable=False,
        ),
        sa.Column(
            "last_refreshed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.current_timestamp(),
            nullable=False,
        ),
        sa.Column("refresh_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_securities_tokens"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            ondelete="CASCADE",
            name="fk_securities_tokens_account_id_accounts",
        ),
        sa.UniqueConstraint("account_id", name="securities_tokens_account_id_key"),
    )
    op.create_index("idx_securities_token_account_id", "securities_tokens", ["account_id"])
    op.create_index("idx_securities_token_expires_at", "securities_tokens", ["expires_at"])
    op.create_index(
        "idx_securities_token_last_refreshed", "securities_tokens", ["last_refreshed_at"]
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM accounts WHERE account_type = 'SECURITIES_STOCK') THEN
                RAISE EXCEPTION 'securities accounts exist: delete them (gateway revokes their '
                    'tokens) before downgrading below revision 0002';
            END IF;
        END
        $$;
        """
    )
    op.drop_table("securities_tokens")
    op.drop_constraint("chk_accounts_account_type_exchange", "accounts", type_="check")
    op.drop_constraint("chk_accounts_exchange", "accounts", type_="check")
    op.create_check_constraint(
        "chk_accounts_exchange", "accounts", "exchange IN ('UPBIT', 'BITHUMB', 'BINANCE')"
    )
    op.drop_index("idx_account_type", table_name="accounts")
    for column in ("token_expires_at", "access_token", "securities_config", "account_type"):
        op.drop_column("accounts", column)
