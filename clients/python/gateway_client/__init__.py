"""A Python client of the trading account gateway (``/api/v1``).

Typed calls for accounts, orders, holdings, balances and stocks; money is ``Decimal`` in and
out; every order carries an Idempotency-Key generated once and reused on each retry of it;
retries happen only where they cannot act twice; :meth:`GatewayClient.events` follows the order
event stream and resumes by id after any disconnection.

This package imports nothing of the gateway: it speaks HTTP only.
"""

from gateway_client.client import GatewayClient
from gateway_client.errors import ApiError, GatewayClientError, TransportError
from gateway_client.models import (
    Account,
    Balance,
    Event,
    Fill,
    Holding,
    HoldingsSnapshot,
    Order,
    OrderPage,
    Stock,
)

__all__ = [
    "Account",
    "ApiError",
    "Balance",
    "Event",
    "Fill",
    "GatewayClient",
    "GatewayClientError",
    "Holding",
    "HoldingsSnapshot",
    "Order",
    "OrderPage",
    "Stock",
    "TransportError",
]
