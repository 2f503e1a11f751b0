"""Per-app-key token issuance windows, shared by every process (DESIGN §4).

KIS allows one token issuance a minute per app key (EGW00133 otherwise); accounts that share an
app key share that window, and so do all gateway processes on all hosts. A row per (exchange,
environment, app key fingerprint) records the last attempt, committed *before* the broker is
called, so a process that dies mid-call still leaves the attempt on record. The app key itself is
not stored here: ``app_key_fingerprint`` is its SHA-256.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_issuance_windows",
        sa.Column("app_key_fingerprint", sa.Text(), nullable=False),
        sa.Column("exchange", sa.String(20), nullable=False),
        sa.Column("environment", sa.String(10), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("app_key_fingerprint", name="pk_token_issuance_windows"),
        schema="system",
    )
    # Tables created after revision 0006 get the app's rights through default privileges when the
    # same user migrates; granting explicitly keeps it right whoever runs this revision.
    op.execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON system.token_issuance_windows TO gateway_app"
    )


def downgrade() -> None:
    op.drop_table("token_issuance_windows", schema="system")
