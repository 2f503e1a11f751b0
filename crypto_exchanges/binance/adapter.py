"""``BinanceAdapter``: Binance spot behind the gateway's ``CryptoAdapter`` interface."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from brokers import Balance, BrokerOrder, MarketRule, OrderRequest, Position
from brokers.errors import InvalidOrder
from crypto_exchanges._adapter import CryptoAdapterBase, orders_since
from crypto_exchanges.binance import mapping
from crypto_exchanges.binance.client import BinanceClient

__all__ = ["BinanceAdapter"]

_ALL_ORDERS_LIMIT = 1000


def _needs_symbol(what: str) -> InvalidOrder:
    message = f"Binance needs the symbol to {what}"
    return InvalidOrder(
        message, broker="BINANCE", broker_code="SYMBOL_REQUIRED", broker_message=message
    )


class BinanceAdapter(CryptoAdapterBase):
    """Binance spot trading (``BTCUSDT``); PAPER is the spot testnet.

    Every order carries our client order id as ``newClientOrderId``; Binance finds it with
    ``origClientOrderId``. Binance order ids are per symbol, so cancel and look-up need ``symbol``.
    """

    exchange = "BINANCE"
    client_class = BinanceClient
    account_path = "/api/v3/account"
    account_params = {"omitZeroBalances": "true"}

    def _fetch_markets(self) -> list[MarketRule]:
        payload = self.client.request("GET", "/api/v3/exchangeInfo", signed=False)
        return mapping.parse_exchange_info(payload)

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send an order with ``newClientOrderId`` = ``request.client_order_id``.

        Raises:
            InvalidOrder: a tick, lot, notional or shape rule is broken (nothing was sent), or
                Binance refused it (``-1013`` filter failure, ``-2010``…).
            InsufficientFunds: ``-2010`` "Account has insufficient balance…".
            DuplicateOrder: ``-2010`` "Duplicate order sent." (the id is in use by an open order).
            OrderStateUnknown: the order was sent but the answer was lost, or Binance said the
                execution status is unknown (``-1007``, 5xx); find it with
                ``get_order(client_order_id=…, symbol=…)``, never send it again.
            BrokerTimeout: Binance could not be reached; nothing was sent.
            BrokerRateLimited: 429/418 or ``-1003``/``-1015``, with ``retry_after``.
            BrokerAuthFailed: ``-1022``, ``-2014``, ``-2015``.
        """
        self._check(request)
        raw = self.client.request(
            "POST", "/api/v3/order", body=mapping.order_params(request), write=True
        )
        return mapping.parse_order(raw)

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel an order (Binance cancels synchronously: the answer is CANCELLED).

        Raises:
            InvalidOrder: no ``symbol`` was given.
            OrderNotFound: ``-2013``/``-2011`` "Unknown order sent." (also: already closed).
            OrderStateUnknown: the cancel was sent but its answer was lost.
        """
        if not symbol:
            raise _needs_symbol("cancel an order")
        raw = self.client.request(
            "DELETE",
            "/api/v3/order",
            params={"symbol": symbol, "orderId": broker_order_id},
            write=True,
        )
        return mapping.parse_order(raw, cancel=True)

    def get_order(
        self,
        broker_order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Look an order up by ``orderId`` or by our ``origClientOrderId`` (``symbol`` required).

        Raises:
            ValueError: neither id was given.
            InvalidOrder: no ``symbol`` was given.
            OrderNotFound: ``-2013`` (after a lost answer: the order was never placed).
            BrokerUnavailable: Binance did not answer (after read retries).
        """
        if not symbol:
            raise _needs_symbol("look an order up")
        params = {"symbol": symbol}
        if broker_order_id:
            params["orderId"] = broker_order_id
        elif client_order_id:
            params["origClientOrderId"] = client_order_id
        else:
            raise ValueError("get_order needs broker_order_id or client_order_id")
        return mapping.parse_order(self.client.request("GET", "/api/v3/order", params=params))

    def order_with_fills(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Return the order with its fills (``GET /api/v3/order``, then ``myTrades?orderId=``).

        ``myTrades`` gives each trade's id, commission and commission asset (a buy without BNB
        pays in the base asset).

        Raises:
            InvalidOrder: no ``symbol`` was given.
            OrderNotFound: ``-2013``.
            BrokerUnavailable: Binance did not answer (after read retries).
        """
        order = self.get_order(broker_order_id, symbol=symbol)
        rows = self.client.request(
            "GET", "/api/v3/myTrades", params={"symbol": order.symbol, "orderId": broker_order_id}
        )
        fills = mapping.parse_fills(rows, broker_order_id)
        assets = {f.fee_asset for f in fills}
        fee = sum((f.fee or 0 for f in fills), Decimal(0)) if len(assets) == 1 else None
        return replace(
            order, fills=fills, fee=fee, fee_asset=next(iter(assets)) if fee is not None else None
        )

    def replace_order(
        self,
        broker_order_id: str,
        request: OrderRequest,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel an order and place its replacement in one call (``order/cancelReplace``).

        ``cancelReplaceMode=STOP_ON_FAILURE``: a failed cancel places nothing. The new order
        carries ``request``'s client order id (``newClientOrderId``), so a lost answer is settled
        like a placement. Returns the new order (``newOrderResponse``).

        Raises:
            InvalidOrder: the new order breaks a rule (nothing was sent), or Binance refused it;
                a ``-2021`` partial failure (cancelled, new order refused) is a refusal whose
                message says the old order was cancelled.
            OrderNotFound: the old order is unknown or closed (``-2011``/``-2013``).
            OrderStateUnknown: sent and no answer came.
        """
        self._check(request)
        raw = self.client.request(
            "POST",
            "/api/v3/order/cancelReplace",
            body=mapping.replace_params(broker_order_id, request),
            write=True,
        )
        return mapping.parse_order(raw.get("newOrderResponse") or {})

    def open_orders(self) -> list[BrokerOrder]:
        """Return every open order of the account: ``GET /api/v3/openOrders`` without a symbol.

        One call for all symbols (weight 80 where one symbol weighs 6).

        Raises:
            BrokerUnavailable: Binance did not answer (after read retries).
        """
        rows: list[dict[str, Any]] = self.client.request("GET", "/api/v3/openOrders")
        return [mapping.parse_order(r) for r in rows]

    def list_orders(
        self, since: dt.datetime, *, symbols: Iterable[str] | None = None
    ) -> list[BrokerOrder]:
        """Return the orders created since ``since`` (open and closed), oldest first.

        Binance lists closed orders per symbol only. Without ``symbols`` this reads every open
        order, then the history of the symbols those orders are in and of the ``<asset><cash>``
        markets of the assets the account holds; a market whose asset was fully sold and has no
        open order is then missed, so callers that know their symbols should pass them.

        Raises:
            BrokerUnavailable: Binance did not answer (after read retries).
        """
        start_ms = str(int(since.timestamp() * 1000))
        open_rows: list[dict[str, Any]] = self.client.request("GET", "/api/v3/openOrders")
        orders = {
            (str(r.get("symbol")), str(r.get("orderId"))): mapping.parse_order(r) for r in open_rows
        }
        if symbols is None:
            wanted = {symbol for symbol, _ in orders}
            markets = {m.symbol for m in self.list_markets()}
            for position in self.get_holdings():
                for cash in sorted(mapping.CASH_ASSETS):
                    if f"{position.asset}{cash}" in markets:
                        wanted.add(f"{position.asset}{cash}")
        else:
            wanted = set(symbols)
        for symbol in sorted(wanted):
            rows: list[dict[str, Any]] = self.client.request(
                "GET",
                "/api/v3/allOrders",
                params={"symbol": symbol, "startTime": start_ms, "limit": str(_ALL_ORDERS_LIMIT)},
            )
            for row in rows:
                orders[(symbol, str(row.get("orderId")))] = mapping.parse_order(row)
        return orders_since(orders.values(), since)

    def _parse_positions(self, account: Any) -> list[Position]:
        return mapping.parse_account_positions(account)

    def _parse_balances(self, account: Any) -> list[Balance]:
        return mapping.parse_account_balances(account)
