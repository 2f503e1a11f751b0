"""Engine objects rendered as Binance spot JSON (exchangeInfo symbols, orders, fills, tickers).

Shapes follow bn-docs ``rest-api.md`` and the samples quoted in brokers/crypto.md §3.3.
Quantities and prices are strings with 8 decimals (``"0.00100000"``), times epoch ms.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from simulators.crypto_markets import SpotMarket
from simulators.engine import Engine, Fill, LedgerKind, Order, OrderStatus, Side

__all__ = [
    "ORDER_TYPES",
    "fill_json",
    "ms",
    "my_trade_json",
    "order_json",
    "order_status",
    "symbol_json",
    "ticker_24hr_json",
]

#: What the simulator executes; ccxt refuses a unified type missing from this list.
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]


def q8(value: Decimal | None) -> str:
    """Binance's fixed 8-decimal number string."""
    return f"{(value or Decimal(0)):.8f}"


def ms(when: datetime) -> int:
    """Epoch milliseconds."""
    return int(when.timestamp() * 1000)


def symbol_json(market: SpotMarket) -> dict[str, Any]:
    """One ``exchangeInfo.symbols`` entry with PRICE_FILTER, LOT_SIZE and NOTIONAL filters."""
    return {
        "symbol": market.symbol,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": q8(market.min_price),
                "maxPrice": q8(market.max_price),
                "tickSize": q8(market.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": q8(market.min_qty),
                "maxQty": q8(market.max_qty),
                "stepSize": q8(market.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": q8(market.min_notional),
                "applyMinToMarket": True,
                "maxNotional": q8(market.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def order_status(order: Order, expired: bool = False) -> str:
    """Binance status: NEW, PARTIALLY_FILLED, FILLED, CANCELED, or EXPIRED (IOC/market rest)."""
    if order.status is OrderStatus.OPEN:
        return "NEW"
    if order.status is OrderStatus.PARTIALLY_FILLED:
        return "PARTIALLY_FILLED"
    if order.status is OrderStatus.FILLED:
        return "FILLED"
    if expired:
        return "EXPIRED"
    return "CANCELED"


def fill_json(fill: Fill) -> dict[str, Any]:
    """One ``fills`` entry of a FULL order response."""
    return {
        "price": q8(fill.price),
        "qty": q8(fill.quantity),
        "commission": q8(fill.fee),
        "commissionAsset": fill.fee_asset,
        "tradeId": fill.fill_id,
    }


def my_trade_json(fill: Fill) -> dict[str, Any]:
    """One ``GET /api/v3/myTrades`` row (orders never belong to an order list here)."""
    return {
        "symbol": fill.symbol,
        "id": fill.fill_id,
        "orderId": int(fill.order_no),
        "orderListId": -1,
        "price": q8(fill.price),
        "qty": q8(fill.quantity),
        "quoteQty": q8(fill.notional),
        "commission": q8(fill.fee),
        "commissionAsset": fill.fee_asset,
        "time": ms(fill.time),
        "isBuyer": fill.side is Side.BUY,
        "isMaker": fill.maker,
        "isBestMatch": True,
    }


def _orig_qty(order: Order) -> Decimal:
    if order.quantity is not None:
        return order.quantity
    return order.filled_quantity  # a quote-sized market buy reports what it bought


def order_json(
    order: Order, *, full: bool = False, transact: bool = False, expired: bool = False
) -> dict[str, Any]:
    """An order as ``GET /api/v3/order`` (with ``transact``: ``POST /api/v3/order``) shows it."""
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": int(order.order_no),
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
    }
    if transact:
        body["transactTime"] = ms(order.created_at)
    body.update(
        {
            "price": q8(order.price),
            "origQty": q8(_orig_qty(order)),
            "executedQty": q8(order.filled_quantity),
            "cummulativeQuoteQty": q8(order.filled_notional),
            "status": order_status(order, expired),
            "timeInForce": order.extra.get("time_in_force", "GTC"),
            "type": order.extra.get("type", order.order_type.value),
            "side": order.side.value,
        }
    )
    if not transact:
        body.update(
            {
                "stopPrice": q8(None),
                "icebergQty": q8(None),
                "time": ms(order.created_at),
                "updateTime": ms(order.updated_at),
                "isWorking": True,
            }
        )
    body["workingTime"] = ms(order.created_at)
    body["origQuoteOrderQty"] = q8(
        Decimal(order.extra["quote_order_qty"]) if order.extra.get("quote_order_qty") else None
    )
    body["selfTradePreventionMode"] = order.extra.get("stp", "EXPIRE_MAKER")
    if full:
        body["fills"] = [fill_json(f) for f in order.fills]
    return body


def ticker_24hr_json(engine: Engine, market: SpotMarket) -> dict[str, Any]:
    """A ``GET /api/v3/ticker/24hr`` entry from the price path and the simulator's own fills."""
    now = engine.clock.now()
    start = now - timedelta(days=1)
    price = engine.price(market.symbol)
    opening = engine.price(market.symbol, at=start)
    samples = [opening, price] + [
        engine.price(market.symbol, at=start + timedelta(hours=h)) for h in range(1, 24)
    ]
    volume, quote_volume, count, last_qty = Decimal(0), Decimal(0), 0, Decimal(0)
    first_id, last_id = -1, -1
    for entry in engine.ledger.entries(kinds=[LedgerKind.FILL], since=start):
        if entry.data.get("symbol") != market.symbol:
            continue
        qty = Decimal(str(entry.data["quantity"]))
        volume += qty
        quote_volume += qty * Decimal(str(entry.data["price"]))
        count += 1
        last_qty = qty
        fill_id = int(entry.data["fill_id"])
        first_id = fill_id if first_id < 0 else first_id
        last_id = fill_id
    change = price - opening
    tick = market.tick_at(price)
    return {
        "symbol": market.symbol,
        "priceChange": q8(change),
        "priceChangePercent": f"{(change / opening * 100) if opening else Decimal(0):.3f}",
        "weightedAvgPrice": q8(quote_volume / volume if volume else price),
        "prevClosePrice": q8(opening),
        "lastPrice": q8(price),
        "lastQty": q8(last_qty),
        "bidPrice": q8(price - tick),
        "bidQty": q8(Decimal(1)),
        "askPrice": q8(price),
        "askQty": q8(Decimal(1)),
        "openPrice": q8(opening),
        "highPrice": q8(max(samples)),
        "lowPrice": q8(min(samples)),
        "volume": q8(volume),
        "quoteVolume": q8(quote_volume),
        "openTime": ms(start),
        "closeTime": ms(now),
        "firstId": first_id,
        "lastId": last_id,
        "count": count,
    }
