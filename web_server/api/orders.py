"""``/api/v1/orders``: place (idempotent), look up, list, cancel and amend orders, and fills."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from brokers.statuses import OrderStatus
from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.api.input import DecimalString, FullMatch, Integer
from web_server.services import orders as orders_service

blp = Blueprint("orders_api", __name__, url_prefix="/api/v1/orders", description="Orders")

#: The statuses of a call that reaches the broker, beyond the API's own.
BROKER_STATUSES = (400, 409, 422, 424, 429, 502, 503, 504)
ACCOUNT_ID = validate.Range(min=1, max=2**31 - 1)
SYMBOL = FullMatch(r"^[A-Za-z0-9-]{1,32}$", error="a symbol such as 005930, KRW-BTC, BTCUSDT")
CURSOR = FullMatch(r"^[A-Za-z0-9_-]{1,200}$", error="a next_cursor of an earlier page")


class OrderRequestSchema(Schema):
    r"""An order; quantities and prices are decimal strings (``^[0-9]+(\.[0-9]+)?$``).

    Exactly one of ``quantity`` and ``quote_amount``: ``quote_amount`` (what to spend, in the
    quote currency) is for a MARKET BUY on UPBIT or BITHUMB only, which buy at market by amount
    (and there it is required); anything else is 422 ``validation_failed``.
    """

    account_id = Integer(required=True, validate=ACCOUNT_ID, metadata={"example": 1})
    symbol = fields.String(required=True, validate=SYMBOL, metadata={"example": "005930"})
    side = fields.String(required=True, validate=validate.OneOf(["BUY", "SELL"]))
    type = fields.String(required=True, validate=validate.OneOf(["LIMIT", "MARKET"]))
    quantity = DecimalString(metadata={"example": "10"})
    quote_amount = DecimalString(
        metadata={
            "example": "50000",
            "description": "UPBIT/BITHUMB MARKET BUY only: the amount to spend (quote currency)",
        }
    )
    limit_price = DecimalString(metadata={"example": "70000"})
    route = fields.String(validate=validate.OneOf(["KRX", "NXT", "SOR"]))

    @validates_schema
    def _one_size(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("quantity" in data) == ("quote_amount" in data):
            raise ValidationError(
                "send exactly one of quantity and quote_amount", field_name="quantity"
            )


class AmendRequestSchema(Schema):
    """A new quantity and/or limit price for an open LIMIT order (at least one)."""

    quantity = DecimalString(
        metadata={"example": "5", "description": "the replacement's quantity (default: the rest)"}
    )
    limit_price = DecimalString(metadata={"example": "71000"})

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "quantity" not in data and "limit_price" not in data:
            raise ValidationError("send quantity, limit_price or both", field_name="quantity")


class FillSchema(Schema):
    """One execution of an order, written once."""

    id = fields.UUID()
    broker_fill_id = fields.String(
        allow_none=True, metadata={"description": "the broker's execution id, where it has one"}
    )
    key = fields.String(
        metadata={
            "description": "unique per order: the broker's execution id, or for KIS/Kiwoom "
            "``cum:<cumulative filled quantity>``"
        }
    )
    quantity = DecimalString(metadata={"example": "3"})
    price = DecimalString(metadata={"example": "70000"})
    currency = fields.String(allow_none=True, metadata={"example": "KRW"})
    fee = DecimalString(positive=False, allow_none=True, metadata={"example": "31"})
    tax = DecimalString(positive=False, allow_none=True, metadata={"example": "0"})
    fee_currency = fields.String(allow_none=True, metadata={"example": "KRW"})
    filled_at = fields.DateTime()


class OrderSchema(Schema):
    """An order as the gateway tracks it."""

    id = fields.UUID()
    account_id = fields.Integer()
    symbol = fields.String()
    side = fields.String()
    type = fields.String()
    quantity = DecimalString(
        allow_none=True, metadata={"example": "10", "description": "null for a buy by amount"}
    )
    quote_amount = DecimalString(allow_none=True, metadata={"example": "50000"})
    limit_price = DecimalString(allow_none=True, metadata={"example": "70000"})
    route = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(OrderStatus)})
    client_order_id = fields.String()
    broker_order_id = fields.String(allow_none=True)
    broker_order_date = fields.Date(
        allow_none=True,
        metadata={"description": "KIS/Kiwoom: the order's KST date (numbers restart daily)"},
    )
    attention = fields.Dict(
        allow_none=True,
        metadata={
            "description": "Why the operator must look at this order (``reason``), with the "
            "broker rows concerned (``broker_rows``); null when nothing is wrong"
        },
    )
    filled_quantity = DecimalString(positive=False, metadata={"example": "0"})
    net_filled_quantity = DecimalString(
        positive=False,
        allow_none=True,
        metadata={
            "description": "filled_quantity less fees charged in the base asset (a Binance buy "
            "without BNB): what the holdings changed by; null before the first fill"
        },
    )
    average_fill_price = DecimalString(allow_none=True)
    fee_total = DecimalString(positive=False, metadata={"example": "0"})
    tax_total = DecimalString(positive=False, metadata={"example": "0"})
    fee_currency = fields.String(allow_none=True, metadata={"example": "KRW"})
    replaces_order_id = fields.UUID(
        allow_none=True, metadata={"description": "an amend: the order this one replaced"}
    )
    replaced_by_order_id = fields.UUID(
        allow_none=True, metadata={"description": "the amend that replaced this order"}
    )
    reject_code = fields.String(allow_none=True)
    reject_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OrderDetailSchema(OrderSchema):
    """An order with its fills, oldest first."""

    fills = fields.List(fields.Nested(FillSchema))


class FillListSchema(Schema):
    """An order's fills, oldest first."""

    fills = fields.List(fields.Nested(FillSchema))


