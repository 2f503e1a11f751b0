"""The gateway's clock: one injectable source of "now" for the order lifecycle and KRX day logic.

Everything that decides by time — leases, the reconciler's bounds, the poller's re-check of lost
cancels, which KRX day an order belongs to and whether that day is over — reads :func:`now` here,
never the system clock directly. The app keeps its clock in ``app.extensions["gateway.clock"]``
(a callable returning an aware UTC datetime; the system clock when absent), so a test can run the
gateway and the simulators on one simulated clock (``simulators.engine.SimClock.now``) and move
whole trading days in a second.

Row timestamps the orders code writes (``created_ts`` included) come from this clock too, so the
reconciler compares like with like when the clock is simulated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask, current_app, has_app_context

from brokers import KST, utc_now

__all__ = ["CLOCK_KEY", "install", "kst_day_over", "kst_today", "now", "source"]

#: Where the app keeps its clock.
CLOCK_KEY = "gateway.clock"


def install(app: Flask, clock: Callable[[], dt.datetime] | None) -> None:
    """Give ``app`` a clock (None: back to the system clock)."""
    if clock is None:
        app.extensions.pop(CLOCK_KEY, None)
    else:
        app.extensions[CLOCK_KEY] = clock


def source() -> Callable[[], dt.datetime]:
    """Return the current app's clock (the system clock outside an app or when none is set)."""
    if has_app_context():
        clock = current_app.extensions.get(CLOCK_KEY)
        if clock is not None:
            return clock  # type: ignore[no-any-return]
    return utc_now


def now() -> dt.datetime:
    """Return the gateway's now: aware, UTC."""
    return source()().astimezone(dt.UTC)


def kst_today(at: dt.datetime | None = None) -> dt.date:
    """Return the KST calendar date (the Korean brokers' order date) of ``at`` (default now)."""
    return (at or now()).astimezone(KST).date()


def kst_day_over(day: dt.date, at: dt.datetime | None = None) -> bool:
    """Tell whether the KST day ``day`` has ended at ``at`` (default now).

    Every KRX and NXT session of a day ends by 20:00 KST and the simulators' "always" mode lapses
    orders at midnight, so once the calendar day is over no order of that day can still appear in
    its history: a complete read of it is final.
    """
    return kst_today(at) > day
