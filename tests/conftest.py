"""Shared fixtures: a real PostgreSQL, an app migrated to head, and clean tables per test.

The server is, in order of preference: ``GATEWAY_TEST_DATABASE_URL`` (a server URL; databases are
created on it; ``embedded`` forces the embedded one), the local server on 127.0.0.1:5432 (user
``postgres``), or an embedded PostgreSQL started for the session. Each run creates its own
databases and drops them at the end.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text

from web_server import create_app
from web_server.crypto import generate_key_entry

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
KIS_MASTER_DIR = SHARED_DIR / "data" / "kis_master"

# Tables emptied after each test that uses ``clean_db``; the schema stays.
_DATA_TABLES = (
    "trade.webhook_deliveries",
    "trade.webhook_subscriptions",
    "trade.order_events",
    "trade.risk_policies",
    "trade.kill_switches",
    "trade.risk_events",
    "trade.panic_actions",
    "system.stocks_sync_runs",
    "market.stock_base_prices",
    "trade.fills",
    "api_keys",
    "trade.orders",
    "trade.order_intents",
    "trade.holdings",
    "market.crypto_markets",
    "market.stocks",
    "system.process_locks",
    "system.token_issuance_windows",
    "system.rate_limit_buckets",
    "system.login_throttle",
    "system.audit_log",
    "securities_tokens",
    "accounts",
    "users",
)


# Secrets the tests hand to the gateway; nothing the gateway logged may contain one (DESIGN §8).
SECRETS_IN_USE: set[str] = set()


def random_key(length: int) -> str:
    """Return a random alphanumeric key, as brokers issue them (KIS: 36 and 180 characters)."""
    import string

    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def remember_secret(value: str) -> str:
    """Register a secret a test gives the gateway, so the log scan looks for it; return it."""
    SECRETS_IN_USE.add(value)
    return value


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_logs() -> Iterator[None]:
    """Capture every log line of the session, unfiltered, then scan it for the tests' secrets.

    This handler redacts nothing itself: what it sees is what any handler would see once the
    gateway has set up its logging (redaction at record creation).
    """
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    # One line of our own, so that the capture is proven to work even in a run that logs nothing.
    logging.getLogger("tests").warning("test session started")
    yield
    root.removeHandler(handler)
    text = stream.getvalue()
    leaked = [secret[:6] + "…" for secret in SECRETS_IN_USE if secret in text]
    assert not leaked, f"secrets found in the logs: {leaked}"
    assert len(text) > 0


class PostgresServer:
    """A PostgreSQL server on which tests create and drop their own databases."""

    def __init__(self, admin_url: str, handle: Any = None) -> None:
        self.admin_url = admin_url
        self.handle = handle  # keeps an embedded server alive

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of ``database`` on this server."""
        base, _, query = self.admin_url.partition("?")
        base = base.rsplit("/", 1)[0]
        url = f"{base}/{database}" + (f"?{query}" if query else "")
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url.replace("+psycopg", ""), autocommit=True)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _local_server_url() -> str | None:
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(url, connect_timeout=2):
            return url
    except psycopg.OperationalError:
        return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session."""
    configured = os.environ.get("GATEWAY_TEST_DATABASE_URL")
    # "embedded" forces the embedded server even when a local one answers (what a machine
    # without PostgreSQL gets).
    local = None if configured == "embedded" else configured or _local_server_url()
    if local:
        yield PostgresServer(local)
        return
    from web_server import embedded_db

    with tempfile.TemporaryDirectory(prefix="gateway-test-pg-") as directory:
        url, handle = embedded_db.start(Path(directory) / "pgdata")
        yield PostgresServer(url.replace("/gateway?", "/postgres?"), handle)


@pytest.fixture(scope="session")
def encryption_keys() -> str:
    """The key ring of the session's app: one fresh key."""
    return generate_key_entry("test1")


@pytest.fixture(scope="session")
def base_config(encryption_keys: str) -> dict[str, Any]:
    """Settings every test app starts from (no database yet)."""
    return {
        "ENV": "test",
        "TESTING": True,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEYS": encryption_keys,
        "ENCRYPTION_KEY_FILE": None,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def database_url(pg_server: PostgresServer) -> Iterator[str]:
    """The session's database, created empty (``app`` migrates it)."""
    name = f"gateway_test_{os.getpid()}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def make_app(base_config: dict[str, Any]) -> Callable[..., Flask]:
    """Build an app from the base settings plus overrides."""

    def factory(**overrides: Any) -> Flask:
        return create_app({**base_config, **overrides})

    return factory


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask], database_url: str) -> Flask:
    """The session's app, its database migrated to head by the migrations themselves."""
    from flask_migrate import upgrade

    application = make_app(DATABASE_URL=database_url)
    with application.app_context():
        upgrade()
    return application


@pytest.fixture
def app_ctx(app: Flask, clean_db: None) -> Iterator[Flask]:
    """An application context for a test that uses services directly; tables emptied after."""
    from web_server.extensions import db

    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def clean_db(app: Flask) -> Iterator[None]:
    """Empty the data tables after the test, so tests do not see each other's rows."""
    yield
    from web_server.extensions import db

    with app.app_context():
        db.session.remove()
        # A request still in flight (a page's background refresh) holding a snapshot would make
        # the TRUNCATE, and everything queued behind it, wait for ever: fail the test instead.
        db.session.execute(text("SET LOCAL lock_timeout = '60s'"))
        db.session.execute(text(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY CASCADE"))
        db.session.commit()
    # Ids start over: the process's caches of stored rows must too.
    app.extensions.pop("gateway.market_rules", None)


@pytest.fixture
def client(app: Flask, clean_db: None) -> Any:
    """A test client of the session's app."""
    return app.test_client()


@pytest.fixture
def psql(database_url: str) -> Iterator[psycopg.Connection]:
    """A raw autocommit connection to the session's database, as the superuser."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        yield conn


def run_cli(application: Flask, *args: str, input: str | None = None) -> Any:
    """Run a ``gateway`` command against ``application``, as the console script would."""
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from web_server.cli import main

    # The command must see this app even when a test has another app's context pushed.
    with application.app_context():
        return CliRunner().invoke(
            main, list(args), obj=ScriptInfo(create_app=lambda: application), input=input
        )


@pytest.fixture
def make_api_key(app: Flask, clean_db: None) -> Callable[..., dict[str, str]]:
    """Create an API key; return the headers that present it."""
    from web_server.extensions import db
    from web_server.services.api_keys import create_api_key

    def factory(*scopes: str, accounts: list[int] | None = None) -> dict[str, str]:
        with app.app_context():
            _, key = create_api_key("test", scopes or ("admin",), accounts)
            db.session.commit()
        return {"Authorization": f"Bearer {key}"}

    return factory


@pytest.fixture
def api_headers(make_api_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Headers with an admin API key."""
    return make_api_key("admin")


def idle_in_transaction(psql: psycopg.Connection) -> list[tuple]:
    """Return the other sessions of this database that sit in an open transaction, doing nothing.

    What a request must never leave while it waits on a broker: a TRUNCATE or a migration would
    queue behind its snapshot, and every statement behind them.
    """
    return psql.execute(
        "SELECT state, left(query, 80) FROM pg_stat_activity WHERE datname ="
        " current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
    ).fetchall()
