"""Binance's signed account and order routes: account, order, order/test, open and all orders.

Each verifies the HMAC signature and spends its request weight per client IP; a new order also
counts against the account's order limits (see :class:`~simulators.binance.routes.BinanceApi`).

``DELETE /api/v3/openOrders`` (weight 1) cancels every open order of ``symbol`` and answers one
cancel report per order, all carrying the one ``clientOrderId`` of the cancel request (as the
documented example does). With nothing open it answers -2011 "Unknown order sent." (what clients
report seeing, e.g. binance-connector-python issue 185 [COMMUNITY]).
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.binance.auth import BinanceError, BinanceParams, Credential, mandatory
from simulators.binance.views import ms
from simulators.engine import Order, OrderNotFound, OrderNotOpen

if TYPE_CHECKING:
    from simulators.binance.routes import BinanceApi

__all__ = ["random_client_id", "register_trade_routes"]


def random_client_id() -> str:
    """A client order id the way Binance makes one when none is sent (22 letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(22))


def _cancel_report(api: BinanceApi, cancelled: Order, cancel_id: str) -> dict[str, Any]:
    """A cancel's answer: the order, with ``origClientOrderId`` (its id) and the cancel's id."""
    body = api.render(cancelled, transact=True)
    body["transactTime"] = ms(api.state.clock.now())  # when the cancel happened
    body["origClientOrderId"] = cancelled.client_order_id
    body["clientOrderId"] = cancel_id
    return body


