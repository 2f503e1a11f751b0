"""Holdings upserted per position, kept outside the stocks master, with the sellable quantity.

Before, a refresh deleted an account's rows and inserted the new snapshot: two refreshes of one
account at once both inserted and one failed on a unique index (a 500), and a security the
stocks master did not know could not be stored at all (``symbol`` references ``market.stocks``),
so every cached read silently left it out. The sellable quantity was read and thrown away.

- ``trade.holdings.broker_symbol``: the broker's code of a security the stocks master does not
  know; ``symbol`` is then NULL. The foreign key from ``symbol`` to ``market.stocks`` stays (the
  master remains the single source of truth, and a held stock cannot be deleted from it) rather
  than being dropped for holdings: a position outside the master is kept beside it, not by
  weakening it. The next refresh after the master learns the code moves it to ``symbol``.
- ``chk_holdings_one_instrument``: exactly one of ``symbol``, ``broker_symbol`` and ``asset``.
- ``uq_holdings_account_instrument``: one row per account and position, on
  ``(account_id, coalesce(symbol, broker_symbol, asset))``, the conflict target of the refresh's
  ``INSERT … ON CONFLICT``. It replaces the two partial unique indexes on ``symbol`` and ``asset``,
  which it covers.
- ``name``: the broker's name of the position (KIS ``prdt_name``, Kiwoom ``stk_nm``), the only
  name a security outside the master has.
- ``available_quantity``: what may be sold now (KIS ``ord_psbl_qty``, Kiwoom ``trde_able_qty``,
  the exchanges' free amount); NULL where the broker did not say.
- ``accounts.holdings_as_of``: when the snapshot was last read from the broker. The rows' newest
  ``updated_ts`` cannot say it for an account that holds nothing, whose every read then went to
  the broker; backfilled from the rows.

Existing rows need no backfill: each has a ``symbol`` or an ``asset`` (the old check), so the new
check and key hold for them with ``broker_symbol``, ``name`` and ``available_quantity`` NULL (the
last two unknown until the next refresh).

Downgrade deletes the rows of securities outside the master (the old schema cannot hold them;
the next refresh reads them from the broker again), then restores the old check and the two
partial unique indexes and drops the three columns.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: Full names, passed through ``op.f`` (inside the functions: ``op`` is bound only while a
#: migration runs) so the naming convention leaves them alone. 0004 named its check
#: "chk_holdings_one_instrument" and the convention prefixed it once more; the new check gets the
#: name the model gives it.
OLD_CHECK = "chk_holdings_chk_holdings_one_instrument"
CHECK = "chk_holdings_one_instrument"
INSTRUMENT = "coalesce(symbol, broker_symbol, asset)"


def upgrade() -> None:
    op.add_column(
        "accounts", sa.Column("holdings_as_of", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE accounts a SET holdings_as_of = h.as_of FROM (SELECT account_id,"
        " max(updated_ts) AS as_of FROM trade.holdings GROUP BY account_id) h"
        " WHERE h.account_id = a.id"
    )
    op.add_column("holdings", sa.Column("broker_symbol", sa.Text(), nullable=True), schema="trade")
    op.add_column("holdings", sa.Column("name", sa.Text(), nullable=True), schema="trade")
    op.add_column(
        "holdings", sa.Column("available_quantity", sa.Numeric(), nullable=True), schema="trade"
    )
    op.drop_constraint(op.f(OLD_CHECK), "holdings", schema="trade", type_="check")
    op.create_check_constraint(
        op.f(CHECK), "holdings", "num_nonnulls(symbol, broker_symbol, asset) = 1", schema="trade"
    )
    op.drop_index("uq_holdings_account_symbol", table_name="holdings", schema="trade")
    op.drop_index("uq_holdings_account_asset", table_name="holdings", schema="trade")
    op.create_index(
        "uq_holdings_account_instrument",
        "holdings",
        ["account_id", sa.text(INSTRUMENT)],
        unique=True,
        schema="trade",
    )


def downgrade() -> None:
    op.drop_column("accounts", "holdings_as_of")
    op.execute("DELETE FROM trade.holdings WHERE broker_symbol IS NOT NULL")
    op.drop_index("uq_holdings_account_instrument", table_name="holdings", schema="trade")
    op.create_index(
        "uq_holdings_account_asset",
        "holdings",
        ["account_id", "asset"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("asset IS NOT NULL"),
    )
    op.create_index(
        "uq_holdings_account_symbol",
        "holdings",
        ["account_id", "symbol"],
        unique=True,
        schema="trade",
        postgresql_where=sa.text("symbol IS NOT NULL"),
    )
    op.drop_constraint(op.f(CHECK), "holdings", schema="trade", type_="check")
    op.create_check_constraint(
        op.f(OLD_CHECK), "holdings", "num_nonnulls(symbol, asset) = 1", schema="trade"
    )
    op.drop_column("holdings", "available_quantity", schema="trade")
    op.drop_column("holdings", "name", schema="trade")
    op.drop_column("holdings", "broker_symbol", schema="trade")
