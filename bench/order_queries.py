"""The poll and reconcile queries at 10 k and at 1 M stored orders: they must cost about the same.

Two scratch databases (unique names) are migrated to head and filled with closed orders (FILLED,
CANCELLED, EXPIRED, REJECTED) over 90 days of ten accounts, plus the same small working set in
both: 200 open orders, 20 unsettled ones and 10 called absent in the last day (watched for a
late acceptance). Then the queries the jobs run are timed (median of
many runs, after warm-up), with their plans:

- poll: the open orders to poll, per account in creation order (``polling.open_order_rows``,
  ``idx_orders_open``);
- reconcile: the unsettled orders whose lease ended (``idx_orders_unsettled``), and the watch
  for late acceptances (``idx_orders_not_at_broker``);
- list: an account's latest page of orders (``idx_orders_account_created``).

Prints each query's median at 10 k and at 1 M side by side and their ratio (goal: ≤ 1.5×).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from web_server.extensions import db  # noqa: E402
from web_server.models import Order  # noqa: E402
from web_server.services.orders.polling import open_order_rows  # noqa: E402

SIZES = (10_000, 1_000_000)
RUNS = 200
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)

_FILL = """
INSERT INTO trade.order_intents (intent_id, account_id, symbol, side, order_type, quantity,
    limit_price, action_key, request_hash, status, created_ts, updated_ts)
SELECT md5('i' || g)::uuid, 1 + g % 10, '005930', 'BUY', 'LIMIT', 1, 70000, 'k' || g, 'h',
    'SUBMITTED', :now - (g % 7776000) * interval '1 second', :now
FROM generate_series(1, :n) g;
INSERT INTO trade.orders (id, intent_id, account_id, symbol, side, order_type, quantity,
    limit_price, client_order_id, broker_order_id, broker_order_date, status, filled_quantity,
    reject_code, send_started_ts, lease_until, created_ts, updated_ts)
SELECT md5('o' || g)::uuid, md5('i' || g)::uuid, 1 + g % 10, '005930', 'BUY', 'LIMIT', 1, 70000,
    'c' || g,
    CASE WHEN s IN ('PENDING_SUBMIT', 'UNKNOWN') THEN NULL ELSE lpad((g / 10)::text, 10, '0') END,
    CASE WHEN s IN ('PENDING_SUBMIT', 'UNKNOWN') THEN NULL
         ELSE ((:now - (g % 7776000) * interval '1 second') AT TIME ZONE 'Asia/Seoul')::date
                  - (g / 10 / 1000000) END,
    s, 0,
    CASE WHEN g BETWEEN 221 AND 230 THEN 'not_at_broker' WHEN s = 'REJECTED' THEN 'APBK0952' END,
    :now - (g % 7776000) * interval '1 second',
    CASE WHEN s IN ('PENDING_SUBMIT', 'UNKNOWN') THEN :now - interval '1 minute' END,
    :now - (g % 7776000) * interval '1 second',
    CASE WHEN g BETWEEN 221 AND 230 THEN :now - interval '1 hour'
         ELSE :now - (g % 7776000) * interval '1 second' END
FROM (
    SELECT g, CASE
        WHEN g <= 200 THEN 'SUBMITTED'
        WHEN g <= 220 THEN 'UNKNOWN'
        WHEN g <= 230 THEN 'REJECTED'
        ELSE (ARRAY['FILLED', 'CANCELLED', 'EXPIRED', 'REJECTED'])[1 + g % 4] END AS s
    FROM generate_series(1, :n) g
) x;
"""

_RECONCILE = """
SELECT id FROM trade.orders
WHERE status IN ('PENDING_SUBMIT', 'UNKNOWN')
  AND (status = 'UNKNOWN' OR lease_until IS NULL OR lease_until < :now)
ORDER BY created_ts
"""
_WATCH = """
SELECT id FROM trade.orders
WHERE reject_code = 'not_at_broker' AND updated_ts > :now - interval '24 hours'
  AND updated_ts <= :now - interval '60 seconds'
"""


def _fill(n: int) -> None:
    db.session.execute(
        text(
            "INSERT INTO accounts (id, name, exchange, account_type, api_key, api_secret)"
            " SELECT g, 'kis-' || g, 'KIS', 'SECURITIES_STOCK', 'x', 'y'"
            " FROM generate_series(1, 10) g"
        )
    )
    db.session.execute(
        text(
            "INSERT INTO market.stocks (symbol, name, market, status)"
            " VALUES ('005930', '삼성전자', 'KOSPI', 'ACTIVE')"
        )
    )
    for statement in _FILL.split(";"):
        if statement.strip():
            db.session.execute(text(statement), {"n": n, "now": NOW})
    db.session.commit()
    db.session.execute(text("ANALYZE trade.orders"))
    db.session.commit()


def _median(run) -> float:
    for _ in range(20):
        run()
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _measure(n: int) -> tuple[dict[str, float], dict[str, str]]:
    name = f"gateway_bench_orders_{n}_{os.getpid()}"
    with scratch_database(name) as url:
        app = migrated_app(url)
        with app.app_context():
            _fill(n)
            session = Session(db.engine)
            queries = {
                "poll (open orders)": lambda: open_order_rows(session),
                "reconcile (unsettled)": lambda: session.execute(
                    text(_RECONCILE), {"now": NOW}
                ).all(),
                "reconcile (late watch)": lambda: session.execute(text(_WATCH), {"now": NOW}).all(),
                "list (account page)": lambda: session.scalars(
                    select(Order.id)
                    .where(Order.account_id == 3)
                    .order_by(Order.created_ts.desc(), Order.id.desc())
                    .limit(101)
                ).all(),
            }
            assert len(open_order_rows(session)) == 200
            times = {label: _median(run) for label, run in queries.items()}
            plans = {}
            for label, sql in (("reconcile (unsettled)", _RECONCILE), ("late watch", _WATCH)):
                plan = session.execute(text("EXPLAIN " + sql), {"now": NOW}).scalars().all()
                plans[label] = (
                    plan[0] if len(plan) == 1 else " / ".join(p.strip() for p in plan[:2])
                )
            poll_sql = str(
                select(Order.id)
                .where(Order.status.in_(["SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING"]))
                .where(Order.attention.is_(None))
                .order_by(Order.account_id, Order.created_ts)
                .compile(compile_kwargs={"literal_binds": True})
            )
            plan = session.execute(text("EXPLAIN " + poll_sql)).scalars().all()
            plans["poll"] = " / ".join(p.strip() for p in plan[:3])
            session.close()
            db.engine.dispose()
    return times, plans


def main() -> None:
    results = {}
    for n in SIZES:
        start = time.perf_counter()
        results[n] = _measure(n)
        print(f"{n:>9,} orders: filled and measured in {time.perf_counter() - start:5.1f} s")
    small, large = (results[n][0] for n in SIZES)
    print()
    print(f"{'query':<26}{'10 k (ms)':>12}{'1 M (ms)':>12}{'ratio':>9}")
    worst = 0.0
    for label in small:
        ratio = large[label] / small[label]
        worst = max(worst, ratio)
        print(f"{label:<26}{small[label]:>12.3f}{large[label]:>12.3f}{ratio:>8.2f}×")
    print()
    for label, plan in results[SIZES[-1]][1].items():
        print(f"plan at 1 M, {label}: {plan}")
    print(f"\nworst ratio {worst:.2f}× (goal ≤ 1.5×): {'OK' if worst <= 1.5 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
