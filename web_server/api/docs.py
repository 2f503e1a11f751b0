"""The OpenAPI 3.1 document: problem+json errors, each status an operation can answer, examples.

flask-smorest writes the document from the views' decorators. This module makes it say what the
gateway serves: every error is ``application/problem+json`` (:class:`ProblemSchema`); each
operation lists every status it can answer (:meth:`Blueprint.problems`, over the statuses every
operation shares, :data:`COMMON_STATUSES`), each status a response component that names the
stable codes behind it; there is no catch-all ``default`` response.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from http import HTTPStatus
from typing import Any, TypeVar

from flask_smorest import Api as SmorestApi
from marshmallow import INCLUDE, Schema, fields

from web_server.api.input import MAX_JSON_DEPTH, MAX_JSON_NUMBER_LENGTH
from web_server.api.input import Blueprint as InputBlueprint
from web_server.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

__all__ = ["COMMON_STATUSES", "STATUS_CODES", "Api", "Blueprint", "ProblemSchema"]

F = TypeVar("F", bound=Callable[..., Any])

#: What any operation of the API may answer: no or a bad key, a body over the size limit, an
#: unexpected failure, the database out of reach.
COMMON_STATUSES = (401, 413, 500, 503)

#: Each error status and the stable ``code`` values it carries.
STATUS_CODES: dict[int, tuple[str, str]] = {
    400: (
        "invalid_json",
        "The body is not JSON the gateway reads: not UTF-8, malformed, nested deeper than "
        f"{MAX_JSON_DEPTH} levels, a number longer than {MAX_JSON_NUMBER_LENGTH} characters, "
        "a duplicate key, NaN or Infinity.",
    ),
    401: ("unauthorized", "No API key, or not a valid one (`Authorization: Bearer gw_…`)."),
    403: (
        "forbidden",
        "The key lacks the operation's scope, may not use this account, or is limited to some "
        "accounts where the operation needs an unrestricted `admin` key.",
    ),
    404: ("not_found", "No such resource (or none this key may see)."),
    409: (
        "conflict",
        "The request conflicts with the resource's state: `conflict`, `idempotency_conflict` "
        "(the key came with another body), `order_in_flight` (the first request with the key "
        "is still at the broker: retry after `retry_after`), `duplicate_order`, `market_closed`.",
    ),
    413: (
        "payload_too_large",
        "The body is larger than `GATEWAY_MAX_CONTENT_LENGTH` (65536 bytes by default).",
    ),
    415: ("unsupported_media_type", "A body that is not `application/json`."),
    422: (
        "validation_failed",
        "The input is well-formed but not acceptable: `validation_failed` with `errors` by "
        "field (`json`, `query`, `path` for the API's own checks), `symbol_unknown`, "
        "`symbol_delisted`, `symbol_suspended`, `symbol_halted`, a pre-trade refusal "
        "(`kill_switch_engaged`, `krx_price_band`, `krx_session_closed`, `nxt_not_eligible`, "
        "`risk_order_notional`, `risk_order_quantity`, `risk_daily_notional`, `risk_daily_count`, "
        "`risk_open_orders`, `risk_symbol_not_allowed`, `risk_side_not_allowed`, "
        "`risk_designated`, `risk_notional_unknown`), or the broker's "
        "`broker_rejected`, `insufficient_funds`, `invalid_order` (with `broker_code`).",
    ),
    424: ("broker_auth_failed", "The broker refused the account's keys."),
    429: (
        "broker_rate_limited",
        "The broker's rate or token-issuance limit; `retry_after` says when to try again.",
    ),
    500: ("internal_error", "An unexpected failure; the request id identifies it in the logs."),
    502: (
        "broker_error",
        "The broker answered something unusable (`broker_error`), or an order was sent and its "
        "answer lost (`order_state_unknown`: the reconciler settles it, never by resending).",
    ),
    503: (
        "broker_unavailable",
        "A broker or the database cannot be reached right now (`broker_unavailable`, "
        "`broker_maintenance`, `database_unavailable`), or the process has as many orders at "
        "the brokers as it may (`gateway_busy`); nothing took effect, retry later.",
    ),
    504: ("broker_timeout", "The broker did not answer in time; the request was never sent."),
}


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every API error is rendered."""

    class Meta:
        """Problem types may add members of their own (RFC 9457 §3.2)."""

        unknown = INCLUDE

    type = fields.String(required=True, metadata={"format": "uri"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String(required=True, metadata={"description": "Stable error code"})
    instance = fields.String()
    request_id = fields.String()
    errors = fields.Dict(
        metadata={
            "description": "Field problems: by location (`json`, `query`, `path`), then by field"
        }
    )
    broker = fields.String(metadata={"description": "The broker that answered"})
    broker_code = fields.String(metadata={"description": "The broker's own error code"})
    broker_message = fields.String(metadata={"description": "The broker's own message"})
    retry_after = fields.Float(metadata={"description": "Seconds to wait before a retry"})


def _problem_example(status: int, code: str) -> dict[str, Any]:
    example: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": STATUS_CODES[status][1],
        "code": code,
        "instance": "/api/v1/…#req_5f0c2a9e",
        "request_id": "5f0c2a9e",
    }
    if status == 422:
        example["errors"] = {"json": {"quantity": ["must be greater than 0"]}}
    return example


class Api(SmorestApi):
    """flask-smorest's Api: problem+json errors, no catch-all response, our error handling.

    The gateway maps every error to a response once (``web_server.errors``); smorest's own
    handler would render HTTP errors in a second, different shape.
    """

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:
        return None

    def _register_responses(self) -> None:
        """Register one problem+json response per error status, naming its stable codes."""
        for status, (code, description) in STATUS_CODES.items():
            response: dict[str, Any] = {
                "description": f"`{code}`: {description}",
                "content": {
                    PROBLEM_CONTENT_TYPE: {
                        "schema": ProblemSchema,
                        "example": _problem_example(status, code),
                    }
                },
            }
            if status in (429, 503):
                response["headers"] = {"Retry-After": _RETRY_AFTER}
            self.spec.components.response(HTTPStatus(status).name, response, lazy=True)


class Blueprint(InputBlueprint):
    """The API's blueprint: strict input (:mod:`web_server.api.input`) and documented errors."""

    def problems(self, *statuses: int) -> Callable[[F], F]:
        """Document that the view may answer these error statuses (and :data:`COMMON_STATUSES`).

        Each becomes a reference to the status's problem+json response component.
        """
        wanted = sorted(set(statuses) | set(COMMON_STATUSES))

        def decorator(view: F) -> F:
            # What ``alt_response(status, response=name)`` stores, without its wrapper per
            # status: a dozen wrappers around every view cost each request their calls.
            apidoc = deepcopy(getattr(view, "_apidoc", {}))
            responses = apidoc.setdefault("response", {}).setdefault("responses", {})
            for status in wanted:
                responses.setdefault(status, []).append(HTTPStatus(status).name)
            view._apidoc = apidoc  # type: ignore[attr-defined]
            return view

        return decorator
