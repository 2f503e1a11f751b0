"""The :class:`Engine`: one lock around the parts of an exchange, and the public calls on them.

The parts, each unlocked and called only under the engine's lock:
:class:`~simulators.engine.market.Market` (listings, pins, liquidity),
:class:`~simulators.engine.accounts.AccountBook` (holdings and locks),
:class:`~simulators.engine.orders.OrderBook` (orders by number, account and symbol),
:class:`~simulators.engine.matching.Matcher` (matching and fills),
:class:`~simulators.engine.order_entry.OrderEntry` (placing, cancelling, amending) and
:func:`~simulators.engine.expiry.expire_due` (orders whose trading window closed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Generic, TypeVar

from simulators.engine.accounts import AccountBook
from simulators.engine.clock import SimClock
from simulators.engine.errors import InvalidOrder, OrderNotFound, RuleViolated
from simulators.engine.expiry import expire_due
from simulators.engine.fees import FeeSchedule
from simulators.engine.instruments import Instrument, is_on_tick
from simulators.engine.ledger import Ledger, LedgerKind
from simulators.engine.market import Market
from simulators.engine.matching import Matcher
from simulators.engine.model import (
    AccountView,
    AmendMode,
    Balance,
    ClientIdScope,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    sequential_order_numbers,
)
from simulators.engine.money import MoneyPlaces, Number, to_decimal
from simulators.engine.order_entry import OrderEntry
from simulators.engine.orders import OrderBook, day_bounds, time_bounds
from simulators.engine.prices import PricePath
from simulators.engine.settings import EngineSettings

__all__ = ["Engine"]

_T = TypeVar("_T")


class _Setting(Generic[_T]):
    """An :class:`Engine` attribute that reads and writes through to the engine's settings.

    The engine's parts read their settings when they act, so assigning e.g. ``engine.fees``
    after construction still applies everywhere, as it did when the engine was one object.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, engine: Engine | None, owner: type | None = None) -> _T:
        if engine is None:  # looked up on the class
            return self  # type: ignore[return-value]
        return getattr(engine._settings, self._name)  # type: ignore[no-any-return]

    def __set__(self, engine: Engine, value: _T) -> None:
        setattr(engine._settings, self._name, value)


