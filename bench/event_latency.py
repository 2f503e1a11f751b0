"""Order event latency: from the commit of a change to its arrival at an SSE client and a webhook.

A scratch database; a gunicorn gateway (two gthread workers) serving the stream; a
``gateway scheduler`` sending the webhooks; a receiver and a stream client in this process. A
writer changes orders as the lifecycle does (one transaction per change, its events written at
commit) at a steady pace. Each event's latency is its arrival time minus the time the writer's
commit returned (same machine, same clock). Also measured: how many event-writing commits a
second the single counter row allows with 16 writers at full speed.

    .venv/bin/python bench/event_latency.py [--orders 220] [--pace 0.004]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.server
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from tests.integration.events_support import (  # noqa: E402
    PATH,
    Gateways,
    make_accounts,
    new_orders,
    sse_events,
    step,
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"  {name:<8} n={len(ms):5d}  p50 {_pct(ms, 0.5):7.1f} ms  p99 {_pct(ms, 0.99):7.1f} ms"
        f"  max {max(ms):7.1f} ms  mean {statistics.fmean(ms):6.1f} ms"
    )


def counter_vs_sequence(url: str, threads: int = 16, seconds: float = 3.0) -> None:
    """Event-writing transactions a second: ids from the counter row vs. from a sequence.

    Raw psycopg (the driver releases the GIL), so what is measured is PostgreSQL: each
    transaction inserts one event row and commits; with the counter it also takes the row lock.
    """
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_seq (id bigserial PRIMARY KEY, p jsonb)")
    counter_sql = (
        "WITH n AS (UPDATE trade.order_event_counter SET last_id = last_id + 1 RETURNING last_id)"
        " INSERT INTO trade.order_events (id, account_id, order_id, type, ts, payload)"
        " SELECT last_id, 0, gen_random_uuid(), 'submitted', clock_timestamp(), '{}' FROM n"
    )
    sequence_sql = "INSERT INTO bench_seq (p) VALUES ('{}')"
    for name, sql in (("sequence", sequence_sql), ("counter", counter_sql)):
        done = [0] * threads

        def work(number: int, sql: str = sql, done: list[int] = done) -> None:
            with psycopg.connect(dsn) as conn:
                ends = time.perf_counter() + seconds
                while time.perf_counter() < ends:
                    conn.execute(sql)
                    conn.commit()
                    done[number] += 1

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        print(f"  {name:<9} {threads} writers: {sum(done) / seconds:7.0f} commits/s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=220, help="orders; 6 events each")
    parser.add_argument("--pace", type=float, default=0.004, help="seconds between changes")
    args = parser.parse_args()
    with scratch_database("bench_events") as url:
        app = migrated_app(url)
        with app.app_context():
            from web_server.extensions import db
            from web_server.services.api_keys import create_api_key

            engine = db.engine
            _, key = create_api_key("bench", ["admin"])
            db.session.commit()
            accounts, market = make_accounts(engine, 1)
        logs = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-event-latency"
        logs.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "GATEWAY_SECRET_KEY": app.config["SECRET_KEY"],
            "GATEWAY_ENCRYPTION_KEYS": app.config["ENCRYPTION_KEYS"],
            "GATEWAY_ENV": "test",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        gateways = Gateways(logs, env)
        received_sse: dict[tuple[str, str], float] = {}
        received_hook: dict[tuple[str, str], float] = {}
        server = None
        try:
            gateway, _ = gateways.start("gateway", workers=2, threads=16)
            headers = {"Authorization": f"Bearer {key}"}

            class Hook(http.server.BaseHTTPRequestHandler):
                def do_POST(self) -> None:  # noqa: N802
                    body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                    data = body["data"]
                    received_hook.setdefault((data["order_id"], str(data["id"])), time.time())
                    self.send_response(204)
                    self.end_headers()

                def log_message(self, *_: object) -> None:
                    pass

            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
            created = requests.post(
                f"{gateway}/api/v1/webhooks", json={"url": hook_url}, headers=headers, timeout=10
            )
            created.raise_for_status()
            gateways.start_scheduler()
            time.sleep(6)  # the scheduler takes the lead and starts listening

            start = requests.get(
                f"{gateway}/api/v1/events?after=0&limit=1", headers=headers, timeout=10
            ).json()["latest_id"]
            stop = threading.Event()

            def stream() -> None:
                with requests.get(
                    f"{gateway}/api/v1/events",
                    headers={**headers, "Accept": "text/event-stream", "Last-Event-ID": str(start)},
                    stream=True,
                    timeout=(5, 30),
                ) as response:
                    for event in sse_events(response):
                        received_sse[(event["data"]["order_id"], event["id"])] = time.time()
                        if stop.is_set():
                            return

            reader = threading.Thread(target=stream, daemon=True)
            reader.start()
            time.sleep(1)

            # The writer: one transaction per change, its commit time noted per order.
            commits: list[tuple[str, float]] = []  # (order id, commit returned)
            for _ in range(args.orders):
                [order] = new_orders(engine, accounts[0], market, 1)
                commits.append((str(order), time.time()))
                time.sleep(args.pace)
                for status in PATH:
                    step(engine, order, status)
                    commits.append((str(order), time.time()))
                    time.sleep(args.pace)
            with engine.connect() as conn:
                from sqlalchemy import text

                rows = conn.execute(
                    text(
                        "SELECT id, order_id, ts FROM trade.order_events WHERE id > :s ORDER BY id"
                    ),
                    {"s": start},
                ).all()
            ends = time.time() + 60
            while time.time() < ends and (
                len(received_sse) < len(rows) or len(received_hook) < len(rows)
            ):
                time.sleep(0.2)
            stop.set()

            # Each event's commit: the writer's commit of its order that came right after its ts.
            by_order: dict[str, list[float]] = {}
            for order_id, when in commits:
                by_order.setdefault(order_id, []).append(when)
            sse, hook = [], []
            for event_id, order_id, ts in rows:
                committed = min(t for t in by_order[str(order_id)] if t >= ts.timestamp())
                key_ = (str(order_id), str(event_id))
                if key_ in received_sse:
                    sse.append(received_sse[key_] - committed)
                if key_ in received_hook:
                    hook.append(received_hook[key_] - committed)
            pace = args.pace * 1000
            print(f"order event latency, {len(rows)} events, one change every {pace:.0f} ms:")
            print(_line("SSE", sse))
            print(_line("webhook", hook))
            missing = len(rows) - len(sse), len(rows) - len(hook)
            print(f"  missing: SSE {missing[0]}, webhook {missing[1]}")

            # Commits a second through the counter row: 16 writers, no pause.
            orders = [o for _ in range(8) for o in new_orders(engine, accounts[0], market, 40)]
            began = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda o: step(engine, o, "SUBMITTED"), orders))
            seconds = time.perf_counter() - began
            print(
                f"  writers: {len(orders)} event-writing commits by 16 threads in {seconds:.2f} s"
                f" = {len(orders) / seconds:.0f} commits/s"
            )
            counter_vs_sequence(url)
            ok = len(sse) >= 1000 and _pct(sse, 0.99) < 0.1 and not any(missing)
            return 0 if ok else 1
        finally:
            if server is not None:
                server.shutdown()
            gateways.stop()


if __name__ == "__main__":
    sys.exit(main())
