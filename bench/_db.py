"""A scratch PostgreSQL database for a benchmark: the local server, or an embedded one."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards.

    The database is ``name`` plus a random suffix: two people running ``make bench`` on one
    server never drop each other's.
    """
    name = f"{name}_{secrets.token_hex(4)}"
    admin = os.environ.get(
        "GATEWAY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    handle = None
    try:
        psycopg.connect(admin, connect_timeout=2).close()
    except psycopg.OperationalError:
        from web_server import embedded_db

        directory = tempfile.mkdtemp(prefix="gateway-bench-pg-")
        url, handle = embedded_db.start(Path(directory) / "pgdata")
        admin = url.replace("postgresql+psycopg", "postgresql").replace("/gateway?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = admin.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        del handle


def migrated_app(url: str):
    """Return a gateway app on ``url`` with the schema at head."""
    from flask_migrate import upgrade

    from web_server import create_app
    from web_server.crypto import generate_key_entry

    app = create_app(
        {
            "ENV": "test",
            "SECRET_KEY": "b" * 40,
            "ENCRYPTION_KEYS": generate_key_entry("bench"),
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        upgrade()
    return app
