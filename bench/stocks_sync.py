"""Stocks master sync: bulk (COPY + one upsert) against a row-at-a-time upsert, on KIS's real files.

Prints, side by side in one run: the time to parse and write the 3,919 real stocks the gateway's
way and the same rows through one INSERT … ON CONFLICT per row, their ratio, the time of a second
(no-change) sync, and symbol validations per second from the in-process cache.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from securities.kis.master_file import parse_master  # noqa: E402
from web_server.services.stocks_sync import (  # noqa: E402
    COLUMNS,
    download_masters,
    parse_masters,
    row_from_record,
    run_sync,
)

MASTER_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "kis_master"


def row_at_a_time(url: str) -> float:
    """Parse the files and upsert each row with its own statement; return seconds."""
    start = time.perf_counter()
    records = []
    for market in ("KOSPI", "KOSDAQ"):
        data = (MASTER_DIR / f"{market.lower()}_code.mst").read_bytes()
        records += parse_master(data, market).records
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "symbol")
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("SET ROLE gateway_datasync")
        for record in records:
            conn.execute(
                f"INSERT INTO market.stocks ({', '.join(COLUMNS)}) VALUES ({placeholders})"
                f" ON CONFLICT (symbol) DO UPDATE SET {updates}",
                row_from_record(record),
            )
    return time.perf_counter() - start


def main() -> None:
    if not (MASTER_DIR / "kospi_code.mst").exists():
        sys.exit(f"the real KIS master files are not at {MASTER_DIR}")
    with scratch_database("gateway_bench_stocks") as url:
        app = migrated_app(url)
        start = time.perf_counter()
        parse_masters(download_masters(str(MASTER_DIR)))
        parse = time.perf_counter() - start
        start = time.perf_counter()
        summary = run_sync(url, str(MASTER_DIR))
        bulk = time.perf_counter() - start
        start = time.perf_counter()
        run_sync(url, str(MASTER_DIR))
        again = time.perf_counter() - start
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("TRUNCATE market.stocks CASCADE")
        slow = row_at_a_time(url)

        cache = app.extensions["gateway.symbols"]
        cache.lookup("005930")
        symbols = ["005930", "000660", "0001A0", "035720"] * 25_000
        start = time.perf_counter()
        for symbol in symbols:
            cache.validate_tradable(symbol)
        lookups = len(symbols) / (time.perf_counter() - start)
        cache.close()

    print(f"stocks: {summary.added} added, {summary.skipped} skipped records")
    print(f"read + parse both files:                  {parse * 1000:8.1f} ms")
    print(
        f"bulk sync (parse + COPY + one upsert):    {bulk * 1000:8.1f} ms"
        f"  (write part {(bulk - parse) * 1000:.1f} ms)"
    )
    print(
        f"row-at-a-time (parse + 1 upsert per row): {slow * 1000:8.1f} ms"
        f"  (write part {(slow - parse) * 1000:.1f} ms)"
    )
    print(f"ratio row-at-a-time / bulk, whole sync:   {slow / bulk:8.1f}x")
    print(f"ratio row-at-a-time / bulk, write part:   {(slow - parse) / (bulk - parse):8.1f}x")
    print(f"second sync, nothing changed:             {again * 1000:8.1f} ms")
    print(f"validator lookups from the cache:         {lookups:,.0f} /s")


if __name__ == "__main__":
    main()
