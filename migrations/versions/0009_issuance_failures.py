"""Remember failed token issuances per app key, also before an account has any token.

A first issuance that fails (wrong keys, broker down) has no ``securities_tokens`` row to record
its error on. The issuance window of the app key keeps it instead: the last error, how many
attempts failed in a row, and when the next attempt is allowed (exponential backoff), so a request
loop cannot hammer a broker with bad keys and the operator sees why a token is missing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "token_issuance_windows", sa.Column("last_error", sa.Text(), nullable=True), schema="system"
    )
    op.add_column(
        "token_issuance_windows",
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        schema="system",
    )
    op.add_column(
        "token_issuance_windows",
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="system",
    )
    op.add_column(
        "token_issuance_windows",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        schema="system",
    )


def downgrade() -> None:
    for column in ("next_attempt_at", "failures", "last_error_at", "last_error"):
        op.drop_column("token_issuance_windows", column, schema="system")
