"""``/api/v1/webhooks``: a key's webhook subscriptions and their deliveries (issue 14)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.api.input import Integer, Text
from web_server.extensions import db
from web_server.services import webhooks
from web_server.services.events import EVENT_TYPES

blp = Blueprint(
    "webhooks_api", __name__, url_prefix="/api/v1/webhooks", description="Webhook subscriptions"
)

ACCOUNT_ID = validate.Range(min=1, max=2**31 - 1)


class SubscriptionRequestSchema(Schema):
    """A receiver, the event types it wants (all by default) and accounts (all by default)."""

    url = Text(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"example": "https://strategy.example.com/hooks/gateway"},
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        validate=validate.Length(max=len(EVENT_TYPES)),
        metadata={"example": ["fill", "filled", "cancelled"]},
    )
    account_ids = fields.List(
        Integer(validate=ACCOUNT_ID), validate=validate.Length(max=100), metadata={"example": [1]}
    )


class SubscriptionSchema(Schema):
    """A webhook subscription (its secret is shown only when it is created)."""

    id = fields.Integer()
    url = fields.String()
    event_types = fields.List(fields.String(), allow_none=True)
    account_ids = fields.List(fields.Integer(), allow_none=True)
    start_after_event_id = fields.Integer(
        metadata={"description": "Events up to this id came before the subscription"}
    )
    created_at = fields.DateTime()


class CreatedSubscriptionSchema(SubscriptionSchema):
    """A new subscription with its signing secret: store it now, it is never shown again."""

    secret = fields.String(
        metadata={"description": "Standard Webhooks secret (`whsec_…`) to verify signatures"}
    )


class SubscriptionListSchema(Schema):
    """A key's subscriptions."""

    subscriptions = fields.List(fields.Nested(SubscriptionSchema))


class DeliverySchema(Schema):
    """One event sent (or to be sent) to a subscription, and its outcome."""

    id = fields.Integer()
    webhook_id = fields.String(metadata={"description": "The `webhook-id` header: `evt_<id>`"})
    event_id = fields.Integer()
    order_id = fields.UUID()
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DeliveryArgs(Schema):
    """Filters of a delivery listing."""

    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))
    after = Integer(in_query=True, validate=validate.Range(min=0, max=10**18))
    limit = Integer(in_query=True, load_default=100, validate=validate.Range(min=1, max=500))


class DeliveryPageSchema(Schema):
    """Deliveries, oldest first; pass the last id as ``after`` for more."""

    deliveries = fields.List(fields.Nested(DeliverySchema))


@blp.route("")
class Subscriptions(MethodView):
    """Subscribe and list."""

    @scoped("orders:read")
    @blp.arguments(
        SubscriptionRequestSchema,
        example={
            "url": "https://strategy.example.com/hooks/gateway",
            "event_types": ["fill", "filled", "cancelled", "rejected"],
            "account_ids": [1],
        },
    )
    @blp.response(201, CreatedSubscriptionSchema)
    @blp.problems(400, 403, 415, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Subscribe a receiver to the order events of the key's accounts.

        Deliveries are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
        `webhook-signature`) with the secret returned here, once. A receiver on a private or
        loopback network is refused unless the operator allows it.
        """
        row, secret = webhooks.create_subscription(
            db.session,
            current_key(),
            url=body["url"],
            event_types=body.get("event_types"),
            account_ids=body.get("account_ids"),
        )
        db.session.commit()
        return {**webhooks.subscription_view(row), "secret": secret}

    @scoped("orders:read")
    @blp.response(200, SubscriptionListSchema)
    @blp.problems(403)
    def get(self) -> dict[str, Any]:
        """List this key's subscriptions."""
        rows = webhooks.list_subscriptions(db.session, current_key())
        return {"subscriptions": [webhooks.subscription_view(r) for r in rows]}


@blp.route("/<int(min=1, max=2147483647):subscription_id>")
class Subscription(MethodView):
    """One subscription."""

    @scoped("orders:read")
    @blp.response(200, SubscriptionSchema)
    @blp.problems(403, 404)
    def get(self, subscription_id: int) -> dict[str, Any]:
        """Return one of this key's subscriptions."""
        row = webhooks.get_subscription(db.session, current_key(), subscription_id)
        return webhooks.subscription_view(row)

    @scoped("orders:read")
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self, subscription_id: int) -> None:
        """Delete a subscription and its deliveries; nothing more is sent to it."""
        webhooks.delete_subscription(db.session, current_key(), subscription_id)
        db.session.commit()


@blp.route("/<int(min=1, max=2147483647):subscription_id>/deliveries")
class Deliveries(MethodView):
    """A subscription's deliveries."""

    @scoped("orders:read")
    @blp.arguments(DeliveryArgs, location="query")
    @blp.response(200, DeliveryPageSchema)
    @blp.problems(403, 404, 422)
    def get(self, args: dict[str, Any], subscription_id: int) -> dict[str, Any]:
        """List a subscription's deliveries and their outcomes, oldest first."""
        rows = webhooks.list_deliveries(
            db.session,
            current_key(),
            subscription_id,
            status=args.get("status"),
            after=args.get("after") or 0,
            limit=args["limit"],
        )
        return {"deliveries": [webhooks.delivery_view(r) for r in rows]}
