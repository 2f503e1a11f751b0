"""``/api/v1/events``: the order event log, as a Server-Sent Events stream or as JSON pages.

``Accept: text/event-stream`` asks for the stream; anything else gets a JSON page. Streams are
long requests: the gateway runs under gunicorn's threaded worker (``gateway serve``), one
thread per open stream (docs/architecture.md, "Order events").
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.api.input import Integer
from web_server.api.orders import OrderSchema
from web_server.errors import ValidationFailed
from web_server.extensions import db
from web_server.services import event_hub
from web_server.services import events as events_service
from web_server.services.events import EVENT_TYPES

blp = Blueprint("events_api", __name__, url_prefix="/api/v1/events", description="Order events")

_EVENT_ID = re.compile(r"^[0-9]{1,18}$")
STREAM = "text/event-stream"


class EventArgs(Schema):
    """Where to start, and how many events a JSON page holds."""

    after = Integer(
        in_query=True,
        validate=validate.Range(min=0, max=10**18),
        metadata={"description": "Events after this id (`Last-Event-ID` wins in a stream)"},
    )
    limit = Integer(in_query=True, load_default=100, validate=validate.Range(min=1, max=1000))


class EventFillSchema(Schema):
    """One execution of the order."""

    fill_id = fields.UUID(
        metadata={"description": "the fill's id: ``id`` in ``GET /api/v1/orders/{id}/fills``"}
    )
    broker_fill_id = fields.String(allow_none=True)
    quantity = fields.String(metadata={"example": "3"})
    price = fields.String(metadata={"example": "70000"})
    ts = fields.String(allow_none=True, metadata={"format": "date-time"})
    fee = fields.String(allow_none=True)
    tax = fields.String(allow_none=True)


class EventSchema(Schema):
    """One change of an order's state, or one fill, with the order after it."""

    id = fields.Integer(metadata={"description": "Gap-free, in commit order; resume after it"})
    type = fields.String(metadata={"enum": list(EVENT_TYPES)})
    account_id = fields.Integer()
    order_id = fields.UUID()
    ts = fields.DateTime(metadata={"description": "When the change committed"})
    order = fields.Nested(OrderSchema)
    fill = fields.Nested(EventFillSchema, metadata={"description": "Only in `fill` events"})


class EventPageSchema(Schema):
    """A page of events, oldest first."""

    events = fields.List(fields.Nested(EventSchema))
    next_after = fields.Integer(metadata={"description": "Pass as `after` for the next page"})
    latest_id = fields.Integer(metadata={"description": "The latest event id of the log"})


_200 = {
    "description": "A page of events (JSON), or with `Accept: text/event-stream` the stream: "
    "each event is `id: <id>`, `event: <type>`, `data: <the event as in a page>`; a comment "
    "line (`: heartbeat`) comes every 15 s without events. Reconnect with `Last-Event-ID` "
    "(EventSource does): nothing is missed and nothing comes twice, on any worker of any host.",
    "content": {
        "application/json": {"schema": EventPageSchema},
        STREAM: {"schema": {"type": "string"}},
    },
}


@blp.route("")
class Events(MethodView):
    """The order events a key may see."""

    @scoped("orders:read")
    @blp.arguments(EventArgs, location="query")
    @blp.response(200, EventPageSchema)
    @blp.problems(403, 422)
    @blp.doc(
        # Listed whole: a ``parameters`` list here replaces the one made from EventArgs.
        parameters=[
            {
                "in": "query",
                "name": "after",
                "required": False,
                "description": "Events after this id (`Last-Event-ID` wins in a stream)",
                "schema": {"type": "integer", "minimum": 0, "maximum": 10**18},
            },
            {
                "in": "query",
                "name": "limit",
                "required": False,
                "description": "Events in a JSON page (the stream ignores it)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
            {
                "in": "header",
                "name": "Last-Event-ID",
                "required": False,
                "description": "The id of the last event received (a stream resumes after it)",
                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            },
        ],
        responses={"200": _200},
    )
    def get(self, args: dict[str, Any]) -> Any:
        """The order events of the key's accounts, after an id: a stream or a page.

        Without `after` (or `Last-Event-ID`) a stream starts with what happens from now on, and
        a page starts at the beginning of the log. Needs `orders:read`; a key limited to some
        accounts sees only theirs.
        """
        key = current_key()
        after = args.get("after")
        last = request.headers.get("Last-Event-ID")
        if last is not None and last.strip():
            if not _EVENT_ID.fullmatch(last.strip()):
                raise ValidationFailed(
                    "Last-Event-ID is not an event id.",
                    errors={"headers": {"Last-Event-ID": ["an event id: ASCII digits"]}},
                )
            after = int(last.strip())
        if request.accept_mimetypes.best_match(["application/json", STREAM]) == STREAM and (
            request.accept_mimetypes[STREAM] > request.accept_mimetypes["application/json"]
        ):
            return _stream(key.id, key.account_ids, after)
        events, next_after, latest = events_service.page(
            db.session, account_ids=key.account_ids, after=after or 0, limit=args["limit"]
        )
        body = (
            '{"events":['
            + ",".join(e.data for e in events)
            + f'],"next_after":{next_after},"latest_id":{latest}}}'
        )
        return Response(body, 200, mimetype="application/json")


def _stream(key_id: int, account_ids: list[int] | None, after: int | None) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine = db.engine
    hub = event_hub.hub_of(app, engine)
    # The stream holds no database connection between reads: hand back the request's own.
    db.session.remove()
    body = event_hub.stream(
        hub,
        engine,
        key_id=key_id,
        account_ids=account_ids,
        after=after,
        heartbeat=float(app.config.get("EVENTS_HEARTBEAT_SECONDS", 15)),
    )
    response = Response(body, 200, mimetype=STREAM)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return response
