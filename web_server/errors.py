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
    ├── Unauthorized                     unauthorized             401
    ├── Forbidden                        forbidden                403
    ├── NotFound                         not_found                404
    ├── MethodNotAllowed                 method_not_allowed       405
    ├── Conflict                         conflict                 409
    │   └── IdempotencyConflict          idempotency_conflict     409
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
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
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
    "BrokerRejected",
    "BrokerTimeout",
    "BrokerUnavailable",
    "ConfigError",
    "Conflict",
    "DuplicateOrder",
    "Forbidden",
    "GatewayError",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidOrder",
    "MarketClosed",
    "MethodNotAllowed",
    "NotFound",
    "OrderNotFound",
    "OrderStateUnknown",
    "SecretUnreadable",
    "Unauthorized",
    "ValidationFailed",
    "http_status",
    "problem_response",
    "register_error_handlers",
]

PROBLEM_TYPE_BASE = "https://errors.trading-gateway.dev/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

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
    """The request conflicts with the resource's state."""

    code = "conflict"
    http_status = 409
    title = "Conflict"


class IdempotencyConflict(Conflict):
    """The same idempotency key came with a different request body."""

    code = "idempotency_conflict"
    title = "Idempotency key reused with a different request"


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


def _handle_gateway_error(exc: GatewayError) -> Any:
    status = http_status(exc)
    if status >= 500:
        log.error("%s: %s", exc.code, exc.detail)
    response = _render(status, exc.code, exc.title, exc.detail, exc.problem_fields())
    if status == 401 and isinstance(response, Response):
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
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


def register_error_handlers(app: Flask) -> None:
    """Map every error to a response, once for the whole app."""
    app.register_error_handler(GatewayError, _handle_gateway_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
