"""The errors a broker call can end in, each with a stable ``code`` (part of the API contract).

The tree (the HTTP status of each is decided once, in ``web_server.errors``)::

    GatewayError                         gateway_error       root of every error raised on purpose
    ├── ConfigError                      config_error        a missing setting or part
    ├── BadRequest                       bad_request         a call it cannot serve
    └── BrokerError                      broker_error        keeps the broker's code
        ├── BrokerRejected               broker_rejected     permanent: do not retry as-is
        │   ├── BrokerAuthFailed         broker_auth_failed
        │   ├── InsufficientFunds        insufficient_funds
        │   ├── InvalidOrder             invalid_order
        │   │   ├── OrderNotFound        order_not_found
        │   │   └── DuplicateOrder       duplicate_order
        │   └── MarketClosed             market_closed
        ├── BrokerUnavailable            broker_unavailable  transient: safe to retry later
        │   ├── BrokerRateLimited        broker_rate_limited
        │   │   └── RateLimited          rate_limited        paced by the gateway: never sent
        │   ├── BrokerTimeout            broker_timeout      never sent
        │   └── BrokerMaintenance        broker_maintenance
        └── OrderStateUnknown            order_state_unknown sent, no answer: reconcile

The root lives here, not in the web app, so that an adapter can raise without importing Flask and
the app's ``except GatewayError`` still catches everything. The gateway's own errors (not found,
conflict, validation…) subclass the same root in ``web_server.errors``.

Constructors only store fields; they never log or do I/O, so an error can be made anywhere.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "BrokerAuthFailed",
    "BrokerError",
    "BrokerMaintenance",
    "BrokerRateLimited",
    "BrokerRejected",
    "BrokerTimeout",
    "BrokerUnavailable",
    "ConfigError",
    "DuplicateOrder",
    "GatewayError",
    "InsufficientFunds",
    "InvalidOrder",
    "MarketClosed",
    "OrderNotFound",
    "OrderStateUnknown",
    "RateLimited",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code = "gateway_error"
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


class BadRequest(GatewayError):
    """The request is malformed, or asks for something this broker cannot do."""

    code = "bad_request"
    title = "Bad request"


class BrokerError(GatewayError):
    """A broker said no, or did not answer. Keeps the broker's own code and message."""

    code = "broker_error"
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
    title = "Broker rejected the request"


class BrokerAuthFailed(BrokerRejected):
    """The broker rejected our stored credentials or token."""

    code = "broker_auth_failed"
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
    title = "Order not found at the broker"


class DuplicateOrder(InvalidOrder):
    """The broker already has an order with this client order id."""

    code = "duplicate_order"
    title = "Duplicate order"


class MarketClosed(BrokerRejected):
    """The market does not accept this order now."""

    code = "market_closed"
    title = "Market closed"


class BrokerUnavailable(BrokerError):
    """Transient: the request did not take effect; it is safe to retry later."""

    code = "broker_unavailable"
    title = "Broker unavailable"


class BrokerRateLimited(BrokerUnavailable):
    """The broker's rate or issuance limit was hit."""

    code = "broker_rate_limited"
    title = "Broker rate limit"


class RateLimited(BrokerRateLimited):
    """The gateway's own pacing held the request back: it was never sent.

    No slot on the broker's budget came before the deadline, or the broker has banned the budget
    (``banned``) until ``retry_after`` seconds from now. ``scope`` names the budget, never a key.
    """

    code = "rate_limited"
    title = "Rate limited"

    def __init__(
        self,
        detail: str | None = None,
        *,
        broker: str | None = None,
        retry_after: float | None = None,
        scope: str | None = None,
        banned: bool = False,
    ) -> None:
        super().__init__(detail, broker=broker, retry_after=retry_after)
        self.scope = scope
        self.banned = banned

    def problem_fields(self) -> dict[str, Any]:
        """Add the budget's scope and whether the broker banned it."""
        fields = super().problem_fields()
        if self.scope is not None:
            fields["scope"] = self.scope
        fields["banned"] = self.banned
        return fields


class BrokerTimeout(BrokerUnavailable):
    """The broker could not be reached; the request was never sent."""

    code = "broker_timeout"
    title = "Broker timeout"


class BrokerMaintenance(BrokerUnavailable):
    """The broker is in a maintenance window."""

    code = "broker_maintenance"
    title = "Broker maintenance"


class OrderStateUnknown(BrokerError):
    """The request was sent but no answer came: reconcile, never resend blindly."""

    code = "order_state_unknown"
    title = "Order state unknown"
