"""Pure mapping between Binance spot wire shapes and the gateway's value objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from brokers import (
    Balance,
    BrokerOrder,
    Fill,
    MarketRule,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from crypto_exchanges._rules import format_decimal
from crypto_exchanges._upbit_like import to_decimal

__all__ = [
    "CASH_ASSETS",
    "order_params",
    "parse_account_balances",
    "parse_account_positions",
    "parse_exchange_info",
    "parse_order",
]

#: Assets a Binance account holds as cash: the stablecoins and fiat its spot markets quote in.
CASH_ASSETS = frozenset(
    {"USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BRL", "JPY"}
)

_STATUS = {
    "NEW": OrderStatus.SUBMITTED,
    "PENDING_NEW": OrderStatus.PENDING_SUBMIT,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "PENDING_CANCEL": OrderStatus.CANCEL_PENDING,
    "CANCELED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    # An order Binance expired itself (IOC/FOK remainder, market order without liquidity, STP)
    # is closed with whatever it filled; it stays EXPIRED, which is not a cancel the client asked.
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


def _positive(value: Any) -> Decimal | None:
    """Binance writes "0.00000000" for a disabled filter or a market order's price."""
    number = to_decimal(value)
    return number if number is not None and number > 0 else None


def _ms(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return None


# Sample (GET /api/v3/exchangeInfo), trimmed:
# {"timezone": "UTC", "serverTime": 1565246363776,
#  "symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
#    "isSpotTradingAllowed": true, "orderTypes": ["LIMIT", "MARKET"],
#    "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
#                 "tickSize": "0.01"},
#                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00",
#                 "stepSize": "0.00001"},
#                {"filterType": "NOTIONAL", "minNotional": "5.00", "applyMinToMarket": true,
#                 "maxNotional": "9000000.00", "applyMaxToMarket": false,
#                 "avgPriceMins": 5}]}]}
def parse_exchange_info(payload: Mapping[str, Any]) -> list[MarketRule]:
    """Map ``exchangeInfo`` to rules: PRICE_FILTER tick, LOT_SIZE step, (MIN_)NOTIONAL minimum."""
    markets = []
    for row in payload.get("symbols") or []:
        filters = {f.get("filterType"): f for f in row.get("filters") or []}
        price_filter = filters.get("PRICE_FILTER") or {}
        lot = filters.get("LOT_SIZE") or {}
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        markets.append(
            MarketRule(
                symbol=str(row.get("symbol")),
                base_asset=str(row.get("baseAsset")),
                quote_asset=str(row.get("quoteAsset")),
                tick_size=_positive(price_filter.get("tickSize")),
                lot_size=_positive(lot.get("stepSize")),
                min_notional=_positive(notional.get("minNotional")),
                is_tradable=row.get("status") == "TRADING"
                and row.get("isSpotTradingAllowed", True) is not False,
                raw=dict(row),
            )
        )
    return markets


# Sample (POST /api/v3/order with newOrderRespType=FULL):
# {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "gw-7f3a",
#  "transactTime": 1507725176595, "price": "95000.00", "origQty": "0.001", "executedQty": "0.001",
#  "cummulativeQuoteQty": "95.00", "status": "FILLED", "timeInForce": "GTC", "type": "LIMIT",
#  "side": "BUY", "fills": [{"price": "95000.00", "qty": "0.001", "commission": "0.095",
#  "commissionAsset": "USDT", "tradeId": 56}]}
# Sample (GET /api/v3/order): the same without fills, with "time", "updateTime", "isWorking".
# Sample (DELETE /api/v3/order): "origClientOrderId" is the order's id, "clientOrderId" the
# cancel request's own id.
def parse_order(raw: Mapping[str, Any], *, cancel: bool = False) -> BrokerOrder:
    """Map a Binance order (create, query or cancel answer) to a ``BrokerOrder``."""
    executed = to_decimal(raw.get("executedQty")) or Decimal(0)
    quote_filled = to_decimal(raw.get("cummulativeQuoteQty"))
    average = quote_filled / executed if quote_filled and executed > 0 else None
    fills = raw.get("fills") or []
    fee: Decimal | None = None
    fee_asset: str | None = None
    if fills and len({f.get("commissionAsset") for f in fills}) == 1:
        fee = sum((to_decimal(f.get("commission")) or Decimal(0) for f in fills), Decimal(0))
        fee_asset = str(fills[0].get("commissionAsset") or "") or None
    client_id = raw.get("origClientOrderId") if cancel else raw.get("clientOrderId")
    order_type = OrderType.MARKET if raw.get("type") == "MARKET" else OrderType.LIMIT
    orig_qty = to_decimal(raw.get("origQty")) or Decimal(0)
    return BrokerOrder(
        broker_order_id=str(raw.get("orderId")),
        symbol=str(raw.get("symbol")),
        side=Side.BUY if raw.get("side") == "BUY" else Side.SELL,
        order_type=order_type,
        status=_STATUS.get(str(raw.get("status")), OrderStatus.UNKNOWN),
        # A market buy by quoteOrderQty has origQty 0: what it bought is the quantity.
        quantity=orig_qty if orig_qty > 0 else executed,
        filled_quantity=executed,
        limit_price=_positive(raw.get("price")) if order_type is OrderType.LIMIT else None,
        average_fill_price=average,
        client_order_id=str(client_id) if client_id else None,
        created_at=_ms(raw.get("time") or raw.get("transactTime")),
        updated_at=_ms(raw.get("updateTime") or raw.get("transactTime")),
        fee=fee,
        fee_asset=fee_asset,
        # FULL answers list the fills; a query or an open-orders row does not (None).
        fills=parse_fills(raw["fills"], str(raw.get("orderId")), raw.get("transactTime"))
        if isinstance(raw.get("fills"), list)
        else None,
        raw=dict(raw),
    )


# Sample (FULL fills[] row): {"price": "95000.00", "qty": "0.001", "commission": "0.095",
#  "commissionAsset": "USDT", "tradeId": 56}
# Sample (GET /api/v3/myTrades row): {"symbol": "BTCUSDT", "id": 56, "orderId": 28,
#  "price": "95000.00", "qty": "0.001", "quoteQty": "95.00", "commission": "0.000001",
#  "commissionAsset": "BTC", "time": 1507725176595, "isBuyer": true, "isMaker": false}
def parse_fills(
    rows: Sequence[Mapping[str, Any]], order_id: str, when: Any = None
) -> tuple[Fill, ...]:
    """Map FULL ``fills`` or ``myTrades`` rows to fills: the trade id, commission and its asset.

    A buy whose commission is paid in the base asset (no BNB) leaves the account with the
    quantity less the commission; the gateway reports that as the order's net quantity.
    """
    fills = []
    for row in rows:
        qty, price = to_decimal(row.get("qty")), to_decimal(row.get("price"))
        if not qty or price is None:
            continue
        trade_id = row.get("id", row.get("tradeId"))
        fills.append(
            Fill(
                broker_order_id=str(row.get("orderId") or order_id),
                quantity=qty,
                price=price,
                filled_at=_ms(row.get("time") or when) or _EPOCH,
                broker_fill_id=None if trade_id is None else str(trade_id),
                fee=to_decimal(row.get("commission")),
                fee_asset=str(row.get("commissionAsset") or "") or None,
                raw=dict(row),
            )
        )
    return tuple(fills)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def replace_params(broker_order_id: str, request: OrderRequest) -> dict[str, str]:
    """Build ``POST /api/v3/order/cancelReplace``: cancel ``broker_order_id``, place ``request``.

    ``STOP_ON_FAILURE``: if the cancel fails, no new order is placed.
    """
    params = order_params(request)
    params["cancelReplaceMode"] = "STOP_ON_FAILURE"
    params["cancelOrderId"] = broker_order_id
    return params


def order_params(request: OrderRequest) -> dict[str, str]:
    """Build the ``POST /api/v3/order`` parameters; ``newClientOrderId`` is always ours.

    LIMIT → GTC with price and quantity; MARKET → ``quantity``, or ``quoteOrderQty`` for a buy by
    amount. ``newOrderRespType=FULL`` so fills and fees come back with the answer.
    """
    params: dict[str, str] = {
        "symbol": request.symbol,
        "side": request.side.value,
        "type": request.order_type.value,
    }
    if request.order_type is OrderType.LIMIT:
        params["timeInForce"] = "GTC"
        params["quantity"] = format_decimal(request.quantity)
        params["price"] = format_decimal(request.limit_price or Decimal(0))
    elif request.quote_amount is not None:
        params["quoteOrderQty"] = format_decimal(request.quote_amount)
    else:
        params["quantity"] = format_decimal(request.quantity)
    params["newClientOrderId"] = request.client_order_id
    params["newOrderRespType"] = "FULL"
    return params


# Sample (GET /api/v3/account), trimmed:
# {"makerCommission": 15, "canTrade": true, "accountType": "SPOT", "updateTime": 123456789,
#  "balances": [{"asset": "BTC", "free": "0.5", "locked": "0.1"},
#               {"asset": "USDT", "free": "1000.0", "locked": "0.0"}]}
def parse_account_balances(payload: Mapping[str, Any]) -> list[Balance]:
    """Map the account's cash assets (USDT, USDC, fiat…) to balances.

    Spot trades settle on the spot, so today's and the D+2 cash are both the total.
    """
    balances = []
    for row in _rows(payload):
        asset = str(row.get("asset"))
        if asset not in CASH_ASSETS:
            continue
        free = to_decimal(row.get("free")) or Decimal(0)
        locked = to_decimal(row.get("locked")) or Decimal(0)
        balances.append(
            Balance(
                currency=asset,
                total=free + locked,
                available=free,
                locked=locked,
                settled_today=free + locked,
                settled_d2=free + locked,
                raw=dict(row),
            )
        )
    return balances


def parse_account_positions(payload: Mapping[str, Any]) -> list[Position]:
    """Map the account's non-cash, non-zero assets to positions (``Position(asset=…)``)."""
    positions = []
    for row in _rows(payload):
        asset = str(row.get("asset"))
        if asset in CASH_ASSETS:
            continue
        free = to_decimal(row.get("free")) or Decimal(0)
        locked = to_decimal(row.get("locked")) or Decimal(0)
        if free + locked == 0:
            continue
        positions.append(
            Position(quantity=free + locked, asset=asset, available_quantity=free, raw=dict(row))
        )
    return positions


def _rows(payload: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    rows = payload.get("balances") or []
    return [r for r in rows if isinstance(r, Mapping)]
