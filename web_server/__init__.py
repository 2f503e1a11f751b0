"""The gateway's Flask application factory.

Importing this package does nothing: no environment is read, no engine or socket is opened and no
thread starts. ``create_app`` does all of it, in named steps.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.routing import IntegerConverter

from web_server.bodies import BoundedRequest, too_large

__all__ = ["create_app"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Every other page: no inline script or style at all (templates keep their scripts and styles in
# static files), so an injected <script> or on…= attribute does nothing.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create and configure an instance of the gateway.

    Args:
        config: settings that override the defaults and the ``GATEWAY_*`` environment.

    Raises:
        ConfigError: a setting is missing or invalid.
    """
    app = Flask(
        __name__,
        template_folder="ui/templates",
        static_folder="ui/static",
        instance_relative_config=True,
    )
    app.request_class = BoundedRequest  # a chunked body is held to the size limit too
    _load_config(app, config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Korean names stay readable
    _init_logging(app)
    _init_database(app)
    _init_security(app)
    # Request ids first: every later hook (CSRF included) may fail a request, and its answer
    # must carry the id.
    _register_request_hooks(app)
    _init_extensions(app)
    _register_error_handlers(app)
    _init_routing(app)
    _register_blueprints(app)
    _register_cli(app)
    return app


def _load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    from web_server import config

    config.load(app.config, overrides)  # type: ignore[arg-type]
    config.validate(app.config)
    # Plain-HTTP demo and tests: a Secure cookie would never come back over http://.
    if app.config["ENV"] != "production" and "SESSION_COOKIE_SECURE" not in (overrides or {}):
        app.config["SESSION_COOKIE_SECURE"] = False
        app.config["REMEMBER_COOKIE_SECURE"] = False


def _init_logging(app: Flask) -> None:
    from web_server.log import configure_logging

    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def _init_database(app: Flask) -> None:
    from web_server.config import normalize_database_url

    url = app.config.get("DATABASE_URL")
    if not url:
        from web_server import embedded_db

        directory = Path(app.config.get("EMBEDDED_DB_DIR") or Path(app.instance_path) / "pgdata")
        url, handle = embedded_db.start(directory)
        app.extensions["gateway.embedded_db"] = handle
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(url)


def _init_security(app: Flask) -> None:
    from web_server.crypto import KeyRing

    app.extensions["gateway.keyring"] = KeyRing.from_config(app.config)


def _init_extensions(app: Flask) -> None:
    from sqlalchemy.orm import Session

    from web_server import models  # noqa: F401  (registers the models on the metadata)
    from web_server.crypto import install_session_hooks
    from web_server.extensions import csrf, db, login_manager, migrate
    from web_server.migrations_path import MIGRATIONS_DIR

    db.init_app(app)
    _replace_session_teardown(app, db)
    from web_server.database import install_liveness_check

    with app.app_context():
        install_liveness_check(db.engine)
    install_session_hooks(Session)  # every session, the services' own ones too
    from web_server.services import events as order_events

    order_events.install(Session)  # each order change commits with its event (issue 14)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "ui.login"
    login_manager.session_protection = "strong"
    from web_server.services.symbols import SymbolCache

    app.extensions["gateway.symbols"] = SymbolCache(
        app.config["SQLALCHEMY_DATABASE_URI"].replace("+psycopg", "", 1)
    )


def _replace_session_teardown(app: Flask, db: Any) -> None:
    """Close each request's session without letting a dead connection fail the response.

    Flask-SQLAlchemy's own teardown rolls the session back, and a rollback on a connection the
    database has cut raises: after an answer had been sent, the request turned into a 500. The
    replacement drops such a connection instead (see ``close_session``).
    """
    from web_server.database import close_session

    app.teardown_appcontext_funcs[:] = [
        func
        for func in app.teardown_appcontext_funcs
        if getattr(func, "__func__", None) is not type(db)._teardown_session
    ]
    app.teardown_appcontext(lambda exc: close_session(db.session))


def _register_error_handlers(app: Flask) -> None:
    from web_server.errors import register_error_handlers

    register_error_handlers(app)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.before_request
    def refuse_large_bodies() -> None:
        # Werkzeug refuses a body over MAX_CONTENT_LENGTH when a view reads it (and a streamed
        # one past the limit: web_server/bodies.py); this answers every request whose declared
        # length is over it, read or not, before any work. Either way: a 413 problem, and the
        # body is never read whole.
        limit = app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            raise too_large(limit)

    @app.after_request
    def add_standard_headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/") and request.path != "/api/v1/docs":
            response.headers.setdefault("Cache-Control", "no-store")
        if request.path == "/api/v1/docs":
            # The docs page reaches nothing but the gateway: Redoc is served from our static
            # folder, and its badge's logo (on Redocly's CDN) is refused, not fetched.
            response.headers.setdefault("Content-Security-Policy", _DOCS_CSP)
        response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
        hsts = app.config.get("HSTS_SECONDS") or 0
        if app.config["ENV"] == "production" and hsts:
            # Production runs behind TLS only (docs/operations.md); browsers then never try http.
            response.headers.setdefault("Strict-Transport-Security", f"max-age={int(hsts)}")
        return response


class AsciiIntegerConverter(IntegerConverter):
    r"""Werkzeug's ``int`` converter with ASCII digits only.

    Its ``\d+`` takes any script's digits and ``int()`` reads them, so ``/accounts/１`` (full
    width) and ``/accounts/١`` (Arabic-Indic) would both name account 1.
    """

    regex = r"[0-9]+"


def _init_routing(app: Flask) -> None:
    # Before any rule is added: a rule binds its converter when it is registered.
    app.url_map.converters["int"] = AsciiIntegerConverter


def _register_blueprints(app: Flask) -> None:
    from web_server.api import init_api
    from web_server.health import bp as health_bp
    from web_server.monitoring import bp as monitoring_bp
    from web_server.ui import bp as ui_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(monitoring_bp)
    # Browsers ask for /favicon.ico on every page; a 404 there is a console error on each.
    app.add_url_rule(
        "/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"), methods=["GET"]
    )
    app.register_blueprint(ui_bp)
    init_api(app)
    from web_server.services import audit

    audit.install(app)  # every mutating call of an admin key goes on the audit log


def _register_cli(app: Flask) -> None:
    from web_server.cli import register_commands

    register_commands(app)
