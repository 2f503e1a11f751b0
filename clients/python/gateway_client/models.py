"""The gateway's resources as frozen dataclasses: decimals as ``Decimal``, times as ``datetime``."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _time(value: Any) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


@dataclass(frozen=True)
class Account:
    """A broker account the key may use."""

    id: int
    name: str
    exchange: str
    environment: str
    account_type: str
    is_active: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Account:
        """Build from the API's JSON."""
        return cls(
            id=data["id"],
            name=data["name"],
            exchange=data["exchange"],
            environment=data.get("environment", ""),
            account_type=data.get("account_type", ""),
            is_active=bool(data.get("is_active", True)),
            raw=data,
        )


@dataclass(frozen=True)
class Order:
    """An order as the gateway tracks it."""

    id: uuid.UUID
    account_id: int
    symbol: str
    side: str
    type: str
    quantity: Decimal
    limit_price: Decimal | None
    status: str
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    client_order_id: str
    broker_order_id: str | None
    reject_code: str | None
    reject_message: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        """Tell whether the order may still fill."""
        return self.status in (
            "PENDING_SUBMIT",
            "SUBMITTED",
            "PARTIALLY_FILLED",
            "CANCEL_PENDING",
            "UNKNOWN",
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        """Build from the API's JSON."""
        return cls(
            id=uuid.UUID(data["id"]),
            account_id=data["account_id"],
            symbol=data["symbol"],
            side=data["side"],
            type=data["type"],
            quantity=Decimal(data["quantity"]),
            limit_price=_decimal(data.get("limit_price")),
            status=data["status"],
            filled_quantity=Decimal(data.get("filled_quantity") or "0"),
            average_fill_price=_decimal(data.get("average_fill_price")),
            client_order_id=data.get("client_order_id", ""),
            broker_order_id=data.get("broker_order_id"),
            reject_code=data.get("reject_code"),
            reject_message=data.get("reject_message"),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            raw=data,
        )


@dataclass(frozen=True)
class OrderPage:
    """A page of orders, newest first, and the cursor of the next page."""

    orders: list[Order]
    next_cursor: str | None


@dataclass(frozen=True)
class Fill:
    """One execution of an order, from a ``fill`` event."""

    quantity: Decimal
    price: Decimal
    ts: dt.datetime | None
    broker_fill_id: str | None
    fee: Decimal | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fill:
        """Build from the API's JSON."""
        return cls(
            quantity=Decimal(data["quantity"]),
            price=Decimal(data["price"]),
            ts=_time(data.get("ts")),
            broker_fill_id=data.get("broker_fill_id"),
            fee=_decimal(data.get("fee")),
        )


@dataclass(frozen=True)
class Event:
    """One order event: its id (resume after it), type, the order after it, and any fill."""

    id: int
    type: str
    account_id: int
    order_id: uuid.UUID
    ts: dt.datetime
    order: Order
    fill: Fill | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """Build from the API's JSON."""
        return cls(
            id=int(data["id"]),
            type=data["type"],
            account_id=data["account_id"],
            order_id=uuid.UUID(data["order_id"]),
            ts=dt.datetime.fromisoformat(data["ts"]),
            order=Order.from_json(data["order"]),
            fill=Fill.from_json(data["fill"]) if data.get("fill") else None,
        )


@dataclass(frozen=True)
class Holding:
    """One position."""

    symbol: str | None
    asset: str | None
    name: str | None
    quantity: Decimal
    available_quantity: Decimal | None
    avg_price: Decimal | None
    current_price: Decimal | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Holding:
        """Build from the API's JSON."""
        return cls(
            symbol=data.get("symbol"),
            asset=data.get("asset"),
            name=data.get("name"),
            quantity=Decimal(data["quantity"]),
            available_quantity=_decimal(data.get("available_quantity")),
            avg_price=_decimal(data.get("avg_price")),
            current_price=_decimal(data.get("current_price")),
        )


@dataclass(frozen=True)
class HoldingsSnapshot:
    """An account's positions and when the broker reported them."""

    as_of: dt.datetime | None
    holdings: list[Holding]


@dataclass(frozen=True)
class Balance:
    """Cash or an asset balance."""

    currency: str
    total: Decimal | None
    available: Decimal | None
    locked: Decimal | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Balance:
        """Build from the API's JSON."""
        return cls(
            currency=data["currency"],
            total=_decimal(data.get("total")),
            available=_decimal(data.get("available")),
            locked=_decimal(data.get("locked")),
        )


@dataclass(frozen=True)
class Stock:
    """A Korean security of the stocks master."""

    symbol: str
    name: str
    market: str
    is_tradable: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stock:
        """Build from the API's JSON."""
        return cls(
            symbol=data["symbol"],
            name=data["name"],
            market=data.get("market", ""),
            is_tradable=bool(data.get("is_tradable", True)),
            raw=data,
        )
