"""Operations: simulated accounts are marked, and logins are throttled without naming users.

Before, the demo's accounts pointed at the local simulators but were listed as REAL like any
other, and a failed login counted against ``users.failed_logins``: only an existing user could be
locked, so "Too many failed logins" told an attacker which usernames exist, and nothing slowed
down one address trying many usernames.

- ``accounts.is_simulated``: the account trades with a simulator, not a broker (``gateway demo``
  sets it on the accounts that point at its simulators); the UI and the API show it.
- ``system.login_throttle``: failed logins counted per key, where a key is a username (any
  username, existing or not, stored only as a hash) or a client address; ``failures`` counted
  since ``window_started_at``, and ``locked_until`` when too many. Both kinds answer the same.

``users.failed_logins`` and ``users.locked_until`` stay (the seed's columns) but are no longer
written.

Downgrade drops the table and the column.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("is_simulated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("key ~ '^(user|addr):'", name="key_kind"),
        schema="system",
    )


def downgrade() -> None:
    op.drop_table("login_throttle", schema="system")
    op.drop_column("accounts", "is_simulated")
