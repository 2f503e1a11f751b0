"""Engine objects rendered as Upbit JSON (orders, trades, accounts, tickers, order books).

Bithumb API 2.0 answers with the same shapes (``uuid``, ``ord_type``, ``state``, ``paid_fee`` …),
so its facade reuses these with its own client-id field name (``client_order_id``).

Field sources: ccxt's sample payloads in ``upbit.py``/``bithumb.py`` and the Upbit reference
(brokers/crypto.md §1.3). Numbers travel as decimal strings, times as KST ISO 8601 with offset.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

from simulators.crypto_markets import KST, SpotMarket, decimal_string
from simulators.engine import (
    Balance,
    Engine,
    Fill,
    LedgerKind,
    Order,
    OrderStatus,
    Side,
)

__all__ = [
    "account_json",
    "kst",
    "order_json",
    "order_state",
    "orderbook_json",
    "ticker_json",
    "trade_json",
]

_FEE_PLACES = Decimal("1e-8")


def kst(when: datetime) -> str:
    """Render a time as Upbit does: ``2026-03-02T09:30:00+09:00``."""
    return when.astimezone(KST).replace(microsecond=0).isoformat()


def order_state(order: Order) -> str:
    """Upbit ``state``: ``wait`` while open, ``done`` when filled, ``cancel`` otherwise.

    A market buy by amount (``ord_type=price``) whose leftover KRW could not buy one more unit
    ends ``cancel`` with fills (the dust is refunded), exactly as Upbit reports it; only an exact
    fill ends ``done`` (brokers/crypto.md §1.7).
    """
    if order.is_open:
        return "wait"
    if order.status is OrderStatus.FILLED:
        if order.quote_amount is not None and order.extra.get("requested_amount") is not None:
            requested = Decimal(order.extra["requested_amount"])
            if order.filled_notional < requested:
                return "cancel"
        return "done"
    return "cancel"


def _fee_reserved(order: Order, fee_rate: Decimal) -> Decimal:
    if order.extra.get("requested_amount") is not None:
        base = Decimal(order.extra["requested_amount"])
    elif order.price is not None and order.quantity is not None:
        base = order.price * order.quantity
    else:
        base = order.filled_notional
    return (base * fee_rate).quantize(_FEE_PLACES, rounding=ROUND_UP)


def trade_json(fill: Fill, market: str, seed: int | str) -> dict[str, Any]:
    """One execution inside ``GET /v1/order``'s ``trades``."""
    digest = hashlib.blake2b(f"{seed}|trade|{fill.fill_id}".encode(), digest_size=16).digest()
    return {
        "market": market,
        "uuid": str(uuid.UUID(bytes=digest, version=4)),
        "price": decimal_string(fill.price),
        "volume": decimal_string(fill.quantity),
        "funds": decimal_string(fill.notional),
        "trend": "up" if fill.side is Side.BUY else "down",
        "created_at": kst(fill.time),
        "side": "bid" if fill.side is Side.BUY else "ask",
    }


def _remaining_volume(order: Order) -> Decimal | None:
    if order.quantity is None:
        return None  # a market buy by amount has no volume
    if order.is_open:
        return order.remaining_quantity
    # A cancelled order shows what was left when it was cancelled, as Upbit does.
    return order.cancelled_quantity if order.status is OrderStatus.CANCELLED else Decimal(0)


def order_json(
    order: Order,
    *,
    fee_rate: Decimal,
    client_id_field: str,
    type_field: str = "ord_type",
    with_trades: bool = False,
    seed: int | str = 0,
    state: str | None = None,
) -> dict[str, Any]:
    """Render an order as Upbit's (or Bithumb's) order object.

    Args:
        order: the engine snapshot.
        fee_rate: the venue's commission, for ``reserved_fee``.
        client_id_field: ``identifier`` (Upbit) or ``client_order_id`` (Bithumb).
        type_field: the order-type field name (``ord_type`` on both venues' order objects).
        with_trades: include ``trades`` (single-order look-ups).
        seed: seeds the trade uuids.
        state: force the ``state`` (a cancel is answered as still ``wait``: accepted, not applied).
    """
    ord_type = order.extra.get("ord_type", "limit")
    requested_amount = order.extra.get("requested_amount")
    if ord_type == "price":
        price: Decimal | None = Decimal(requested_amount) if requested_amount else None
    else:
        price = order.price
    reserved = _fee_reserved(order, fee_rate)
    remaining_fee = max(Decimal(0), reserved - order.fees) if order.is_open else Decimal(0)
    body: dict[str, Any] = {
        "uuid": order.order_no,
        "side": "bid" if order.side is Side.BUY else "ask",
        type_field: ord_type,
        "price": decimal_string(price),
        "state": state or order_state(order),
        "market": order.symbol,
        "created_at": kst(order.created_at),
        "volume": decimal_string(order.quantity),
        "remaining_volume": decimal_string(_remaining_volume(order)),
        "reserved_fee": decimal_string(reserved),
        "remaining_fee": decimal_string(remaining_fee),
        "paid_fee": decimal_string(order.fees),
        "locked": decimal_string(order.locked),
        "executed_volume": decimal_string(order.filled_quantity),
        "executed_funds": decimal_string(order.filled_notional),
        "trades_count": len(order.fills),
        "prevented_volume": "0",
        "prevented_locked": "0",
    }
    if order.client_order_id is not None:
        body[client_id_field] = order.client_order_id
    if order.extra.get("time_in_force"):
        body["time_in_force"] = order.extra["time_in_force"]
    if order.extra.get("smp_type"):
        body["smp_type"] = order.extra["smp_type"]
    if with_trades:
        body["trades"] = [trade_json(f, order.symbol, seed) for f in order.fills]
    return body


