"""``/api/v1/orders``: place (idempotent), look up, list and cancel orders (DESIGN §5)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate

from brokers.statuses import OrderStatus
from web_server.api.auth import current_key, scoped
from web_server.services import orders as orders_service

blp = Blueprint("orders_api", __name__, url_prefix="/api/v1/orders", description="Orders")

_POSITIVE = validate.Range(min=0, min_inclusive=False)
ACCOUNT_ID = validate.Range(min=1, max=2**31 - 1)
SYMBOL = validate.Regexp(r"^[A-Za-z0-9-]{1,32}$", error="a symbol such as 005930, KRW-BTC, BTCUSDT")


class DecimalString(fields.Decimal):
    """A decimal sent as a JSON string (DESIGN §3: money never travels as a float).

    Bounded so that no absurd value reaches a broker or the database: at most 15 digits before
    the point and 12 after.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError('Send decimals as strings, e.g. "10" or "70000.5".')
        number = super()._deserialize(value, attr, data, **kwargs)
        if number is not None and (
            not number.is_finite() or number.adjusted() >= 15 or -number.as_tuple().exponent > 12
        ):
            raise ValidationError("Out of range: at most 15 digits before the point and 12 after.")
        return number


class OrderRequestSchema(Schema):
    """An order; money and quantities are decimal strings."""

    account_id = fields.Integer(required=True, strict=True, validate=ACCOUNT_ID)
    symbol = fields.String(required=True, validate=SYMBOL, metadata={"example": "005930"})
    side = fields.String(required=True, validate=validate.OneOf(["BUY", "SELL"]))
    type = fields.String(required=True, validate=validate.OneOf(["LIMIT", "MARKET"]))
    quantity = DecimalString(required=True, validate=_POSITIVE, metadata={"example": "10"})
    limit_price = DecimalString(validate=_POSITIVE, metadata={"example": "70000"})
    route = fields.String(validate=validate.OneOf(["KRX", "NXT", "SOR"]))


class OrderSchema(Schema):
    """An order as the gateway tracks it."""

    id = fields.UUID()
    account_id = fields.Integer()
    symbol = fields.String()
    side = fields.String()
    type = fields.String()
    quantity = fields.Decimal(as_string=True)
    limit_price = fields.Decimal(as_string=True, allow_none=True)
    route = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(OrderStatus)})
    client_order_id = fields.String()
    broker_order_id = fields.String(allow_none=True)
    filled_quantity = fields.Decimal(as_string=True)
    average_fill_price = fields.Decimal(as_string=True, allow_none=True)
    reject_code = fields.String(allow_none=True)
    reject_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OrderListArgs(Schema):
    """Filters and the page cursor of an order listing."""

    account_id = fields.Integer(validate=ACCOUNT_ID)
    status = fields.String(validate=validate.OneOf(list(OrderStatus)))
    symbol = fields.String(validate=SYMBOL)
    cursor = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class OrderPageSchema(Schema):
    """A page of orders, newest first."""

    orders = fields.List(fields.Nested(OrderSchema))
    next_cursor = fields.String(allow_none=True)


@blp.route("")
class OrderList(MethodView):
    """Place and list orders."""

    @scoped("orders:write")
    @blp.arguments(OrderRequestSchema)
    @blp.response(201, OrderSchema)
    @blp.doc(
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": True,
                "schema": {"type": "string"},
            }
        ]
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Place an order, once per Idempotency-Key (a replay answers 200 with the same order)."""
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
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List orders, newest first; follow ``next_cursor`` for the next page."""
        rows, next_cursor = orders_service.list_orders(current_key(), **args)
        return {"orders": [orders_service.order_view(o) for o in rows], "next_cursor": next_cursor}


@blp.route("/<uuid:order_id>")
class OrderItem(MethodView):
    """One order."""

    @scoped("orders:read")
    @blp.response(200, OrderSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Return one order."""
        return orders_service.order_view(orders_service.get_order(current_key(), order_id))


@blp.route("/<uuid:order_id>/cancel")
class OrderCancel(MethodView):
    """Cancel an order."""

    @scoped("orders:write")
    @blp.response(200, OrderSchema)
    def post(self, order_id: uuid.UUID) -> dict[str, Any]:
        """Ask the broker to cancel the open remainder of an order."""
        return orders_service.order_view(orders_service.cancel_order(current_key(), order_id))
