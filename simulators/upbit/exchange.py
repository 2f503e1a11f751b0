"""Upbit's exchange routes: accounts, order chance, placing, finding, cancelling, listing orders.

Each verifies the JWT and counts against the caller's ``default`` or ``order`` group (see
:meth:`UpbitApi.private <simulators.upbit.routes.UpbitApi.private>`). Bithumb serves the same
routes except ``/v1/orders/open`` and ``/v1/orders/closed``, which are Upbit's alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.crypto_markets import decimal_string
from simulators.engine import OrderNotFound, OrderNotOpen
from simulators.upbit.auth import ApiError, Credential, RequestParams
from simulators.upbit.params import ORDER_NOT_FOUND, parse_time
from simulators.upbit.views import account_json, orders_sorted

if TYPE_CHECKING:
    from simulators.upbit.routes import UpbitApi

__all__ = ["register_exchange_routes", "register_order_lists"]


def register_exchange_routes(api: UpbitApi, app: Flask) -> None:
    """Add ``/v1/accounts``, ``/v1/orders/chance``, ``/v1/orders``, and ``/v1/order``."""
    engine = api.state.engine

    @app.get("/v1/accounts")
    @api.private()
    def accounts(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        view = engine.account(credential.account_id)
        rows = [
            account_json(b)
            for asset, b in sorted(view.balances.items(), key=lambda kv: kv[0] != "KRW")
            if b.total > 0 or asset == "KRW"
        ]
        return jsonify(rows)

    @app.get("/v1/orders/chance")
    @api.private()
    def chance(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        market = api.market(params)
        fee = decimal_string(api.fee_rate)
        return jsonify(
            {
                "bid_fee": fee,
                "ask_fee": fee,
                "maker_bid_fee": fee,
                "maker_ask_fee": fee,
                "market": {
                    "id": market.symbol,
                    "name": f"{market.base}/{market.quote}",
                    "order_types": ["limit"],
                    "ord_types": ["limit", "price", "market", "best"],
                    "order_sides": ["ask", "bid"],
                    "bid_types": [
                        "best_fok",
                        "best_ioc",
                        "limit",
                        "limit_fok",
                        "limit_ioc",
                        "price",
                    ],
                    "ask_types": [
                        "best_fok",
                        "best_ioc",
                        "limit",
                        "limit_fok",
                        "limit_ioc",
                        "market",
                    ],
                    "bid": {
                        "currency": market.quote,
                        "price_unit": None,
                        "min_total": decimal_string(market.min_notional),
                    },
                    "ask": {
                        "currency": market.base,
                        "price_unit": None,
                        "min_total": decimal_string(market.min_notional),
                    },
                    "max_total": decimal_string(market.max_notional),
                    "state": "active",
                },
                "bid_account": account_json(
                    engine.balance(credential.account_id, market.quote), market.quote
                ),
                "ask_account": account_json(
                    engine.balance(credential.account_id, market.base), market.quote
                ),
            }
        )

    @app.post("/v1/orders")
    @api.private("order")
    def create_order(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        order = api.place(credential, params, "ord_type")
        return jsonify(api.accepted(order)), 201

    @app.get("/v1/order")
    @api.private()
    def get_order(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        order = api.find_order(credential, params)
        return jsonify(api.render(order, with_trades=True))

    @app.delete("/v1/order")
    @api.private()
    def cancel_order(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        order = api.find_order(credential, params)
        try:
            engine.cancel_order(credential.account_id, order.order_no)
        except (OrderNotOpen, OrderNotFound):
            raise ApiError(*ORDER_NOT_FOUND) from None
        # Upbit accepts the cancel and answers the order as it stood: still "wait".
        return jsonify(api.render(order, state="wait"))

    @app.get("/v1/orders")
    @api.private()
    def legacy_orders(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        uuids = set(params.getlist("uuids"))
        client_ids = set(params.getlist(f"{api.client_id_field}s"))
        default = ["wait", "watch", "done", "cancel"] if (uuids or client_ids) else ["wait"]
        states = api.states(params, default=default, allowed={"wait", "watch", "done", "cancel"})
        orders = [
            o
            for o in api.select(credential, params, states=states)
            if (not uuids or o.order_no in uuids)
            and (not client_ids or o.client_order_id in client_ids)
        ]
        return jsonify(api.page(orders, params, max_limit=100))


def register_order_lists(api: UpbitApi, app: Flask) -> None:
    """Add Upbit's ``/v1/orders/open`` and ``/v1/orders/closed``."""

    @app.get("/v1/orders/open")
    @api.private()
    def open_orders(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        states = api.states(params, default=["wait", "watch"], allowed={"wait", "watch"})
        orders = api.select(credential, params, states=states)
        return jsonify(api.page(orders, params, max_limit=100))

    @app.get("/v1/orders/closed")
    @api.private()
    def closed_orders(credential: Credential, params: RequestParams) -> ResponseReturnValue:
        states = api.states(params, default=["done", "cancel"], allowed={"done", "cancel"})
        end = parse_time(params.get("end_time"))
        start = parse_time(params.get("start_time"))
        if start is None and end is None:
            end = api.state.clock.now()
        if start is None:
            start = end - timedelta(days=7)  # type: ignore[operator]
        if end is None:
            end = start + timedelta(days=7)
        if end - start > timedelta(days=7):
            raise ApiError(400, "validation_error", "조회 기간은 최대 7일입니다.")
        # end_time is inclusive; the engine's bound is exclusive.
        until = end + timedelta(microseconds=1)
        orders = api.select(credential, params, states=states, since=start, until=until)
        limit = api.limit(params, default=100, maximum=1000)
        return jsonify(
            [api.render(o) for o in orders_sorted(orders, params.get("order_by"))[:limit]]
        )
