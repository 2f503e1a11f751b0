"""The gateway's one error hierarchy, and its one mapping to HTTP.

Every error a service, an adapter or the scheduler raises is a ``GatewayError``. Each class
carries a stable ``code`` (part of the API contract), an HTTP status and a title. The tree::

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
        ├── BrokerRejected               permanent: do not retry as-is
        │   ├── BrokerAuthFailed         broker_auth_failed       424
        │   ├── InsufficientFunds        insufficient_funds       422
        │   ├── InvalidOrder             invalid_order            422
        │   │   ├── OrderNotFound        order_not_found          404
        │   │   └── DuplicateOrder       duplicate_order          409
        │   └── MarketClosed             market_closed            409
        ├── BrokerUnavailable            transient: safe to retry later (retry_after)
        │   ├── BrokerRateLimited        broker_rate_limited      429
        │   ├── BrokerTimeout            broker_timeout           504  (never sent)
        │   └── BrokerMaintenance        broker_maintenance       503
        └── OrderStateUnknown            order_state_unknown      502  (sent, no answer: reconcile)

Constructors only store fields; they never log or do I/O, so an error can be made anywhere.
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

PROBLEM_TYPE_BASE = "https://errors.trading-gateway.dev/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code = "gateway_error"
    http_status = 500
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.extra = extra or {}

    def problem_fields(self) -> dict[str, Any]:
        """Return the fields this error adds to its problem body beyond the RFC's own."""
        fields: dict[str, Any] = dict(self.extra)
        if self.errors:
            fields["errors"] = self.errors
        return fields


class ConfigError(GatewayError):
    """A setting is missing or invalid; the message says how to fix it."""

    code = "config_error"
    title = "Configuration error"


class SecretUnreadable(GatewayError):
    """A stored secret cannot be decrypted: its key is missing, wrong, or the value was moved."""

    code = "secret_unreadable"
    title = "Stored secret cannot be decrypted"


class BadRequest(GatewayError):
    """The request is malformed."""

    code = "bad_request"
    http_status = 400
    title = "Bad request"


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


class BrokerError(GatewayError):
    """A broker said no, or did not answer. Keeps the broker's own code and message."""

    code = "broker_error"
    http_status = 502
    title = "Broker error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        broker: str | None = None,
        broker_code: str | None = None,
        broker_message: str | None = None,
        retry_after: float | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, errors=errors)
        self.broker = broker
        self.broker_code = broker_code
        self.broker_message = broker_message
        self.retry_after = retry_after

    def problem_fields(self) -> dict[str, Any]:
        """Add the broker's identity and code to the problem body."""
        fields = super().problem_fields()
        for name in ("broker", "broker_code", "broker_message", "retry_after"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields


class BrokerRejected(BrokerError):
    """Permanent: the broker refused the request; sending it again as-is will fail again."""

    code = "broker_rejected"
    http_status = 422
    title = "Broker rejected the request"


class BrokerAuthFailed(BrokerRejected):
    """The broker rejected our stored credentials or token."""

    code = "broker_auth_failed"
    http_status = 424
    title = "Broker rejected the credentials"


class InsufficientFunds(BrokerRejected):
    """Not enough cash or holdings for the order."""

    code = "insufficient_funds"
    title = "Insufficient funds"


class InvalidOrder(BrokerRejected):
    """The broker found the order invalid (price unit, quantity, symbol…)."""

    code = "invalid_order"
    title = "Invalid order"


class OrderNotFound(InvalidOrder):
    """The broker does not know the order."""

    code = "order_not_found"
    http_status = 404
    title = "Order not found at the broker"


class DuplicateOrder(InvalidOrder):
    """The broker already has an order with this client order id."""

    code = "duplicate_order"
    http_status = 409
    title = "Duplicate order"


class MarketClosed(BrokerRejected):
    """The market does not accept this order now."""

    code = "market_closed"
    http_status = 409
    title = "Market closed"


class BrokerUnavailable(BrokerError):
    """Transient: the request did not take effect; it is safe to retry later."""

    code = "broker_unavailable"
    http_status = 503
    title = "Broker unavailable"


class BrokerRateLimited(BrokerUnavailable):
    """The broker's rate or issuance limit was hit."""

    code = "broker_rate_limited"
    http_status = 429
    title = "Broker rate limit"


class BrokerTimeout(BrokerUnavailable):
    """The broker could not be reached; the request was never sent."""

    code = "broker_timeout"
    http_status = 504
    title = "Broker timeout"


class BrokerMaintenance(BrokerUnavailable):
    """The broker is in a maintenance window."""

    code = "broker_maintenance"
    title = "Broker maintenance"


class OrderStateUnknown(BrokerError):
    """The request was sent but no answer came: reconcile, never resend blindly."""

    code = "order_state_unknown"
    http_status = 502
    title = "Order state unknown"


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
    if exc.http_status >= 500:
        log.error("%s: %s", exc.code, exc.detail)
    response = _render(exc.http_status, exc.code, exc.title, exc.detail, exc.problem_fields())
    if exc.http_status == 401 and isinstance(response, Response):
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
