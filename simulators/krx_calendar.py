"""The KRX calendar and session table the securities simulators (KIS, Kiwoom) trade by.

Sources: ``shared/brokers/trading-days.md`` §1.1 (KRX sessions), §1.2 (NXT), §3 (settlement).
All times are Asia/Seoul (KST, no daylight saving).

* **Trading days** come from ``exchange_calendars``' XKRX calendar (weekends, public holidays,
  May 1 and Dec 31 closed; the first trading day of the year opens at 10:00). It is built once per
  process (about 3 s) for 2015–2040; outside that range weekdays are trading days except the
  fixed-date closures in :data:`FIXED_CLOSED_DAYS`. The 수능 (college exam) day's late open is not
  in XKRX and not modelled.
* **Sessions** are a table (:data:`SESSION_TABLES`), because KRX announced longer pre- and
  after-market sessions for 2026 that no source confirms live ([UNVERIFIED], §1.1):

  - ``"2025"`` (default): KRX regular orders are taken 08:30–15:30 and trade 09:00–15:30 (the
    08:30–09:00 pre-open call matches at 09:00; the closing call is not told apart); 장전 시간외
    종가 08:30–08:40; 장후 시간외 종가 15:40–16:00; 시간외 단일가 16:00–18:00; NXT 08:00–20:00.
  - ``"2026"``: the announced one — adds a KRX pre-market 07:00–08:00 and after-market
    16:00–20:00 for regular orders and drops the 16:00–18:00 single-price session.
  - ``"paper"``: KIS paper and Kiwoom mock trade the KRX regular session 09:00–15:30 only.
  - ``"always"``: every day is a trading day and every session runs 00:00–24:00 (the simulators'
    old endless day, for wall-clock use such as ``gateway demo``); orders lapse at midnight.

  Simplifications: NXT's halts (08:50–09:00:30, 15:20–15:30) are not modelled, the after-hours
  single-price session matches continuously instead of every 10 minutes, and reception windows
  that some brokers open early (§1.1 "Reception can open before matching") are not modelled.
* **Settlement**: KRX cash equities settle two trading days after the trade (T+2, §3).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Final

from simulators.engine import SimClock
from simulators.krx import KST

__all__ = [
    "FIXED_CLOSED_DAYS",
    "SESSION_TABLES",
    "Closed",
    "ClosedReason",
    "MarketHours",
    "OrderKind",
    "Session",
    "TradingCalendar",
    "Window",
    "trading_hours_clock",
]

#: Month-day pairs closed every year; used only outside the range built from XKRX.
FIXED_CLOSED_DAYS: Final = frozenset(
    {(1, 1), (3, 1), (5, 1), (5, 5), (6, 6), (8, 15), (10, 3), (10, 9), (12, 25), (12, 31)}
)

#: The years the XKRX calendar is built for (exchange_calendars knows the lunar holidays).
_XKRX_RANGE: Final = (date(2015, 1, 1), date(2040, 12, 31))
_REGULAR_OPEN: Final = time(9, 0)
_REGULAR_CLOSE: Final = time(15, 30)


class TradingCalendar:
    """Which KST days are trading days, and when the regular session opens and closes on each.

    Args:
        sessions: the trading days inside ``[first, last]``.
        first, last: the range ``sessions`` covers; outside it weekdays are trading days except
            :data:`FIXED_CLOSED_DAYS`.
        special_hours: days whose regular session differs from 09:00–15:30 (the first trading
            day of a year opens at 10:00).
        every_day: every day is a trading day (``"always"`` mode); the other arguments are unused.
    """

    _xkrx: TradingCalendar | None = None
    _xkrx_lock = threading.Lock()

    def __init__(
        self,
        sessions: Iterable[date] = (),
        *,
        first: date = date.max,
        last: date = date.min,
        special_hours: Mapping[date, tuple[time, time]] | None = None,
        every_day: bool = False,
    ) -> None:
        self._sessions = frozenset(sessions)
        self._first, self._last = first, last
        self._special = MappingProxyType(dict(special_hours or {}))
        self.every_day = every_day

    @classmethod
    def xkrx(cls) -> TradingCalendar:
        """The KRX calendar from ``exchange_calendars`` (built on first use, then shared)."""
        with cls._xkrx_lock:
            if cls._xkrx is None:
                cls._xkrx = cls._build_xkrx()
            return cls._xkrx

    @classmethod
    def _build_xkrx(cls) -> TradingCalendar:
        # pandas-heavy: imported only when a simulator first needs the KRX calendar.
        import exchange_calendars  # noqa: PLC0415

        first, last = _XKRX_RANGE
        calendar = exchange_calendars.get_calendar(
            "XKRX", start=first.isoformat(), end=last.isoformat()
        )
        schedule = calendar.schedule
        days: list[date] = []
        special: dict[date, tuple[time, time]] = {}
        for label, opens, closes in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        ):
            day = label.date()
            days.append(day)
            hours = (
                opens.to_pydatetime().astimezone(KST).time(),
                closes.to_pydatetime().astimezone(KST).time(),
            )
            if hours != (_REGULAR_OPEN, _REGULAR_CLOSE):
                special[day] = hours
        return cls(days, first=first, last=last, special_hours=special)

    @classmethod
    def always(cls) -> TradingCalendar:
        """A calendar on which every day is a trading day."""
        return cls(every_day=True)

    def is_trading_day(self, day: date) -> bool:
        """Whether KRX trades on ``day``."""
        if self.every_day:
            return True
        if self._first <= day <= self._last:
            return day in self._sessions
        closed = (day.month, day.day) in FIXED_CLOSED_DAYS
        return day.weekday() < 5 and not closed

    def regular_hours(self, day: date) -> tuple[time, time]:
        """The regular session's open and close on ``day`` (09:00–15:30 unless special)."""
        return self._special.get(day, (_REGULAR_OPEN, _REGULAR_CLOSE))

    def next_trading_day(self, day: date, n: int = 1) -> date:
        """The ``n``-th trading day after ``day`` (``day`` itself does not count)."""
        current = day
        for _ in range(n):
            current += timedelta(days=1)
            while not self.is_trading_day(current):
                current += timedelta(days=1)
        return current

    def previous_trading_day(self, day: date) -> date:
        """The last trading day before ``day``."""
        current = day - timedelta(days=1)
        while not self.is_trading_day(current):
            current -= timedelta(days=1)
        return current

    def settlement_day(self, trade_day: date, lag: int = 2) -> date:
        """The day a trade of ``trade_day`` settles: ``lag`` trading days later (KRX: T+2)."""
        return self.next_trading_day(trade_day, lag)


