"""Bithumb API 2.0 routes: the Upbit-style ``/v1`` protocol plus ``/v2/orders`` (ccxt ≥ 4.5.85).

What ccxt 4.5.90 calls (its ``bithumb.py``, generation 2): ``GET /v1/market/all?isDetails=true``
(load_markets), ``GET /v1/accounts``, ``GET /v1/ticker``, ``GET /v1/orderbook``,
``POST /v2/orders``, ``GET /v1/order`` (``uuid`` or ``client_order_id``), ``GET /v1/orders``
(``state``, ``market``, ``limit``, ``uuids``, ``client_order_ids``; fetch_open_orders sends
``state=wait``), ``DELETE /v2/order`` (``order_id`` or ``client_order_id``),
``POST /v2/orders/cancel`` (cancel_orders: ``{"order_ids": […]}`` or ``client_order_ids``). The
older 2.0 order routes (``POST /v1/orders`` with ``ord_type``, ``DELETE /v1/order``,
``GET /v1/orders/chance``) are served too; the legacy 1.x HMAC API (``/public``, ``/info``,
``/trade``) is not.

Differences from Upbit, each from apidocs.bithumb.com's error table or ccxt's sample payloads:

* JWTs carry ``timestamp`` (ms); one older than ``jwt_max_age_seconds`` (default 30 s
  [UNVERIFIED]) is ``401 expired_jwt``. Auth failures without a Bithumb name of their own (unknown
  key, reused nonce) answer ``401 jwt_verification`` [UNVERIFIED].
* Order ids look like ``C0101000003152350309``; responses to create/cancel are the short
  ``{"order_id", …}`` forms.
* 400 names: ``invalid_parameter``, ``invalid_price_bid|ask``, ``under_price_limit_bid|ask``,
  ``insufficient_funds_bid|ask`` [name UNVERIFIED], ``duplicate_client_order_id`` [UNVERIFIED].
* No ``Remaining-Req`` header (none documented); limits per IP and category (public 150/s,
  private 140/s per ``order``/``cancel``/``other``, bulk cancel 20/s); over the limit → 429 with a
  JSON error ``too_many_requests`` [body UNVERIFIED], continuing → 418.
* ``POST /v2/orders/cancel``: apidocs.bithumb.com's changelog names the *single* cancel path
  ``DELETE /v2/order`` in one version and ``POST /v2/orders/cancel`` in another
  (trading-days.md §4), while ccxt and crypto.md §2.3 use the latter for the bulk cancel. Both
  are served: a body with ``order_id``/``client_order_id`` cancels one order and answers like
  ``DELETE /v2/order``; ``order_ids``/``client_order_ids`` (at most 20 [UNVERIFIED]) cancel each and
  answer ``{"success": [{"order_id", "created_at"}], "fail": [{"order_id" (or
  "client_order_id"), "error": {"name", "message"}}]}`` (the ``fail`` rows' shape [UNVERIFIED]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.control import mark_refused
from simulators.crypto_markets import SpotMarket, decimal_string
from simulators.engine import OrderNotFound, OrderNotOpen, Side
from simulators.upbit.auth import ApiError, Credential, JwtErrors, RequestParams
from simulators.upbit.params import ORDER_NOT_FOUND
from simulators.upbit.routes import RateLimited, UpbitApi
from simulators.upbit.views import kst

__all__ = ["BITHUMB_JWT_ERRORS", "BithumbApi"]

_JWT_FAILED = (401, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.")

BITHUMB_JWT_ERRORS = JwtErrors(
    missing=_JWT_FAILED,
    malformed=_JWT_FAILED,
    unknown_key=_JWT_FAILED,
    expired_key=_JWT_FAILED,
    nonce_used=_JWT_FAILED,
    query_hash=(401, "invalid_query_payload", "Jwt의 query를 검증하는데 실패하였습니다."),
    expired_token=(401, "expired_jwt", "Jwt가 만료되었습니다."),
)

_PUBLIC_RATE = 150.0
_PRIVATE_RATE = 140.0
_BATCH_RATE = 20.0
_MAX_BULK_CANCEL = 20
_BULK_FIELDS = ("order_ids", "client_order_ids")


class BithumbApi(UpbitApi):
    """The Bithumb API 2.0 facade (Upbit's protocol with Bithumb's names and ``/v2`` orders)."""

    broker = "bithumb"
    client_id_field = "client_order_id"
    jwt_errors = BITHUMB_JWT_ERRORS
    require_timestamp = True
    serves_upbit_lists = False
    sends_remaining_req = False

    def rate_groups(self) -> dict[str, float | Callable[[], float]]:
        """Per-category limits (per second)."""
        opts = self.state.options
        public = float(opts.get("public_rate", _PUBLIC_RATE))
        private = float(opts.get("private_rate", _PRIVATE_RATE))
        return {
            "market": public,
            "ticker": public,
            "orderbook": public,
            "default": private,
            "order": float(opts.get("order_rate", private)),
            "cancel": private,
            "batch": float(opts.get("batch_rate", _BATCH_RATE)),
        }

    def handle_rate_limited(self, exc: RateLimited) -> ResponseReturnValue:
        """429 / 418 with a JSON error body."""
        mark_refused("rate", "too_many_requests" if exc.status == 429 else "blocked")
        name = "too_many_requests" if exc.status == 429 else "blocked"
        body = {"error": {"name": name, "message": "요청 수 제한을 초과했습니다."}}
        return jsonify(body), exc.status

    # ---- Bithumb's error names --------------------------------------------------------------

    def missing(self, field: str) -> ApiError:
        """``invalid_parameter`` for anything missing."""
        return ApiError(400, "invalid_parameter", f"잘못된 파라미터 입니다. ({field})")

    def invalid(self, field: str) -> ApiError:
        """``invalid_parameter`` for anything malformed."""
        return ApiError(400, "invalid_parameter", f"잘못된 파라미터 입니다. ({field})")

    def create_error(self, side: Side) -> tuple[int, str, str]:
        """Parameters that do not fit the order type."""
        return 400, "invalid_parameter", "잘못된 파라미터 입니다."

    def duplicate_error(self) -> tuple[int, str, str]:
        """A reused ``client_order_id``."""
        return 400, "duplicate_client_order_id", "이미 사용된 client_order_id 입니다."

    def min_total_error(self, side: Side, market: SpotMarket) -> tuple[int, str, str]:
        """An order worth less than the market's minimum: ``under_price_limit_bid|ask``."""
        suffix = "bid" if side is Side.BUY else "ask"
        minimum = f"{decimal_string(market.min_notional)} {market.quote}"
        return (
            400,
            f"under_price_limit_{suffix}",
            f"주문가격은 최소 {minimum} 이상으로 주문 가능합니다.",
        )

    def volume_error(self) -> tuple[int, str, str]:
        """Any other broken rule: ``invalid_parameter``."""
        return 400, "invalid_parameter", "잘못된 파라미터 입니다."

    # ---- routes -----------------------------------------------------------------------------

    def register_routes(self, app: Flask) -> None:
        """Add the shared ``/v1`` routes and Bithumb's ``/v2`` order routes."""
        super().register_routes(app)

        @app.post("/v2/orders")
        @self.private("order")
        def create_order_v2(credential: Credential, params: RequestParams) -> ResponseReturnValue:
            order = self.place(credential, params, "order_type")
            body: dict[str, Any] = {
                "order_id": order.order_no,
                "market": order.symbol,
                "side": "bid" if order.side is Side.BUY else "ask",
                "order_type": order.extra.get("ord_type"),
                "created_at": kst(order.created_at),
            }
            if order.extra.get("smp_type"):
                body["stp_type"] = order.extra["smp_type"]
            return jsonify(body), 201

        @app.delete("/v2/order")
        @self.private("cancel")
        def cancel_order_v2(credential: Credential, params: RequestParams) -> ResponseReturnValue:
            return jsonify(self.cancel_one(credential, params))

        @app.post("/v2/orders/cancel")
        @self.private(lambda p: "batch" if any(p.getlist(f) for f in _BULK_FIELDS) else "cancel")
        def cancel_orders_v2(credential: Credential, params: RequestParams) -> ResponseReturnValue:
            if not any(params.getlist(f) for f in _BULK_FIELDS):
                return jsonify(self.cancel_one(credential, params))
            return jsonify(self.cancel_many(credential, params))

    def cancel_one(self, credential: Credential, params: RequestParams) -> dict[str, Any]:
        """Cancel the order ``order_id`` (wins) or ``client_order_id`` names.

        Raises:
            ApiError: ``invalid_parameter`` when neither is sent, ``order_not_found`` when it is
                unknown or no longer open.
        """
        order = self.find_order(credential, params, id_field="order_id")
        try:
            self.state.engine.cancel_order(credential.account_id, order.order_no)
        except (OrderNotOpen, OrderNotFound):
            raise ApiError(*ORDER_NOT_FOUND) from None
        return {"order_id": order.order_no, "created_at": kst(order.created_at)}

    def cancel_many(self, credential: Credential, params: RequestParams) -> dict[str, Any]:
        """Cancel each order of ``order_ids`` or ``client_order_ids``; report each outcome.

        Raises:
            ApiError: ``invalid_parameter`` when both lists are sent or one is too long.
        """
        order_ids, client_ids = (params.getlist(f) for f in _BULK_FIELDS)
        if order_ids and client_ids:
            raise self.invalid("order_ids")
        by_client = bool(client_ids)
        wanted = client_ids or order_ids
        if len(wanted) > _MAX_BULK_CANCEL:
            raise self.invalid(_BULK_FIELDS[by_client])
        engine = self.state.engine
        success: list[dict[str, Any]] = []
        fail: list[dict[str, Any]] = []
        for wanted_id in wanted:
            try:
                order = (
                    engine.get_order_by_client_id(credential.account_id, wanted_id)
                    if by_client
                    else engine.get_order(credential.account_id, wanted_id)
                )
                engine.cancel_order(credential.account_id, order.order_no)
            except (OrderNotOpen, OrderNotFound):
                _status, name, message = ORDER_NOT_FOUND
                key = "client_order_id" if by_client else "order_id"
                fail.append({key: wanted_id, "error": {"name": name, "message": message}})
                continue
            row = {"order_id": order.order_no, "created_at": kst(order.created_at)}
            if by_client:
                row["client_order_id"] = wanted_id
            success.append(row)
        return {"success": success, "fail": fail}

    def private_key(self, credential: Credential) -> str:
        """Bithumb counts private calls per client IP too."""
        return f"ip:{request.remote_addr}"
