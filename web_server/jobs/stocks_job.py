"""The daily stocks master sync, before the market opens on KRX trading days."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from flask import Flask

log = logging.getLogger(__name__)
SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")


def is_krx_trading_day(day: dt.date) -> bool:
    """Tell whether KRX (XKRX) holds a session on ``day``, holidays included."""
    import exchange_calendars  # pandas-heavy: imported only when the job runs

    calendar = exchange_calendars.get_calendar("XKRX")
    return bool(calendar.is_session(day.isoformat()))


def daily_stocks_sync(app: Flask, *, today: dt.date | None = None) -> bool:
    """Run the stocks sync if today is a KRX trading day; return whether it ran."""
    from web_server.services.stocks_sync import datasync_target, max_delist_share, run_sync

    today = today or dt.datetime.now(SEOUL).date()
    if not is_krx_trading_day(today):
        log.info("stocks sync skipped: %s is not a KRX trading day", today)
        return False
    url, role = datasync_target(app.config)
    run_sync(
        url,
        app.config["KIS_MASTER_URL"],
        role=role,
        today=today,
        max_delist_share=max_delist_share(app.config),
    )
    return True