class OrderKind(enum.StrEnum):
    """Which session family an order belongs to (KIS ``ORD_DVSN`` / Kiwoom ``trde_tp``)."""

    NORMAL = "normal"  # 지정가, 시장가, 조건부, 최유리, 최우선 …: the regular (and NXT) sessions
    PRE_CLOSE = "pre_close"  # 장전 시간외 종가: KIS 05, Kiwoom 61
    POST_CLOSE = "post_close"  # 장후 시간외 종가: KIS 06, Kiwoom 81
    SINGLE_PRICE = "single_price"  # 시간외 단일가: KIS 07, Kiwoom 62


def _hm(hours: int, minutes: int = 0) -> timedelta:
    return timedelta(hours=hours, minutes=minutes)


@dataclass(frozen=True)
class Session:
    """One row of a session table: when a venue takes and trades one kind of order.

    Attributes:
        name: e.g. "regular", "single_price", "nxt".
        venue: "KRX" or "NXT".
        kind: the orders it takes.
        accept: when orders are taken, as offsets from KST midnight.
        trade: when they may fill; an order lapses at ``trade``'s end.
        follows_open: the window moves with the day's regular hours (the year's first trading
            day opens at 10:00).
    """

    name: str
    venue: str
    kind: OrderKind
    accept: tuple[timedelta, timedelta]
    trade: tuple[timedelta, timedelta]
    follows_open: bool = False


