"""Binance's public market-data routes: ping, time, exchange info, tickers and depth.

Unsigned; each spends its request weight per client IP (see
:meth:`BinanceApi.endpoint <simulators.binance.routes.BinanceApi.endpoint>`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.binance.auth import BinanceError, BinanceParams
from simulators.binance.views import ms, symbol_json, ticker_24hr_json

if TYPE_CHECKING:
    from simulators.binance.routes import BinanceApi

__all__ = ["register_market_routes"]


def register_market_routes(api: BinanceApi, app: Flask) -> None:
    """Add ``ping``, ``time``, ``exchangeInfo``, ``ticker/price``, ``ticker/24hr`` and ``depth``."""
    engine = api.state.engine

    @app.get("/api/v3/ping")
    @api.endpoint(1)
    def ping(params: BinanceParams) -> ResponseReturnValue:
        return jsonify({})

    @app.get("/api/v3/time")
    @api.endpoint(1)
    def server_time(params: BinanceParams) -> ResponseReturnValue:
        return jsonify({"serverTime": ms(api.state.clock.now())})

    @app.get("/api/v3/exchangeInfo")
    @api.endpoint(20)
    def exchange_info(params: BinanceParams) -> ResponseReturnValue:
        wanted: list[str] | None = None
        if params.get("symbol"):
            wanted = [params.get("symbol")]  # type: ignore[list-item]
        elif params.get("symbols"):
            raw = params.get("symbols") or ""
            wanted = [s.strip(' "') for s in raw.strip("[]").split(",") if s.strip(' "')]
        if wanted is not None and any(s not in api.markets for s in wanted):
            raise BinanceError(-1121, "Invalid symbol.")
        markets = [api.markets[s] for s in wanted] if wanted else list(api.markets.values())
        return jsonify(
            {
                "timezone": "UTC",
                "serverTime": ms(api.state.clock.now()),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": api.weight_limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": api.orders_10s,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": api.orders_1d,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [symbol_json(m) for m in markets],
            }
        )

    @app.get("/api/v3/ticker/price")
    @api.endpoint(lambda p: 2 if p.get("symbol") else 4)
    def ticker_price(params: BinanceParams) -> ResponseReturnValue:
        if params.get("symbol"):
            market = api.market(params)
            return jsonify({"symbol": market.symbol, "price": f"{engine.price(market.symbol):.8f}"})
        return jsonify([{"symbol": s, "price": f"{engine.price(s):.8f}"} for s in api.markets])

    @app.get("/api/v3/ticker/24hr")
    @api.endpoint(lambda p: 2 if p.get("symbol") else 80)
    def ticker_24hr(params: BinanceParams) -> ResponseReturnValue:
        if params.get("symbol"):
            return jsonify(ticker_24hr_json(engine, api.market(params)))
        return jsonify([ticker_24hr_json(engine, m) for m in api.markets.values()])

    @app.get("/api/v3/depth")
    @api.endpoint(lambda p: _depth_weight(p.get("limit")))
    def depth(params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        limit = int(params.get("limit") or 100)
        if not 1 <= limit <= 5000:
            raise BinanceError(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'."
            )
        price = engine.price(market.symbol)
        tick = market.tick_size or Decimal(1)
        size = f"{Decimal(str(api.state.options.get('depth_size', '1'))):.8f}"
        levels = min(limit, 100)
        return jsonify(
            {
                "lastUpdateId": ms(api.state.clock.now()),
                "bids": [
                    [f"{price - tick * (i + 1):.8f}", size]
                    for i in range(levels)
                    if price - tick * (i + 1) > 0
                ],
                "asks": [[f"{price + tick * i:.8f}", size] for i in range(levels)],
            }
        )


def _depth_weight(limit: str | None) -> int:
    value = int(limit) if limit and limit.isdigit() else 100
    if value <= 100:
        return 5
    if value <= 500:
        return 25
    if value <= 1000:
        return 50
    return 250
