"""The gateway's own errors, and the one mapping of every error to HTTP.

Every error raised on purpose is a ``GatewayError`` with a stable ``code`` (part of the API
contract). The root, the broker error tree and the two errors an adapter may raise about its own
use (``ConfigError``, ``BadRequest``) live in the broker core, :mod:`brokers.errors`, so adapters
never import the web app; this module adds the gateway's own errors and re-exports the core's, so
the app imports every error from here. The tree with HTTP statuses::

    GatewayError                         gateway_error            500
    ├── ConfigError                      config_error             500  (start-up: bad settings)
    ├── SecretUnreadable                 secret_unreadable        500  (missing or wrong key)
    ├── BadRequest                       bad_request              400
    │   └── InvalidJson                  invalid_json             400  (unparseable, too deep, …)
    ├── Unauthorized                     unauthorized             401
    ├── Forbidden                        forbidden                403
    ├── NotFound                         not_found                404
    ├── MethodNotAllowed                 method_not_allowed       405
    ├── Conflict                         conflict                 409  (retry_after: passing)
    │   ├── IdempotencyConflict          idempotency_conflict     409
    │   └── OrderInFlight                order_in_flight          409  (retry_after)
    ├── DatabaseUnavailable              database_unavailable     503  (retry_after)
    │   └── GatewayBusy                  gateway_busy             503  (retry_after)
    ├── ValidationFailed                 validation_failed        422
    │   └── SymbolNotTradable            symbol_*                 422  (see subclasses)
    └── BrokerError                      broker_error             502  (carries broker, broker_code)
        ├── BrokerRejected               broker_rejected          422  permanent: do not retry as-is
        │   ├── BrokerAuthFailed         broker_auth_failed       424
        │   ├── InsufficientFunds        insufficient_funds       422
        │   ├── InvalidOrder             invalid_order            422
        │   │   ├── OrderNotFound        order_not_found          404
        │   │   └── DuplicateOrder       duplicate_order          409
        │   └── MarketClosed             market_closed            409
        ├── BrokerUnavailable            broker_unavailable       503  transient (retry_after)
        │   ├── BrokerRateLimited        broker_rate_limited      429
        │   ├── BrokerTimeout            broker_timeout           504  (never sent)
        │   └── BrokerMaintenance        broker_maintenance       503
        └── OrderStateUnknown            order_state_unknown      502  (sent, no answer: reconcile)

The statuses of the core's classes are in :data:`CORE_HTTP_STATUS`; the gateway's own classes
carry ``http_status``; :func:`http_status` reads both, and nothing else decides a status.

``register_error_handlers`` renders all of them, plus Werkzeug's HTTP errors and any unexpected
exception, exactly once: RFC 9457 ``application/problem+json`` for the API and JSON clients, an HTML
page for the operator's browser. An unexpected exception answers a generic 500 that never contains
the exception's text (it may hold SQL, payloads or secrets); the text goes to the log only.

A lost, refused or exhausted database connection is not a bug but an outage, and the client
should simply come back: whatever raised it (SQLAlchemy, psycopg directly, the pool),
:func:`is_database_unavailable` recognises it and it answers as :class:`DatabaseUnavailable`,
503. Every 429 and 503 carries ``Retry-After`` (the error's ``retry_after``, else one second), and
so does any error that says waiting helps (a 409 "still at the broker").
"""

from __future__ import annotations

import logging
import math
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, render_template, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from brokers.errors import (
    BadRequest,
    BrokerAuthFailed,
    BrokerError,
    BrokerMaintenance,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigError,
    DuplicateOrder,
    GatewayError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
    OrderStateUnknown,
)

__all__ = [
    "CORE_HTTP_STATUS",
    "BadRequest",
    "BrokerAuthFailed",
    "BrokerError",
    "BrokerMaintenance",
    "BrokerRateLimited",
    "GatewayBusy",
    "BrokerRejected",
    "BrokerTimeout",
    "BrokerUnavailable",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "DuplicateOrder",
    "Forbidden",
    "GatewayError",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidJson",
    "InvalidOrder",
    "MarketClosed",
    "MethodNotAllowed",
    "NotFound",
    "OrderInFlight",
    "OrderNotFound",
    "OrderStateUnknown",
    "SecretUnreadable",
    "Unauthorized",
    "ValidationFailed",
    "http_status",
    "is_database_unavailable",
    "problem_response",
    "register_error_handlers",
    "retry_after_header",
]

PROBLEM_TYPE_BASE = "https://errors.trading-gateway.dev/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Seconds a client is told to wait when an error gives no better estimate.
DEFAULT_RETRY_AFTER = 1

