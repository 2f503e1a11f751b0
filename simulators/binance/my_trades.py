"""Binance's ``GET /api/v3/myTrades``: the account's fills in one symbol.

Weight 20, or 5 with ``orderId`` (trading-days.md §6). Parameters (bn-docs ``rest-api.md``
"Account trade list"): ``symbol`` (required), ``orderId``, ``startTime``, ``endTime``, ``fromId``,
``limit`` (default 500, at most 1000; larger is clamped [UNVERIFIED]). Only the documented
combinations are accepted — symbol alone, or with ``orderId``, ``startTime``, ``endTime``,
``fromId``, ``startTime`` + ``endTime``, or ``orderId`` + ``fromId`` — others answer -1128; a
window over 24 hours answers -1127.

Which rows a window returns when it holds more than ``limit`` is not documented: with ``fromId`` or
``startTime`` the oldest from there, otherwise the newest (the docs' "most recent trades"), always
oldest first. A row's ``isMaker`` is the engine's: a resting limit order filled after the step it
arrived in made the market.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from simulators.binance.auth import BinanceError, BinanceParams, Credential
from simulators.binance.views import my_trade_json

if TYPE_CHECKING:
    from simulators.binance.routes import BinanceApi

__all__ = ["register_my_trades"]

_OPTIONAL = ("orderId", "startTime", "endTime", "fromId")
#: The optional-parameter sets the documentation lists as supported.
_COMBINATIONS = frozenset(
    frozenset(c)
    for c in (
        (),
        ("orderId",),
        ("startTime",),
        ("endTime",),
        ("fromId",),
        ("startTime", "endTime"),
        ("orderId", "fromId"),
    )
)
_MAX_WINDOW = timedelta(hours=24)


def _integer(params: BinanceParams, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.lstrip("-").isdigit():
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]+$'."
        )
    return int(raw)


def _time(ms_value: int | None) -> datetime | None:
    return None if ms_value is None else datetime.fromtimestamp(ms_value / 1000, UTC)


def register_my_trades(api: BinanceApi, app: Flask) -> None:
    """Add ``GET /api/v3/myTrades``."""
    engine = api.state.engine

    @app.get("/api/v3/myTrades")
    @api.endpoint(lambda p: 5 if p.get("orderId") else 20, signed=True)
    def my_trades(credential: Credential, params: BinanceParams) -> ResponseReturnValue:
        market = api.market(params)
        sent = frozenset(name for name in _OPTIONAL if params.get(name) is not None)
        if sent not in _COMBINATIONS:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        order_id, from_id = _integer(params, "orderId"), _integer(params, "fromId")
        start, end = _time(_integer(params, "startTime")), _time(_integer(params, "endTime"))
        if start is not None and end is not None and end - start > _MAX_WINDOW:
            raise BinanceError(-1127, "More than 24 hours between startTime and endTime.")
        limit = min(1000, max(1, _integer(params, "limit") or 500))  # as allOrders: clamped
        fills = engine.fills(
            credential.account_id,
            symbol=market.symbol,
            order_no=str(order_id) if order_id is not None else None,
            since=start,
            until=end + timedelta(milliseconds=1) if end is not None else None,  # inclusive
        )
        if from_id is not None:
            fills = [f for f in fills if f.fill_id >= from_id][:limit]
        elif start is not None:
            fills = fills[:limit]
        else:
            fills = fills[-limit:]
        return jsonify([my_trade_json(f) for f in fills])