def _session(
    name: str,
    venue: str,
    kind: OrderKind,
    accept: tuple[timedelta, timedelta],
    trade: tuple[timedelta, timedelta] | None = None,
    *,
    follows_open: bool = False,
) -> Session:
    return Session(name, venue, kind, accept, trade or accept, follows_open)


_REGULAR = _session(
    "regular", "KRX", OrderKind.NORMAL, (_hm(8, 30), _hm(15, 30)), (_hm(9), _hm(15, 30)),
    follows_open=True,
)  # fmt: skip
_PRE_CLOSE = _session("pre_close", "KRX", OrderKind.PRE_CLOSE, (_hm(8, 30), _hm(8, 40)))
_POST_CLOSE = _session("post_close", "KRX", OrderKind.POST_CLOSE, (_hm(15, 40), _hm(16)))
_NXT = _session("nxt", "NXT", OrderKind.NORMAL, (_hm(8), _hm(20)))
_WHOLE_DAY = (timedelta(0), timedelta(days=1))

#: The session tables by name (see the module docstring). Paper hosts use ``"paper"``.
SESSION_TABLES: Final[Mapping[str, tuple[Session, ...]]] = MappingProxyType(
    {
        "2025": (
            _PRE_CLOSE,
            _REGULAR,
            _POST_CLOSE,
            _session("single_price", "KRX", OrderKind.SINGLE_PRICE, (_hm(16), _hm(18))),
            _NXT,
        ),
        "2026": (
            _session("pre_market", "KRX", OrderKind.NORMAL, (_hm(7), _hm(8))),
            _PRE_CLOSE,
            _REGULAR,
            _POST_CLOSE,
            _session("after_market", "KRX", OrderKind.NORMAL, (_hm(16), _hm(20))),
            _NXT,
        ),
        "paper": (
            _session("regular", "KRX", OrderKind.NORMAL, (_hm(9), _hm(15, 30)), follows_open=True),
        ),
        "always": tuple(
            _session(f"{venue.lower()}_{kind.value}", venue, kind, _WHOLE_DAY)
            for venue in ("KRX", "NXT")
            for kind in OrderKind
        ),
    }
)


class ClosedReason(enum.StrEnum):
    """Why no session takes an order now; brokers answer each differently (§1.4)."""

    BEFORE_OPEN = "before_open"  # a trading day, before the kind's first session
    AFTER_CLOSE = "after_close"  # a trading day, after (or between) its sessions
    HOLIDAY = "holiday"  # not a trading day
    NOT_OFFERED = "not_offered"  # the venue has no session for this kind of order


