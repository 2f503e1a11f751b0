"""Pooled connections are checked before use, with a round trip only when they are in doubt.

``database.install_liveness_check`` replaces ``pool_pre_ping`` (a ``SELECT 1`` at every
checkout): a healthy connection straight from use is taken without a ping, one idle for long is
pinged, and one whose backend the server ended is replaced without the request seeing it.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from web_server import database
from web_server.extensions import db


@pytest.fixture
def pings(app, monkeypatch):
    """Count the pings the pool's check sends, from an empty pool (one connection, reused)."""
    sent = []
    with app.app_context():
        db.engine.dispose()
        dialect = db.engine.dialect
        real = dialect.do_ping

        def counted(dbapi_connection):
            sent.append(dbapi_connection)
            return real(dbapi_connection)

        monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


def _backend_pid(app) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_straight_from_use_is_not_pinged(app, pings):
    first = _backend_pid(app)
    for _ in range(5):
        assert _backend_pid(app) == first  # the same pooled connection, reused
    assert pings == []


def test_a_connection_idle_for_long_is_pinged_and_kept(app, pings, monkeypatch):
    first = _backend_pid(app)
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
    assert _backend_pid(app) == first  # pinged, alive, kept
    assert len(pings) == 1


def test_a_connection_whose_backend_was_ended_is_replaced_unseen(app, pings, pg_server):
    first = _backend_pid(app)
    with psycopg.connect(pg_server.admin_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (first,))  # waits for its end
    second = _backend_pid(app)
    assert second != first
    assert len(pings) == 1  # its socket had the server's farewell to read: pinged, failed
