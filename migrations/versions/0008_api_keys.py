"""API keys of the strategies: hashed, with scopes and an optional list of accounts (DESIGN §5).

A key is shown once, when it is created, as ``gw_<prefix>_<secret>``. The database keeps the
prefix (to find the row and to show the operator which key is which) and the SHA-256 of the whole
key: the secret part has 256 bits of entropy, so a fast hash cannot be brute-forced, and a fast
hash keeps authentication cheap on every request. ``account_ids`` NULL means every account.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("account_ids", postgresql.ARRAY(sa.Integer()), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.CheckConstraint(
            "scopes <@ ARRAY['orders:write', 'orders:read', 'holdings:read', 'accounts:read',"
            " 'admin']::text[] AND cardinality(scopes) > 0",
            name="chk_api_keys_scopes",
        ),
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO gateway_app")
    op.execute("GRANT USAGE, SELECT ON SEQUENCE api_keys_id_seq TO gateway_app")


def downgrade() -> None:
    op.drop_table("api_keys")
