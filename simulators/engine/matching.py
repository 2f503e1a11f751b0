"""Matching open orders against the price path, and the fills that follow.

Every public engine call first matches open orders up to the clock's now (:meth:`Matcher.sync`),
so fills happen "on every interaction".

* **Fill price.** A marketable order fills at the path price at the step it was placed or amended
  (it takes liquidity, so it gets the better price). A resting limit order that the path crosses
  later fills at its limit price (it made the price). Market orders fill at the path price.
* **Liquidity.** ``Instrument.liquidity_per_step`` (or :meth:`Engine.set_liquidity
  <simulators.engine.Engine.set_liquidity>`) is the base quantity that can trade per step and
  side, shared in time priority; ``None`` means unlimited, so every crossing order fills
  completely at once.
* **Trading windows.** An order with ``active_from``/``expires_at`` (a KRX session) only matches
  at the steps inside its window, so a clock jump across the close fills nothing after it; an
  order that waits for its window (the pre-open call) takes the price of its first step.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import cast

from simulators.engine.accounts import Account, AccountBook
from simulators.engine.fees import affordable_quantity, fill_charges
from simulators.engine.instruments import Instrument
from simulators.engine.ledger import LedgerKind
from simulators.engine.market import Market
from simulators.engine.model import Fill, OrderStatus, OrderType, Side
from simulators.engine.orders import OrderBook, OrderRecord
from simulators.engine.settings import EngineSettings

__all__ = ["Matcher"]


class Matcher:
    """Matches the open orders of one engine and books their fills.

    Not locked itself: the engine calls it while holding its lock.

    Args:
        settings: the engine's settings (clock, path, fees, money places, ledger).
        market: listings, pins and liquidity.
        accounts: the accounts fills move cash and holdings in.
        book: the orders.
    """

    def __init__(
        self, settings: EngineSettings, market: Market, accounts: AccountBook, book: OrderBook
    ) -> None:
        self._settings = settings
        self._market = market
        self._accounts = accounts
        self._book = book
        self._matched_through: dict[str, int] = {}
        self._liquidity_used: dict[tuple[str, Side], tuple[int, Decimal]] = {}
        self._fill_seq = itertools.count(1)

    def sync(self) -> None:
        """Match open orders against the price path up to the clock's now."""
        now_step = self._settings.path.step_at(self._settings.clock.now())
        for symbol, book in self._book.open_books():
            start = self._matched_through.get(symbol, now_step)
            if book and start < now_step:
                self._match_range(self._market.get(symbol), start + 1, now_step)
            self._matched_through[symbol] = max(start, now_step)

    def start(self, symbol: str, step: int) -> None:
        """Note that ``symbol`` has been matched through ``step`` unless it already was."""
        self._matched_through.setdefault(symbol, step)

    def match_new_price(self, symbol: str, step: int) -> None:
        """Match the open orders in ``symbol`` at ``step`` (after its price was pinned)."""
        book = self._book.open_in(symbol)
        if book:
            self.match_step(self._market.get(symbol), step, list(book))

    def _match_range(self, instrument: Instrument, first: int, last: int) -> None:
        """Match open orders over steps ``first..last``, skipping segments nobody can trade in."""
        book = self._book.open_in(instrument.symbol)
        if self._market.liquidity(instrument) == 0:
            return
        path = self._settings.path
        pin_starts = self._market.pin_starts(instrument.symbol)
        step = first
        while step <= last and book:
            end = min(last, path.segment_end(step))
            # Within a segment the path is monotone and a pin is constant, so the extremes lie at
            # the ends of the stretches between pin boundaries.
            points = {step, end}
            for p in pin_starts:
                if step < p <= end:
                    points.update((p - 1, p))
            prices = [self._market.price_at(instrument, s) for s in points]
            low, high = min(prices), max(prices)
            tradable = (o for o in book if self._window_meets(o, step, end))
            if any(self._may_trade(o, low, high) for o in tradable):
                for s in range(step, end + 1):
                    if not book:
                        break
                    self.match_step(instrument, s, list(book))
            step = end + 1

    def active_steps(self, record: OrderRecord) -> tuple[int | None, int | None]:
        """Return the first step the order may fill at and the first it may not (None: open)."""
        path = self._settings.path
        first = None if record.active_from is None else path.step_at(record.active_from)
        end = None if record.expires_at is None else path.step_at(record.expires_at)
        return first, end

    def _window_meets(self, record: OrderRecord, first: int, last: int) -> bool:
        """Whether the order's trading window shares a step with ``first..last``."""
        start, end = self.active_steps(record)
        return (start is None or start <= last) and (end is None or end > first)

    @staticmethod
    def _may_trade(record: OrderRecord, low: Decimal, high: Decimal) -> bool:
        if record.order_type is OrderType.MARKET:
            return True
        limit = cast(Decimal, record.price)  # a limit order has a price
        return low <= limit if record.side is Side.BUY else high >= limit

    def _used(self, symbol: str, side: Side, step: int) -> Decimal:
        """Liquidity already taken at ``step`` on this symbol and side."""
        used_step, used = self._liquidity_used.get((symbol, side), (step, Decimal(0)))
        return used if used_step == step else Decimal(0)

    def match_step(self, instrument: Instrument, step: int, candidates: list[OrderRecord]) -> None:
        """Fill whichever of ``candidates`` (in time priority) the price at ``step`` crosses."""
        price = self._market.price_at(instrument, step)
        liquidity = self._market.liquidity(instrument)
        for record in candidates:
            if not record.is_open or not self._window_meets(record, step, step):
                continue
            if record.order_type is OrderType.LIMIT:
                limit = cast(Decimal, record.price)  # a limit order has a price
                crosses = price <= limit if record.side is Side.BUY else price >= limit
                if not crosses:
                    continue
                maker = step != record.taker_step
                fill_price = limit if maker else price
            else:
                maker, fill_price = False, price
            budget = None
            if liquidity is not None:
                budget = liquidity - self._used(instrument.symbol, record.side, step)
                if budget <= 0:
                    continue
            self._fill(record, instrument, step, fill_price, budget, maker)

    def _fill(
        self,
        record: OrderRecord,
        instrument: Instrument,
        step: int,
        price: Decimal,
        budget: Decimal | None,
        maker: bool,
    ) -> None:
        settings = self._settings
        account = self._accounts.get(record.account_id)
        quote, base = instrument.quote, instrument.base
        if record.quote_amount is not None:
            wanted = instrument.floor_lot((record.quote_remaining or Decimal(0)) / price)
        else:
            wanted = record.remaining or Decimal(0)
        qty = wanted if budget is None else instrument.floor_lot(min(wanted, budget))
        now = settings.clock.now()
        if qty <= 0:
            if wanted <= 0:  # what is left of a quote amount cannot buy one lot
                self._close_unfillable(account, record, wanted, now)
            return  # otherwise this step's liquidity is below one lot: wait for the next step
        if record.side is Side.BUY:
            affordable = self._affordable(account, record, instrument, price)
            if affordable <= 0:  # a market buy whose reserve the price has outrun
                self._close_unfillable(account, record, wanted, now)
                return
            qty = min(qty, affordable)
        notional = settings.money.quantize(qty * price, quote)
        fee, fee_asset, tax = fill_charges(
            settings.fees, settings.money, instrument, record.side, qty, notional
        )
        cash, held = account.holding(quote), account.holding(base)
        if record.side is Side.BUY:
            cost = notional + (fee if fee_asset == quote else Decimal(0))
            from_lock = min(cost, record.locked)
            cash.total -= cost
            cash.locked -= from_lock
            record.locked -= from_lock
            received = qty - (fee if fee_asset == base else Decimal(0))
            if held.total + received > 0:
                held.avg_price = (
                    (held.total * held.avg_price + qty * price) / (held.total + received)
                ).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)
            held.total += received
        else:
            held.total -= qty
            held.locked -= qty
            record.locked -= qty
            if held.total == 0:
                held.avg_price = Decimal(0)
            cash.total += notional - fee - tax
        record.filled += qty
        record.filled_notional += notional
        record.fees += fee
        record.taxes += tax
        record.updated_at = now
        fill = Fill(
            fill_id=next(self._fill_seq),
            order_no=record.order_no,
            account_id=record.account_id,
            symbol=instrument.symbol,
            side=record.side,
            price=price,
            quantity=qty,
            notional=notional,
            fee=fee,
            fee_asset=fee_asset,
            tax=tax,
            time=now,
            maker=maker,
        )
        record.fills.append(fill)
        if budget is not None:
            used = self._used(instrument.symbol, record.side, step)
            self._liquidity_used[(instrument.symbol, record.side)] = (step, used + qty)
        done = (
            record.remaining == 0
            if record.quote_amount is None
            else instrument.floor_lot((record.quote_remaining or Decimal(0)) / price) <= 0
        )
        record.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        self._accounts.retarget_lock(account, record)
        self._book.unregister_if_closed(record)
        settings.ledger.record(
            LedgerKind.FILL,
            account_id=record.account_id,
            app_key=account.credential_id,
            order_no=record.order_no,
            fill_id=fill.fill_id,
            symbol=instrument.symbol,
            side=record.side,
            price=price,
            quantity=qty,
            fee=fee,
            tax=tax,
        )

    def _affordable(
        self, account: Account, record: OrderRecord, instrument: Instrument, price: Decimal
    ) -> Decimal:
        """Largest quantity the order's lock plus free cash can pay for at ``price``."""
        cash = account.holding(instrument.quote)
        funds = record.locked + (cash.total - cash.locked)
        settings = self._settings
        return affordable_quantity(settings.fees, settings.money, instrument, price, funds)

    def _close_unfillable(
        self, account: Account, record: OrderRecord, wanted: Decimal, now: datetime
    ) -> None:
        """End a market order that cannot progress: dust left of an amount, or no funds left."""
        if record.order_type is not OrderType.MARKET:
            return
        if record.quote_amount is not None and wanted <= 0:
            # The rest of the amount cannot buy one lot: the order is done and the dust released.
            record.status = OrderStatus.FILLED if record.filled else OrderStatus.CANCELLED
        elif record.side is Side.BUY:
            remaining = record.remaining
            if remaining is not None:
                record.cancelled += remaining
            record.status = OrderStatus.CANCELLED
        else:
            return
        record.updated_at = now
        self._accounts.retarget_lock(account, record)
        self._book.unregister_if_closed(record)
