"""What ``/metrics`` reads from the database at scrape time.

Counts of orders, tokens' remaining life, the scheduler's heartbeat and the event backlog are
facts of the shared database, not of one process: read when scraped, they are the same whichever
worker or host answers, and they survive restarts. Broker call latencies and rate-limit waits,
which only the moment of the call knows, come from the hooks in ``web_server.metrics``.

A table another part of the gateway adds later (the order event log, the stocks sync runs) is
read only if it exists, so an older schema scrapes fine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from web_server.extensions import db

log = logging.getLogger(__name__)


def database_families() -> Iterator[Any]:
    """Yield prometheus metric families read from the database now.

    A database error yields ``gateway_metrics_database_up 0`` instead of failing the scrape, so
    the outage itself is visible.
    """
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily(
        "gateway_metrics_database_up", "1 if the scrape could read the database, else 0."
    )
    try:
        families = list(_read())
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("metrics: the database could not be read", exc_info=True)
        up.add_metric([], 0)
        yield up
        return
    db.session.rollback()  # read-only: end the snapshot transaction
    up.add_metric([], 1)
    yield up
    yield from families


def _exists(relation: str) -> bool:
    return db.session.execute(text("SELECT to_regclass(:r) IS NOT NULL"), {"r": relation}).scalar()


def _has_column(schema: str, table: str, column: str) -> bool:
    return bool(
        db.session.execute(
            text(
                "SELECT 1 FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t AND column_name = :c"
            ),
            {"s": schema, "t": table, "c": column},
        ).scalar()
    )


def _read() -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    session = db.session
    now = session.execute(text("SELECT now()")).scalar()

    orders = GaugeMetricFamily(
        "gateway_orders",
        "Orders the gateway holds, by exchange and status (read from trade.orders).",
        labels=["exchange", "status"],
    )
    rows = session.execute(
        text(
            "SELECT a.exchange, o.status, count(*) FROM trade.orders o "
            "JOIN accounts a ON a.id = o.account_id GROUP BY 1, 2 ORDER BY 1, 2"
        )
    )
    for exchange, status, count in rows:
        orders.add_metric([exchange, status], count)
    yield orders

    # Orders whose state at the broker is in doubt: UNKNOWN, or flagged for a person to look at.
    flagged = " OR o.attention IS NOT NULL" if _has_column("trade", "orders", "attention") else ""
    doubt = GaugeMetricFamily(
        "gateway_orders_in_doubt",
        "Orders UNKNOWN at the broker or flagged for attention, by exchange.",
        labels=["exchange"],
    )
    rows = session.execute(
        text(
            # ``flagged`` is one of two constants above, never input.
            "SELECT a.exchange, count(*) FROM trade.orders o JOIN accounts a ON a.id = o.account_id"  # noqa: S608
            f" WHERE o.status = 'UNKNOWN'{flagged} GROUP BY 1 ORDER BY 1"
        )
    )
    for exchange, count in rows:
        doubt.add_metric([exchange], count)
    yield doubt

    yield from _tokens(now)
    yield from _scheduler(now)
    yield from _events(now)
    yield from _stocks_sync(now)


def _tokens(now: dt.datetime) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    expiry = GaugeMetricFamily(
        "gateway_token_expiry_seconds",
        "Seconds until each securities account's token expires (negative: expired).",
        labels=["account_id", "account", "exchange", "environment"],
    )
    failures = GaugeMetricFamily(
        "gateway_token_refresh_failures",
        "Failed refreshes in a row of each securities account's token (0 after a success).",
        labels=["account_id", "account", "exchange", "environment"],
    )
    rows = db.session.execute(
        text(
            "SELECT a.id, a.name, a.exchange, a.environment, t.expires_at, t.refresh_attempts "
            "FROM securities_tokens t JOIN accounts a ON a.id = t.account_id "
            "WHERE a.is_active ORDER BY a.id"
        )
    )
    for account_id, name, exchange, environment, expires_at, attempts in rows:
        labels = [str(account_id), name, exchange, environment]
        expiry.add_metric(labels, (expires_at - now).total_seconds())
        failures.add_metric(labels, attempts or 0)
    yield expiry
    yield failures


def _scheduler(now: dt.datetime) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    heartbeat = GaugeMetricFamily(
        "gateway_scheduler_heartbeat_age_seconds",
        "Seconds since the scheduler's leader last proved it is alive (stale over 15 s).",
        labels=["lock_name", "host"],
    )
    rows = db.session.execute(
        text("SELECT lock_name, host, heartbeat_ts FROM system.process_locks ORDER BY 1")
    )
    for lock_name, host, heartbeat_ts in rows:
        heartbeat.add_metric([lock_name, host], (now - heartbeat_ts).total_seconds())
    yield heartbeat


def _events(now: dt.datetime) -> Iterator[Any]:
    """The event log's backlog, once it exists: events not yet fanned out, and their age."""
    from prometheus_client.core import GaugeMetricFamily

    if not _exists("trade.order_events") or not _exists("trade.webhook_cursor"):
        return
    last_id, cursor = db.session.execute(
        text(
            "SELECT (SELECT coalesce(max(id), 0) FROM trade.order_events), "
            "(SELECT coalesce(max(last_event_id), 0) FROM trade.webhook_cursor)"
        )
    ).one()
    oldest = db.session.execute(
        text("SELECT min(ts) FROM trade.order_events WHERE id > :cursor"), {"cursor": cursor}
    ).scalar()
    backlog = GaugeMetricFamily(
        "gateway_event_backlog",
        "Order events written but not yet fanned out to webhook deliveries.",
    )
    backlog.add_metric([], max(last_id - cursor, 0))
    yield backlog
    lag = GaugeMetricFamily(
        "gateway_event_lag_seconds",
        "Age of the oldest order event not yet fanned out to webhooks (0: none waiting).",
    )
    lag.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield lag


def _stocks_sync(now: dt.datetime) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    if not _exists("system.stocks_sync_runs"):
        return
    age = GaugeMetricFamily(
        "gateway_stocks_sync_age_seconds",
        "Seconds since the last stocks sync, by outcome (refused: the delisting guard held).",
        labels=["outcome"],
    )
    rows = db.session.execute(
        text("SELECT outcome, max(at) FROM system.stocks_sync_runs GROUP BY 1 ORDER BY 1")
    )
    for outcome, at in rows:
        age.add_metric([outcome], (now - at).total_seconds())
    yield age
