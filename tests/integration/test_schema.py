"""The stocks master's constraints, the token table, foreign keys and roles, on real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

STOCK = "INSERT INTO market.stocks (symbol, name, market, status) VALUES (%s, %s, %s, %s)"


@pytest.fixture
def db(psql, clean_db):
    """The raw connection, with the tables emptied afterwards."""
    return psql


@pytest.mark.parametrize("symbol", ["005930", "0001A0", "26490K", "0000D0"])
def test_stocks_accepts_krx_short_codes(db, symbol):
    db.execute(STOCK, (symbol, "종목", "KOSPI", "ACTIVE"))
    assert db.execute("SELECT symbol FROM market.stocks").fetchone() == (symbol,)


@pytest.mark.parametrize("symbol", ["ABC123", "12345", "0059301", "a05930", "00593a", ""])
def test_stocks_refuses_bad_symbols(db, symbol):
    with pytest.raises(psycopg.errors.CheckViolation, match="chk_symbol_format"):
        db.execute(STOCK, (symbol, "잘못된코드", "KOSPI", "ACTIVE"))


def test_stocks_refuses_unknown_market_and_status(db):
    with pytest.raises(psycopg.errors.CheckViolation, match="chk_market"):
        db.execute(STOCK, ("005930", "삼성전자", "NASDAQ", "ACTIVE"))
    with pytest.raises(psycopg.errors.CheckViolation, match="chk_status"):
        db.execute(STOCK, ("005930", "삼성전자", "KOSPI", "HALTED"))


def test_stocks_trigger_moves_updated_ts(db):
    db.execute(STOCK, ("005930", "삼성전자", "KOSPI", "ACTIVE"))
    db.execute("UPDATE market.stocks SET updated_ts = now() - interval '1 day'")
    (old,) = db.execute("SELECT updated_ts FROM market.stocks").fetchone()
    db.execute("UPDATE market.stocks SET is_tradable = false WHERE symbol = '005930'")
    (new,) = db.execute("SELECT updated_ts FROM market.stocks").fetchone()
    assert new > old


def test_stocks_has_the_seed_indexes(db):
    rows = db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'market'"
        " AND tablename = 'stocks'"
    ).fetchall()
    indexes = dict(rows)
    assert {
        "idx_stocks_market",
        "idx_stocks_status",
        "idx_stocks_tradable",
        "idx_stocks_name",
    } <= set(indexes)
    assert "WHERE (is_tradable = true)" in indexes["idx_stocks_tradable"]


def _account(db, name="kis-1", exchange="KIS", account_type="SECURITIES_STOCK"):
    return db.execute(
        "INSERT INTO accounts (name, exchange, account_type, api_key, api_secret)"
        " VALUES (%s, %s, %s, 'gw1:x:a', 'gw1:x:b') RETURNING id",
        (name, exchange, account_type),
    ).fetchone()[0]


# ON DELETE RESTRICT: PostgreSQL 18 reports restrict_violation, older ones foreign_key_violation.
REFERENCED = (psycopg.errors.ForeignKeyViolation, psycopg.errors.RestrictViolation)


def test_a_referenced_stock_cannot_be_deleted(db):
    db.execute(STOCK, ("005930", "삼성전자", "KOSPI", "ACTIVE"))
    account_id = _account(db)
    db.execute(
        "INSERT INTO trade.holdings (account_id, symbol, quantity, avg_price)"
        " VALUES (%s, '005930', 10, 70000)",
        (account_id,),
    )
    with pytest.raises(REFERENCED):
        db.execute("DELETE FROM market.stocks WHERE symbol = '005930'")
    db.execute("DELETE FROM trade.holdings")
    db.execute(
        "INSERT INTO trade.order_intents (intent_id, account_id, symbol, side, order_type,"
        " quantity, action_key, request_hash)"
        " VALUES (gen_random_uuid(), %s, '005930', 'BUY', 'MARKET', 1, 'k1', 'h')",
        (account_id,),
    )
    with pytest.raises(REFERENCED):
        db.execute("DELETE FROM market.stocks WHERE symbol = '005930'")
    assert db.execute("SELECT count(*) FROM market.stocks").fetchone() == (1,)


def test_trade_rows_need_a_known_symbol_and_exactly_one_instrument(db):
    account_id = _account(db)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(
            "INSERT INTO trade.holdings (account_id, symbol, quantity) VALUES (%s, '888888', 1)",
            (account_id,),
        )
    with pytest.raises(psycopg.errors.CheckViolation, match="one_instrument"):
        db.execute(
            "INSERT INTO trade.holdings (account_id, quantity) VALUES (%s, 1)", (account_id,)
        )


def test_account_type_must_match_exchange(db):
    with pytest.raises(psycopg.errors.CheckViolation, match="account_type_exchange"):
        _account(db, name="wrong", exchange="UPBIT", account_type="SECURITIES_STOCK")
    with pytest.raises(psycopg.errors.CheckViolation, match="account_type_exchange"):
        _account(db, name="wrong2", exchange="KIS", account_type="CRYPTO")


def _token(db, account_id, hours):
    db.execute(
        "INSERT INTO securities_tokens (account_id, access_token, expires_in, expires_at)"
        " VALUES (%s, 'gw1:x:t', 86400, now() + make_interval(hours => %s))",
        (account_id, hours),
    )


def test_one_token_per_account_and_cascade_on_delete(db):
    account_id = _account(db)
    _token(db, account_id, 20)
    with pytest.raises(psycopg.errors.UniqueViolation):
        _token(db, account_id, 21)
    db.execute("DELETE FROM accounts WHERE id = %s", (account_id,))
    assert db.execute("SELECT count(*) FROM securities_tokens").fetchone() == (0,)


def test_expiring_token_query_uses_its_index(db):
    # Seed 002's query for tokens about to expire must not scan the table.
    db.execute(
        "INSERT INTO accounts (name, exchange, account_type, api_key, api_secret)"
        " SELECT 'kis-' || g, 'KIS', 'SECURITIES_STOCK', 'gw1:x:a', 'gw1:x:b'"
        " FROM generate_series(1, 3000) g"
    )
    db.execute(
        "INSERT INTO securities_tokens (account_id, access_token, expires_in, expires_at)"
        " SELECT id, 'gw1:x:t', 86400, now() + make_interval(hours => 7 + (id % 17))"
        " FROM accounts"
    )
    db.execute(
        "UPDATE securities_tokens SET expires_at = now() + interval '1 hour' WHERE id % 100 = 0"
    )
    db.execute("ANALYZE securities_tokens")
    plan = "\n".join(
        row[0]
        for row in db.execute(
            "EXPLAIN SELECT * FROM securities_tokens WHERE expires_at <= NOW() + INTERVAL '6 hours'"
        )
    )
    assert "idx_securities_token_expires_at" in plan, plan
    assert "Seq Scan" not in plan


def test_readonly_role_reads_the_master_and_cannot_write_it(db):
    db.execute(STOCK, ("005930", "삼성전자", "KOSPI", "ACTIVE"))
    db.execute("SET ROLE gateway_readonly")
    try:
        assert db.execute("SELECT name FROM market.stocks").fetchone() == ("삼성전자",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(STOCK, ("000660", "SK하이닉스", "KOSPI", "ACTIVE"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT * FROM accounts")
    finally:
        db.execute("RESET ROLE")


def test_datasync_role_writes_the_master_but_never_deletes(db):
    db.execute("SET ROLE gateway_datasync")
    try:
        db.execute(STOCK, ("000660", "SK하이닉스", "KOSPI", "ACTIVE"))
        db.execute(
            "UPDATE market.stocks SET status = 'DELISTED', is_tradable = false"
            " WHERE symbol = '000660'"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("DELETE FROM market.stocks")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT * FROM accounts")
    finally:
        db.execute("RESET ROLE")


def test_app_role_cannot_write_the_master(db):
    db.execute("SET ROLE gateway_app")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(STOCK, ("000660", "SK하이닉스", "KOSPI", "ACTIVE"))
        db.execute("SELECT count(*) FROM accounts")
    finally:
        db.execute("RESET ROLE")