log = logging.getLogger(__name__)

#: The HTTP status of each class of the broker core; a subclass not listed takes its parent's.
CORE_HTTP_STATUS: dict[type[GatewayError], int] = {
    GatewayError: 500,
    ConfigError: 500,
    BadRequest: 400,
    BrokerError: 502,
    BrokerRejected: 422,
    BrokerAuthFailed: 424,
    OrderNotFound: 404,
    DuplicateOrder: 409,
    MarketClosed: 409,
    BrokerUnavailable: 503,
    BrokerRateLimited: 429,
    BrokerTimeout: 504,
    OrderStateUnknown: 502,
}


def http_status(error: GatewayError) -> int:
    """Return the HTTP status that answers ``error``.

    A class's own ``http_status`` (the gateway's errors) wins; otherwise the nearest class in
    :data:`CORE_HTTP_STATUS` decides.
    """
    for cls in type(error).__mro__:
        own = cls.__dict__.get("http_status")
        if isinstance(own, int):
            return own
        if cls in CORE_HTTP_STATUS:
            return CORE_HTTP_STATUS[cls]
    return 500


class SecretUnreadable(GatewayError):
    """A stored secret cannot be decrypted: its key is missing, wrong, or the value was moved."""

    code = "secret_unreadable"
    title = "Stored secret cannot be decrypted"


class InvalidJson(BadRequest):
    """The body is not JSON the gateway reads (malformed, too deep, huge number, duplicate key)."""

    code = "invalid_json"
    title = "Invalid JSON body"


class Unauthorized(GatewayError):
    """No or bad credentials."""

    code = "unauthorized"
    http_status = 401
    title = "Authentication required"


class Forbidden(GatewayError):
    """The caller is known but may not do this."""

    code = "forbidden"
    http_status = 403
    title = "Forbidden"


class NotFound(GatewayError):
    """The resource does not exist."""

    code = "not_found"
    http_status = 404
    title = "Not found"


class MethodNotAllowed(GatewayError):
    """The resource exists but not with this method."""

    code = "method_not_allowed"
    http_status = 405
    title = "Method not allowed"


class Conflict(GatewayError):
    """The request conflicts with the resource's state.

    ``retry_after`` (seconds) says that the conflict is passing (another request is working on
    the resource) and when to come back; it becomes the ``Retry-After`` header.
    """

    code = "conflict"
    http_status = 409
    title = "Conflict"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        errors: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, errors=errors, extra=extra)
        self.retry_after = retry_after

    def problem_fields(self) -> dict[str, Any]:
        """Add ``retry_after`` when waiting helps."""
        fields = super().problem_fields()
        if self.retry_after is not None:
            fields["retry_after"] = self.retry_after
        return fields


class IdempotencyConflict(Conflict):
    """The same idempotency key came with a different request body."""

    code = "idempotency_conflict"
    title = "Idempotency key reused with a different request"


class OrderInFlight(Conflict):
    """The first request with this idempotency key has not settled its order yet.

    No order id is handed out until the order has left PENDING_SUBMIT: until then the broker may
    still refuse it before acting (rate limit, outage), and the attempt is withdrawn so the same
    key can start over.
    """

    code = "order_in_flight"
    title = "Order still being placed"


class DatabaseUnavailable(GatewayError):
    """The database could not be reached, dropped the connection, or had no connection free.

    Transient: nothing the request did is half-done (writes are transactions; an order's
    placement records what it learned once the database answers again), so the same request
    may be sent again after ``retry_after`` seconds.
    """

    code = "database_unavailable"
    http_status = 503
    title = "Database unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float = DEFAULT_RETRY_AFTER,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            detail or "The database is not answering right now; retry shortly.", extra=extra
        )
        self.retry_after = retry_after

    def problem_fields(self) -> dict[str, Any]:
        """Add ``retry_after``."""
        return {**super().problem_fields(), "retry_after": self.retry_after}


class GatewayBusy(DatabaseUnavailable):
    """This process already has as many orders at the brokers as its connections allow.

    Each order in flight holds a database connection for its lock while the broker answers; more
    at once than the pool has would leave requests waiting for connections and failing. Nothing
    was stored or sent, so the same request may be sent again after ``retry_after`` seconds.
    """

    code = "gateway_busy"
    title = "Gateway busy"


