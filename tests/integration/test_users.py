"""Operators: created by the CLI with argon2 hashes, log in through a CSRF-protected form."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.conftest import run_cli
from web_server.extensions import db

PASSWORD = "correct horse battery"


def _csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _create(app, username="alice", password=PASSWORD):
    return run_cli(
        app, "users", "create", "--username", username, "--password-stdin", input=password + "\n"
    )


def test_cli_creates_a_user_with_an_argon2_hash(app, app_ctx):
    result = _create(app)
    assert result.exit_code == 0, result.output
    stored = db.session.scalar(text("SELECT password_hash FROM users WHERE username = 'alice'"))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    again = _create(app)
    assert again.exit_code != 0 and "already exists" in again.output
    weak = _create(app, "bob", "short")
    assert weak.exit_code != 0 and "at least 12" in weak.output


def test_login_needs_csrf_and_the_right_password(app, app_ctx):
    _create(app)
    client = app.test_client()
    assert client.get("/").status_code == 302  # not logged in
    no_token = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_token.status_code == 400
    wrong = client.post(
        "/login", data={"username": "alice", "password": "nope", "csrf_token": _csrf(client)}
    )
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.get_data(as_text=True)
    ok = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": _csrf(client)}
    )
    assert ok.status_code == 302
    home = client.get("/")
    assert home.status_code == 200 and "alice" in home.get_data(as_text=True)


def test_login_locks_after_repeated_failures(app, app_ctx):
    _create(app)
    client = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post(
            "/login", data={"username": "alice", "password": "bad", "csrf_token": _csrf(client)}
        )
    locked = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": _csrf(client)}
    )
    assert locked.status_code == 401
    assert "Too many failed logins" in locked.get_data(as_text=True)


def test_next_parameter_cannot_redirect_off_site(app, app_ctx):
    _create(app)
    client = app.test_client()
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": "alice", "password": PASSWORD, "csrf_token": _csrf(client)},
    )
    assert response.headers["Location"] == "/attention"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "/\\evil.example",
        "/\t/evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%5Cevil.example",
    ],
)
def test_next_parameter_refuses_every_off_site_form(app, app_ctx, target):
    # query_string encodes each value, so the view's ``next`` is exactly ``target``
    _create(app)
    client = app.test_client()
    response = client.post(
        "/login",
        query_string={"next": target},
        data={"username": "alice", "password": PASSWORD, "csrf_token": _csrf(client)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/attention"
