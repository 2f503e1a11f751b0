"""The engine's public value objects: sides, types, statuses, fills, orders, balances.

Everything here is immutable (or an enum) and safe to hand to a facade; the engine's mutable
bookkeeping lives in :mod:`simulators.engine.orders` and :mod:`simulators.engine.accounts`.
Also here: the order number formats a facade picks from.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "OPEN_STATUSES",
    "AccountView",
    "AmendMode",
    "Balance",
    "ClientIdScope",
    "Fill",
    "Order",
    "OrderStatus",
    "OrderType",
    "Side",
    "int_order_numbers",
    "sequential_order_numbers",
    "uuid_order_numbers",
]


class Side(enum.StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Order type. A MARKET BUY may be sized by quantity or by quote amount."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class OrderStatus(enum.StrEnum):
    """Order state.

    REJECTED is for facades that keep broker-side rejections as orders; the engine itself raises
    before creating an order it refuses. REPLACED marks an order whose remainder moved to a new
    order number by an amendment (KIS, Kiwoom). EXPIRED marks an order whose remainder lapsed at
    the end of its trading window (a KRX day order after the close).
    """

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    REPLACED = "replaced"
    EXPIRED = "expired"


#: The statuses in which an order can still fill (and be cancelled or amended).
OPEN_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})


class AmendMode(enum.StrEnum):
    """Whether an amendment gets a new order number (KIS, Kiwoom) or changes the order in place."""

    NEW_NUMBER = "new_number"
    IN_PLACE = "in_place"


class ClientIdScope(enum.StrEnum):
    """How long a client order id stays taken: forever (Upbit) or while open (Binance)."""

    FOREVER = "forever"
    OPEN_ORDERS = "open_orders"


@dataclass(frozen=True)
class Fill:
    """One execution."""

    fill_id: int
    order_no: str
    account_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str
    tax: Decimal
    time: datetime
    maker: bool


@dataclass(frozen=True)
class Order:
    """A snapshot of an order.

    ``quantity``/``remaining_quantity`` are None for a market buy sized by ``quote_amount``; such an
    order tracks ``quote_remaining`` instead and ends FILLED when the rest cannot buy one lot.

    ``active_from``/``expires_at`` bound the window in which the order may fill (None: unbounded);
    ``expired_quantity`` is what lapsed when the window closed (status EXPIRED).
    """

    order_no: str
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal | None
    price: Decimal | None
    quote_amount: Decimal | None
    client_order_id: str | None
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    cancelled_quantity: Decimal
    quote_remaining: Decimal | None
    filled_notional: Decimal
    fees: Decimal
    taxes: Decimal
    locked: Decimal
    locked_asset: str
    created_at: datetime
    updated_at: datetime
    fills: tuple[Fill, ...]
    original_order_no: str | None
    replaced_by: str | None
    extra: Mapping[str, Any]
    expired_quantity: Decimal = Decimal(0)
    active_from: datetime | None = None
    expires_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill."""
        return self.status in OPEN_STATUSES

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price, or None before the first fill."""
        if not self.filled_quantity:
            return None
        return self.filled_notional / self.filled_quantity


@dataclass(frozen=True)
class Balance:
    """An asset in an account: cash (avg_price 0) or a holding."""

    asset: str
    total: Decimal
    locked: Decimal
    avg_price: Decimal

    @property
    def available(self) -> Decimal:
        """What new orders may use (Upbit ``balance``, KIS ``ord_psbl_qty``)."""
        return self.total - self.locked


@dataclass(frozen=True)
class AccountView:
    """A snapshot of an account."""

    account_id: str
    credential_id: str | None
    balances: Mapping[str, Balance]
    meta: Mapping[str, Any]


# --------------------------------------------------------------------------------------------
# Order number formats (facades pick one)
# --------------------------------------------------------------------------------------------


def sequential_order_numbers(width: int = 10) -> Callable[[int], str]:
    """Zero-padded sequence numbers: KIS ``0000000001`` (width 10), Kiwoom width 7."""
    return lambda n: f"{n:0{width}d}"


def int_order_numbers(start: int = 1) -> Callable[[int], str]:
    """Plain integers as strings, from ``start`` (Binance ``orderId``)."""
    return lambda n: str(start + n - 1)


def uuid_order_numbers(seed: int | str) -> Callable[[int], str]:
    """Deterministic version-4-shaped UUIDs derived from the seed (Upbit, Bithumb ``uuid``)."""

    def make(n: int) -> str:
        digest = hashlib.blake2b(f"{seed}|order|{n}".encode(), digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    return make
