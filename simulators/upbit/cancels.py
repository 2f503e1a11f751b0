"""Upbit's bulk cancel (``DELETE /v1/orders/open``) and cancel-and-new.

Sources: trading-days.md §4 and §6, the Upbit reference pages quoted there (batch-cancel-orders,
cancel-and-new-order) and ccxt 4.5.90's ``upbit.edit_order``.

``DELETE /v1/orders/open`` cancels open (``wait``) orders chosen by ``cancel_side`` (all|ask|bid),
``pairs`` *or* ``quote_currencies`` (comma lists), minus ``excluded_pairs``, newest first unless
``order_by=asc``, at most ``count`` (default 20, max 300). It has its own rate group,
``order-cancel-all``, one request per 2 seconds. The docs accept query parameters only; the
simulator also reads a body, as its other routes do (what Upbit does with a body: [UNVERIFIED]).
The answer's shape is the documented one of ``DELETE /v1/orders/uuids``
(``{"success": {"count", "orders": [{"uuid", "market", "identifier"}]}, "failed": {…}}``),
assumed equal [UNVERIFIED].

``POST /v1/orders/cancel_and_new`` (order group) cancels ``prev_order_uuid`` (or
``prev_order_identifier``) and places a new order on the same market and side from
``new_ord_type``, ``new_volume`` (or ``remain_only``: what the old order had left),
``new_price``, ``new_time_in_force``, ``new_smp_type`` and ``new_identifier``. It answers 201
with the cancelled order as accepted (``state: wait``) plus ``new_order_uuid`` and, when a new
identifier was sent, ``new_order_identifier`` [UNVERIFIED; ccxt's sample shows it]. The new
order's parameters are checked before anything is cancelled; a new order refused by the engine
afterwards (funds) leaves the old one cancelled and answers the new order's error [UNVERIFIED:
Upbit creates the new order asynchronously after the cancel and documents no answer for that
case].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.engine import Order, OrderNotFound, OrderNotOpen, Side
from simulators.upbit.auth import ApiError, Credential, RequestParams
from simulators.upbit.params import ORDER_NOT_FOUND
from simulators.upbit.views import order_state, orders_sorted

if TYPE_CHECKING:
    from simulators.upbit.routes import UpbitApi

__all__ = ["register_cancel_routes"]

_MAX_PAIRS = 20
_MAX_COUNT = 300
_REMAIN_ONLY = "remain_only"


def _comma_list(params: RequestParams, name: str) -> list[str]:
    values = params.getlist(name)
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


def _summary(orders: list[Order], client_id_field: str) -> dict[str, Any]:
    rows = []
    for order in orders:
        row = {"uuid": order.order_no, "market": order.symbol}
        if order.client_order_id is not None:
            row[client_id_field] = order.client_order_id
        rows.append(row)
    return {"count": len(rows), "orders": rows}


def _chosen_for_bulk_cancel(
    api: UpbitApi, credential: Credential, params: RequestParams
) -> list[Order]:
    """The open orders a ``DELETE /v1/orders/open`` request names, in cancel order.

    Raises:
        ApiError: ``validation_error`` for a bad side, list, count or order.
    """
    side_raw = params.get("cancel_side") or "all"
    if side_raw not in {"all", "ask", "bid"}:
        raise api.invalid("cancel_side")
    pairs = _comma_list(params, "pairs")
    quotes = _comma_list(params, "quote_currencies")
    excluded = set(_comma_list(params, "excluded_pairs"))
    if pairs and quotes:
        raise api.invalid("pairs")  # "either pairs or quote_currencies"
    for name, listed in (("pairs", pairs), ("excluded_pairs", excluded)):
        if len(listed) > _MAX_PAIRS or any(p not in api.markets for p in listed):
            raise api.invalid(name)
    raw_count = params.get("count") or "20"
    if not raw_count.isdigit() or not 1 <= int(raw_count) <= _MAX_COUNT:
        raise api.invalid("count")
    order_by = params.get("order_by") or "desc"
    if order_by not in {"asc", "desc"}:
        raise api.invalid("order_by")
    side = {"all": None, "ask": Side.SELL, "bid": Side.BUY}[side_raw]
    orders = [
        o
        for o in api.state.engine.orders(credential.account_id, open_only=True, side=side)
        if order_state(o) == "wait"  # WATCH (stop) orders are not cancelled here
        and (not pairs or o.symbol in pairs)
        and (not quotes or o.symbol.split("-", 1)[0] in quotes)
        and o.symbol not in excluded
    ]
    return orders_sorted(orders, order_by)[: int(raw_count)]


def _new_order_params(api: UpbitApi, previous: Order, params: RequestParams) -> RequestParams:
    """The ``POST /v1/orders`` parameters of the replacement order.

    Raises:
        ApiError: ``validation_error`` for a missing type or a misused ``remain_only``.
    """
    ord_type = params.get("new_ord_type")
    if not ord_type:
        raise api.missing("new_ord_type")
    volume = params.get("new_volume")
    if volume == _REMAIN_ONLY:
        # limit (any time in force), or a market/best sell: the quantity the old order had left.
        if ord_type == "price" or (ord_type == "best" and previous.side is Side.BUY):
            raise api.invalid("new_volume")
        left = previous.remaining_quantity
        volume = format(left.normalize(), "f") if left is not None else None
    items = [
        ("market", previous.symbol),
        ("side", "bid" if previous.side is Side.BUY else "ask"),
        ("ord_type", ord_type),
    ]
    for name, value in (
        ("volume", volume),
        ("price", params.get("new_price")),
        ("time_in_force", params.get("new_time_in_force")),
        ("smp_type", params.get("new_smp_type")),
        (api.client_id_field, params.get(f"new_{api.client_id_field}")),
    ):
        if value:
            items.append((name, value))
    return RequestParams(items=items)


def register_cancel_routes(api: UpbitApi, app: Flask) -> None:
    """Add ``DELETE /v1/orders/open`` and ``POST /v1/orders/cancel_and_new``."""
    engine = api.state.engine

    @app.delete("/v1/orders/open")
    @api.private("order-cancel-all")
    def cancel_open_orders(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        succeeded, failed = [], []
        for order in _chosen_for_bulk_cancel(api, credential, params):
            try:
                engine.cancel_order(credential.account_id, order.order_no)
            except (OrderNotOpen, OrderNotFound):
                failed.append(order)
            else:
                succeeded.append(order)
        field = api.client_id_field
        return jsonify({"success": _summary(succeeded, field), "failed": _summary(failed, field)})

    @app.post("/v1/orders/cancel_and_new")
    @api.private("order")
    def cancel_and_new(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        wanted = [
            (name, value)
            for name, value in (
                ("uuid", params.get("prev_order_uuid")),
                (api.client_id_field, params.get(f"prev_order_{api.client_id_field}")),
            )
            if value
        ]
        if not wanted:
            raise api.missing("prev_order_uuid")
        previous = api.find_order(credential, RequestParams(items=wanted))
        if not previous.is_open:
            raise ApiError(*ORDER_NOT_FOUND)
        request = api.order_request(_new_order_params(api, previous, params), "ord_type")
        if request.client_id is not None:
            try:
                engine.get_order_by_client_id(credential.account_id, request.client_id)
            except OrderNotFound:
                pass
            else:  # checked before cancelling: a reused identifier changes nothing
                raise ApiError(*api.duplicate_error())
        try:
            engine.cancel_order(credential.account_id, previous.order_no)
        except (OrderNotOpen, OrderNotFound):
            raise ApiError(*ORDER_NOT_FOUND) from None
        new = api.submit(credential, request)
        body = api.render(previous, state="wait")
        body["new_order_uuid"] = new.order_no
        if new.client_order_id is not None:
            body[f"new_order_{api.client_id_field}"] = new.client_order_id
        return jsonify(body), 201
