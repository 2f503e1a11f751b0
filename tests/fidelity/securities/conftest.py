"""Fidelity fixtures: simulators on loopback, on clocks that run at real speed (clients check token
expiries by their own wall clock), placed inside KRX trading hours: forward of the wall clock
only, so a token's expiry still lies ahead on the client's clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import requests
from flask import Flask

from simulators.engine import SimClock
from simulators.krx import KST
from simulators.krx_calendar import TradingCalendar, trading_hours_clock
from simulators.server import ServerHandle, serve_in_thread

TIMEOUT = 5


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], ServerHandle]]:
    """Serve an app on a free loopback port for the test."""
    handles: list[ServerHandle] = []

    def start(app: Flask) -> ServerHandle:
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


def real_clock() -> SimClock:
    """A clock on real time: clients check token expiry against their own wall clock."""
    return SimClock()


def session_clock() -> SimClock:
    """Real speed, starting inside a regular KRX session (now, or at the next open)."""
    return trading_hours_clock()


def two_day_clock() -> tuple[SimClock, date, date]:
    """Real speed, at 10:00 on the first trading day after today whose next day trades too.

    Returns the clock and the two days: moving the clock to the second day's 09:30 takes less
    than a token's 24 hours, so a client's token stays good across the day roll.
    """
    calendar = TradingCalendar.xkrx()
    day = datetime.now(KST).date() + timedelta(days=1)
    while not (calendar.is_trading_day(day) and calendar.is_trading_day(day + timedelta(days=1))):
        day += timedelta(days=1)
    clock = SimClock()
    start = datetime.combine(day, time(10), tzinfo=KST)
    clock.advance((start - clock.now()).total_seconds())
    return clock, day, day + timedelta(days=1)


def sim_now(url: str) -> datetime:
    """The simulator's time, in Seoul."""
    r = requests.get(f"{url}/_sim/clock", timeout=TIMEOUT)
    return datetime.fromisoformat(r.json()["now"]).astimezone(KST)


def move_to(url: str, when: datetime) -> None:
    """Move the simulator clock forward to ``when``."""
    seconds = (when - sim_now(url)).total_seconds()
    r = requests.post(f"{url}/_sim/clock", json={"advance_seconds": seconds}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text


def ledger(url: str, kind: str) -> list[dict[str, Any]]:
    """The simulator's ledger entries of one kind."""
    r = requests.get(f"{url}/_sim/ledger", params={"kind": kind}, timeout=TIMEOUT)
    return list(r.json()["entries"])