class Closed(Exception):
    """No session of the venue takes this kind of order now."""

    def __init__(self, reason: ClosedReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Window:
    """The session an order was taken in, on one day, as aware UTC datetimes."""

    session: Session
    day: date
    active_from: datetime
    expires_at: datetime


class MarketHours:
    """A trading calendar with a session table: which session takes an order, and until when.

    Args:
        calendar: the trading days.
        sessions: the session table (a value of :data:`SESSION_TABLES`).
    """

    def __init__(self, calendar: TradingCalendar, sessions: Iterable[Session]) -> None:
        self.calendar = calendar
        self.sessions = tuple(sessions)

    @classmethod
    def create(cls, mode: str, table: str, *, paper: bool) -> MarketHours:
        """Build from the facades' switches.

        Args:
            mode: ``"krx"`` (the XKRX calendar) or ``"always"`` (every day, all day).
            table: a key of :data:`SESSION_TABLES` for the real host (``"2025"``, ``"2026"``).
            paper: the paper host's table (``"paper"``) replaces ``table`` in ``"krx"`` mode.

        Raises:
            ValueError: for an unknown mode or table.
        """
        if mode == "always":
            return cls(TradingCalendar.always(), SESSION_TABLES["always"])
        if mode != "krx":
            raise ValueError("market_hours must be 'krx' or 'always'")
        if table not in SESSION_TABLES or table in {"paper", "always"}:
            raise ValueError("session_table must be '2025' or '2026'")
        return cls(TradingCalendar.xkrx(), SESSION_TABLES["paper" if paper else table])

    @staticmethod
    def kst_day(at: datetime) -> date:
        """The KST calendar day of an instant (the ``ord_dt`` of an order placed then)."""
        return at.astimezone(KST).date()

    def _bounds(
        self, session: Session, day: date, span: tuple[timedelta, timedelta]
    ) -> tuple[datetime, datetime]:
        """Return ``span`` on ``day`` as UTC instants.

        A session that follows the regular hours moves its start with a late open and its end
        with a moved close.
        """
        midnight = datetime.combine(day, time(0), tzinfo=KST)
        start, end = midnight + span[0], midnight + span[1]
        if session.follows_open and not self.calendar.every_day:
            opens, closes = self.calendar.regular_hours(day)
            start += datetime.combine(day, opens) - datetime.combine(day, _REGULAR_OPEN)
            end += datetime.combine(day, closes) - datetime.combine(day, _REGULAR_CLOSE)
        return start.astimezone(UTC), end.astimezone(UTC)

    def window(self, at: datetime, venue: str, kind: OrderKind) -> Window:
        """The session of ``venue`` taking ``kind`` orders at ``at``, with its trading window.

        Raises:
            Closed: with the reason no session takes the order.
        """
        candidates = [s for s in self.sessions if s.venue == venue and s.kind is kind]
        if not candidates:
            raise Closed(ClosedReason.NOT_OFFERED)
        day = self.kst_day(at)
        if not self.calendar.is_trading_day(day):
            raise Closed(ClosedReason.HOLIDAY)
        earliest = None
        for session in candidates:
            opens, closes = self._bounds(session, day, session.accept)
            earliest = opens if earliest is None else min(earliest, opens)
            if opens <= at < closes:
                active_from, expires_at = self._bounds(session, day, session.trade)
                return Window(session, day, active_from, expires_at)
        if earliest is not None and at < earliest:
            raise Closed(ClosedReason.BEFORE_OPEN)
        raise Closed(ClosedReason.AFTER_CLOSE)

    def regular_close(self, day: date) -> datetime:
        """The regular session's close on ``day`` (today's closing price is the price then)."""
        close = self.calendar.regular_hours(day)[1]
        return datetime.combine(day, close, tzinfo=KST).astimezone(UTC)

    def cash_days(self, today: date) -> tuple[date, date, date]:
        """D+0, D+1 and D+2: today and the next two trading days."""
        calendar = self.calendar
        return today, calendar.next_trading_day(today), calendar.next_trading_day(today, 2)


def trading_hours_clock(calendar: TradingCalendar | None = None, margin: float = 60) -> SimClock:
    """A clock on real time that starts inside a regular KRX session.

    If the wall clock is outside the regular session, the clock jumps forward to ``margin``
    seconds after the next regular open (it runs at real speed from there). Forward only, so a
    token's expiry still lies ahead on the client's own clock; but the simulator's date may then
    differ from the client's, which matters to clients that look history up by their own date.
    """
    calendar = calendar or TradingCalendar.xkrx()
    clock = SimClock()
    now = clock.now().astimezone(KST)
    day = now.date()
    for _ in range(30):
        if calendar.is_trading_day(day):
            opens, closes = calendar.regular_hours(day)
            start = datetime.combine(day, opens, tzinfo=KST)
            end = datetime.combine(day, closes, tzinfo=KST)
            if now < end:
                if now < start + timedelta(seconds=margin):
                    clock.advance((start - now).total_seconds() + margin)
                return clock
        day += timedelta(days=1)
    return clock