# What a lost, refused or exhausted connection raises: SQLAlchemy's wrappers of psycopg's errors
# (OperationalError covers a refused or cut connection, an administrator's termination and the
# server shutting down; InterfaceError a connection already closed), the pool's TimeoutError when
# no connection came free in ``pool_timeout``, and psycopg's own errors where code uses psycopg
# directly (the symbol cache).
_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Tell whether ``exc`` means the database could not be used right now (not a bug).

    Besides the errors above, a ``DBAPIError`` that invalidated its connection counts, and so
    does a ``PendingRollbackError`` (a session used again after such a failure) whose cause does.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if not isinstance(current, sa_exc.PendingRollbackError | sa_exc.StatementError):
            return False
        current = current.__cause__ or current.__context__
    return False


class ValidationFailed(GatewayError):
    """The input is well-formed but not acceptable; ``errors`` names the fields."""

    code = "validation_failed"
    http_status = 422
    title = "Validation failed"


# Werkzeug's HTTP errors get stable codes of their own, so a 404 from routing and a NotFound from a
# service look the same to a client.
_HTTP_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def problem_response(
    status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None = None
) -> Response:
    """Build an RFC 9457 problem+json response carrying the request id."""
    request_id = g.get("request_id", "")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": f"{request.path}#req_{request_id}",
        "request_id": request_id,
    }
    body.update(extra or {})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_CONTENT_TYPE
    return response


def _wants_html() -> bool:
    """Tell whether the caller is the operator's browser rather than an API client."""
    if request.path.startswith("/api/"):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _render(status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None) -> Any:
    if _wants_html():
        html = render_template("errors/error.html", status=status, title=title, detail=detail)
        return html, status
    return problem_response(status, code, title, detail, extra)


def retry_after_header(seconds: float | None) -> str:
    """Return ``seconds`` as a ``Retry-After`` value: whole seconds, at least one (RFC 9110)."""
    if seconds is None or not math.isfinite(seconds):
        return str(DEFAULT_RETRY_AFTER)
    return str(max(1, math.ceil(seconds)))


def _handle_gateway_error(exc: GatewayError) -> Any:
    status = http_status(exc)
    if isinstance(exc, DatabaseUnavailable):
        log.warning("%s: %s", exc.code, exc.detail)  # an outage, not a bug: no traceback
    elif status >= 500:
        log.error("%s: %s", exc.code, exc.detail)
    return _respond(exc, status)


def _respond(exc: GatewayError, status: int) -> Response:
    response = _render(status, exc.code, exc.title, exc.detail, exc.problem_fields())
    if isinstance(response, tuple):
        response = Response(response[0], status=response[1], mimetype="text/html")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None or status in (429, 503):
        response.headers["Retry-After"] = retry_after_header(retry_after)
    return response


def _handle_http_exception(exc: HTTPException) -> Any:
    status = exc.code or 500
    code = _HTTP_STATUS_CODES.get(status, "http_error")
    extra: dict[str, Any] = {}
    # webargs (through flask-smorest) aborts with the field messages in ``exc.data``.
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and "messages" in data:
        extra["errors"] = data["messages"]
        code = "validation_failed" if status == 422 else code
    detail = exc.description or exc.name
    if status == 422 and extra:
        detail = "The request has invalid fields; see 'errors'."
    response = _render(status, code, exc.name, detail, extra)
    valid_methods = getattr(exc, "valid_methods", None)
    if valid_methods and isinstance(response, Response):
        # RFC 9110 asks a 405 to say which methods the resource does allow.
        response.headers["Allow"] = ", ".join(sorted(valid_methods))
    return response


def _handle_unexpected(exc: Exception) -> Any:
    if is_database_unavailable(exc):
        # An outage, not a bug: the client is told to come back, the log gets one line.
        log.warning("database_unavailable: %s", type(exc).__name__)
        return _respond(DatabaseUnavailable(), 503)
    # The text of an unexpected exception may hold SQL, broker payloads or secrets: it goes to the
    # log (which redacts known secret shapes) and never into the response.
    log.error("unexpected error", exc_info=exc)
    return _render(
        500,
        "internal_error",
        "Internal error",
        "The gateway failed to handle this request. The request id identifies it in the logs.",
        None,
    )


def _ensure_retry_after(response: Response) -> Response:
    # Whoever answered 429 or 503 (an error above, a view such as /readyz, a Werkzeug abort),
    # the client learns when to come back.
    if response.status_code in (429, 503) and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER)
    return response


def register_error_handlers(app: Flask) -> None:
    """Map every error to a response, once for the whole app; 429 and 503 carry Retry-After."""
    app.register_error_handler(GatewayError, _handle_gateway_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
    app.after_request(_ensure_retry_after)
