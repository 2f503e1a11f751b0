"""``UpbitAdapter``: Upbit's REST API behind the gateway's ``CryptoAdapter`` interface."""

from __future__ import annotations

import datetime as dt
from typing import Any

from brokers import BrokerOrder, OrderRequest
from crypto_exchanges._adapter import orders_since
from crypto_exchanges._upbit_like import UpbitLikeAdapter
from crypto_exchanges.upbit import mapping
from crypto_exchanges.upbit.client import UpbitClient

__all__ = ["UpbitAdapter"]

#: Upbit answers ``/v1/orders/closed`` for windows of at most seven days.
_CLOSED_WINDOW = dt.timedelta(days=7)
_OPEN_PAGE = 100
_CLOSED_LIMIT = 1000
_MAX_OPEN_PAGES = 50  # 5,000 open orders: far beyond any account; stops a runaway loop


def _ms(when: dt.datetime) -> str:
    return str(int(when.timestamp() * 1000))


class UpbitAdapter(UpbitLikeAdapter):
    """Upbit spot trading: KRW, BTC and USDT markets (``KRW-BTC`` is quote-base).

    Every order carries our client order id as ``identifier``, which Upbit keeps unique forever
    (even for rejected orders), so a lost answer is settled with
    ``get_order(client_order_id=…)``. Market buys are by amount (``quote_amount``).
    """

    exchange = "UPBIT"
    client_class = UpbitClient
    dialect = mapping.UPBIT
    markets_params = {"is_details": "true"}

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send an order with ``identifier`` = ``request.client_order_id``.

        Raises:
            InvalidOrder: a tick, lot, notional or shape rule is broken (nothing was sent), or
                Upbit refused the order.
            InsufficientFunds: not enough KRW or coin.
            DuplicateOrder: Upbit has seen this identifier before.
            OrderStateUnknown: the order was sent but the answer was lost; find it with
                ``get_order(client_order_id=…)``, never send it again.
            BrokerTimeout: Upbit could not be reached; nothing was sent.
            BrokerRateLimited: Upbit's order rate limit.
            BrokerAuthFailed: the keys were refused.
        """
        self._check(request)
        raw = self.client.request(
            "POST", "/v1/orders", body=mapping.order_body(request), write=True
        )
        return mapping.parse_upbit_order(raw)

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel the open remainder of an order (``symbol`` is not needed on Upbit).

        Raises:
            OrderNotFound: Upbit does not know the order.
            OrderStateUnknown: the cancel was sent but its answer was lost.
            BrokerRejected: the order can no longer be cancelled, or another refusal.
        """
        raw = self.client.request(
            "DELETE", "/v1/order", params={"uuid": broker_order_id}, write=True
        )
        return mapping.cancel_result(raw)

    def replace_order(
        self,
        broker_order_id: str,
        request: OrderRequest,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel an open limit order and place its replacement in one call (``cancel_and_new``).

        ``POST /v1/orders/cancel_and_new`` cancels ``prev_order_uuid`` and places a new limit
        order on the same market and side, whose ``new_identifier`` is ``request``'s client
        order id (so a lost answer is settled like a placement). Returns the new order,
        SUBMITTED; the old one is read by the poller (cancelled, with any fills it had).

        Raises:
            InvalidOrder: the new price or volume breaks a rule (nothing was sent).
            OrderNotFound: the old order is unknown or no longer open.
            OrderStateUnknown: sent and no answer came; look the new order up by its id.
            BrokerError: any other refusal.
        """
        self._check(request)
        body = {
            "prev_order_uuid": broker_order_id,
            "new_ord_type": "limit",
            "new_volume": mapping.format_decimal(request.quantity),
            "new_price": mapping.format_decimal(request.limit_price or 0),
            "new_identifier": request.client_order_id,
        }
        raw = self.client.request("POST", "/v1/orders/cancel_and_new", body=body, write=True)
        return mapping.replacement(raw, request, now=self._clock())

    def open_orders(self) -> list[BrokerOrder]:
        """Return every open order of the account (``/v1/orders/open``, all pages).

        Raises:
            BrokerUnavailable: Upbit did not answer (after read retries).
        """
        orders: dict[str, BrokerOrder] = {}
        for page in range(1, _MAX_OPEN_PAGES + 1):
            rows: list[dict[str, Any]] = self.client.request(
                "GET",
                "/v1/orders/open",
                params={"page": str(page), "limit": str(_OPEN_PAGE), "order_by": "desc"},
            )
            for row in rows:
                order = mapping.parse_upbit_order(row)
                orders[order.broker_order_id] = order
            if len(rows) < _OPEN_PAGE:
                break
        return list(orders.values())

    def list_orders(self, since: dt.datetime) -> list[BrokerOrder]:
        """Return the orders created since ``since``: all open ones and the closed ones.

        Raises:
            BrokerUnavailable: Upbit did not answer (after read retries).
        """
        orders = {order.broker_order_id: order for order in self.open_orders()}
        now = self._clock()
        start = since
        while start < now:
            end = min(start + _CLOSED_WINDOW, now)
            rows = self.client.request(
                "GET",
                "/v1/orders/closed",
                params={
                    "start_time": _ms(start),
                    "end_time": _ms(end),
                    "limit": str(_CLOSED_LIMIT),
                    "order_by": "desc",
                },
            )
            for row in rows:
                order = mapping.parse_upbit_order(row)
                orders[order.broker_order_id] = order
            start = end
        return orders_since(orders.values(), since)
