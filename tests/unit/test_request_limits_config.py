"""Settings of issue 12: the body-size limit, the broker host allow-list, production cookies."""

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
        ({"MAX_CONTENT_LENGTH": 10}, "GATEWAY_MAX_CONTENT_LENGTH"),
        ({"MAX_CONTENT_LENGTH": 2**30}, "GATEWAY_MAX_CONTENT_LENGTH"),
        ({"MAX_CONTENT_LENGTH": None}, "GATEWAY_MAX_CONTENT_LENGTH"),
        ({"BROKER_URL_ALLOWLIST": ["http://broker.example"]}, "https origins"),
        ({"BROKER_URL_ALLOWLIST": ["https://broker.example/api"]}, "no path"),
        ({"BROKER_URL_ALLOWLIST": ["https://u:p@broker.example"]}, "https origins"),
        ({"BROKER_URL_ALLOWLIST": ["https://broker.example:port"]}, "https origins"),
        ({"BROKER_URL_ALLOWLIST": {"KIS": "https://x.example"}}, "https origins"),
    ],
)
def test_bad_limits_and_allowlists_are_refused_with_a_fix(override, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**GOOD, **override})


def test_the_allowlist_and_the_limit_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATEWAY_BROKER_URL_ALLOWLIST", '["https://openapi.example.com:9443"]')
    monkeypatch.setenv("GATEWAY_MAX_CONTENT_LENGTH", "131072")
    app = create_app(GOOD)
    assert app.config["BROKER_URL_ALLOWLIST"] == ["https://openapi.example.com:9443"]
    assert app.config["MAX_CONTENT_LENGTH"] == 131072
    monkeypatch.setenv("GATEWAY_BROKER_URL_ALLOWLIST", "https://a.example, https://b.example")
    assert create_app(GOOD).config["BROKER_URL_ALLOWLIST"] == [
        "https://a.example",
        "https://b.example",
    ]


def test_production_defaults_win_over_flasks_own():
    # Flask's defaults (SESSION_COOKIE_SECURE=False, SAMESITE=None, no body limit) used to stay.
    config = create_app(GOOD).config
    assert config["ENV"] == "production"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["MAX_CONTENT_LENGTH"] == 65536
    assert config["OPENAPI_REDOC_URL"].startswith("/static/")
