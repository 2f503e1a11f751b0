"""Shared broker rate limits: one GCRA bucket per broker budget, for when Redis is not configured.

Every process on every host spends the same broker budgets (KIS per app key, Upbit per account and
group, Binance request weight per address…). Without ``GATEWAY_REDIS_URL`` their pacing state
lives here (``web_server.services.rate_limits.PostgresBuckets``):

- ``system.rate_limit_buckets.key``: the budget, e.g. ``kis:app:<sha256 prefix>`` (never a key).
- ``tat``: the GCRA theoretical arrival time, epoch seconds of the database's clock (one clock for
  every host).
- ``banned_until`` / ``ban_reason``: the broker refused for rate (418, 429 with Retry-After,
  EGW00201…); nothing is sent on the budget until then.

Downgrade drops the table (the limiter then needs Redis or nothing).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False, server_default="0"),
        sa.Column("banned_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ban_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limit_buckets"),
        schema="system",
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON system.rate_limit_buckets TO gateway_app")


def downgrade() -> None:
    op.drop_table("rate_limit_buckets", schema="system")
