"""Upbit's REST facade (``/v1/...``) on top of the shared engine.

:class:`UpbitApi` holds the request plumbing (JWT, rate groups, error answers) and the order
logic; the routes are in :mod:`simulators.upbit.quotation` (market data, counted per client IP)
and :mod:`simulators.upbit.exchange` (accounts and orders, counted per account).

Every response carries ``Remaining-Req: group=<group>; min=<n>; sec=<n>`` (pyupbit refuses a
response without it). Private routes verify the JWT (:mod:`simulators.upbit.auth`) before they
count against the caller's ``default`` or ``order`` group; quotation routes count per client IP.

Wire decisions where the sources are silent (brokers/crypto.md §5, each a switch in
``SimState.options``):

* ``rate_limit_body``: ``"text"`` (default) answers 429 with the plain text
  ``Too many API requests.``, which pyupbit's error handler was written against; ``"json"`` uses
  ``{"error": {"name": "too_many_requests", ...}}``.
* ``duplicate identifier`` → 400 ``duplicate_identifier`` (a distinct name, as crypto.md §1.4
  suggests; the real name was not retrievable).
* ``POST /v1/orders`` answers the order *as accepted* (``state: wait``, nothing executed), like
  Upbit, whose matching runs after the answer; ``post_response="current"`` shows the fills instead.
* Market orders (``price``, ``market``, ``best``) and ``ioc``/``fok`` limits never rest: whatever
  the liquidity does not fill at once is cancelled. ``fok`` therefore behaves like ``ioc`` when a
  test limits liquidity (the engine cannot pre-check a full fill).
* ``post_only`` that would take liquidity is refused (400 ``validation_error``) instead of
  resting: the engine cannot keep a marketable order from matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.control import SimState, answer_unknown_paths, mark_refused, request_time
from simulators.crypto_markets import KST, SpotMarket, decimal_string
from simulators.engine import (
    DuplicateClientOrderId,
    InsufficientFunds,
    InsufficientPosition,
    InvalidOrder,
    Order,
    OrderNotFound,
    OrderType,
    Side,
    UnknownInstrument,
)
from simulators.upbit.auth import (
    ApiError,
    Credential,
    CredentialStore,
    JwtErrors,
    JwtVerifier,
    RequestParams,
    read_params,
)
from simulators.upbit.cancels import register_cancel_routes
from simulators.upbit.errors import UpbitErrors
from simulators.upbit.exchange import register_exchange_routes, register_order_lists
from simulators.upbit.params import ORDER_NOT_FOUND
from simulators.upbit.quotation import register_quotation_routes, register_ticker_all
from simulators.upbit.throttle import BanBook, GroupThrottle
from simulators.upbit.views import order_json, order_state, orders_sorted

__all__ = ["ORDER_RATE_CHANGE", "OrderRequest", "UpbitApi"]

#: Upbit raised the order group from 8 to 12 requests a second on this day (KST).
ORDER_RATE_CHANGE = datetime(2026, 8, 21, tzinfo=KST)

UPBIT_JWT_ERRORS = JwtErrors(
    missing=(401, "no_authorization_token", "Authorization 토큰이 없습니다."),
    malformed=(401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다."),
    unknown_key=(401, "invalid_access_key", "잘못된 엑세스 키입니다."),
    expired_key=(401, "expired_access_key", "This key has expired."),
    nonce_used=(401, "nonce_used", "This temporary number has already been used."),
    query_hash=(401, "invalid_query_payload", "JWT 헤더의 페이로드가 올바르지 않습니다."),
)

_QUOTATION_RATE = 10.0
_EXCHANGE_RATE = 30.0


@dataclass(frozen=True)
class OrderRequest:
    """An order whose parameters passed the venue's checks, ready for the engine.

    Attributes:
        market: the market.
        side: buy (``bid``) or sell (``ask``).
        ord_type: ``limit``, ``price``, ``market`` or ``best``.
        tif: ``ioc``, ``fok``, ``post_only`` or None.
        kwargs: the engine's order type, quantity, price or quote amount.
        client_id: the client order id, if any.
        extra: what the order keeps for rendering.
    """

    market: SpotMarket
    side: Side
    ord_type: str
    tif: str | None
    kwargs: dict[str, Any]
    client_id: str | None
    extra: dict[str, Any]


class RateLimited(Exception):
    """Over a rate limit (429) or banned for ignoring it (418)."""

    def __init__(self, status: int, retry_after: float) -> None:
        super().__init__(status)
        self.status, self.retry_after = status, retry_after


class UpbitApi(UpbitErrors):
    """The Upbit REST facade bound to one :class:`SimState`.

    Subclassed by the Bithumb facade, which speaks the same protocol with other names.

    Args:
        state: the simulator state (engine, clock, ledger, faults).
        markets: the listed markets.
    """

    broker = "upbit"
    client_id_field = "identifier"
    jwt_errors = UPBIT_JWT_ERRORS
    require_timestamp = False
    remaining_min = 1800
    serves_upbit_lists = True
    sends_remaining_req = True

    def __init__(self, state: SimState, markets: Iterable[SpotMarket]) -> None:
        self.state = state
        self.markets = {m.symbol: m for m in markets}
        opts = state.options
        self.fee_rate = Decimal(str(opts.get("fee_rate", "0.0005")))
        self.credentials: CredentialStore = opts.setdefault("credentials", CredentialStore())
        max_age = opts.get("jwt_max_age_seconds")
        self.verifier = JwtVerifier(
            self.credentials,
            self.jwt_errors,
            # A held (late) request is checked against its arrival time, as the broker did.
            lambda: request_time(state.clock),
            require_timestamp=self.require_timestamp,
            max_token_age=timedelta(seconds=max_age) if max_age is not None else None,
        )
        bans = BanBook(
            ban_after=int(opts.get("ban_after", 10)),
            strike_window=float(opts.get("strike_window", 60)),
            ban_seconds=float(opts.get("ban_seconds", 60)),
        )
        self.throttle = GroupThrottle(self.rate_groups(), bans, per_seconds=self.rate_windows())
        opts.setdefault("throttle", self.throttle)

    # ---- configuration ----------------------------------------------------------------------

    def order_rate(self) -> float:
        """Order-group requests a second: 8, or 12 from 2026-08-21 (unless overridden)."""
        override = self.state.options.get("order_rate")
        if override is not None:
            return float(override)
        return 12.0 if self.state.clock.now() >= ORDER_RATE_CHANGE else 8.0

    def rate_groups(self) -> dict[str, float | Callable[[], float]]:
        """Group → requests a second (quotation per IP, exchange per account)."""
        opts = self.state.options
        quotation = float(opts.get("quotation_rate", _QUOTATION_RATE))
        return {
            "market": quotation,
            "ticker": quotation,
            "orderbook": quotation,
            "candles": quotation,
            "trades": quotation,
            "default": float(opts.get("exchange_rate", _EXCHANGE_RATE)),
            "order": self.order_rate,
            "order-cancel-all": float(opts.get("cancel_all_rate", 1)),
        }

    def rate_windows(self) -> dict[str, float]:
        """Groups whose window is not one second: ``order-cancel-all`` is 1 request per 2 s."""
        return {"order-cancel-all": 2.0}

    # ---- request plumbing -------------------------------------------------------------------

    def _throttle(self, group: str, key: str) -> None:
        g.sim_rate_group, g.sim_rate_key = group, key
        verdict = self.throttle.check(group, key)
        if not verdict.allowed:
            raise RateLimited(418 if verdict.banned else 429, verdict.retry_after)

    def public(self, group: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a quotation route: count per client IP, pass the parameters."""

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper() -> ResponseReturnValue:
                self._throttle(group, f"ip:{request.remote_addr}")
                return view(read_params(request))

            return wrapper

        return decorate

    def private(
        self, group: str | Callable[[RequestParams], str] = "default"
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate an exchange route: verify the JWT, count per account, pass both.

        ``group`` may depend on the parameters (Bithumb counts a bulk cancel as a batch call).
        """

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper() -> ResponseReturnValue:
                params = read_params(request)
                chosen = group(params) if callable(group) else group
                g.sim_rate_group = chosen
                credential = self.verifier.verify(request.headers.get("Authorization"), params)
                self._throttle(chosen, self.private_key(credential))
                return view(credential, params)

            return wrapper

        return decorate

    def private_key(self, credential: Credential) -> str:
        """What exchange calls are counted per: Upbit counts per account (API key)."""
        return f"key:{credential.access_key}"

    def remaining_req(self) -> str:
        """The ``Remaining-Req`` value for this request's group."""
        group = getattr(g, "sim_rate_group", "default")
        key = getattr(g, "sim_rate_key", None)
        sec = (
            self.throttle.remaining(group, key)
            if key
            else math.floor(self.throttle.rate(group)) - 1
        )
        return f"group={group}; min={self.remaining_min}; sec={sec}"

    def handle_api_error(self, exc: ApiError) -> ResponseReturnValue:
        """Answer ``{"error": {"name", "message"}}``."""
        if exc.status == 401:  # the JWT, its key or its signature: refused before anything ran
            mark_refused("auth", exc.name)
        return jsonify(exc.body()), exc.status, exc.headers

    def unknown_path(self, status: int, method: str, path: str) -> ResponseReturnValue:
        """A path (or method) the venue does not serve, in the venue's error envelope.

        [UNVERIFIED] Neither venue documents it; the numeric ``name`` follows the one framework
        error captured from both (``{"error": {"name": 400, "message": "Missing request parameter
        error. …"}}``, brokers/crypto.md §1.5, §2.4).
        """
        message = "Not Found" if status == 404 else "Method Not Allowed"
        return jsonify({"error": {"name": status, "message": message}}), status

    def handle_rate_limited(self, exc: RateLimited) -> ResponseReturnValue:
        """Answer 429 (or 418 when banned) in the configured body format."""
        mark_refused("rate", "too_many_requests" if exc.status == 429 else "blocked")
        if self.state.options.get("rate_limit_body", "text") == "json":
            name = "too_many_requests" if exc.status == 429 else "blocked"
            body = {"error": {"name": name, "message": "Too many API requests."}}
            return jsonify(body), exc.status
        return Response("Too many API requests.", exc.status, mimetype="text/plain")

    def register(self, app: Flask) -> None:
        """Add the routes, the error handlers and the ``Remaining-Req`` header to ``app``."""
        app.register_error_handler(ApiError, self.handle_api_error)
        app.register_error_handler(RateLimited, self.handle_rate_limited)
        answer_unknown_paths(app, self.unknown_path)

        @app.after_request
        def add_remaining_req(response: Response) -> Response:
            if self.sends_remaining_req and not request.path.startswith("/_sim"):
                response.headers["Remaining-Req"] = self.remaining_req()
            return response

        self.register_routes(app)

    # ---- engine access ----------------------------------------------------------------------

    def market(self, params: RequestParams, field: str = "market") -> SpotMarket:
        """Return the market a request names.

        Raises:
            ApiError: ``validation_error`` when missing or unknown.
        """
        symbol = params.get(field)
        if not symbol:
            raise self.missing(field)
        market = self.markets.get(symbol)
        if market is None:
            raise self.invalid(field)
        return market

    def find_order(
        self, credential: Credential, params: RequestParams, id_field: str = "uuid"
    ) -> Order:
        """Return the order named by ``uuid`` (wins) or the client id.

        Raises:
            ApiError: ``validation_error`` if neither is given, ``order_not_found`` if unknown.
        """
        order_no = params.get(id_field)
        client_id = params.get(self.client_id_field)
        engine = self.state.engine
        try:
            if order_no:
                return engine.get_order(credential.account_id, order_no)
            if client_id:
                return engine.get_order_by_client_id(credential.account_id, client_id)
        except OrderNotFound:
            raise ApiError(*ORDER_NOT_FOUND) from None
        raise self.missing(f"{id_field} or {self.client_id_field}")

    def render(self, order: Order, **kwargs: Any) -> dict[str, Any]:
        """Render an order in this venue's shape."""
        return order_json(
            order,
            fee_rate=self.fee_rate,
            client_id_field=self.client_id_field,
            seed=self.state.seed,
            **kwargs,
        )

    def accepted(self, order: Order) -> dict[str, Any]:
        """Render a just-placed order the way the venue answers it: accepted, nothing executed."""
        body = self.render(order)
        if self.state.options.get("post_response", "accepted") == "current":
            return body
        reserved = Decimal(body["reserved_fee"])
        if order.side is Side.SELL:
            locked = order.quantity or Decimal(0)
        elif order.extra.get("requested_amount") is not None:
            locked = Decimal(order.extra["requested_amount"]) + reserved
        else:
            locked = (order.price or Decimal(0)) * (order.quantity or Decimal(0)) + reserved
        body.update(
            state="wait",
            remaining_volume=decimal_string(order.quantity),
            remaining_fee=body["reserved_fee"],
            paid_fee="0",
            locked=decimal_string(locked),
            executed_volume="0",
            executed_funds="0",
            trades_count=0,
        )
        return body

    def place(self, credential: Credential, params: RequestParams, order_type_field: str) -> Order:
        """Validate an order request the venue's way and hand it to the engine.

        Raises:
            ApiError: the venue's error for a malformed order, a broken rule, missing funds or a
                reused client id.
        """
        return self.submit(credential, self.order_request(params, order_type_field))

    def order_request(self, params: RequestParams, order_type_field: str) -> OrderRequest:
        """Check an order's parameters the venue's way, without touching any account.

        Split from :meth:`submit` so that ``cancel_and_new`` can refuse a malformed new order
        before it cancels the old one.

        Raises:
            ApiError: the venue's error for a malformed order.
        """
        market = self.market(params)
        side_raw = params.get("side")
        if side_raw not in {"bid", "ask"}:
            raise self.missing("side") if not side_raw else self.invalid("side")
        side = Side.BUY if side_raw == "bid" else Side.SELL
        ord_type = params.get(order_type_field)
        if ord_type not in {"limit", "price", "market", "best"}:
            raise self.missing(order_type_field) if not ord_type else self.invalid(order_type_field)
        tif = (params.get("time_in_force") or "").lower() or None
        if tif not in {None, "ioc", "fok", "post_only"}:
            raise self.invalid("time_in_force")
        volume = self.decimal(params, "volume")
        price = self.decimal(params, "price")
        create_error = self.create_error(side)
        kwargs: dict[str, Any]
        if ord_type == "limit":
            if volume is None or price is None:
                raise ApiError(*create_error)
            kwargs = {"order_type": OrderType.LIMIT, "quantity": volume, "price": price}
        elif ord_type == "price" or (ord_type == "best" and side is Side.BUY):
            if side is not Side.BUY or price is None or volume is not None:
                raise ApiError(*create_error)
            kwargs = {"order_type": OrderType.MARKET, "quote_amount": price}
        else:  # market sell, best sell
            if side is not Side.SELL or volume is None or price is not None:
                raise ApiError(*create_error)
            kwargs = {"order_type": OrderType.MARKET, "quantity": volume}
        if ord_type == "best" and tif not in {"ioc", "fok"}:
            raise self.missing("time_in_force")
        if tif == "post_only":
            if ord_type != "limit":
                raise self.invalid("time_in_force")
            current = self.state.engine.price(market.symbol)
            if (side is Side.BUY and price >= current) or (side is Side.SELL and price <= current):  # type: ignore[operator]
                raise ApiError(
                    400, "validation_error", "post_only order would be executed immediately"
                )
        extra = {
            "ord_type": ord_type,
            "time_in_force": tif,
            "smp_type": params.get("smp_type") or params.get("stp_type"),
            "requested_amount": str(price) if kwargs.get("quote_amount") is not None else None,
        }
        return OrderRequest(
            market, side, ord_type, tif, kwargs, params.get(self.client_id_field) or None, extra
        )

    def submit(self, credential: Credential, order: OrderRequest) -> Order:
        """Hand a checked order to the engine; what cannot rest (market, IOC, FOK) is cancelled.

        Raises:
            ApiError: the venue's error for a broken rule, missing funds or a reused client id.
        """
        market, side = order.market, order.side
        engine = self.state.engine
        try:
            placed = engine.place_order(
                credential.account_id,
                market.symbol,
                side,
                client_order_id=order.client_id,
                extra=order.extra,
                **order.kwargs,
            )
        except UnknownInstrument:
            raise self.invalid("market") from None
        except DuplicateClientOrderId:
            raise ApiError(*self.duplicate_error()) from None
        except InsufficientFunds as exc:
            raise ApiError(*self.insufficient_error(side, exc.asset)) from None
        except InsufficientPosition as exc:
            raise ApiError(*self.insufficient_error(side, exc.asset)) from None
        except InvalidOrder as exc:
            raise ApiError(*self.rule_error(side, exc.rule, market)) from None
        if placed.is_open and (order.ord_type != "limit" or order.tif in {"ioc", "fok"}):
            # Market and IOC/FOK orders never rest: what did not fill now is cancelled.
            placed = engine.cancel_order(credential.account_id, placed.order_no)
        return placed

    # ---- routes -----------------------------------------------------------------------------

    def register_routes(self, app: Flask) -> None:
        """Add Upbit's ``/v1`` routes: quotation (per IP) and exchange (per account)."""
        if self.serves_upbit_lists:
            self.register_upbit_lists(app)
        register_quotation_routes(self, app)
        register_exchange_routes(self, app)

    def register_upbit_lists(self, app: Flask) -> None:
        """Add the routes only Upbit has (Bithumb lacks them).

        ``/v1/ticker/all``, ``/v1/orders/open|closed``, the bulk cancel and cancel-and-new.
        """
        register_ticker_all(self, app)
        register_order_lists(self, app)
        register_cancel_routes(self, app)

    # ---- list helpers -----------------------------------------------------------------------

    def states(self, params: RequestParams, *, default: list[str], allowed: set[str]) -> list[str]:
        """The ``state`` / ``states[]`` filter.

        Raises:
            ApiError: ``validation_error`` for a state the endpoint does not list.
        """
        wanted = params.getlist("states") or ([params.get("state")] if params.get("state") else [])
        wanted = wanted or default
        if any(s not in allowed for s in wanted):
            raise self.invalid("state")
        return wanted

    def select(
        self,
        credential: Credential,
        params: RequestParams,
        *,
        states: list[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Order]:
        """The account's orders in ``market`` (optional) with a wanted state."""
        symbol = params.get("market")
        if symbol and symbol not in self.markets:
            raise self.invalid("market")
        orders = self.state.engine.orders(
            credential.account_id, symbol=symbol or None, since=since, until=until
        )
        return [o for o in orders if order_state(o) in states]

    def limit(self, params: RequestParams, *, default: int, maximum: int) -> int:
        """The ``limit`` parameter, within bounds.

        Raises:
            ApiError: ``validation_error`` if it is not a whole number in ``1..maximum``.
        """
        raw = params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise self.invalid("limit")
        return int(raw)

    def page(
        self, orders: list[Order], params: RequestParams, *, max_limit: int
    ) -> list[dict[str, Any]]:
        """Sort, then cut one ``page`` of ``limit`` orders (pages start at 1)."""
        limit = self.limit(params, default=100, maximum=max_limit)
        raw_page = params.get("page") or "1"
        if not raw_page.isdigit() or int(raw_page) < 1:
            raise self.invalid("page")
        start = (int(raw_page) - 1) * limit
        chosen = orders_sorted(orders, params.get("order_by"))[start : start + limit]
        return [self.render(o) for o in chosen]
