"""Panic actions over the API: cancel every open order, flatten an account (idempotent).

See :mod:`web_server.services.panic` for what each does and how a run is recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields

from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.errors import Forbidden
from web_server.services import api_keys
from web_server.services import panic as panic_service

blp = Blueprint("panic_api", __name__, url_prefix="/api/v1", description="Panic actions")

_ACCOUNT = "/accounts/<int(min=1, max=2147483647):account_id>"
_KEY = "/api-keys/<int(min=1, max=2147483647):key_id>"
_IDEMPOTENCY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": True,
    "description": "1 to 200 printable ASCII characters; one run per key and API key.",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
    "example": "panic-20250101-0001",
}
_REPLAY = {
    "description": "A replay: the same Idempotency-Key as an earlier request; the run that "
    "request made (header `Idempotent-Replayed: true`).",
    "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
}


class PanicActionSchema(Schema):
    """A panic run: what was asked, by whom, when, and what it did."""

    id = fields.UUID()
    kind = fields.String(metadata={"enum": list(panic_service.KINDS)})
    scope = fields.String(metadata={"enum": list(panic_service.SCOPES)})
    target_id = fields.Integer()
    status = fields.String(
        metadata={
            "enum": ["RUNNING", "DONE", "FAILED"],
            "description": "DONE: everything tried succeeded; FAILED: see `result.failed`",
        }
    )
    requested_by = fields.String()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    result = fields.Dict(
        allow_none=True,
        metadata={
            "description": "`cancelled` (each order: `order_id` or null for an order the "
            "gateway did not know, `broker_order_id`, `status`, `source` gateway|broker), "
            "`sold` (flatten: each SELL order), `skipped` (positions not sold, with `reason`: "
            "dust below the lot or minimum order, nothing sellable), `failed` (each with "
            "`code` and `detail`), `open_orders_left` (what the broker still shows open "
            "afterwards; null: it could not be read). Decimals are strings."
        },
    )


def _run(kind: str, scope: str, target_id: int) -> Any:
    key = current_key()
    action, replayed = panic_service.run(
        kind,
        scope,
        target_id,
        key=key,
        idempotency_key=request.headers.get("Idempotency-Key", ""),
        actor=f"api-key:{key.id} ({key.label})",
    )
    view = panic_service.action_view(action)
    if replayed:
        return view, 200, {"Idempotent-Replayed": "true"}
    return view


_STATUSES = (403, 404, 409, 422)


@blp.route(f"{_ACCOUNT}/panic/cancel-all")
class AccountCancelAll(MethodView):
    """Cancel every open order of an account."""

    @scoped("admin")
    @blp.response(201, PanicActionSchema)
    @blp.alt_response(200, schema=PanicActionSchema, **_REPLAY)
    @blp.problems(*_STATUSES)
    @blp.doc(parameters=[_IDEMPOTENCY])
    def post(self, account_id: int) -> Any:
        """Cancel every open order of the account, also those the gateway does not know.

        First the gateway's own open orders, through the cancel service; then every order the
        broker still lists open (crypto: its open orders; KIS/Kiwoom: today's orders). Kill
        switches do not stop it. Once per Idempotency-Key (a replay answers 200 with the same
        run; another action with the key: 409 `idempotency_conflict`; the first still running:
        409 `panic_in_progress`). Broker failures do not fail the request: the run ends
        `FAILED` and names them in `result.failed`.
        """
        api_keys.require(current_key(), "admin", account_id)
        return _run("CANCEL_ALL", "ACCOUNT", account_id)


@blp.route(f"{_ACCOUNT}/panic/flatten")
class AccountFlatten(MethodView):
    """Close every position of an account."""

    @scoped("admin")
    @blp.response(201, PanicActionSchema)
    @blp.alt_response(200, schema=PanicActionSchema, **_REPLAY)
    @blp.problems(*_STATUSES)
    @blp.doc(parameters=[_IDEMPOTENCY])
    def post(self, account_id: int) -> Any:
        """Cancel every open order, then sell every position the broker reports.

        Stocks: a MARKET sell of the sellable quantity. Crypto: a MARKET sell into the account's
        cash currency, rounded down to the market's lot; dust below the lot or the minimum order
        is reported in `result.skipped`. Each sale is an order on record (placement service),
        outside kill switches and risk policies (panic reduces risk); the KRX checks still apply.
        Idempotent like cancel-all.
        """
        api_keys.require(current_key(), "admin", account_id)
        return _run("FLATTEN", "ACCOUNT", account_id)


@blp.route(f"{_KEY}/panic/cancel-all")
class KeyCancelAll(MethodView):
    """Cancel every open order an API key placed."""

    @scoped(None)
    @blp.response(201, PanicActionSchema)
    @blp.alt_response(200, schema=PanicActionSchema, **_REPLAY)
    @blp.problems(*_STATUSES)
    @blp.doc(parameters=[_IDEMPOTENCY])
    def post(self, key_id: int) -> Any:
        """Cancel every open order the key placed, on every account, through the cancel service.

        A key with `orders:write` may do it for itself; for another key it takes an `admin` key
        that is not limited to some accounts. Idempotent like the account's cancel-all.
        """
        _may_act_for_key(key_id)
        return _run("CANCEL_ALL", "API_KEY", key_id)


def _may_act_for_key(key_id: int) -> None:
    key = current_key()
    if key.id == key_id:
        api_keys.require(key, "orders:write")
        return
    if "admin" not in key.scopes:
        raise Forbidden("Only an admin key may act for another API key.")
    api_keys.require_unrestricted(key)


@blp.route("/panic-actions/<uuid:action_id>")
class PanicActionItem(MethodView):
    """One recorded panic run."""

    @scoped("admin", unrestricted=True)
    @blp.response(200, PanicActionSchema)
    @blp.problems(403, 404)
    def get(self, action_id: uuid.UUID) -> Any:
        """Return a recorded run: who asked, when, and its result."""
        return panic_service.action_view(panic_service.get_action(action_id))
