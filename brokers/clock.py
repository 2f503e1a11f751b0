"""Time as the broker core sees it: aware UTC, injected as a callable so tests can move it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["KST", "Clock", "kst_date", "utc_now"]

#: A source of the current time, aware and in UTC. Adapters take one instead of reading the clock.
Clock = Callable[[], dt.datetime]

#: Korea Standard Time. Korea has no daylight saving time, so a fixed offset is exact and needs no
#: tz database on the host.
KST = dt.timezone(dt.timedelta(hours=9), "KST")


def utc_now() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def kst_date(moment: dt.datetime) -> dt.date:
    """Return the KST calendar date of an aware ``moment`` (the Korean brokers' trading day)."""
    return moment.astimezone(KST).date()
