"""Upbit's quotation routes: markets, tickers and order books, counted per client IP.

Bithumb serves the same ``/v1/market/all``, ``/v1/ticker`` and ``/v1/orderbook``;
``/v1/ticker/all`` is Upbit's alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.crypto_markets import SpotMarket
from simulators.upbit.auth import ApiError, RequestParams
from simulators.upbit.views import orderbook_json, ticker_json

if TYPE_CHECKING:
    from simulators.upbit.routes import UpbitApi

__all__ = ["register_quotation_routes", "register_ticker_all"]


def _requested_markets(api: UpbitApi, params: RequestParams) -> list[SpotMarket]:
    """The listed markets of the comma-separated ``markets`` parameter(s).

    Raises:
        ApiError: the venue's missing-parameter error without any; 404 ``Code not found`` when
            one of them is not listed.
    """
    names = [s for raw in params.getlist("markets") for s in raw.split(",")]
    if not names:
        raise api.missing("markets")
    found = [api.markets.get(s.strip()) for s in names if s.strip()]
    if not found or any(m is None for m in found):
        raise ApiError(404, 404, "Code not found")
    return found  # type: ignore[return-value]


def register_quotation_routes(api: UpbitApi, app: Flask) -> None:
    """Add ``/v1/market/all``, ``/v1/ticker`` and ``/v1/orderbook``."""
    engine = api.state.engine

    @app.get("/v1/market/all")
    @api.public("market")
    def market_all(params: RequestParams) -> ResponseReturnValue:
        details = (params.get("isDetails") or params.get("is_details") or "").lower() == "true"
        out = []
        for m in api.markets.values():
            row: dict[str, Any] = {
                "market": m.symbol,
                "korean_name": m.korean_name,
                "english_name": m.english_name,
            }
            if details:
                row["market_warning"] = "NONE"
                row["market_event"] = {
                    "warning": False,
                    "caution": {
                        "PRICE_FLUCTUATIONS": False,
                        "TRADING_VOLUME_SOARING": False,
                        "DEPOSIT_AMOUNT_SOARING": False,
                        "GLOBAL_PRICE_DIFFERENCES": False,
                        "CONCENTRATION_OF_SMALL_ACCOUNTS": False,
                    },
                }
            out.append(row)
        return jsonify(out)

    @app.get("/v1/ticker")
    @api.public("ticker")
    def ticker(params: RequestParams) -> ResponseReturnValue:
        return jsonify([ticker_json(engine, m) for m in _requested_markets(api, params)])

    @app.get("/v1/orderbook")
    @api.public("orderbook")
    def orderbook(params: RequestParams) -> ResponseReturnValue:
        markets = _requested_markets(api, params)
        size = api.state.options.get("orderbook_size")
        return jsonify(
            [orderbook_json(engine, m, size=Decimal(str(size)) if size else None) for m in markets]
        )


def register_ticker_all(api: UpbitApi, app: Flask) -> None:
    """Add Upbit's ``/v1/ticker/all`` (every market in the given quote currencies)."""
    engine = api.state.engine

    @app.get("/v1/ticker/all")
    @api.public("ticker")
    def ticker_all(params: RequestParams) -> ResponseReturnValue:
        quotes = [q for raw in params.getlist("quote_currencies") for q in raw.split(",")]
        if not quotes:
            raise api.missing("quote_currencies")
        return jsonify([ticker_json(engine, m) for m in api.markets.values() if m.quote in quotes])
