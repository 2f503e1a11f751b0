"""The schema is built only by migrations, and every revision goes both ways with data in it."""

from __future__ import annotations

import importlib.util
import itertools
import os

import psycopg
import pytest
from alembic.script import ScriptDirectory
from flask_migrate import check, downgrade, upgrade

from web_server.migrations_path import MIGRATIONS_DIR


@pytest.fixture
def scratch(pg_server, make_app):
    """A second, empty database in the same cluster, and an app bound to it."""
    name = f"gateway_migr_{os.getpid()}"
    url = pg_server.create_database(name)
    application = make_app(DATABASE_URL=url)
    yield application, url.replace("+psycopg", "")
    from web_server.extensions import db

    with application.app_context():
        db.engine.dispose()
    pg_server.drop_database(name)


def _rows(url, sql, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_crypto_accounts_survive_securities_migration_and_full_round_trip(scratch):
    application, url = scratch
    with application.app_context():
        upgrade(revision="0001")
    with psycopg.connect(url) as conn:
        for name, exchange in [
            ("upbit-main", "UPBIT"),
            ("binance-hedge", "BINANCE"),
            ("bithumb-1", "BITHUMB"),
        ]:
            conn.execute(
                "INSERT INTO accounts (name, exchange, api_key, api_secret)"
                " VALUES (%s, %s, %s, %s)",
                (name, exchange, f"gw1:k:{name}-key", f"gw1:k:{name}-secret"),
            )
    before = _rows(
        url, "SELECT id, name, exchange, api_key, api_secret, created_at FROM accounts ORDER BY id"
    )

    with application.app_context():
        upgrade()
    after = _rows(
        url,
        "SELECT id, name, exchange, api_key, api_secret, created_at, account_type"
        " FROM accounts ORDER BY id",
    )
    assert [row[:6] for row in after] == before
    assert {row[6] for row in after} == {"CRYPTO"}

    with application.app_context():
        downgrade(revision="base")
    tables = _rows(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema IN ('public', 'market', 'trade', 'system')"
        " AND table_name <> 'alembic_version'",
    )
    assert tables == []

    with application.app_context():
        upgrade()
        check()  # models and migrations agree: no drift


def test_app_models_and_migrations_agree(app):
    with app.app_context():
        check()


def test_downgrade_refuses_to_drop_securities_accounts(scratch):
    application, url = scratch
    with application.app_context():
        upgrade(revision="0002")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO accounts (name, exchange, account_type, api_key, api_secret)"
            " VALUES ('kis', 'KIS', 'SECURITIES_STOCK', 'gw1:k:a', 'gw1:k:b')"
        )
    with application.app_context(), pytest.raises(Exception, match="securities accounts exist"):
        downgrade(revision="0001")
    assert _rows(url, "SELECT name FROM accounts") == [("kis",)]


def test_roles_migration_is_safe_in_a_second_database(scratch, psql):
    # The session database already created the cluster-wide roles; a second database migrates
    # to head beside it, then back down, without breaking the first one's grants.
    application, url = scratch
    with application.app_context():
        upgrade()
        downgrade(revision="0005")  # below the roles revision
    roles = psql.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'gateway\\_%' ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in roles] == ["gateway_app", "gateway_datasync", "gateway_readonly"]
    psql.execute("SET ROLE gateway_readonly")
    assert psql.execute("SELECT count(*) FROM market.stocks").fetchone() is not None
    psql.execute("RESET ROLE")


def test_every_revision_has_a_docstring_and_a_downgrade(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    revisions = list(script.walk_revisions())
    chain = [r.revision for r in reversed(revisions)]
    # one linear chain: a single head and a single base, each revision on top of the one before
    assert list(script.get_heads()) == [chain[-1]]
    assert list(script.get_bases()) == [chain[0]]
    for down, up in itertools.pairwise(chain):
        assert script.get_revision(up).down_revision == down, f"{up} does not follow {down}"
    # the (a)…(d) come first, in that order; later revisions only add to the chain
    assert chain[:4] == ["0001", "0002", "0003", "0004"]
    for revision in revisions:
        spec = importlib.util.spec_from_file_location("rev", revision.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert len((module.__doc__ or "").strip()) > 80, revision.revision
        source = (MIGRATIONS_DIR / "versions" / os.path.basename(revision.path)).read_text()
        body = source.split("def downgrade() -> None:", 1)[1]
        assert "pass" not in body.split("\n")[1], f"{revision.revision} has an empty downgrade"
