"""Pure mapping between Upbit's wire shapes and the gateway's value objects.

No I/O here: functions take raw dicts (as Upbit sends them) or value objects and return the other.
The shapes shared with Bithumb 2.0 live in :mod:`crypto_exchanges._upbit_like`; what is Upbit's
own is data (:data:`UPBIT`: ``identifier``, ``ord_type``, the published rules) and the cancel
answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from brokers import BrokerOrder, OrderRequest, OrderStatus, OrderType
from crypto_exchanges._rules import format_decimal
from crypto_exchanges._upbit_like import KRW_TICKS, USDT_TICKS, UpbitDialect, with_cancel_pending

__all__ = [
    "CASH_CURRENCIES",
    "QUOTE_RULES",
    "UPBIT",
    "cancel_result",
    "format_decimal",
    "order_body",
    "parse_balances",
    "parse_markets",
    "parse_positions",
    "parse_upbit_order",
    "replacement",
    "tick_for",
]

#: Currencies Upbit accounts hold as cash (everything else is an asset position).
CASH_CURRENCIES = frozenset({"KRW"})

#: Published rules per quote currency: (fixed tick or None for a price table, lot, min total).
#: docs.upbit.com: KRW min 5,000 KRW, BTC tick 1e-8 and min 0.00005 BTC, USDT min 0.5 USDT;
#: volumes go to 8 decimals.
QUOTE_RULES: Mapping[str, tuple[Decimal | None, Decimal, Decimal]] = {
    "KRW": (None, Decimal("0.00000001"), Decimal("5000")),
    "BTC": (Decimal("0.00000001"), Decimal("0.00000001"), Decimal("0.00005")),
    "USDT": (None, Decimal("0.00000001"), Decimal("0.5")),
}

#: Upbit's names and rules in the shapes it shares with Bithumb 2.0: our client order id is
#: ``identifier``, the order type ``ord_type``; KRW and USDT ticks follow price tables.
UPBIT = UpbitDialect(
    broker="UPBIT",
    client_id_field="identifier",
    type_field="ord_type",
    quote_rules=QUOTE_RULES,
    tick_tables={"KRW": KRW_TICKS, "USDT": USDT_TICKS},
    cash_currencies=CASH_CURRENCIES,
)

#: Upbit's tick at a price in a quote currency's market (None: no published rule).
tick_for = UPBIT.tick_for

# Sample (GET /v1/market/all?is_details=true):
# [{"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin",
#   "market_warning": "NONE"},
#  {"market": "BTC-ETH", "korean_name": "이더리움", "english_name": "Ethereum",
#   "market_warning": "NONE"}]
parse_markets = UPBIT.parse_markets

# Sample (GET /v1/accounts):
# [{"currency": "KRW", "balance": "1000000.0", "locked": "0.0", "avg_buy_price": "0",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"},
#  {"currency": "BTC", "balance": "0.01", "locked": "0.0", "avg_buy_price": "140000000",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"}]
parse_balances = UPBIT.parse_balances
parse_positions = UPBIT.parse_positions

# Sample (POST /v1/orders → 201; GET /v1/order adds "trades"):
# {"uuid": "cdd92199-2897-4e14-9448-f923320408ad", "side": "bid", "ord_type": "limit",
#  "price": "100.0", "state": "wait", "market": "KRW-BTC",
#  "created_at": "2018-04-10T15:42:23+09:00", "volume": "0.01", "remaining_volume": "0.01",
#  "reserved_fee": "0.0015", "remaining_fee": "0.0015", "paid_fee": "0.0", "locked": "1.0015",
#  "executed_volume": "0.0", "trades_count": 0, "identifier": "gw-7f3a"}
parse_upbit_order = UPBIT.parse_order

#: The ``POST /v1/orders`` body; ``identifier`` is always our client order id (Upbit buys at
#: market by amount only: a MARKET BUY without ``quote_amount`` is ``InvalidOrder``).
order_body = UPBIT.order_body


# Sample (DELETE /v1/order?uuid=… → the order, "state" still "wait": the cancel is accepted):
# {"uuid": "cdd92199-…", "side": "bid", "ord_type": "limit", "price": "100.0", "state": "wait",
#  "market": "KRW-BTC", "volume": "0.01", "remaining_volume": "0.01", "executed_volume": "0.0"}
def cancel_result(raw: Mapping[str, Any]) -> BrokerOrder:
    """Map a cancel answer: an order still ``wait`` is CANCEL_PENDING (accepted, not applied)."""
    return with_cancel_pending(parse_upbit_order(raw))


# Sample (POST /v1/orders/cancel_and_new → 201: the cancelled order as accepted, plus the new one):
# {"uuid": "cdd92199-…", "state": "wait", …, "new_order_uuid": "4a1d…",
#  "new_order_identifier": "gw-8e1b"}
def replacement(raw: Mapping[str, Any], request: OrderRequest, *, now: dt.datetime) -> BrokerOrder:
    """Map a ``cancel_and_new`` answer to the new order (SUBMITTED, as ``request`` asked)."""
    return BrokerOrder(
        broker_order_id=str(raw.get("new_order_uuid") or ""),
        symbol=request.symbol,
        side=request.side,
        order_type=OrderType.LIMIT,
        status=OrderStatus.SUBMITTED,
        quantity=request.quantity,
        limit_price=request.limit_price,
        client_order_id=str(raw.get("new_order_identifier") or request.client_order_id),
        created_at=now,
        raw=dict(raw),
    )
