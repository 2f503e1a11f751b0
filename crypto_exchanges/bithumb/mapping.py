"""Pure mapping between Bithumb API 2.0 wire shapes and the gateway's value objects.

Bithumb 2.0's accounts rows and order objects are Upbit's (:mod:`crypto_exchanges._upbit_like`);
what differs is data (:data:`BITHUMB`: ``client_order_id``, ``order_type``, the KRW rules), the
create-order request and its short answer, and the cancel answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from brokers import BrokerOrder, OrderRequest, OrderStatus
from crypto_exchanges._upbit_like import KRW_TICKS, UpbitDialect, parse_time, with_cancel_pending

__all__ = [
    "BITHUMB",
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

#: Bithumb 2.0's names and rules in the shapes it shares with Upbit: our client order id is
#: ``client_order_id`` (2026-03-12), the order type ``order_type``; KRW markets only.
BITHUMB = UpbitDialect(
    broker="BITHUMB",
    client_id_field="client_order_id",
    type_field="order_type",
    quote_rules=QUOTE_RULES,
    tick_tables={"KRW": KRW_TICKS},
    cash_currencies=CASH_CURRENCIES,
)

#: The tick at a price in a quote currency's market (None: no published rule).
tick_for = BITHUMB.tick_for

# Sample (GET /v1/market/all?isDetails=true):
# [{"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin",
#   "market_warning": "NONE"}]
parse_markets = BITHUMB.parse_markets

# Sample (GET /v1/accounts):
# [{"currency": "KRW", "balance": "1000000", "locked": "0", "avg_buy_price": "0",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"}]
parse_balances = BITHUMB.parse_balances
parse_positions = BITHUMB.parse_positions

# Sample (GET /v1/order?uuid=… or ?client_order_id=…):
# {"uuid": "C0101000003152350309", "side": "bid", "ord_type": "limit", "price": "140000000",
#  "state": "wait", "market": "KRW-BTC", "created_at": "2026-03-12T10:00:00+09:00",
#  "volume": "0.001", "remaining_volume": "0.001", "executed_volume": "0", "paid_fee": "0",
#  "client_order_id": "gw-7f3a", "trades": []}
parse_bithumb_order = BITHUMB.parse_order

#: The ``POST /v2/orders`` body; ``client_order_id`` is always ours.
order_body = BITHUMB.order_body


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
