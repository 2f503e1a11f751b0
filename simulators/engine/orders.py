"""The engine's order records and the book that finds them by number, account and symbol."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from simulators.engine.errors import OrderNotFound
from simulators.engine.instruments import Instrument
from simulators.engine.model import (
    OPEN_STATUSES,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
)

__all__ = ["OrderBook", "OrderRecord", "day_bounds", "time_bounds"]


@dataclass
class OrderRecord:
    """The mutable state of one order; facades only ever see its :meth:`snapshot`.

    ``active_from``/``expires_at`` bound the time in which the order may fill; a facade sets them
    from its venue's sessions (a KRX order placed in the pre-open call waits for 09:00 and lapses
    at the close). ``expired`` is the remainder that lapsed when ``expires_at`` passed.
    """

    seq: int
    order_no: str
    account_id: str
    instrument: Instrument
    side: Side
    order_type: OrderType
    quantity: Decimal | None
    price: Decimal | None
    quote_amount: Decimal | None
    client_order_id: str | None
    reserve_price: Decimal
    taker_step: int
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any]
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = Decimal(0)
    cancelled: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    taxes: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    fills: list[Fill] = field(default_factory=list)
    original_order_no: str | None = None
    replaced_by: str | None = None
    active_from: datetime | None = None
    expires_at: datetime | None = None
    expired: Decimal = Decimal(0)

    @property
    def remaining(self) -> Decimal | None:
        """Quantity still to fill; None for a market buy sized by quote amount."""
        if self.quantity is None:
            return None
        return self.quantity - self.filled - self.cancelled - self.expired

    @property
    def quote_remaining(self) -> Decimal | None:
        """Quote amount still to spend; None unless sized by quote amount."""
        if self.quote_amount is None:
            return None
        return self.quote_amount - self.filled_notional

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill."""
        return self.status in OPEN_STATUSES

    @property
    def lock_asset(self) -> str:
        """The asset the order locks: the quote for a buy, the base for a sell."""
        return self.instrument.quote if self.side is Side.BUY else self.instrument.base

    def snapshot(self) -> Order:
        """Return the immutable view of the order."""
        return Order(
            order_no=self.order_no,
            account_id=self.account_id,
            symbol=self.instrument.symbol,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            quantity=self.quantity,
            price=self.price,
            quote_amount=self.quote_amount,
            client_order_id=self.client_order_id,
            filled_quantity=self.filled,
            remaining_quantity=self.remaining,
            cancelled_quantity=self.cancelled,
            quote_remaining=self.quote_remaining,
            filled_notional=self.filled_notional,
            fees=self.fees,
            taxes=self.taxes,
            locked=self.locked,
            locked_asset=self.lock_asset,
            created_at=self.created_at,
            updated_at=self.updated_at,
            fills=tuple(self.fills),
            original_order_no=self.original_order_no,
            replaced_by=self.replaced_by,
            extra=dict(self.extra),
            expired_quantity=self.expired,
            active_from=self.active_from,
            expires_at=self.expires_at,
        )

    def ledger_fields(self) -> dict[str, Any]:
        """Return what an ``order_placed`` ledger entry records about the order."""
        return {
            "order_no": self.order_no,
            "symbol": self.instrument.symbol,
            "side": self.side,
            "order_type": self.order_type,
            "quantity": self.quantity,
            "price": self.price,
            "quote_amount": self.quote_amount,
            "client_order_id": self.client_order_id,
        }


