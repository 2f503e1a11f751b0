"""Binance spot REST facade (``/api/v3/...``) on top of the shared engine.

:class:`BinanceApi` holds the request plumbing (weights, signatures, headers) and the order
logic; the routes are in :mod:`simulators.binance.market` (public market data) and
:mod:`simulators.binance.trade` (signed account and order endpoints).

Rate limits (bn-docs rest-api.md "LIMITS"): every request spends request weight per client IP
(6000 a minute; answered in ``X-MBX-USED-WEIGHT-1M`` on every response); every accepted order
counts per account (100 per 10 s, 200,000 a day; ``X-MBX-ORDER-COUNT-10S``/``-1D`` on order
responses). Over the weight limit → 429 ``-1003`` with ``Retry-After``; a client that keeps
going is banned → 418 ``-1003`` "IP banned until …" with ``Retry-After``. Over the order limit →
429 ``-1015``.

Filters are checked here, before the engine, in Binance's order and with its messages
(``Filter failure: PRICE_FILTER`` / ``LOT_SIZE`` / ``NOTIONAL``, code -1013), so
``POST /api/v3/order/test`` can validate without placing. Not supported (answered -1116 by
omission from ``orderTypes``): stop and take-profit orders, OCO/OTO, amendments.

``newClientOrderId`` is unique among *open* orders (-2010 "Duplicate order sent."); whether an id
may be reused after a cancel is undocumented, and the engine's OPEN_ORDERS scope allows it.

A path (or method) Binance does not serve answers 404/405 with ``{"code": -1020, "msg": "This
operation is not supported."}`` [UNVERIFIED: the docs say nothing; a capture of an unknown
``fapi`` path at Binance shows an HTML error page (ccxt issue 18797)]. Option
``unknown_path="html"`` answers such a page instead, for a client's handling of exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.binance.auth import (
    BinanceError,
    BinanceParams,
    Credential,
    KeyStore,
    SignatureVerifier,
    mandatory,
    read_params,
)
from simulators.binance.market import register_market_routes
from simulators.binance.my_trades import register_my_trades
from simulators.binance.trade import random_client_id, register_trade_routes
from simulators.binance.views import ORDER_TYPES, order_json
from simulators.control import SimState, answer_unknown_paths, mark_refused, request_time
from simulators.control.refusals import RefusalReason
from simulators.crypto_markets import SpotMarket
from simulators.engine import (
    DuplicateClientOrderId,
    InsufficientFunds,
    InsufficientPosition,
    InvalidOrder,
    Order,
    OrderNotFound,
    OrderType,
    RuleViolated,
    Side,
)
from simulators.upbit.throttle import BanBook, GroupThrottle

__all__ = ["BinanceApi"]

#: Codes that refuse a request for rate or auth: recorded as ``request_refused``.
_REFUSAL_REASONS: dict[int, RefusalReason] = {
    -1003: "rate",
    -1015: "rate",
    -2014: "auth",
    -2015: "auth",
    -1022: "auth",
    -1021: "auth",
}
_WEIGHT_LIMIT = 6000
_ORDERS_10S = 100
_ORDERS_1D = 200_000
_DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_FILTER_FOR_RULE = {
    RuleViolated.PRICE_TICK: "PRICE_FILTER",
    RuleViolated.PRICE: "PRICE_FILTER",
    RuleViolated.QUANTITY: "LOT_SIZE",
    RuleViolated.LOT_SIZE: "LOT_SIZE",
    RuleViolated.MIN_QUANTITY: "LOT_SIZE",
    RuleViolated.MIN_NOTIONAL: "NOTIONAL",
}


def _filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


def _decimal(params: BinanceParams, name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    illegal = BinanceError(
        -1100,
        f"Illegal characters found in parameter '{name}'; legal range is '{_DECIMAL_RANGE}'.",
    )
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise illegal from None
    if not value.is_finite() or value < 0:
        raise illegal
    return value


class BinanceApi:
    """The Binance spot facade bound to one :class:`SimState`.

    Args:
        state: the simulator state.
        markets: the listed symbols.
    """

    def __init__(self, state: SimState, markets: Iterable[SpotMarket]) -> None:
        self.state = state
        self.markets = {m.symbol: m for m in markets}
        opts = state.options
        self.keys: KeyStore = opts.setdefault("keys", KeyStore())
        self.expired: set[str] = opts.setdefault("expired_orders", set())
        # A held (late) request's timestamp is checked against its arrival, as Binance did.
        self.verifier = SignatureVerifier(self.keys, lambda: request_time(state.clock))
        self.weight_limit = int(opts.get("weight_limit", _WEIGHT_LIMIT))
        self.orders_10s = int(opts.get("orders_per_10s", _ORDERS_10S))
        self.orders_1d = int(opts.get("orders_per_day", _ORDERS_1D))
        bans = BanBook(
            ban_after=int(opts.get("ban_after", 10)),
            strike_window=float(opts.get("strike_window", 60)),
            ban_seconds=float(opts.get("ban_seconds", 120)),
        )
        self.throttle = GroupThrottle(
            {"weight": self.weight_limit, "orders10s": self.orders_10s, "orders1d": self.orders_1d},
            bans,
            per_seconds={"weight": 60.0, "orders10s": 10.0, "orders1d": 86_400.0},
        )
        opts.setdefault("throttle", self.throttle)

    # ---- request plumbing -------------------------------------------------------------------

    def _ip(self) -> str:
        return f"ip:{request.remote_addr}"

    def _spend(self, weight: int) -> None:
        key = self._ip()
        g.sim_weight_key = key
        verdict = self.throttle.check("weight", key, cost=weight)
        if verdict.allowed:
            return
        retry = str(max(1, math.ceil(verdict.retry_after)))
        if verdict.banned:
            until = int((datetime.now(UTC).timestamp() + verdict.retry_after) * 1000)
            raise BinanceError(
                -1003,
                f"Way too much request weight used; IP banned until {until}. Please use WebSocket "
                "Streams for live updates to avoid bans.",
                418,
                {"Retry-After": retry},
            )
        raise BinanceError(
            -1003,
            f"Too much request weight used; current limit is {self.weight_limit} request weight "
            "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            429,
            {"Retry-After": retry},
        )

    def endpoint(
        self, weight: int | Callable[[BinanceParams], int], *, signed: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a route: spend weight (per IP), verify the signature when ``signed``."""

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper() -> ResponseReturnValue:
                params = read_params(request)
                self._spend(weight(params) if callable(weight) else weight)
                if not signed:
                    return view(params)
                credential = self.verifier.verify(request.headers.get("X-MBX-APIKEY"), params)
                return view(credential, params)

            return wrapper

        return decorate

    def count_order(self, credential: Credential) -> None:
        """Count a new order against the account's 10 s and daily limits.

        Raises:
            BinanceError: 429 -1015 when either is exhausted.
        """
        key = f"acct:{credential.account_id}"
        for group, limit, interval in (
            ("orders10s", self.orders_10s, "10 SECOND"),
            ("orders1d", self.orders_1d, "1 DAY"),
        ):
            verdict = self.throttle.check(group, key)
            if not verdict.allowed:
                raise BinanceError(
                    -1015,
                    f"Too many new orders; current limit is {limit} orders per {interval}.",
                    429,
                    {"Retry-After": str(max(1, math.ceil(verdict.retry_after)))},
                )
        g.sim_order_key = key

    def add_headers(self, response: Response) -> Response:
        """``X-MBX-USED-WEIGHT-1M`` everywhere; order counts after order placements."""
        if request.path.startswith("/_sim"):
            return response
        key = getattr(g, "sim_weight_key", self._ip())
        used = self.weight_limit - self.throttle.remaining("weight", key)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(max(0, used))
        order_key = getattr(g, "sim_order_key", None)
        if order_key is not None:
            response.headers["X-MBX-ORDER-COUNT-10S"] = str(
                self.orders_10s - self.throttle.remaining("orders10s", order_key)
            )
            response.headers["X-MBX-ORDER-COUNT-1D"] = str(
                self.orders_1d - self.throttle.remaining("orders1d", order_key)
            )
        return response

    def register(self, app: Flask) -> None:
        """Add the routes, the ``{"code","msg"}`` error handler and the weight headers."""

        @app.errorhandler(BinanceError)
        def binance_error(exc: BinanceError) -> ResponseReturnValue:
            reason = _REFUSAL_REASONS.get(exc.code)
            if reason is not None:
                mark_refused(reason, exc.code)
            return jsonify({"code": exc.code, "msg": exc.msg}), exc.status, exc.headers

        answer_unknown_paths(app, self.unknown_path)
        app.after_request(self.add_headers)
        self.register_routes(app)

    def unknown_path(self, status: int, method: str, path: str) -> ResponseReturnValue:
        """``{"code": -1020, …}`` for an unserved path; with ``unknown_path="html"`` a page."""
        if self.state.options.get("unknown_path", "json") == "html":
            page = f"<html><body><h1>{status} Not Found</h1></body></html>"
            return Response(page, status, mimetype="text/html")
        return jsonify({"code": -1020, "msg": "This operation is not supported."}), status

    # ---- helpers ----------------------------------------------------------------------------

    def market(self, params: BinanceParams) -> SpotMarket:
        """The symbol a request names.

        Raises:
            BinanceError: -1102 if missing, -1121 if not listed.
        """
        symbol = params.get("symbol")
        if symbol is None:
            raise mandatory("symbol")
        market = self.markets.get(symbol.upper())
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    def check_filters(
        self,
        market: SpotMarket,
        order_type: str,
        side: Side,
        quantity: Decimal | None,
        price: Decimal | None,
        quote_qty: Decimal | None,
    ) -> None:
        """Apply PRICE_FILTER, LOT_SIZE and NOTIONAL the way Binance does.

        Raises:
            BinanceError: -1013 ``Filter failure: <FILTER>``.
        """
        if price is not None:
            tick = market.tick_size or Decimal(0)
            if (
                price < market.min_price
                or (market.max_price and price > market.max_price)
                or (tick and price % tick)
            ):
                raise _filter_failure("PRICE_FILTER")
        if quantity is not None and (
            quantity < market.min_qty or quantity > market.max_qty or quantity % market.step_size
        ):
            raise _filter_failure("LOT_SIZE")
        reference = price if price is not None else self.state.engine.price(market.symbol)
        notional = quote_qty if quote_qty is not None else (quantity or Decimal(0)) * reference
        if notional < market.min_notional:
            raise _filter_failure("NOTIONAL")
        if order_type != "MARKET" and notional > market.max_notional:
            raise _filter_failure("NOTIONAL")

    def find(self, credential: Credential, params: BinanceParams, market: SpotMarket) -> Order:
        """The order named by ``orderId`` (searched first) or ``origClientOrderId``.

        Raises:
            BinanceError: -1102 if neither is sent; -2013 if it does not exist.
        """
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        engine = self.state.engine
        try:
            if order_id is not None:
                order = engine.get_order(credential.account_id, order_id)
                if client_id is not None and order.client_order_id != client_id:
                    raise OrderNotFound(order_id)
            elif client_id is not None:
                order = engine.get_order_by_client_id(credential.account_id, client_id)
            else:
                raise mandatory("orderId")
        except OrderNotFound:
            raise BinanceError(-2013, "Order does not exist.") from None
        if order.symbol != market.symbol:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    # ---- order placement --------------------------------------------------------------------

    def new_order(
        self, credential: Credential, params: BinanceParams, *, test: bool
    ) -> Order | None:
        """Validate (and unless ``test``, place) ``POST /api/v3/order``.

        Raises:
            BinanceError: the code Binance answers for each failure.
        """
        market = self.market(params)
        side_raw = params.get("side")
        if side_raw is None:
            raise mandatory("side")
        if side_raw.upper() not in {"BUY", "SELL"}:
            raise BinanceError(-1117, "Invalid side.")
        side = Side(side_raw.upper())
        order_type = params.get("type")
        if order_type is None:
            raise mandatory("type")
        order_type = order_type.upper()
        if order_type not in ORDER_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        quantity = _decimal(params, "quantity")
        price = _decimal(params, "price")
        quote_qty = _decimal(params, "quoteOrderQty")
        tif = (params.get("timeInForce") or "").upper() or None
        if order_type == "LIMIT":
            if tif is None:
                raise mandatory("timeInForce")
            if tif not in {"GTC", "IOC", "FOK"}:
                raise BinanceError(-1115, "Invalid timeInForce.")
            for name, value in (("quantity", quantity), ("price", price)):
                if value is None:
                    raise mandatory(name)
        elif order_type == "LIMIT_MAKER":
            for name, value in (("quantity", quantity), ("price", price)):
                if value is None:
                    raise mandatory(name)
            tif = "GTC"
        else:  # MARKET
            if price is not None or tif is not None:
                raise BinanceError(
                    -1106,
                    "Parameter 'price' sent when not required."
                    if price is not None
                    else "Parameter 'timeInForce' sent when not required.",
                )
            if (quantity is None) == (quote_qty is None):
                raise mandatory("quantity")
            tif = "GTC"
        if (quantity is not None and quantity <= 0) or (quote_qty is not None and quote_qty <= 0):
            raise BinanceError(-1013, "Invalid quantity.")
        if price is not None and price <= 0:
            raise BinanceError(-1013, "Invalid price.")
        if order_type == "MARKET" and quote_qty is not None and side is Side.SELL:
            # A quote-sized sell: Binance sizes it at the current price.
            current = self.state.engine.price(market.symbol)
            quantity = (quote_qty / current // market.step_size) * market.step_size
        self.check_filters(
            market,
            order_type,
            side,
            quantity,
            price,
            quote_qty if side is Side.BUY else None,
        )
        current = self.state.engine.price(market.symbol)
        if order_type == "LIMIT_MAKER" and (
            (side is Side.BUY and price >= current) or (side is Side.SELL and price <= current)  # type: ignore[operator]
        ):
            raise BinanceError(-2010, "Order would immediately match and take.")
        client_id = params.get("newClientOrderId") or random_client_id()
        if test:
            return None
        self.count_order(credential)
        extra: dict[str, Any] = {
            "type": order_type,
            "time_in_force": tif,
            "quote_order_qty": str(quote_qty) if quote_qty is not None else None,
            "stp": params.get("selfTradePreventionMode") or "EXPIRE_MAKER",
        }
        engine = self.state.engine
        try:
            order = engine.place_order(
                credential.account_id,
                market.symbol,
                side,
                OrderType.MARKET if order_type == "MARKET" else OrderType.LIMIT,
                quantity=quantity,
                price=price,
                quote_amount=quote_qty if side is Side.BUY else None,
                client_order_id=client_id,
                extra=extra,
            )
        except DuplicateClientOrderId:
            raise BinanceError(-2010, "Duplicate order sent.") from None
        except (InsufficientFunds, InsufficientPosition):
            raise BinanceError(
                -2010, "Account has insufficient balance for requested action."
            ) from None
        except InvalidOrder as exc:
            raise _filter_failure(_FILTER_FOR_RULE.get(exc.rule, "LOT_SIZE")) from None
        if order.is_open and (order_type == "MARKET" or tif in {"IOC", "FOK"}):
            # IOC, FOK and market orders never rest: the unfilled rest expires at once.
            order = engine.cancel_order(credential.account_id, order.order_no)
            order = self._mark_expired(order)
        elif (
            not order.is_open and order.order_type is OrderType.MARKET and not order.filled_quantity
        ):
            order = self._mark_expired(order)
        return order

    def _mark_expired(self, order: Order) -> Order:
        # The engine has no EXPIRED status; the facade remembers which cancels were expiries.
        self.expired.add(order.order_no)
        return order

    def render(self, order: Order, **kwargs: Any) -> dict[str, Any]:
        """Render an order, EXPIRED where the facade expired it."""
        return order_json(order, expired=order.order_no in self.expired, **kwargs)

    # ---- routes -----------------------------------------------------------------------------

    def register_routes(self, app: Flask) -> None:
        """Add the ``/api/v3`` routes: market data, then account and orders."""
        register_market_routes(self, app)
        register_trade_routes(self, app)
        register_my_trades(self, app)
