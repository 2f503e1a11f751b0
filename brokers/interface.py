"""The one interface every broker adapter implements (``typing.Protocol``, checked structurally).

An adapter gets everything injected: credentials, the base URL (a real host or a simulator on
loopback: the only difference between the two), a ``requests.Session`` from
:func:`brokers.http.make_http_session`, a clock, and for the OAuth brokers a :class:`TokenProvider`.
Adapters never read the environment or the database.

Retry policy (DESIGN §6): reads may be retried on a transient error; a request that places, amends
or cancels an order is never retried blindly. When such a request was sent but no answer came, the
adapter raises :class:`~brokers.errors.OrderStateUnknown` and the caller reconciles by client order
id or order history.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import ClassVar, Protocol, runtime_checkable

from brokers.values import (
    Balance,
    BrokerOrder,
    Capabilities,
    IssuedToken,
    MarketRule,
    OrderRequest,
    Position,
)

__all__ = ["BrokerAdapter", "CryptoAdapter", "SecuritiesAdapter", "TokenProvider"]


class TokenProvider(Protocol):
    """Gives an OAuth adapter a valid access token (the token service implements it)."""

    def get(self) -> str:
        """Return a valid access token, issuing one (single-flight) if none is valid."""
        ...

    def invalidate(self, token: str) -> str:
        """Report ``token`` rejected by the broker; return a freshly issued one."""
        ...


@runtime_checkable
class BrokerAdapter(Protocol):
    """The operations every broker supports, in domain types."""

    exchange: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send an order. Raises ``OrderStateUnknown`` when the answer was lost."""
        ...

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel the open remainder of an order.

        The order is named as its broker identifies it: KIS and Kiwoom by its KST
        ``order_date`` and number (numbers restart daily), Binance by symbol and id. An order
        with nothing left to cancel is returned as the broker shows it, and nothing is sent.
        """
        ...

    def get_order(
        self,
        broker_order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Look an order up by the broker's identity of it or, where supported, our client id.

        KIS and Kiwoom read the history of ``order_date`` only (never "the newest with that
        number"); the crypto exchanges ignore it.
        """
        ...

    def list_orders(self, since: dt.datetime) -> list[BrokerOrder]:
        """Return the orders placed since ``since`` (open and closed)."""
        ...

    def get_holdings(self) -> list[Position]:
        """Return what the account holds."""
        ...

    def get_balance(self) -> list[Balance]:
        """Return the account's cash by currency."""
        ...


@runtime_checkable
class SecuritiesAdapter(BrokerAdapter, Protocol):
    """A Korean securities broker with OAuth client-credentials tokens (KIS, Kiwoom)."""

    def issue_token(self) -> IssuedToken:
        """Ask the broker for an access token."""
        ...

    def revoke_token(self, access_token: str) -> None:
        """Tell the broker to revoke ``access_token``."""
        ...

    def amend_order(
        self,
        broker_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Change the price or quantity of an open order (named by KST date and number)."""
        ...

    def day_orders(self, day: dt.date) -> list[BrokerOrder]:
        """Return every order of one KST day, open and closed, read completely (all pages).

        The poller's one call per account and day, and the complete read the reconciler needs
        before it may call an order absent. Open orders of a past day are reported EXPIRED.
        """
        ...


@runtime_checkable
class CryptoAdapter(BrokerAdapter, Protocol):
    """A crypto exchange with per-request signatures (Upbit, Bithumb, Binance)."""

    def list_markets(self) -> list[MarketRule]:
        """Return the exchange's markets with their tick, lot and notional rules."""
        ...

    def open_orders(self) -> list[BrokerOrder]:
        """Return every open order of the account in one call (paged where the exchange pages).

        The poller's one call per account; an order missing from it has closed and is read
        on its own.
        """
        ...
