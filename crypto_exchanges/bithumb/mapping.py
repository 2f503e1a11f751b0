"""Pure mapping between Bithumb API 2.0 wire shapes and the gateway's value objects.

Bithumb 2.0's accounts rows and order objects are Upbit's (:mod:`crypto_exchanges._upbit_like`);
what differs is the create-order request (``order_type``, ``client_order_id``) and its short
answer, and the cancel answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from brokers import (
    Balance,
    BrokerOrder,
    MarketRule,
    OrderRequest,
    OrderStatus,
    Position,
)
from crypto_exchanges._upbit_like import (
    KRW_TICKS,
    band_tick,
    build_order_body,
    parse_accounts_balances,
    parse_accounts_positions,
    parse_market_all,
    parse_order,
    parse_time,
    with_cancel_pending,
)

__all__ = [
    "CASH_CURRENCIES",
    "QUOTE_RULES",
    "order_body",
    "parse_balances",
    "parse_bithumb_order",
    "parse_markets",
    "parse_positions",
    "placed_order",
    "tick_for",
    "with_cancel_pending",
]

CASH_CURRENCIES = frozenset({"KRW"})

#: (fixed tick or None for the price table, lot, min total) per quote currency. KRW: the KRW
#: price-unit table, 8-decimal volumes, 5,000 KRW minimum (the simulator's rules; Bithumb's own
#: published tick table may differ in low price bands).
QUOTE_RULES: Mapping[str, tuple[Decimal | None, Decimal, Decimal]] = {
    "KRW": (None, Decimal("0.00000001"), Decimal("5000")),
}


def tick_for(quote_asset: str, price: Decimal) -> Decimal | None:
    """Return the tick at ``price`` in a ``quote_asset`` market (None: no published rule)."""
    return band_tick(KRW_TICKS, price) if quote_asset == "KRW" else None


# Sample (GET /v1/market/all?isDetails=true):
# [{"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin",
#   "market_warning": "NONE"}]
def parse_markets(rows: Sequence[Mapping[str, Any]]) -> list[MarketRule]:
    """Map ``/v1/market/all`` to rules (only quotes with published rules)."""
    return parse_market_all(rows, QUOTE_RULES.get)


# Sample (GET /v1/accounts):
# [{"currency": "KRW", "balance": "1000000", "locked": "0", "avg_buy_price": "0",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"}]
def parse_balances(rows: Sequence[Mapping[str, Any]]) -> list[Balance]:
    """Map ``/v1/accounts`` to the KRW cash balance."""
    return parse_accounts_balances(rows, CASH_CURRENCIES)


def parse_positions(rows: Sequence[Mapping[str, Any]]) -> list[Position]:
    """Map ``/v1/accounts`` to asset positions (``Position(asset=…)``)."""
    return parse_accounts_positions(rows, CASH_CURRENCIES)


# Sample (GET /v1/order?uuid=… or ?client_order_id=…):
# {"uuid": "C0101000003152350309", "side": "bid", "ord_type": "limit", "price": "140000000",
#  "state": "wait", "market": "KRW-BTC", "created_at": "2026-03-12T10:00:00+09:00",
#  "volume": "0.001", "remaining_volume": "0.001", "executed_volume": "0", "paid_fee": "0",
#  "client_order_id": "gw-7f3a", "trades": []}
def parse_bithumb_order(raw: Mapping[str, Any]) -> BrokerOrder:
    """Map a Bithumb 2.0 order object (``client_order_id`` is ours)."""
    return parse_order(raw, client_id_field="client_order_id")


# Sample (POST /v2/orders → 201):
# {"order_id": "C0101000003152350309", "market": "KRW-BTC", "side": "bid",
#  "order_type": "limit", "created_at": "2026-03-12T10:00:00+09:00", "stp_type": "none"}
def placed_order(raw: Mapping[str, Any], request: OrderRequest) -> BrokerOrder:
    """Map the short create-order answer: Bithumb accepted it, no state yet (SUBMITTED)."""
    return BrokerOrder(
        broker_order_id=str(raw.get("order_id") or raw.get("uuid") or ""),
        symbol=str(raw.get("market") or request.symbol),
        side=request.side,
        order_type=request.order_type,
        status=OrderStatus.SUBMITTED,
        quantity=request.quantity,
        limit_price=request.limit_price,
        client_order_id=str(raw.get("client_order_id") or request.client_order_id),
        created_at=parse_time(raw.get("created_at")),
        raw=dict(raw),
    )


def order_body(request: OrderRequest) -> dict[str, str]:
    """Build the ``POST /v2/orders`` body; ``client_order_id`` is always ours.

    Raises:
        InvalidOrder: a MARKET BUY without ``quote_amount``.
    """
    return build_order_body(
        request, broker="BITHUMB", type_key="order_type", client_id_key="client_order_id"
    )
