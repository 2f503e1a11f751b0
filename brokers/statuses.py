"""The domain's words for an order: its side, its type and its broker-independent status."""

from __future__ import annotations

import enum

__all__ = ["OPEN_STATUSES", "TERMINAL_STATUSES", "OrderStatus", "OrderType", "Side"]


class Side(enum.StrEnum):
    """Buy or sell."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Limit or market."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class OrderStatus(enum.StrEnum):
    """The broker-independent state of an order (DESIGN §5)."""

    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"
    #: A day order whose remainder the broker lapsed at the close (KIS, Kiwoom), or one the
    #: exchange expired itself (Binance ``EXPIRED``: an IOC/FOK remainder, no liquidity). Terminal.
    EXPIRED = "EXPIRED"


#: States after which nothing more can happen to an order at the broker.
TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

#: States in which the order may still fill.
OPEN_STATUSES = frozenset(
    {OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCEL_PENDING}
)
