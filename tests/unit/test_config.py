"""Start-up refuses bad settings with a message that says how to fix them."""

from __future__ import annotations

import pytest

from web_server import create_app
from web_server.crypto import generate_key_entry
from web_server.errors import ConfigError

GOOD = {
    "SECRET_KEY": "s" * 40,
    "ENCRYPTION_KEYS": generate_key_entry("u1"),
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
}


@pytest.mark.parametrize(
    "override, message",
    [
        ({"SECRET_KEY": None}, "GATEWAY_SECRET_KEY must be set"),
        ({"SECRET_KEY": "short"}, "at least 32"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "PostgreSQL only"),
        ({"ENV": "staging"}, "GATEWAY_ENV"),
        ({"LOG_FORMAT": "xml"}, "GATEWAY_LOG_FORMAT"),
        ({"TOKEN_REFRESH_MARGIN_SECONDS": 5}, "from 60 to 64799"),
        ({"ENCRYPTION_KEYS": "nocolon"}, "gateway keys generate"),
        # Numbers that used to pass start-up and fail where first used (review, issue 12).
        ({"ORDERS_MAX_IN_FLIGHT": "many"}, "GATEWAY_ORDERS_MAX_IN_FLIGHT='many' must be a whole"),
        ({"ORDERS_MAX_IN_FLIGHT": 2.5}, "must be a whole number"),
        ({"HOLDINGS_MAX_AGE_SECONDS": -5}, "GATEWAY_HOLDINGS_MAX_AGE_SECONDS"),
        ({"ORDERS_POLL_INTERVAL_SECONDS": 0}, "GATEWAY_ORDERS_POLL_INTERVAL_SECONDS"),
        ({"API_KEY_CACHE_SECONDS": "soon"}, "GATEWAY_API_KEY_CACHE_SECONDS"),
        ({"WEBHOOK_RETRY_BASE_SECONDS": "x"}, "GATEWAY_WEBHOOK_RETRY_BASE_SECONDS"),
        ({"STOCKS_SYNC_MAX_DELIST_SHARE": 5}, "from 0 to 1"),
        ({"LOGIN_MAX_FAILURES": True}, "GATEWAY_LOGIN_MAX_FAILURES"),
        ({"STOCKS_SYNC_TIME": "half past seven"}, "must be HH:MM"),
        ({"STOCKS_SYNC_TIME": "25:00"}, "must be HH:MM"),
    ],
)
def test_bad_settings_are_refused_with_a_fix(override, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**GOOD, **override})


def test_environment_variables_configure_the_app(monkeypatch):
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "e" * 40)
    monkeypatch.setenv("GATEWAY_ENCRYPTION_KEYS", generate_key_entry("env1"))
    monkeypatch.setenv("GATEWAY_TOKEN_REFRESH_MARGIN_SECONDS", "7200")
    monkeypatch.setenv("GATEWAY_BROKERS__KIS__BASE_URL", "http://127.0.0.1:18001")
    monkeypatch.setenv("GATEWAY_DEBUG", "true")
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    app = create_app()
    assert app.config["TOKEN_REFRESH_MARGIN_SECONDS"] == 7200
    assert app.config["BROKERS"]["KIS"]["BASE_URL"] == "http://127.0.0.1:18001"
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.debug is False  # DEBUG is never taken from the environment
    assert app.extensions["gateway.keyring"].primary_id == "env1"


def test_importing_the_package_does_nothing():
    import subprocess
    import sys

    code = (
        "import threading, sys; import web_server, web_server.cli, web_server.models;"
        "assert threading.active_count() == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""})