class Engine:
    """The shared exchange core. All public methods are thread-safe (one lock around state).

    Every public call first catches up with the clock: it matches open orders against the price
    path up to now, so fills happen "on every interaction", and lapses the orders whose trading
    window closed meanwhile; :meth:`sync` does only that (call it after moving the clock).

    Args:
        clock: the simulator's clock.
        seed: seeds the price path (and nothing else; order numbers come from ``order_numbers``).
        ledger: where placements, cancels, amendments and fills are recorded (a fresh one if None).
        instruments: listed symbols.
        fees: commission and tax rates.
        order_numbers: ``n -> order number`` for the n-th order (1-based), e.g.
            :func:`sequential_order_numbers`, :func:`uuid_order_numbers`, :func:`int_order_numbers`.
        money_places: decimal places per currency for notional, fees and taxes (default KRW 0).
        default_money_places: places for currencies not listed (8).
        client_id_scope: how long a client order id stays taken.
        burn_client_id_on_reject: a rejected placement still takes its client id (Upbit).
        amend_mode: default for :meth:`amend_order`.
        market_buy_reserve: a market buy by quantity locks ``qty × price × this`` (KIS reserves at
            the upper price limit, +30 %).
        timezone: the facade's timezone for date-range queries (Asia/Seoul for KRX brokers).
        price_path: a ready path (otherwise built from ``seed``, ``step_seconds``,
            ``segment_steps``).
        step_seconds: length of a price step.
        segment_steps: steps between price knots.
    """

    clock = _Setting[SimClock]()
    ledger = _Setting[Ledger]()
    fees = _Setting[FeeSchedule]()
    path = _Setting[PricePath]()
    timezone = _Setting[tzinfo]()
    client_id_scope = _Setting[ClientIdScope]()
    burn_client_id_on_reject = _Setting[bool]()
    amend_mode = _Setting[AmendMode]()
    market_buy_reserve = _Setting[Decimal]()

    def __init__(
        self,
        *,
        clock: SimClock,
        seed: int | str = 0,
        ledger: Ledger | None = None,
        instruments: Iterable[Instrument] = (),
        fees: FeeSchedule | None = None,
        order_numbers: Callable[[int], str] | None = None,
        money_places: Mapping[str, int] | None = None,
        default_money_places: int = 8,
        client_id_scope: ClientIdScope = ClientIdScope.FOREVER,
        burn_client_id_on_reject: bool = True,
        amend_mode: AmendMode = AmendMode.NEW_NUMBER,
        market_buy_reserve: Decimal = Decimal("1.3"),
        timezone: tzinfo = UTC,
        price_path: PricePath | None = None,
        step_seconds: float = 1.0,
        segment_steps: int = 60,
    ) -> None:
        self.seed = seed
        self._settings = EngineSettings(
            clock=clock,
            ledger=ledger or Ledger(clock),
            path=price_path
            or PricePath(seed, step_seconds=step_seconds, segment_steps=segment_steps),
            fees=fees or FeeSchedule(),
            money=MoneyPlaces(money_places, default_money_places),
            timezone=timezone,
            client_id_scope=client_id_scope,
            burn_client_id_on_reject=burn_client_id_on_reject,
            amend_mode=amend_mode,
            market_buy_reserve=to_decimal(market_buy_reserve, "market_buy_reserve"),
            order_numbers=order_numbers or sequential_order_numbers(),
        )
        self._lock = threading.RLock()
        self._market = Market(self._settings)
        self._accounts = AccountBook(self._settings)
        self._book = OrderBook()
        self._matcher = Matcher(self._settings, self._market, self._accounts, self._book)
        self._entry = OrderEntry(
            self._settings, self._market, self._accounts, self._book, self._matcher
        )
        for instrument in instruments:
            self.add_instrument(instrument)

    # ---- instruments and prices ---------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """List (or re-list with new rules) an instrument."""
        with self._lock:
            self._market.add(instrument)

    def instrument(self, symbol: str) -> Instrument:
        """Return a listed instrument.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            return self._market.get(symbol)

    def instruments(self) -> list[Instrument]:
        """Return all listed instruments, in listing order."""
        with self._lock:
            return self._market.listed()

    def price(self, symbol: str, at: datetime | None = None) -> Decimal:
        """Return the price of ``symbol`` now (or at ``at``), tick-snapped.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            self._catch_up()
            instrument = self._market.get(symbol)
            step = self.path.step_at(at or self.clock.now())
            return self._market.price_at(instrument, step)

    def pin_price(self, symbol: str, price: Number | None) -> None:
        """Hold ``symbol`` at ``price`` from now on (None: back to the path). For tests.

        Raises:
            UnknownInstrument: if the symbol is not listed.
            InvalidOrder: if the price is not on the tick.
        """
        with self._lock:
            self._catch_up()
            instrument = self._market.get(symbol)
            value = None if price is None else to_decimal(price, "price")
            if value is not None and not is_on_tick(value, instrument.tick_rule):
                raise InvalidOrder(RuleViolated.PRICE_TICK, f"{value} is not on the tick")
            step = self.path.step_at(self.clock.now())
            self._market.pin(symbol, step, value)
            self._matcher.match_new_price(symbol, step)

    def set_liquidity(self, symbol: str, quantity: Number | None) -> None:
        """Set the per-step liquidity of ``symbol`` (None: unlimited). For tests.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            self._catch_up()
            self._market.get(symbol)
            self._market.set_liquidity(
                symbol, None if quantity is None else to_decimal(quantity, "liquidity")
            )

    # ---- accounts ---------------------------------------------------------------------------

    def create_account(
        self,
        account_id: str,
        *,
        balances: Mapping[str, Number] | None = None,
        positions: Mapping[str, Number] | None = None,
        credential_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> AccountView:
        """Open an account with cash ``balances`` and ``positions`` (asset → quantity).

        Positions get the instrument's current price as average price when the symbol is listed.

        Raises:
            DuplicateAccount: if the id is taken.
            ValueError: for a negative or non-decimal amount.
        """
        with self._lock:
            self._catch_up()
            now_step = self.path.step_at(self.clock.now())

            def opening_price(asset: str) -> Decimal | None:
                listed = self._market.for_base(asset)
                return None if listed is None else self._market.price_at(listed, now_step)

            account = self._accounts.open(
                account_id,
                balances=balances,
                positions=positions,
                credential_id=credential_id,
                meta=meta,
                opening_price=opening_price,
            )
            self.ledger.record(
                LedgerKind.ACCOUNT_CREATED, account_id=account_id, app_key=credential_id
            )
            return self._accounts.view(account)

    def has_account(self, account_id: str) -> bool:
        """Return whether the account exists."""
        with self._lock:
            return account_id in self._accounts

    def account(self, account_id: str) -> AccountView:
        """Return a snapshot of an account.

        Raises:
            UnknownAccount: if there is no such account.
        """
        with self._lock:
            self._catch_up()
            return self._accounts.view(self._accounts.get(account_id))

    def balance(self, account_id: str, asset: str) -> Balance:
        """Return one asset of an account (zero if never held).

        Raises:
            UnknownAccount: if there is no such account.
        """
        with self._lock:
            self._catch_up()
            return self._accounts.balance(account_id, asset)

    def deposit(self, account_id: str, asset: str, amount: Number) -> Balance:
        """Add (or with a negative amount, withdraw available) ``amount`` of ``asset``.

        Raises:
            UnknownAccount: if there is no such account.
            InsufficientFunds: if a withdrawal exceeds what is available.
        """
        with self._lock:
            self._catch_up()
            return self._accounts.deposit(account_id, asset, amount)

    # ---- orders -----------------------------------------------------------------------------

    def place_order(
        self,
        account_id: str,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        *,
        quantity: Number | None = None,
        price: Number | None = None,
        quote_amount: Number | None = None,
        client_order_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        active_from: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> Order:
        """Validate, lock funds or holdings, record, and match an order at the current step.

        LIMIT needs ``quantity`` and ``price``; MARKET needs ``quantity``, or for a BUY either
        ``quantity`` or ``quote_amount`` (Upbit ``ord_type=price``, Binance ``quoteOrderQty``).
        ``extra`` is kept on the order for the facade (route, broker order type code, …).
        ``active_from``/``expires_at`` bound when the order may fill (a KRX session): it waits
        for ``active_from`` and lapses (EXPIRED) at ``expires_at``; None leaves that side open.

        Raises:
            UnknownAccount, UnknownInstrument, InvalidOrder, InsufficientFunds,
            InsufficientPosition, DuplicateClientOrderId.
        """
        with self._lock:
            self._catch_up()
            account = self._accounts.get(account_id)
            record = self._entry.place(
                account,
                symbol,
                side,
                order_type,
                quantity=quantity,
                price=price,
                quote_amount=quote_amount,
                client_order_id=client_order_id,
                extra=extra,
                active_from=active_from,
                expires_at=expires_at,
            )
            return record.snapshot()

    def cancel_order(
        self, account_id: str, order_no: str, *, quantity: Number | None = None
    ) -> Order:
        """Cancel ``quantity`` of the remainder (default: all of it) and release its lock.

        An order whose remainder reaches zero becomes CANCELLED (keeping any fills).

        Raises:
            UnknownAccount, OrderNotFound, OrderNotOpen,
            InvalidOrder: if ``quantity`` exceeds the remainder or is not a whole lot.
        """
        with self._lock:
            self._catch_up()
            account = self._accounts.get(account_id)
            return self._entry.cancel(account, order_no, quantity).snapshot()

    def amend_order(
        self,
        account_id: str,
        order_no: str,
        *,
        new_price: Number | None = None,
        new_quantity: Number | None = None,
        mode: AmendMode | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Order:
        """Change the price and/or quantity of an open limit order's remainder.

        ``NEW_NUMBER`` (KIS, Kiwoom): ``new_quantity`` units of the remainder (default all) move to
        a new order number at ``new_price`` (default the old price); the original keeps the rest,
        or becomes REPLACED when nothing is left. ``IN_PLACE``: the order keeps its number and its
        remainder becomes ``new_quantity``. Locks are re-computed (raising if more is needed than
        available) and the amended order is matched at once (a now-marketable price fills).
        Returns the live order: the new one, or the same one in place.

        Raises:
            UnknownAccount, OrderNotFound, OrderNotOpen, InvalidOrder, InsufficientFunds,
            InsufficientPosition.
        """
        with self._lock:
            self._catch_up()
            account = self._accounts.get(account_id)
            live = self._entry.amend(
                account,
                order_no,
                new_price=new_price,
                new_quantity=new_quantity,
                mode=mode,
                extra=extra,
            )
            return live.snapshot()

    # ---- queries ----------------------------------------------------------------------------

    def get_order(self, account_id: str, order_no: str, *, day: date | None = None) -> Order:
        """Return the newest order of this account with this number (created on ``day``, if given).

        ``day`` is a calendar day in the engine's timezone: brokers that number orders per trading
        day (KIS, Kiwoom) look an order number up among today's orders.

        Raises:
            UnknownAccount, OrderNotFound.
        """
        with self._lock:
            self._catch_up()
            self._accounts.get(account_id)
            lo, hi = (None, None) if day is None else day_bounds(day, self.timezone)
            return self._book.get(account_id, order_no, lo, hi).snapshot()

    def get_order_by_client_id(self, account_id: str, client_order_id: str) -> Order:
        """Return the latest order of this account with this client order id.

        Raises:
            UnknownAccount, OrderNotFound.
        """
        with self._lock:
            self._catch_up()
            self._accounts.get(account_id)
            for record in reversed(self._book.of_account(account_id)):
                if record.client_order_id == client_order_id:
                    return record.snapshot()
            raise OrderNotFound(client_order_id)

    def orders(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        symbol: str | None = None,
        side: Side | None = None,
        open_only: bool = False,
        statuses: Iterable[OrderStatus] | None = None,
    ) -> list[Order]:
        """Return the account's orders, oldest first, filtered.

        ``since``/``until`` bound ``created_at`` (inclusive, exclusive); ``start_date``/
        ``end_date`` are inclusive calendar days in the engine's timezone (KST for KRX brokers).

        Raises:
            UnknownAccount.
        """
        with self._lock:
            self._catch_up()
            self._accounts.get(account_id)
            lo, hi = time_bounds(self.timezone, since, until, start_date, end_date)
            records = self._book.select(
                account_id,
                lo,
                hi,
                symbol=symbol,
                side=side,
                open_only=open_only,
                statuses=statuses,
            )
            return [r.snapshot() for r in records]

    def fills(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        order_no: str | None = None,
        symbol: str | None = None,
    ) -> list[Fill]:
        """Return the account's fills, oldest first, filtered like :meth:`orders` (by fill time).

        Raises:
            UnknownAccount.
        """
        with self._lock:
            self._catch_up()
            self._accounts.get(account_id)
            lo, hi = time_bounds(self.timezone, since, until, start_date, end_date)
            return self._book.fills(account_id, lo, hi, order_no=order_no, symbol=symbol)

    def statement(
        self, account_id: str, *, since: datetime | None = None
    ) -> tuple[AccountView, list[Fill]]:
        """Return the account and its fills since ``since``, as one consistent snapshot.

        For figures derived from both (settlement: cash that has settled by a day is the cash now
        minus the flows of fills that settle later), which two separate calls could tear apart.

        Raises:
            UnknownAccount.
        """
        with self._lock:
            self._catch_up()
            view = self._accounts.view(self._accounts.get(account_id))
            return view, self._book.fills(account_id, since, None)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """Return the UTC start and end of a calendar day in the engine's timezone."""
        return day_bounds(day, self.timezone)

    def sync(self) -> None:
        """Match open orders up to the clock's now and lapse those whose window closed."""
        with self._lock:
            self._catch_up()

    def _catch_up(self) -> None:
        """Match up to now, then expire what is due (the matcher never fills past an expiry)."""
        self._matcher.sync()
        expire_due(self._settings, self._accounts, self._book, self.clock.now())
