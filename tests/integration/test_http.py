"""Every error is problem+json with a stable code; every response carries a request id."""

from __future__ import annotations

import logging
import os

import psycopg
import pytest
from alembic.script import ScriptDirectory

PROBLEM = "application/problem+json"


def _assert_problem(response, status, code):
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["instance"].endswith("#req_" + body["request_id"])
    return body


def test_unknown_path_is_a_404_problem(client):
    _assert_problem(client.get("/api/v1/nothing-here"), 404, "not_found")
    _assert_problem(
        client.get("/nothing", headers={"Accept": "application/json"}), 404, "not_found"
    )


def test_wrong_method_is_a_405_problem_with_allow(client):
    response = client.delete("/healthz")
    _assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_validation_failure_names_the_fields(client, api_headers):
    body = _assert_problem(
        client.get("/api/v1/stocks?market=NASDAQ&limit=0", headers=api_headers),
        422,
        "validation_failed",
    )
    assert set(body["errors"]["query"]) == {"market", "limit"}
    body = _assert_problem(
        client.get("/api/v1/stocks/ABC123", headers=api_headers), 422, "validation_failed"
    )
    assert "symbol" in body["errors"]["path"]


def test_unknown_symbol_is_a_404_problem(client, api_headers):
    _assert_problem(client.get("/api/v1/stocks/005930", headers=api_headers), 404, "not_found")


def test_the_api_needs_a_key(client):
    response = client.get("/api/v1/stocks/005930")
    _assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unexpected_exception_is_a_generic_500_without_its_text(make_app, database_url, caplog):
    app = make_app(DATABASE_URL=database_url)

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("db password=hunter2 in SELECT secret_column FROM accounts")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/api/v1/boom")
    body = _assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "SELECT" not in text
    assert body["detail"].startswith("The gateway failed")
    # the log has the traceback, redacted
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError" in logged
    assert "hunter2" not in logged


def test_browser_gets_an_html_error_page(client):
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not Found" in response.get_data(as_text=True)


def test_request_id_on_every_response(client):
    for response in (client.get("/healthz"), client.get("/nope"), client.get("/login")):
        assert len(response.headers["X-Request-ID"]) >= 16
    echoed = client.get("/healthz", headers={"X-Request-ID": "strategy-7.abc"})
    assert echoed.headers["X-Request-ID"] == "strategy-7.abc"
    # a request id that could inject into logs or headers is replaced, not echoed
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id\x00<script>"})
    assert forged.headers["X-Request-ID"] != "bad id\x00<script>"


def test_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_healthz_and_readyz(app, client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        heads = ScriptDirectory.from_config(config).get_heads()
    assert ready.get_json()["schema_revision"] == sorted(heads)


def test_readyz_reports_an_unmigrated_database(pg_server, make_app):
    name = f"gateway_empty_probe_{os.getpid()}"
    url = pg_server.create_database(name)
    try:
        app = make_app(DATABASE_URL=url)
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["schema"] == "empty"
        assert "gateway db upgrade" in response.get_json()["fix"]
        from web_server.extensions import db

        with app.app_context():
            db.engine.dispose()
    finally:
        pg_server.drop_database(name)


def test_readyz_reports_an_unreachable_database(make_app):
    app = make_app(DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}


def test_openapi_document_is_3_1_with_problem_errors(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/stocks/{symbol}" in spec["paths"]
    assert "ProblemSchema" in str(spec["components"]) or "Problem" in str(spec["components"])


@pytest.mark.parametrize("path", ["/", "/api/v1/openapi.json"])
def test_no_server_header_leaks_framework_debug(client, path):
    response = client.get(path)
    assert "Traceback" not in response.get_data(as_text=True)


def test_readyz_reports_a_database_ahead_of_the_code(pg_server, make_app):
    name = f"gateway_ahead_probe_{os.getpid()}"
    url = pg_server.create_database(name)
    try:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
        app = make_app(DATABASE_URL=url)
        body = app.test_client().get("/readyz").get_json()
        assert body["schema"] == "ahead" and "deploy the code" in body["fix"]
        from web_server.extensions import db

        with app.app_context():
            db.engine.dispose()
    finally:
        pg_server.drop_database(name)
