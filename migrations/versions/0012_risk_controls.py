"""Risk controls: designations apart from tradability, base prices, policies, kill switches, panic.

Before, ``market.stocks.is_tradable`` was false for an administrative issue, an investment-risk
designation or liquidation trading as well as for a halt, so the gateway refused orders KRX
accepts. Now ``is_tradable`` mirrors the exchange (false for halts and delistings only) and the
designations are flags of their own that a key's risk policy may refuse:

- ``market.stocks.designations`` (text[] of codes such as ``ADMINISTRATIVE``) and
  ``market.stocks.nxt_eligible`` (Nextrade trades the stock);
- ``market.stock_base_prices``: a stock's base price per KRX trading day (the ±30 % band);
- ``trade.risk_policies``: per API key or per account limits;
- ``trade.kill_switches``: engaged switches (global, per key, per account);
- ``trade.risk_events``: the audit trail of switches, policies and panic actions;
- ``trade.panic_actions``: cancel-all and flatten runs, keyed by their idempotency key;
- ``system.stocks_sync_runs``: each stocks sync's outcome (a refusal by the delisting guard
  included), shown on the stocks page.

Existing stocks are backfilled from what the old sync wrote in ``trade_halt_reason`` (the reasons
joined with "; "): the designations are read back from it, ``is_tradable`` becomes "status is
ACTIVE", and ``trade_halt_reason`` keeps only the halt or the delisting. Every column the backfill
reads may be NULL (``security_group`` is NULL for rows written before it existed): each test is
written so that NULL gives "no", never NULL.

Downgrade folds the blocking designations back into ``is_tradable`` and ``trade_halt_reason`` and
drops the new tables and columns.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (the old sync's reason text, the designation code); the texts are securities.kis.master_record's.
_REASONS = (
    ("administrative issue", "ADMINISTRATIVE"),
    ("investment risk designation", "INVESTMENT_RISK"),
    ("liquidation trading before delisting", "LIQUIDATION_TRADING"),
)
# What the old sync folded into is_tradable (and the downgrade folds back).
_BLOCKING = ("ADMINISTRATIVE", "INVESTMENT_RISK", "LIQUIDATION_TRADING")

_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = :role"


def _grant(statement: str, role: str) -> None:
    # Roles are created by 0006; a database restored without them simply gets no grant.
    if op.get_bind().execute(sa.text(_ROLE_EXISTS), {"role": role}).first():
        op.execute(statement.format(role=role))


def upgrade() -> None:
    op.add_column(
        "stocks",
        sa.Column(
            "designations",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        schema="market",
    )
    op.add_column(
        "stocks",
        sa.Column("nxt_eligible", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="market",
    )
    values = ", ".join(f"('{reason}', '{code}')" for reason, code in _REASONS)
    # Built from this module's constants only.
    op.execute(
        "UPDATE market.stocks SET designations = ARRAY("  # noqa: S608
        f"  SELECT m.code FROM (VALUES {values}) AS m(reason, code)"
        "   WHERE strpos(coalesce(stocks.trade_halt_reason, ''), m.reason) > 0 ORDER BY m.code)"
    )
    op.execute(
        "UPDATE market.stocks SET"
        " is_tradable = (status IS NOT DISTINCT FROM 'ACTIVE'),"
        " trade_halt_reason = CASE"
        "   WHEN status IS NOT DISTINCT FROM 'DELISTED' THEN 'delisted'"
        "   WHEN status IS NOT DISTINCT FROM 'SUSPENDED' THEN 'trading halted'"
        "   END,"
        " nxt_eligible = ("
        "   security_group IS NOT DISTINCT FROM 'ST'"
        "   AND market IN ('KOSPI', 'KOSDAQ')"
        "   AND status IS NOT DISTINCT FROM 'ACTIVE'"
        "   AND NOT ('ADMINISTRATIVE' = ANY(designations)))"
    )

    op.create_table(
        "stock_base_prices",
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("trading_date", sa.Date(), nullable=False),
        sa.Column("base_price", sa.Numeric(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "updated_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "base_price > 0", name=op.f("chk_stock_base_prices_base_price_positive")
        ),
        sa.CheckConstraint(
            "source IN ('MASTER', 'OPERATOR')", name=op.f("chk_stock_base_prices_source")
        ),
        sa.ForeignKeyConstraint(
            ["symbol"],
            ["market.stocks.symbol"],
            name=op.f("fk_stock_base_prices_symbol_stocks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("symbol", "trading_date", name=op.f("pk_stock_base_prices")),
        schema="market",
    )
    op.create_table(
        "risk_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("max_order_notional", sa.Numeric(), nullable=True),
        sa.Column("max_order_quantity", sa.Numeric(), nullable=True),
        sa.Column("max_daily_notional", sa.Numeric(), nullable=True),
        sa.Column("max_daily_orders", sa.Integer(), nullable=True),
        sa.Column("max_open_orders", sa.Integer(), nullable=True),
        sa.Column("allowed_symbols", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("allowed_sides", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("refused_designations", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column(
            "updated_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "num_nonnulls(api_key_id, account_id) = 1", name=op.f("chk_risk_policies_one_target")
        ),
        sa.CheckConstraint(
            "allowed_sides IS NULL OR allowed_sides <@ ARRAY['BUY', 'SELL']::text[]",
            name=op.f("chk_risk_policies_allowed_sides"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_risk_policies_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_risk_policies_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_policies")),
        sa.UniqueConstraint("account_id", name=op.f("uq_risk_policies_account_id")),
        sa.UniqueConstraint("api_key_id", name=op.f("uq_risk_policies_api_key_id")),
        schema="trade",
    )
    op.create_table(
        "kill_switches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column(
            "set_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "scope IN ('GLOBAL', 'API_KEY', 'ACCOUNT')", name=op.f("chk_kill_switches_scope")
        ),
        sa.CheckConstraint(
            "(scope = 'GLOBAL') = (target_id = 0)",
            name=op.f("chk_kill_switches_global_has_no_target"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kill_switches")),
        sa.UniqueConstraint("scope", "target_id", name="uq_kill_switches_scope_target"),
        schema="trade",
    )
    op.create_table(
        "risk_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
        schema="trade",
    )
    op.create_index("idx_risk_events_at", "risk_events", ["at"], schema="trade")
    op.create_table(
        "panic_actions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("action_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_ts", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_ts", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('CANCEL_ALL', 'FLATTEN')", name=op.f("chk_panic_actions_kind")
        ),
        sa.CheckConstraint("scope IN ('API_KEY', 'ACCOUNT')", name=op.f("chk_panic_actions_scope")),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'DONE', 'FAILED')", name=op.f("chk_panic_actions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panic_actions")),
        sa.UniqueConstraint("action_key", name=op.f("uq_panic_actions_action_key")),
        schema="trade",
    )
    op.create_table(
        "stocks_sync_runs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("delist_shares", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('APPLIED', 'REFUSED', 'FORCED')", name=op.f("chk_stocks_sync_runs_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stocks_sync_runs")),
        schema="system",
    )
    op.create_index("idx_stocks_sync_runs_at", "stocks_sync_runs", ["at"], schema="system")
    # The sync writes base prices and its own record as gateway_datasync; the operator's API sets
    # base prices as the gateway's login.
    _grant("GRANT SELECT, INSERT, UPDATE ON market.stock_base_prices TO {role}", "gateway_datasync")
    _grant("GRANT INSERT, UPDATE, DELETE ON market.stock_base_prices TO {role}", "gateway_app")
    _grant("GRANT USAGE ON SCHEMA system TO {role}", "gateway_datasync")
    _grant("GRANT SELECT, INSERT ON system.stocks_sync_runs TO {role}", "gateway_datasync")
    _grant("GRANT USAGE ON SEQUENCE system.stocks_sync_runs_id_seq TO {role}", "gateway_datasync")


def downgrade() -> None:
    op.drop_index("idx_stocks_sync_runs_at", table_name="stocks_sync_runs", schema="system")
    op.drop_table("stocks_sync_runs", schema="system")
    op.drop_table("panic_actions", schema="trade")
    op.drop_index("idx_risk_events_at", table_name="risk_events", schema="trade")
    op.drop_table("risk_events", schema="trade")
    op.drop_table("kill_switches", schema="trade")
    op.drop_table("risk_policies", schema="trade")
    op.drop_table("stock_base_prices", schema="market")
    reasons = " ".join(
        f"WHEN '{code}' THEN '{reason}'" for reason, code in _REASONS if code in _BLOCKING
    )
    blocking = ", ".join(f"'{code}'" for code in _BLOCKING)
    # Built from this module's constants only.
    op.execute(
        "UPDATE market.stocks SET"  # noqa: S608
        f" is_tradable = is_tradable AND NOT (designations && ARRAY[{blocking}]::text[]),"
        " trade_halt_reason = nullif(concat_ws('; ', trade_halt_reason,"
        f"   (SELECT string_agg(CASE d {reasons} END, '; ') FROM unnest(designations) AS d"
        f"     WHERE d IN ({blocking}))), '')"
        f" WHERE designations && ARRAY[{blocking}]::text[]"
    )
    op.drop_column("stocks", "nxt_eligible", schema="market")
    op.drop_column("stocks", "designations", schema="market")