def account_json(balance: Balance, unit_currency: str = "KRW") -> dict[str, Any]:
    """One ``GET /v1/accounts`` row: ``balance`` is what is free, ``locked`` what orders hold."""
    return {
        "currency": balance.asset,
        "balance": decimal_string(balance.available),
        "locked": decimal_string(balance.locked),
        "avg_buy_price": decimal_string(balance.avg_price),
        "avg_buy_price_modified": False,
        "unit_currency": unit_currency,
    }


def _number(value: Decimal) -> float | int:
    # Quotation APIs send JSON numbers (ccxt and pyupbit read them as such).
    return int(value) if value == value.to_integral_value() else float(value)


def _traded(engine: Engine, symbol: str, since: datetime) -> tuple[Decimal, Decimal]:
    volume, value = Decimal(0), Decimal(0)
    for entry in engine.ledger.entries(kinds=[LedgerKind.FILL], since=since):
        if entry.data.get("symbol") == symbol:
            qty = Decimal(str(entry.data["quantity"]))
            volume += qty
            value += qty * Decimal(str(entry.data["price"]))
    return volume, value


def ticker_json(engine: Engine, market: SpotMarket) -> dict[str, Any]:
    """A ``GET /v1/ticker`` entry from the engine's price path.

    Open is the price at 00:00 KST, previous close the price one step before; high and low are
    sampled hourly plus now (the path is smooth between knots, so this is close). Volumes are the
    simulator's own fills: it is the whole market.
    """
    now = engine.clock.now()
    local = now.astimezone(KST)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    price = engine.price(market.symbol)
    opening = engine.price(market.symbol, at=day_start)
    prev_close = engine.price(market.symbol, at=day_start - timedelta(seconds=1))
    samples = [opening, price] + [
        engine.price(market.symbol, at=day_start + timedelta(hours=h))
        for h in range(1, local.hour + 1)
    ]
    volume_24h, value_24h = _traded(engine, market.symbol, now - timedelta(days=1))
    volume_day, value_day = _traded(engine, market.symbol, day_start)
    change = price - prev_close
    year_high, year_low = max(samples), min(samples)  # the path is the only history
    return {
        "market": market.symbol,
        "trade_date": now.strftime("%Y%m%d"),
        "trade_time": now.strftime("%H%M%S"),
        "trade_date_kst": local.strftime("%Y%m%d"),
        "trade_time_kst": local.strftime("%H%M%S"),
        "trade_timestamp": int(now.timestamp() * 1000),
        "opening_price": _number(opening),
        "high_price": _number(max(samples)),
        "low_price": _number(min(samples)),
        "trade_price": _number(price),
        "prev_closing_price": _number(prev_close),
        "change": "RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
        "change_price": _number(abs(change)),
        "change_rate": float(abs(change) / prev_close) if prev_close else 0.0,
        "signed_change_price": _number(change),
        "signed_change_rate": float(change / prev_close) if prev_close else 0.0,
        "trade_volume": 0,
        "acc_trade_price": _number(value_day),
        "acc_trade_price_24h": _number(value_24h),
        "acc_trade_volume": _number(volume_day),
        "acc_trade_volume_24h": _number(volume_24h),
        "highest_52_week_price": _number(year_high),
        "highest_52_week_date": (local - timedelta(days=90)).strftime("%Y-%m-%d"),
        "lowest_52_week_price": _number(year_low),
        "lowest_52_week_date": (local - timedelta(days=200)).strftime("%Y-%m-%d"),
        "timestamp": int(now.timestamp() * 1000),
    }


def orderbook_json(
    engine: Engine, market: SpotMarket, depth: int = 15, size: Decimal | None = None
) -> dict[str, Any]:
    """A ``GET /v1/orderbook`` entry: the path price is the best ask, one tick below the bid.

    That is where the engine fills marketable orders (a buy at the ask, a sell at the path
    price, within one tick of the bid). Sizes are the per-step liquidity, or a nominal 1.0.
    """
    now = engine.clock.now()
    price = engine.price(market.symbol)
    unit = size if size is not None else Decimal(1)
    asks: list[Decimal] = []
    bids: list[Decimal] = []
    level = price
    for _ in range(depth):
        asks.append(level)
        level = level + market.tick_at(level)
    level = price - market.tick_at(price)
    for _ in range(depth):
        if level <= 0:
            break
        bids.append(level)
        level = level - market.tick_at(level - market.tick_at(level) / 2)
    units = [
        {
            "ask_price": _number(a),
            "bid_price": _number(b),
            "ask_size": _number(unit),
            "bid_size": _number(unit),
        }
        for a, b in zip(asks, bids, strict=False)
    ]
    return {
        "market": market.symbol,
        "timestamp": int(now.timestamp() * 1000),
        "total_ask_size": _number(unit * len(units)),
        "total_bid_size": _number(unit * len(units)),
        "orderbook_units": units,
        "level": 0,
    }


def orders_sorted(orders: Iterable[Order], order_by: str | None) -> list[Order]:
    """Newest first unless ``order_by=asc`` (Upbit's default is ``desc``).

    ``orders`` come oldest first from the engine; equal times keep placement order.
    """
    oldest_first = sorted(orders, key=lambda o: o.created_at)
    return oldest_first if order_by == "asc" else oldest_first[::-1]