class OrderBook:
    """Every order by number and by account (oldest first), and the open ones by symbol.

    An order number may come back: KIS and Kiwoom number orders per trading day, so the book
    keeps every order under its number and a lookup by number finds the newest one (optionally
    only among those created in a time range, e.g. today).

    The open lists are in time priority and are the live lists matching walks: closing an
    order removes it from them at once. Not locked itself: the engine holds its lock.
    """

    def __init__(self) -> None:
        self._orders: dict[str, list[OrderRecord]] = {}
        self._by_account: dict[str, list[OrderRecord]] = {}
        self._open_by_symbol: dict[str, list[OrderRecord]] = {}

    def register(self, record: OrderRecord) -> None:
        """Add a numbered order (open) to the book."""
        self._orders.setdefault(record.order_no, []).append(record)
        self._by_account.setdefault(record.account_id, []).append(record)
        self._open_by_symbol.setdefault(record.instrument.symbol, []).append(record)

    def unregister_if_closed(self, record: OrderRecord) -> None:
        """Take an order out of its symbol's open list once it can no longer fill."""
        if not record.is_open:
            book = self._open_by_symbol.get(record.instrument.symbol, [])
            if record in book:
                book.remove(record)

    def get(
        self,
        account_id: str,
        order_no: str,
        lo: datetime | None = None,
        hi: datetime | None = None,
    ) -> OrderRecord:
        """Return the newest order of this account with this number, created in ``[lo, hi)``.

        Raises:
            OrderNotFound: if there is no such order, or it belongs to another account.
        """
        for record in reversed(self._orders.get(order_no, ())):
            if (
                record.account_id == account_id
                and (lo is None or record.created_at >= lo)
                and (hi is None or record.created_at < hi)
            ):
                return record
        raise OrderNotFound(order_no)

    def open_records(self) -> list[OrderRecord]:
        """Return every open order (of all symbols)."""
        return [record for book in self._open_by_symbol.values() for record in book]

    def of_account(self, account_id: str) -> list[OrderRecord]:
        """Return the account's orders, oldest first."""
        return self._by_account.get(account_id, [])

    def open_in(self, symbol: str) -> list[OrderRecord]:
        """Return the live list of open orders in ``symbol``, in time priority."""
        return self._open_by_symbol.get(symbol, [])

    def open_books(self) -> ItemsView[str, list[OrderRecord]]:
        """Return (symbol, live open list) for every symbol that ever had an order."""
        return self._open_by_symbol.items()

    def select(
        self,
        account_id: str,
        lo: datetime | None,
        hi: datetime | None,
        *,
        symbol: str | None = None,
        side: Side | None = None,
        open_only: bool = False,
        statuses: Iterable[OrderStatus] | None = None,
    ) -> list[OrderRecord]:
        """Return the account's orders created in ``[lo, hi)``, oldest first, filtered."""
        wanted = set(statuses) if statuses is not None else None
        return [
            r
            for r in self.of_account(account_id)
            if (lo is None or r.created_at >= lo)
            and (hi is None or r.created_at < hi)
            and (symbol is None or r.instrument.symbol == symbol)
            and (side is None or r.side == side)
            and (not open_only or r.is_open)
            and (wanted is None or r.status in wanted)
        ]

    def fills(
        self,
        account_id: str,
        lo: datetime | None,
        hi: datetime | None,
        *,
        order_no: str | None = None,
        symbol: str | None = None,
    ) -> list[Fill]:
        """Return the account's fills made in ``[lo, hi)``, in fill order, filtered."""
        out = [
            f
            for r in self.of_account(account_id)
            if (order_no is None or r.order_no == order_no)
            and (symbol is None or r.instrument.symbol == symbol)
            for f in r.fills
            if (lo is None or f.time >= lo) and (hi is None or f.time < hi)
        ]
        return sorted(out, key=lambda f: f.fill_id)


def day_bounds(day: date, timezone: tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC start and end of a calendar day in ``timezone``."""
    start = datetime.combine(day, time(0), tzinfo=timezone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def time_bounds(
    timezone: tzinfo,
    since: datetime | None,
    until: datetime | None,
    start_date: date | None,
    end_date: date | None,
) -> tuple[datetime | None, datetime | None]:
    """Combine a time range with inclusive calendar days in ``timezone`` into one range."""
    lo, hi = since, until
    if start_date is not None:
        day_lo = day_bounds(start_date, timezone)[0]
        lo = day_lo if lo is None else max(lo, day_lo)
    if end_date is not None:
        day_hi = day_bounds(end_date, timezone)[1]
        hi = day_hi if hi is None else min(hi, day_hi)
    return lo, hi
