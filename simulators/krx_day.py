"""What a KRX trading day means to the KIS and Kiwoom facades: sessions, numbers, settlement.

Both brokers' simulators take their day rules from here, so they roll days alike:

* **Admission** (:func:`admit`): the session an order is taken in (KRX, NXT, or SOR choosing
  between them) and its trading window; the engine lets it fill only inside that window and
  lapses it at the window's end (:mod:`simulators.engine.expiry`).
* **Order numbers** (:class:`DailyNumbers`): KIS ``ODNO`` and Kiwoom ``ord_no`` are unique within
  a trading day only (history is keyed by order date and number, trading-days.md §2.1). With
  ``daily_order_numbers`` on (the default, the worst case those keys allow) the sequence restarts
  at 1 on each KST day an order is placed, which is a trading day unless the market hours are
  ``"always"``; off, one sequence runs forever.
* **Settlement** (:func:`cash_figures`): KRX cash settles two trading days after the trade
  (§3). Cash that has settled by a day is the cash now minus the flows of fills settling later, so
  D+0, D+1 and D+2 are derived from the engine's fills at any clock time; nothing needs to run at
  the day's end.

Everything is derived from the simulator clock when asked (a clock that jumps a week rolls a week).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from simulators.engine import AccountView, Engine, Side
from simulators.krx import KST
from simulators.krx_calendar import Closed, MarketHours, OrderKind, Window

__all__ = [
    "EXPIRED_IN_HISTORY",
    "CashFigures",
    "DailyNumbers",
    "DayRules",
    "DayTotals",
    "NotOnVenue",
    "admit",
    "cash_figures",
]

#: How a lapsed day order shows in the history (switch ``expired_in_history``, trading-days.md
#: §2.3 [UNVERIFIED]): "cancel_confirmed" keeps the row with nothing remaining and the remainder
#: as cancelled (KIS ``rmn_qty`` 0, ``cnc_cfrm_qty`` = remainder; Kiwoom ``ord_remnq`` 0);
#: "remaining" keeps the row as it stood at the close (the remainder still shows).
EXPIRED_IN_HISTORY = ("cancel_confirmed", "remaining")

#: How far back fills can still be unsettled: T+2 trading days never spans a month.
_SETTLEMENT_LOOKBACK = timedelta(days=31)


class NotOnVenue(Exception):
    """The issue is not traded on the requested venue (NXT lists only some stocks)."""


class DailyNumbers:
    """Order numbers that restart every KST day (or never, with ``restart_daily`` off).

    Thread-safe: the engine draws numbers for orders and amendments under its lock, the facades
    for cancels outside it.

    Args:
        restart_daily: restart at ``first`` on each new KST day.
        first: the first number of a sequence.
    """

    def __init__(self, *, restart_daily: bool = True, first: int = 1) -> None:
        self.restart_daily = restart_daily
        self._first = first
        self._next: dict[date | None, int] = {}
        self._lock = threading.Lock()

    def next(self, at: datetime) -> int:
        """Draw the next number of the sequence of ``at``'s KST day."""
        key = at.astimezone(KST).date() if self.restart_daily else None
        with self._lock:
            number = self._next.get(key, self._first)
            self._next[key] = number + 1
            return number


@dataclass(frozen=True)
class DayRules:
    """A facade's trading-day switches (see the KIS and Kiwoom package docstrings).

    Attributes:
        hours: the calendar and session table (``market_hours``, ``session_table``).
        numbers: the order number sequence (``daily_order_numbers``).
        expired_in_history: one of :data:`EXPIRED_IN_HISTORY`.
    """

    hours: MarketHours
    numbers: DailyNumbers
    expired_in_history: str = "cancel_confirmed"

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, paper: bool, first_number: int = 1
    ) -> DayRules:
        """Build from a facade's options (the switches named in :class:`DayRules`).

        Raises:
            ValueError: for an unknown value.
        """
        expired = str(options.get("expired_in_history", "cancel_confirmed"))
        if expired not in EXPIRED_IN_HISTORY:
            raise ValueError(f"expired_in_history must be one of {EXPIRED_IN_HISTORY}")
        hours = MarketHours.create(
            str(options.get("market_hours", "krx")),
            str(options.get("session_table", "2025")),
            paper=paper,
        )
        numbers = DailyNumbers(
            restart_daily=bool(options.get("daily_order_numbers", True)), first=first_number
        )
        return cls(hours, numbers, expired)

    def today(self, now: datetime) -> date:
        """The KST day of ``now`` (the ``ord_dt`` of orders placed now)."""
        return self.hours.kst_day(now)


