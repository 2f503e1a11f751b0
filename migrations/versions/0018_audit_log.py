"""The audit log: every operator action in the console and every admin-key change via the API.

Before, only the risk controls kept a trail (``trade.risk_events``): who placed, amended or
cancelled an order from the console, who added an account, created or revoked an API key, or
what an admin key changed through the API was nowhere on record.

- ``system.audit_log``: one row per action — ``actor`` (``user:<operator>`` or
  ``api_key:<id>``), ``action`` (``order.place``, ``account.update``, ``api.POST`` …),
  ``target`` (what it acted on, as text), ``before`` and ``after`` (JSONB, what changed; secrets
  are redacted by ``web_server.services.audit`` before anything is written), ``ts``.
  ``idx_audit_log_ts`` serves the newest-first page, ``idx_audit_log_actor`` the filter by actor.

Downgrade drops the table (the log goes with it).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="system",
    )
    op.create_index("idx_audit_log_ts", "audit_log", ["ts"], schema="system")
    op.create_index("idx_audit_log_actor", "audit_log", ["actor", "ts"], schema="system")


def downgrade() -> None:
    op.drop_index("idx_audit_log_actor", table_name="audit_log", schema="system")
    op.drop_index("idx_audit_log_ts", table_name="audit_log", schema="system")
    op.drop_table("audit_log", schema="system")
