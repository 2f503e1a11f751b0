"""The scheduler: configured here, started only by ``gateway scheduler`` or ``gateway demo``.

Web workers never start it. Every scheduler process runs the leader election every few seconds;
only the leader runs the jobs, so with any number of scheduler processes on any number of hosts
each job runs once (DESIGN §4, §9). Each job is a boundary: an app context, the service call, a
commit on success and a rollback on failure. Jobs are idempotent, so a job that runs again after a
leader change does no harm.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask

from web_server.database import close_session
from web_server.errors import is_database_unavailable
from web_server.extensions import db
from web_server.jobs.leader import LeaderLock

log = logging.getLogger(__name__)

LEADER_LOCK_NAME = "gateway_scheduler_leader"
LEADER_TICK_SECONDS = 5


def leader_only(app: Flask, leader: LeaderLock, job: Callable[[], Any]) -> Callable[[], None]:
    """Wrap ``job`` as a boundary that runs only while this process leads."""

    def run() -> None:
        if not leader.is_leader:
            return
        with app.app_context():
            try:
                job()
                db.session.commit()
            except Exception as exc:
                with contextlib.suppress(Exception):  # the connection may be gone with the error
                    db.session.rollback()
                name = getattr(job, "__name__", job)
                if is_database_unavailable(exc):
                    # An outage, not a bug: the job runs again on its next tick.
                    log.warning("job %s: database unavailable (%s)", name, type(exc).__name__)
                else:
                    log.exception("job %s failed", name)
            finally:
                close_session(db.session)

    run.__name__ = getattr(job, "__name__", "job")
    return run


def build_scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    """Configure the scheduler with the leader election and every job; do not start it."""
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone=dt.UTC) if blocking else BackgroundScheduler(timezone=dt.UTC)
    )
    with app.app_context():
        leader = LeaderLock(db.engine, LEADER_LOCK_NAME)
    app.extensions["gateway.leader"] = leader
    app.extensions["gateway.scheduler"] = scheduler
    now = dt.datetime.now(dt.UTC)
    scheduler.add_job(
        leader.tick,
        "interval",
        seconds=LEADER_TICK_SECONDS,
        id="leader",
        replace_existing=True,
        next_run_time=now,
        max_instances=1,
    )

    from web_server.jobs import stocks_job

    hour, minute = (int(part) for part in app.config["STOCKS_SYNC_TIME"].split(":"))
    scheduler.add_job(
        leader_only(app, leader, lambda: stocks_job.daily_stocks_sync(app)),
        CronTrigger(day_of_week="mon-fri", hour=hour, minute=minute, timezone="Asia/Seoul"),
        id="stocks_sync",
        name="stocks_sync",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    from web_server.services.tokens import refresh_due_tokens

    scheduler.add_job(
        leader_only(app, leader, refresh_due_tokens),
        "interval",
        seconds=app.config["TOKEN_REFRESH_INTERVAL_SECONDS"],
        id="tokens_refresh",
        name="tokens_refresh",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        next_run_time=now + dt.timedelta(seconds=1),
    )
    from web_server.services.crypto_markets import sync_all_markets
    from web_server.services.orders.polling import poll_open_orders
    from web_server.services.orders.reconcile import reconcile_orders

    for job_id, job in (("orders_reconcile", reconcile_orders), ("orders_poll", poll_open_orders)):
        scheduler.add_job(
            leader_only(app, leader, job),
            "interval",
            seconds=app.config["ORDERS_POLL_INTERVAL_SECONDS"],
            id=job_id,
            name=job_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
        )

    scheduler.add_job(
        leader_only(app, leader, sync_all_markets),
        "interval",
        seconds=app.config["MARKETS_SYNC_INTERVAL_SECONDS"],
        id="markets_sync",
        name="markets_sync",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        next_run_time=now + dt.timedelta(seconds=2),
    )
    _add_webhooks(app, leader, scheduler)
    return scheduler


def _add_webhooks(app: Flask, leader: LeaderLock, scheduler: BaseScheduler) -> None:
    """The webhook dispatcher: every second, and at once when an order event commits."""
    from web_server.jobs import webhooks_job

    def dispatch() -> None:
        webhooks_job.dispatch_webhooks(app, wake=run)

    dispatch.__name__ = "webhooks_dispatch"
    run = webhooks_job.Guarded(leader_only(app, leader, dispatch))
    scheduler.add_job(
        run,
        "interval",
        seconds=webhooks_job.INTERVAL_SECONDS,
        id="webhooks_dispatch",
        name="webhooks_dispatch",
        replace_existing=True,
        # A tick during a long dispatch returns at once (Guarded) rather than being reported as
        # skipped; the running dispatch goes round once more.
        max_instances=2,
        coalesce=True,
    )


def shutdown(app: Flask) -> None:
    """Stop the scheduler and hand leadership over at once."""
    scheduler = app.extensions.get("gateway.scheduler")
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=False)
    leader = app.extensions.get("gateway.leader")
    if leader is not None:
        leader.release()
