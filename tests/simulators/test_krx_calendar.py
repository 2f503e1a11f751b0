"""The simulators' KRX calendar and session tables, and the day rules built on them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from simulators.krx import KST, by_symbol
from simulators.krx_calendar import (
    SESSION_TABLES,
    Closed,
    ClosedReason,
    MarketHours,
    OrderKind,
    TradingCalendar,
    trading_hours_clock,
)
from simulators.krx_day import DailyNumbers, DayRules, NotOnVenue, admit


def kst(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=KST)


@pytest.fixture(scope="module")
def hours() -> MarketHours:
    return MarketHours.create("krx", "2025", paper=False)


def test_the_xkrx_calendar_closes_weekends_holidays_may_1_and_dec_31() -> None:
    calendar = TradingCalendar.xkrx()
    assert calendar is TradingCalendar.xkrx()  # built once per process
    closed = ["2026-03-07", "2026-03-02", "2026-05-01", "2026-05-05", "2026-12-31", "2027-01-01"]
    assert not any(calendar.is_trading_day(date.fromisoformat(d)) for d in closed)
    assert calendar.is_trading_day(date(2026, 3, 3))
    assert calendar.regular_hours(date(2027, 1, 4))[0].hour == 10  # first trading day: 10:00


@pytest.mark.parametrize(
    ("trade", "settles"),
    [
        ("2026-03-05", "2026-03-09"),  # Thu → Mon
        ("2026-04-29", "2026-05-04"),  # May 1 does not count
        ("2026-04-30", "2026-05-06"),  # nor Children's day
        ("2026-12-29", "2027-01-04"),  # nor Dec 31 and Jan 1
    ],
)
def test_settlement_is_two_trading_days_later(trade: str, settles: str) -> None:
    calendar = TradingCalendar.xkrx()
    assert calendar.settlement_day(date.fromisoformat(trade)) == date.fromisoformat(settles)


def test_outside_the_built_range_weekdays_trade_except_fixed_closures() -> None:
    calendar = TradingCalendar([], first=date(2026, 1, 1), last=date(2026, 1, 1))
    assert calendar.is_trading_day(date(2050, 5, 2))  # a Monday
    assert not calendar.is_trading_day(date(2050, 5, 1))  # a Sunday
    assert not calendar.is_trading_day(date(2051, 5, 1))  # May 1, a Monday
    assert calendar.previous_trading_day(date(2050, 5, 2)) == date(2050, 4, 29)


@pytest.mark.parametrize(
    ("when", "venue", "kind", "session", "active", "expires"),
    [
        ("2026-03-03 08:45", "KRX", OrderKind.NORMAL, "regular", "09:00", "15:30"),
        ("2026-03-03 08:35", "KRX", OrderKind.PRE_CLOSE, "pre_close", "08:30", "08:40"),
        ("2026-03-03 15:50", "KRX", OrderKind.POST_CLOSE, "post_close", "15:40", "16:00"),
        ("2026-03-03 17:59", "KRX", OrderKind.SINGLE_PRICE, "single_price", "16:00", "18:00"),
        ("2026-03-03 08:00", "NXT", OrderKind.NORMAL, "nxt", "08:00", "20:00"),
        ("2027-01-04 09:45", "KRX", OrderKind.NORMAL, "regular", "10:00", "15:30"),
    ],
)
def test_sessions_of_the_2025_table(
    hours: MarketHours,
    when: str,
    venue: str,
    kind: OrderKind,
    session: str,
    active: str,
    expires: str,
) -> None:
    window = hours.window(kst(when), venue, kind)
    assert window.session.name == session
    assert window.active_from.astimezone(KST).strftime("%H:%M") == active
    assert window.expires_at.astimezone(KST).strftime("%H:%M") == expires


@pytest.mark.parametrize(
    ("when", "venue", "kind", "reason"),
    [
        ("2026-03-03 08:29", "KRX", OrderKind.NORMAL, ClosedReason.BEFORE_OPEN),
        ("2026-03-03 15:30", "KRX", OrderKind.NORMAL, ClosedReason.AFTER_CLOSE),
        ("2026-03-03 15:35", "KRX", OrderKind.POST_CLOSE, ClosedReason.BEFORE_OPEN),
        ("2026-03-03 20:00", "NXT", OrderKind.NORMAL, ClosedReason.AFTER_CLOSE),
        ("2026-03-08 10:00", "KRX", OrderKind.NORMAL, ClosedReason.HOLIDAY),
        ("2026-03-03 10:00", "NXT", OrderKind.SINGLE_PRICE, ClosedReason.NOT_OFFERED),
    ],
)
def test_closed_reasons(
    hours: MarketHours, when: str, venue: str, kind: OrderKind, reason: ClosedReason
) -> None:
    with pytest.raises(Closed) as info:
        hours.window(kst(when), venue, kind)
    assert info.value.reason is reason


def test_paper_and_always_tables() -> None:
    paper = MarketHours.create("krx", "2025", paper=True)
    with pytest.raises(Closed):
        paper.window(kst("2026-03-03 08:45"), "KRX", OrderKind.NORMAL)
    with pytest.raises(Closed):
        paper.window(kst("2026-03-03 16:30"), "KRX", OrderKind.SINGLE_PRICE)
    always = MarketHours.create("always", "2025", paper=False)
    window = always.window(kst("2026-03-08 03:00"), "KRX", OrderKind.SINGLE_PRICE)
    assert window.expires_at == kst("2026-03-09 00:00")
    assert always.cash_days(date(2026, 3, 7)) == (
        date(2026, 3, 7),
        date(2026, 3, 8),
        date(2026, 3, 9),
    )
    assert set(SESSION_TABLES) == {"2025", "2026", "paper", "always"}
    with pytest.raises(ValueError, match="market_hours"):
        MarketHours.create("24/7", "2025", paper=False)
    with pytest.raises(ValueError, match="session_table"):
        MarketHours.create("krx", "2027", paper=False)


def test_sor_goes_to_nxt_when_krx_is_closed_and_nxt_lists_only_some_issues(
    hours: MarketHours,
) -> None:
    listings = by_symbol()
    assert listings["005930"].nxt and not listings["069500"].nxt and not listings["032960"].nxt
    evening = kst("2026-03-03 19:00")
    window = admit(hours, "SOR", OrderKind.NORMAL, nxt_listed=True, at=evening)
    assert window.session.venue == "NXT"
    with pytest.raises(Closed):
        admit(hours, "SOR", OrderKind.NORMAL, nxt_listed=False, at=evening)
    with pytest.raises(NotOnVenue):
        admit(hours, "NXT", OrderKind.NORMAL, nxt_listed=False, at=evening)
    morning = admit(hours, "SOR", OrderKind.NORMAL, nxt_listed=True, at=kst("2026-03-03 10:00"))
    assert morning.session.venue == "KRX"


def test_daily_numbers_restart_per_kst_day_and_are_thread_safe() -> None:
    numbers = DailyNumbers()
    day = kst("2026-03-03 10:00")
    assert [numbers.next(day) for _ in range(3)] == [1, 2, 3]
    assert numbers.next(day + timedelta(days=1)) == 1
    assert numbers.next(day) == 4
    forever = DailyNumbers(restart_daily=False, first=7)
    assert [forever.next(day), forever.next(day + timedelta(days=1))] == [7, 8]


def test_day_rules_validate_their_switches() -> None:
    rules = DayRules.from_options({"market_hours": "always"}, paper=False)
    assert rules.expired_in_history == "cancel_confirmed" and rules.numbers.restart_daily
    with pytest.raises(ValueError, match="expired_in_history"):
        DayRules.from_options({"expired_in_history": "gone"}, paper=False)


def test_trading_hours_clock_starts_inside_a_regular_session() -> None:
    clock = trading_hours_clock()
    now = clock.now().astimezone(KST)
    calendar = TradingCalendar.xkrx()
    opens, closes = calendar.regular_hours(now.date())
    assert calendar.is_trading_day(now.date())
    assert opens <= now.time() < closes
    assert clock.now() >= datetime.now(UTC) - timedelta(seconds=5)  # never behind the wall