def register_trade_routes(api: BinanceApi, app: Flask) -> None:  # noqa: C901 - one closure per route
    """Add ``account``, ``order`` (POST, GET, DELETE), ``order/test`` and the order lists."""
    engine = api.state.engine

    @app.get("/api/v3/account")
    @api.endpoint(20, signed=True)
    def account(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        view = engine.account(credential.account_id)
        omit_zero = (params.get("omitZeroBalances") or "").lower() == "true"
        balances = [
            {"asset": asset, "free": f"{b.available:.8f}", "locked": f"{b.locked:.8f}"}
            for asset, b in view.balances.items()
            if not omit_zero or b.total > 0
        ]
        fee = api.state.options.get("fee_rate", "0.001")
        bps = int(Decimal(fee) * 10_000)
        return jsonify(
            {
                "makerCommission": bps,
                "takerCommission": bps,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": f"{Decimal(fee):.8f}",
                    "taker": f"{Decimal(fee):.8f}",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": ms(api.state.clock.now()),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": int.from_bytes(credential.api_key.encode()[:6].ljust(6, b"0"), "big")
                % 10**9,
            }
        )

    @app.post("/api/v3/order")
    @api.endpoint(1, signed=True)
    def create_order(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        order = api.new_order(credential, params, test=False)
        assert order is not None  # noqa: S101 - test=False always places
        resp_type = (params.get("newOrderRespType") or "FULL").upper()
        if resp_type == "ACK":
            return jsonify(
                {
                    "symbol": order.symbol,
                    "orderId": int(order.order_no),
                    "orderListId": -1,
                    "clientOrderId": order.client_order_id,
                    "transactTime": ms(order.created_at),
                }
            )
        return jsonify(api.render(order, full=resp_type == "FULL", transact=True))

    @app.post("/api/v3/order/test")
    @api.endpoint(1, signed=True)
    def test_order(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        api.new_order(credential, params, test=True)
        return jsonify({})

    @app.get("/api/v3/order")
    @api.endpoint(4, signed=True)
    def get_order(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        return jsonify(api.render(api.find(credential, params, market)))

    @app.delete("/api/v3/order")
    @api.endpoint(1, signed=True)
    def cancel_order(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        try:
            order = api.find(credential, params, market)
        except BinanceError:
            raise BinanceError(-2011, "Unknown order sent.") from None
        restriction = params.get("cancelRestrictions")
        if restriction not in {None, "ONLY_NEW", "ONLY_PARTIALLY_FILLED"}:
            raise BinanceError(-1145, "Invalid cancelRestrictions")
        status = api.render(order)["status"]
        if (restriction == "ONLY_NEW" and status != "NEW") or (
            restriction == "ONLY_PARTIALLY_FILLED" and status != "PARTIALLY_FILLED"
        ):
            raise BinanceError(-2011, "Order was not canceled due to cancel restrictions.")
        try:
            cancelled = engine.cancel_order(credential.account_id, order.order_no)
        except (OrderNotOpen, OrderNotFound):
            raise BinanceError(-2011, "Unknown order sent.") from None
        cancel_id = params.get("newClientOrderId") or random_client_id()
        return jsonify(_cancel_report(api, cancelled, cancel_id))

    @app.post("/api/v3/order/cancelReplace")
    @api.endpoint(1, signed=True)
    def cancel_replace(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        """Cancel an order and place a new one (bn-docs rest-api.md, cancel-replace).

        The new order is checked first (as ``order/test``), so a malformed one changes nothing.
        ``STOP_ON_FAILURE``: a failed cancel answers 400 -2022 and places nothing;
        ``ALLOW_FAILURE`` places the new order anyway. A new order refused after the cancel
        answers 409 -2021 with both results in ``data``.
        """
        market = api.market(params)
        mode = params.get("cancelReplaceMode")
        if mode is None:
            raise mandatory("cancelReplaceMode")
        if mode not in {"STOP_ON_FAILURE", "ALLOW_FAILURE"}:
            raise BinanceError(-1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
        new_params = BinanceParams(
            values={k: v for k, v in params.values.items() if not k.startswith("cancel")}
        )
        api.new_order(credential, new_params, test=True)
        target = BinanceParams(
            values={
                "orderId": params.get("cancelOrderId") or "",
                "origClientOrderId": params.get("cancelOrigClientOrderId") or "",
            }
        )
        cancel_response: dict[str, Any]
        try:
            order = api.find(credential, target, market)
            cancelled = engine.cancel_order(credential.account_id, order.order_no)
        except (BinanceError, OrderNotOpen, OrderNotFound):
            cancel_response = {"code": -2011, "msg": "Unknown order sent."}
            if mode == "STOP_ON_FAILURE":
                body = {
                    "code": -2022,
                    "msg": "Order cancel-replace failed.",
                    "data": {
                        "cancelResult": "FAILURE",
                        "newOrderResult": "NOT_ATTEMPTED",
                        "cancelResponse": cancel_response,
                        "newOrderResponse": None,
                    },
                }
                return jsonify(body), 400
            cancel_result = "FAILURE"
        else:
            cancel_id = params.get("cancelNewClientOrderId") or random_client_id()
            cancel_response = _cancel_report(api, cancelled, cancel_id)
            cancel_result = "SUCCESS"
        try:
            new = api.new_order(credential, new_params, test=False)
        except BinanceError as exc:
            body = {
                "code": -2021,
                "msg": "Order cancel-replace partially failed.",
                "data": {
                    "cancelResult": cancel_result,
                    "newOrderResult": "FAILURE",
                    "cancelResponse": cancel_response,
                    "newOrderResponse": {"code": exc.code, "msg": exc.msg},
                },
            }
            return jsonify(body), 409
        assert new is not None  # noqa: S101 - test=False always places
        resp_type = (params.get("newOrderRespType") or "FULL").upper()
        return jsonify(
            {
                "cancelResult": cancel_result,
                "newOrderResult": "SUCCESS",
                "cancelResponse": cancel_response,
                "newOrderResponse": api.render(new, full=resp_type == "FULL", transact=True),
            }
        )

    @app.delete("/api/v3/openOrders")
    @api.endpoint(1, signed=True)
    def cancel_open_orders(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        cancel_id = random_client_id()
        reports = []
        for order in engine.orders(credential.account_id, symbol=market.symbol, open_only=True):
            try:
                cancelled = engine.cancel_order(credential.account_id, order.order_no)
            except (OrderNotOpen, OrderNotFound):
                continue  # filled meanwhile
            reports.append(_cancel_report(api, cancelled, cancel_id))
        if not reports:
            raise BinanceError(-2011, "Unknown order sent.")
        return jsonify(reports)

    @app.get("/api/v3/openOrders")
    @api.endpoint(lambda p: 6 if p.get("symbol") else 80, signed=True)
    def open_orders(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        symbol = api.market(params).symbol if params.get("symbol") else None
        orders = engine.orders(credential.account_id, symbol=symbol, open_only=True)
        return jsonify([api.render(o) for o in orders])

    @app.get("/api/v3/allOrders")
    @api.endpoint(20, signed=True)
    def all_orders(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        start = params.get("startTime")
        end = params.get("endTime")
        since = datetime.fromtimestamp(int(start) / 1000, UTC) if start else None
        until = datetime.fromtimestamp(int(end) / 1000 + 0.001, UTC) if end else None
        orders = engine.orders(
            credential.account_id, symbol=market.symbol, since=since, until=until
        )
        limit = min(1000, int(params.get("limit") or 500))
        from_id = params.get("orderId")
        if from_id is not None:
            # With orderId: orders from that id on, oldest first; otherwise the newest ones.
            chosen = [o for o in orders if int(o.order_no) >= int(from_id)][:limit]
        else:
            chosen = orders[-limit:]
        return jsonify([api.render(o) for o in chosen])
