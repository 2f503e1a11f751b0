"""The daily stocks job runs on KRX trading days only, and jobs run only on the leader."""

from __future__ import annotations

import datetime as dt

from web_server.jobs import stocks_job
from web_server.jobs.scheduler import leader_only


def test_krx_calendar():
    assert stocks_job.is_krx_trading_day(dt.date(2026, 11, 23))  # a Monday
    assert not stocks_job.is_krx_trading_day(dt.date(2026, 11, 22))  # a Sunday
    assert not stocks_job.is_krx_trading_day(dt.date(2026, 1, 1))  # New Year's Day
    assert not stocks_job.is_krx_trading_day(dt.date(2026, 2, 17))  # Seollal


def test_daily_sync_skips_a_holiday(monkeypatch):
    called = []
    monkeypatch.setattr(
        "web_server.services.stocks_sync.run_sync", lambda *a, **k: called.append(a)
    )
    assert stocks_job.daily_stocks_sync(object(), today=dt.date(2026, 1, 1)) is False
    assert called == []


class _Leader:
    def __init__(self, leads: bool) -> None:
        self.is_leader = leads


def test_jobs_run_only_on_the_leader(app):
    runs = []
    leader_only(app, _Leader(False), lambda: runs.append(1))()
    assert runs == []
    leader_only(app, _Leader(True), lambda: runs.append(1))()
    assert runs == [1]