class OrderListArgs(Schema):
    """Filters and the page cursor of an order listing."""

    account_id = Integer(in_query=True, validate=ACCOUNT_ID)
    status = fields.String(validate=validate.OneOf(list(OrderStatus)))
    symbol = fields.String(validate=SYMBOL)
    cursor = fields.String(validate=CURSOR)
    limit = Integer(in_query=True, load_default=100, validate=validate.Range(min=1, max=500))


class OrderPageSchema(Schema):
    """A page of orders, newest first."""

    orders = fields.List(fields.Nested(OrderSchema))
    next_cursor = fields.String(allow_none=True)


_IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "description": "1 to 200 printable ASCII characters; one order per key and API key.",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
    "example": "strategy-7-20250101-0001",
}

_ORDER_EXAMPLE = {
    "account_id": 1,
    "symbol": "005930",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "10",
    "limit_price": "70000",
}


@blp.route("")
class OrderList(MethodView):
    """Place and list orders."""

    @scoped("orders:write")
    @blp.arguments(OrderRequestSchema, example=_ORDER_EXAMPLE)
    @blp.response(201, OrderSchema)
    @blp.alt_response(
        200,
        schema=OrderSchema,
        description="A replay: the same Idempotency-Key and body as an earlier request; the "
        "order that request made (header `Idempotent-Replayed: true`).",
        headers={"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
    )
    @blp.problems(403, 404, 415, *BROKER_STATUSES)
    @blp.doc(parameters=[_IDEMPOTENCY_KEY])
    def post(self, body: dict[str, Any]) -> Any:
        """Place an order, once per Idempotency-Key (a replay answers 200 with the same order).

        The same key with another body is a 409 `idempotency_conflict`; while the first request
        is still at the broker, a 409 `order_in_flight` with `Retry-After` asks to retry shortly.
        """
        order, replayed = orders_service.place_order(
            current_key(), body, request.headers.get("Idempotency-Key", "")
        )
        view = orders_service.order_view(order)
        if replayed:
            return view, 200, {"Idempotent-Replayed": "true"}
        return view

    @scoped("orders:read")
    @blp.arguments(OrderListArgs, location="query")
    @blp.response(200, OrderPageSchema)
    @blp.problems(403, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List orders, newest first; follow ``next_cursor`` for the next page.

        A key limited to some accounts lists only theirs.
        """
        rows, next_cursor = orders_service.list_orders(current_key(), **args)
        return {"orders": [orders_service.order_view(o) for o in rows], "next_cursor": next_cursor}


@blp.route("/<uuid:order_id>")
class OrderItem(MethodView):
    """One order."""

    @scoped("orders:read")
    @blp.response(200, OrderDetailSchema)
    @blp.problems(403, 404)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Return one order with its fills (404 if this key may not use its account)."""
        return orders_service.order_detail(orders_service.get_order(current_key(), order_id))


@blp.route("/<uuid:order_id>/fills")
class OrderFills(MethodView):
    """An order's fills."""

    @scoped("orders:read")
    @blp.response(200, FillListSchema)
    @blp.problems(403, 404)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Return the order's fills, oldest first, each written once with its fee and tax."""
        order = orders_service.get_order(current_key(), order_id)
        return {"fills": orders_service.fill_views(order)}


@blp.route("/<uuid:order_id>/amend")
class OrderAmend(MethodView):
    """Amend an order."""

    @scoped("orders:write")
    @blp.arguments(AmendRequestSchema, example={"limit_price": "71000"})
    @blp.response(201, OrderSchema)
    @blp.alt_response(
        200,
        schema=OrderSchema,
        description="A replay: the same Idempotency-Key and body as an earlier amend; the "
        "order it made (header `Idempotent-Replayed: true`).",
        headers={"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
    )
    @blp.problems(403, 404, 415, *BROKER_STATUSES)
    @blp.doc(parameters=[_IDEMPOTENCY_KEY])
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> Any:
        """Replace an open LIMIT order by a new one with a new quantity and/or price.

        Answers the **new** order (201), whose `replaces_order_id` is this one; this one ends
        CANCELLED with `replaced_by_order_id`. KIS and Kiwoom modify the order (a new broker
        order number; the whole remainder only), Upbit cancels-and-news, Binance
        cancel-replaces, Bithumb cancels then places. Idempotent with its own Idempotency-Key,
        as a placement is.
        """
        order, replayed = orders_service.amend_order(
            current_key(), order_id, body, request.headers.get("Idempotency-Key", "")
        )
        view = orders_service.order_view(order)
        if replayed:
            return view, 200, {"Idempotent-Replayed": "true"}
        return view


@blp.route("/<uuid:order_id>/cancel")
class OrderCancel(MethodView):
    """Cancel an order."""

    @scoped("orders:write")
    @blp.response(200, OrderSchema)
    @blp.problems(403, 404, *BROKER_STATUSES)
    def post(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Ask the broker to cancel the open remainder of an order (409 if it is closed).

        Safe to repeat: a CANCEL_PENDING order (a cancel whose outcome was lost) is cancelled
        again. An order the broker already closed comes back FILLED, CANCELLED or EXPIRED.
        """
        return orders_service.order_view(orders_service.cancel_order(current_key(), order_id))
