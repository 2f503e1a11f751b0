"""``BithumbAdapter``: Bithumb's API 2.0 behind the gateway's ``CryptoAdapter`` interface."""

from __future__ import annotations

import datetime as dt
from typing import Any

from brokers import BrokerOrder, OrderRequest
from brokers.errors import BrokerUnavailable, OrderStateUnknown
from crypto_exchanges._adapter import orders_since
from crypto_exchanges._upbit_like import UpbitLikeAdapter
from crypto_exchanges.bithumb import mapping
from crypto_exchanges.bithumb.client import BithumbClient

__all__ = ["BithumbAdapter"]

_PAGE = 100
_MAX_PAGES = 50  # per state; stops a runaway loop
_STATES = ("wait", "watch", "done", "cancel")


class BithumbAdapter(UpbitLikeAdapter):
    """Bithumb spot trading (API 2.0, JWT): KRW markets (``KRW-BTC``).

    Every order carries our client order id as ``client_order_id`` (Bithumb 2026-03-12), so a
    lost answer is settled with ``get_order(client_order_id=…)``. Market buys are by amount.
    """

    exchange = "BITHUMB"
    client_class = BithumbClient
    dialect = mapping.BITHUMB
    markets_params = {"isDetails": "true"}

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send an order with ``client_order_id`` = ``request.client_order_id``.

        Bithumb answers only the order id; the order comes back SUBMITTED.

        Raises:
            InvalidOrder: a tick, lot, notional or shape rule is broken (nothing was sent), or
                Bithumb refused the order.
            InsufficientFunds: not enough KRW or coin.
            DuplicateOrder: Bithumb already has an order with this client order id.
            OrderStateUnknown: the order was sent but the answer was lost; find it with
                ``get_order(client_order_id=…)``, never send it again.
            BrokerTimeout: Bithumb could not be reached; nothing was sent.
            BrokerRateLimited: Bithumb throttled the request.
            BrokerAuthFailed: the keys were refused.
        """
        self._check(request)
        raw = self.client.request(
            "POST", "/v2/orders", body=mapping.order_body(request), write=True
        )
        return mapping.placed_order(raw, request)

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel the open remainder of an order, then read it back.

        Bithumb's cancel answers only ``{"order_id", "created_at"}``, so the order is read after
        the cancel was accepted; an order still open then is CANCEL_PENDING.

        Raises:
            OrderNotFound: Bithumb does not know the order.
            OrderStateUnknown: the cancel was sent but its answer was lost, or it was accepted
                and the order could not be read back.
            BrokerRejected: the order can no longer be cancelled, or another refusal.
        """
        self.client.request("DELETE", "/v2/order", params={"order_id": broker_order_id}, write=True)
        try:
            order = self.get_order(broker_order_id)
        except (BrokerUnavailable, OrderStateUnknown) as exc:
            raise OrderStateUnknown(
                "BITHUMB accepted the cancel but the order could not be read back",
                broker=self.exchange,
                broker_code=exc.broker_code,
            ) from exc
        return mapping.with_cancel_pending(order)

    def replace_order(
        self,
        broker_order_id: str,
        request: OrderRequest,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel an open order, then place its replacement: Bithumb has no one-call amend.

        The cancel goes first (``DELETE /v2/order``); only once Bithumb accepted it is the new
        order sent (``POST /v2/orders``, with ``request``'s client order id). If the new order
        then fails, the old one stays cancelled: the error says so in its message, and the
        gateway's poller records the cancel.

        Raises:
            InvalidOrder: the new order breaks a rule (checked before anything is sent).
            OrderNotFound / BrokerRejected: the cancel was refused; nothing changed.
            OrderStateUnknown: the cancel or the new order's answer was lost.
            BrokerError: the new order was refused after the cancel.
        """
        self._check(request)
        self.client.request("DELETE", "/v2/order", params={"order_id": broker_order_id}, write=True)
        return self.place_order(request)

    def open_orders(self) -> list[BrokerOrder]:
        """Return every open order of the account (``GET /v1/orders``, states wait and watch).

        Raises:
            BrokerUnavailable: Bithumb did not answer (after read retries).
        """
        orders: dict[str, BrokerOrder] = {}
        for state in _STATES[:2]:
            for page in range(1, _MAX_PAGES + 1):
                rows: list[dict[str, Any]] = self.client.request(
                    "GET",
                    "/v1/orders",
                    params={"state": state, "page": str(page), "limit": str(_PAGE)},
                )
                for row in rows:
                    order = mapping.parse_bithumb_order(row)
                    orders[order.broker_order_id] = order
                if len(rows) < _PAGE:
                    break
        return list(orders.values())

    def list_orders(self, since: dt.datetime) -> list[BrokerOrder]:
        """Return the orders created since ``since`` (open and closed), oldest first.

        Pages through ``GET /v1/orders`` per state, newest first, and stops a state once its page
        reaches orders older than ``since``.

        Raises:
            BrokerUnavailable: Bithumb did not answer (after read retries).
        """
        orders: dict[str, BrokerOrder] = {}
        for state in _STATES:
            for page in range(1, _MAX_PAGES + 1):
                rows: list[dict[str, Any]] = self.client.request(
                    "GET",
                    "/v1/orders",
                    params={
                        "state": state,
                        "page": str(page),
                        "limit": str(_PAGE),
                        "order_by": "desc",
                    },
                )
                parsed = [mapping.parse_bithumb_order(row) for row in rows]
                for order in parsed:
                    orders[order.broker_order_id] = order
                older = any(o.created_at is not None and o.created_at < since for o in parsed)
                if len(rows) < _PAGE or older:
                    break
        return orders_since(orders.values(), since)