def admit(
    hours: MarketHours, route: str, kind: OrderKind, *, nxt_listed: bool, at: datetime
) -> Window:
    """Return the session that takes an order sent to ``route`` at ``at``, with its window.

    ``route`` is KIS's ``EXCG_ID_DVSN_CD`` / Kiwoom's ``dmst_stex_tp``: "KRX", "NXT" or "SOR".
    SOR (smart order routing) goes to KRX while a KRX session takes the order and to NXT
    otherwise [DERIVED: SOR's routing rules are the broker's; this keeps orders where a market
    is open].

    Raises:
        NotOnVenue: an NXT order for an issue NXT does not list.
        Closed: no session takes the order now (the reason picks the broker's answer).
    """
    if route == "NXT":
        if not nxt_listed:
            raise NotOnVenue(route)
        return hours.window(at, "NXT", kind)
    try:
        return hours.window(at, "KRX", kind)
    except Closed as closed:
        if route != "SOR" or not nxt_listed or kind is not OrderKind.NORMAL:
            raise
        try:
            return hours.window(at, "NXT", kind)
        except Closed:
            raise closed from None


@dataclass(frozen=True)
class DayTotals:
    """One trading day's fills of an account: amounts, costs and quantities per symbol."""

    buy_amount: Decimal = Decimal(0)
    sell_amount: Decimal = Decimal(0)
    costs: Decimal = Decimal(0)
    bought: Mapping[str, Decimal] = field(default_factory=dict)
    sold: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class CashFigures:
    """Settled and projected KRW of an account at one moment (trading-days.md §3).

    Attributes:
        days: D+0 (today), D+1 and D+2 (the next two trading days).
        cash: the cash on each of those days, after the trades that have settled by then
            (KIS ``dnca_tot_amt``/``nxdy_excc_amt``/``prvs_rcdl_excc_amt``, Kiwoom
            ``entr``/``d1_entra``/``d2_entra``); D+2 is the engine's cash now.
        locked: cash held by open buy orders.
        buys_due, sells_due: per day of ``days``, what buys cost (amount + fee) and sells bring
            (amount − fee − tax) on settling that day (Kiwoom ``d1_buy_exct_amt`` …).
        today, previous: today's and the previous trading day's fills (KIS ``thdt_*``/``bfdy_*``).
    """

    days: tuple[date, date, date]
    cash: tuple[Decimal, Decimal, Decimal]
    locked: Decimal
    buys_due: tuple[Decimal, Decimal, Decimal]
    sells_due: tuple[Decimal, Decimal, Decimal]
    today: DayTotals
    previous: DayTotals

    def withdrawable(self, index: int) -> Decimal:
        """What could be paid out on ``days[index]``: the least cash from then on, less locks."""
        return max(Decimal(0), min(self.cash[index:]) - self.locked)


def _totals(fills: list[Any]) -> DayTotals:
    buy = sell = costs = Decimal(0)
    bought: dict[str, Decimal] = {}
    sold: dict[str, Decimal] = {}
    for fill in fills:
        costs += fill.fee + fill.tax
        if fill.side is Side.BUY:
            buy += fill.notional
            bought[fill.symbol] = bought.get(fill.symbol, Decimal(0)) + fill.quantity
        else:
            sell += fill.notional
            sold[fill.symbol] = sold.get(fill.symbol, Decimal(0)) + fill.quantity
    return DayTotals(buy, sell, costs, bought, sold)


def cash_figures(
    engine: Engine, hours: MarketHours, account_id: str, now: datetime
) -> tuple[AccountView, CashFigures]:
    """Return the account and its KRW settlement figures at ``now`` (one engine snapshot).

    Raises:
        UnknownAccount: if there is no such account.
    """
    calendar = hours.calendar
    today = hours.kst_day(now)
    days = hours.cash_days(today)
    previous_day = calendar.previous_trading_day(today)
    since = datetime.combine(today - _SETTLEMENT_LOOKBACK, time(0), tzinfo=KST)
    view, fills = engine.statement(account_id, since=since)
    cash = view.balances.get("KRW")
    total = cash.total if cash else Decimal(0)
    settles: dict[date, date] = {}
    later = [Decimal(0)] * 3  # flows settling after each of days
    buys_due = [Decimal(0)] * 3
    sells_due = [Decimal(0)] * 3
    by_day: dict[date, list[Any]] = {}
    for fill in fills:
        trade_day = hours.kst_day(fill.time)
        by_day.setdefault(trade_day, []).append(fill)
        settle = settles.setdefault(trade_day, calendar.settlement_day(trade_day))
        buying = fill.side is Side.BUY
        flow = -(fill.notional + fill.fee) if buying else fill.notional - fill.fee - fill.tax
        for index, day in enumerate(days):
            if settle > day:
                later[index] += flow
            if settle == day:
                (buys_due if buying else sells_due)[index] += abs(flow)
    figures = CashFigures(
        days=days,
        cash=(total - later[0], total - later[1], total - later[2]),
        locked=cash.locked if cash else Decimal(0),
        buys_due=(buys_due[0], buys_due[1], buys_due[2]),
        sells_due=(sells_due[0], sells_due[1], sells_due[2]),
        today=_totals(by_day.get(today, [])),
        previous=_totals(by_day.get(previous_day, [])),
    )
    return view, figures
