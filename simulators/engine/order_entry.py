"""Placing, cancelling and amending orders: rules, client ids, locks, numbers, ledger entries.

A refused placement raises before anything but its ``order_rejected`` ledger entry (and, where
the venue burns them, its client id) is recorded. An accepted order or amendment is matched at
once at the current step, so a marketable price fills before the call returns — unless its
trading window (``active_from``) has not begun: then it first matches, as a taker, at the window's
first step. An amendment keeps the window of the order it amends.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from simulators.engine.accounts import Account, AccountBook
from simulators.engine.errors import (
    DuplicateClientOrderId,
    InvalidOrder,
    OrderNotOpen,
    RuleViolated,
    SimulatorError,
)
from simulators.engine.ledger import LedgerKind
from simulators.engine.market import Market
from simulators.engine.matching import Matcher
from simulators.engine.model import AmendMode, ClientIdScope, OrderStatus, OrderType, Side
from simulators.engine.money import Number
from simulators.engine.orders import OrderBook, OrderRecord
from simulators.engine.settings import EngineSettings
from simulators.engine.validation import checked_quantity, validate_amendment, validate_shape

__all__ = ["OrderEntry"]


class OrderEntry:
    """Takes the order requests of one engine's accounts; numbers orders and amendments.

    Not locked itself: the engine calls it while holding its lock, after matching up to now.

    Args:
        settings: the engine's settings (clock, path, ledger, client id and amend policies).
        market: listings and prices.
        accounts: where orders lock funds and holdings.
        book: where orders are kept.
        matcher: matches a new or amended order at once.
    """

    def __init__(
        self,
        settings: EngineSettings,
        market: Market,
        accounts: AccountBook,
        book: OrderBook,
        matcher: Matcher,
    ) -> None:
        self._settings = settings
        self._market = market
        self._accounts = accounts
        self._book = book
        self._matcher = matcher
        self._order_seq = itertools.count(1)

    # ---- placing ----------------------------------------------------------------------------

    def place(
        self,
        account: Account,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        *,
        quantity: Number | None,
        price: Number | None,
        quote_amount: Number | None,
        client_order_id: str | None,
        extra: Mapping[str, Any] | None,
        active_from: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> OrderRecord:
        """Validate, lock, record and match a new order; record a refusal before re-raising.

        ``active_from``/``expires_at`` bound when the order may fill (None: unbounded).

        Raises:
            UnknownInstrument, InvalidOrder, InsufficientFunds, InsufficientPosition,
            DuplicateClientOrderId; ValueError for an unknown side or order type.
        """
        settings = self._settings
        try:
            return self._new_order(
                account,
                symbol,
                Side(side),
                OrderType(order_type),
                quantity,
                price,
                quote_amount,
                client_order_id,
                extra,
                (active_from, expires_at),
            )
        except SimulatorError as exc:
            if (
                client_order_id is not None
                and settings.burn_client_id_on_reject
                and settings.client_id_scope is ClientIdScope.FOREVER
                and not isinstance(exc, DuplicateClientOrderId)
            ):
                account.used_client_ids.add(client_order_id)
            settings.ledger.record(
                LedgerKind.ORDER_REJECTED,
                account_id=account.account_id,
                app_key=account.credential_id,
                symbol=symbol,
                side=str(side),
                order_type=str(order_type),
                quantity=None if quantity is None else str(quantity),
                price=None if price is None else str(price),
                quote_amount=None if quote_amount is None else str(quote_amount),
                client_order_id=client_order_id,
                reason=type(exc).__name__,
                message=str(exc),
            )
            raise

    def _new_order(
        self,
        account: Account,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Number | None,
        price: Number | None,
        quote_amount: Number | None,
        client_order_id: str | None,
        extra: Mapping[str, Any] | None,
        window: tuple[datetime | None, datetime | None],
    ) -> OrderRecord:
        settings = self._settings
        instrument = self._market.get(symbol)
        now = settings.clock.now()
        step = settings.path.step_at(now)
        active_from, expires_at = window
        if expires_at is not None and expires_at <= now:
            raise InvalidOrder(RuleViolated.ORDER_SHAPE, "the order's trading window has closed")
        current = self._market.price_at(instrument, step)
        qty, limit, amount = validate_shape(
            instrument, side, order_type, quantity, price, quote_amount, current
        )
        if client_order_id is not None:
            self._check_client_id(account, client_order_id)
        record = OrderRecord(
            seq=0,
            order_no="",
            account_id=account.account_id,
            instrument=instrument,
            side=side,
            order_type=order_type,
            quantity=qty,
            price=limit,
            quote_amount=amount,
            client_order_id=client_order_id,
            reserve_price=limit if limit is not None else current,
            taker_step=self._first_step(step, active_from),
            created_at=now,
            updated_at=now,
            extra=dict(extra or {}),
            active_from=active_from,
            expires_at=expires_at,
        )
        self._accounts.retarget_lock(account, record)  # raises before anything is recorded
        self._number(record)
        if client_order_id is not None:
            account.used_client_ids.add(client_order_id)
        self._book.register(record)
        settings.ledger.record(
            LedgerKind.ORDER_PLACED,
            account_id=account.account_id,
            app_key=account.credential_id,
            **record.ledger_fields(),
        )
        self._matcher.start(symbol, step)
        self._matcher.match_step(instrument, step, [record])
        return record

    def _first_step(self, step: int, active_from: datetime | None) -> int:
        """The step an order placed at ``step`` first trades at: now, or when its window opens."""
        if active_from is None:
            return step
        return max(step, self._settings.path.step_at(active_from))

    def _check_client_id(self, account: Account, client_order_id: str) -> None:
        if self._settings.client_id_scope is ClientIdScope.FOREVER:
            taken = client_order_id in account.used_client_ids
        else:
            taken = any(
                o.client_order_id == client_order_id and o.is_open
                for o in self._book.of_account(account.account_id)
            )
        if taken:
            raise DuplicateClientOrderId(client_order_id)

    def _number(self, record: OrderRecord) -> None:
        """Give an accepted order (or amendment) the next sequence number and order number."""
        record.seq = next(self._order_seq)
        record.order_no = self._settings.order_numbers(record.seq)

    def _open_order(self, account: Account, order_no: str) -> OrderRecord:
        record = self._book.get(account.account_id, order_no)
        if not record.is_open:
            raise OrderNotOpen(order_no, record.status)
        return record

    # ---- cancelling -------------------------------------------------------------------------

    def cancel(self, account: Account, order_no: str, quantity: Number | None) -> OrderRecord:
        """Cancel ``quantity`` of the remainder (default: all of it) and release its lock.

        Raises:
            OrderNotFound, OrderNotOpen,
            InvalidOrder: if ``quantity`` exceeds the remainder or is not a whole lot.
        """
        record = self._open_order(account, order_no)
        now = self._settings.clock.now()
        remaining = record.remaining
        if quantity is None or remaining is None:
            cut = remaining
        else:
            cut = checked_quantity(record.instrument, quantity)
            if cut > remaining:
                raise InvalidOrder(
                    RuleViolated.QUANTITY,
                    f"cancel quantity {cut} exceeds remainder {remaining}",
                )
        if remaining is None:  # a market buy by amount: cancel what is left of the amount
            record.quote_amount = record.filled_notional
            record.status = OrderStatus.CANCELLED
        else:
            record.cancelled += cut  # type: ignore[operator]
            if record.remaining == 0:
                record.status = OrderStatus.CANCELLED
        record.updated_at = now
        self._accounts.retarget_lock(account, record)
        self._book.unregister_if_closed(record)
        self._settings.ledger.record(
            LedgerKind.ORDER_CANCELLED,
            account_id=account.account_id,
            app_key=account.credential_id,
            order_no=order_no,
            symbol=record.instrument.symbol,
            cancelled_quantity=cut,
            status=record.status,
        )
        return record

    # ---- amending ---------------------------------------------------------------------------

    def amend(
        self,
        account: Account,
        order_no: str,
        *,
        new_price: Number | None,
        new_quantity: Number | None,
        mode: AmendMode | None,
        extra: Mapping[str, Any] | None,
    ) -> OrderRecord:
        """Change the price and/or quantity of an open limit order's remainder; return the live one.

        Raises:
            OrderNotFound, OrderNotOpen, InvalidOrder, InsufficientFunds, InsufficientPosition.
        """
        settings = self._settings
        record = self._open_order(account, order_no)
        price, qty = validate_amendment(record, new_price, new_quantity)
        instrument = record.instrument
        now = settings.clock.now()
        step = settings.path.step_at(now)
        if (mode or settings.amend_mode) is AmendMode.IN_PLACE:
            live = self._amend_in_place(account, record, price, qty, now, step)
        else:
            live = self._amend_new_number(account, record, price, qty, now, step, extra)
        settings.ledger.record(
            LedgerKind.ORDER_AMENDED,
            account_id=account.account_id,
            app_key=account.credential_id,
            order_no=order_no,
            new_order_no=live.order_no,
            symbol=instrument.symbol,
            price=price,
            quantity=qty,
        )
        self._matcher.match_step(instrument, step, [live])
        return live

    def _amend_in_place(
        self,
        account: Account,
        record: OrderRecord,
        price: Decimal,
        qty: Decimal,
        now: datetime,
        step: int,
    ) -> OrderRecord:
        old = (record.price, record.quantity, record.reserve_price, record.taker_step)
        record.price, record.reserve_price = price, price
        record.taker_step = self._first_step(step, record.active_from)
        record.quantity = record.filled + record.cancelled + record.expired + qty
        try:
            self._accounts.retarget_lock(account, record)
        except SimulatorError:
            record.price, record.quantity, record.reserve_price, record.taker_step = old
            raise
        record.updated_at = now
        return record

    def _amend_new_number(
        self,
        account: Account,
        record: OrderRecord,
        price: Decimal,
        qty: Decimal,
        now: datetime,
        step: int,
        extra: Mapping[str, Any] | None,
    ) -> OrderRecord:
        remaining = record.remaining or Decimal(0)
        if qty > remaining:
            raise InvalidOrder(
                RuleViolated.QUANTITY, f"amend quantity {qty} exceeds remainder {remaining}"
            )
        new = OrderRecord(
            seq=0,
            order_no="",
            account_id=record.account_id,
            instrument=record.instrument,
            side=record.side,
            order_type=record.order_type,
            quantity=qty,
            price=price,
            quote_amount=None,
            client_order_id=None,
            reserve_price=price,
            taker_step=self._first_step(step, record.active_from),
            created_at=now,
            updated_at=now,
            extra={**record.extra, **(extra or {})},
            original_order_no=record.order_no,
            active_from=record.active_from,
            expires_at=record.expires_at,
        )
        # Move the amended units out of the original first, so its lock is released before the
        # new order's lock is taken; undo if the new lock does not fit.
        record.cancelled += qty
        self._accounts.retarget_lock(account, record)
        try:
            self._accounts.retarget_lock(account, new)
        except SimulatorError:
            record.cancelled -= qty
            self._accounts.retarget_lock(account, record)
            raise
        self._number(new)
        if record.remaining == 0:
            record.status = OrderStatus.REPLACED
        record.replaced_by = new.order_no
        record.updated_at = now
        self._book.unregister_if_closed(record)
        self._book.register(new)
        return new
