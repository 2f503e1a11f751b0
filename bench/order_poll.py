"""One poll pass over 2,000 open KIS orders on the simulator must fit in the 5 s poll interval.

A KIS simulator (every day a session, so orders rest all day) gets 2,000 resting limit orders
from the KIS adapter, and a scratch gateway database (unique name) the same 2,000 orders, bound
to the broker's numbers and KST date as placement binds them. Then:

- one ``poll_open_orders`` pass (the day's history read once, all pages, then each order under
  its lock), timed, with nothing changed: the steady state of a busy day;
- the same after the price came down to their limit, so that every one of them filled at the
  broker and the pass writes 2,000 fills, 2,000 status changes and their events (the worst
  case: each batch of 500 is one transaction with one read and one insert of fills);
- for comparison, the old way, one ``get_order`` per order, timed on 100 orders and scaled to
  2,000.

Prints the three side by side against the poll interval.
"""

from __future__ import annotations

import os
import secrets
import string
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from brokers import OrderRequest, OrderType, Side, kst_date  # noqa: E402
from simulators.registry import create_simulator  # noqa: E402
from simulators.server import serve_in_thread  # noqa: E402
from web_server.extensions import db  # noqa: E402
from web_server.models import Order, OrderIntent  # noqa: E402
from web_server.services.accounts import create_account, get_account  # noqa: E402
from web_server.services.brokers import adapter_for  # noqa: E402
from web_server.services.orders import poll_open_orders  # noqa: E402
from web_server.services.stocks_sync import run_sync  # noqa: E402

ORDERS = 2000
INTERVAL = 5.0
SAMPLE = 100


def _key(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def main() -> None:
    sim = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    app_key, secret = _key(36), _key(180)
    requests.post(
        f"{sim.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": "50123456",
            "product_code": "01",
            "cash": "100000000000",
        },
        timeout=5,
    ).raise_for_status()
    price = Decimal(
        requests.get(f"{sim.url}/_sim/prices", params={"symbol": "005930"}, timeout=5).json()[
            "prices"
        ]["005930"]
    )
    limit = (price * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000
    with scratch_database(f"gateway_bench_poll_{os.getpid()}") as url:
        app = migrated_app(url)
        run_sync(url, f"{sim.url}/common/master")
        app.config["ORDERS_POLL_INTERVAL_SECONDS"] = INTERVAL
        with app.app_context():
            account = create_account(
                name="bench-kis",
                exchange="KIS",
                environment="REAL",
                api_key=app_key,
                api_secret=secret,
                base_url=sim.url,
                securities_config={"account_number": "50123456", "product_code": "01"},
            )
            db.session.commit()
            adapter = adapter_for(get_account(account.id))
            start = time.perf_counter()
            # One at a time: the gateway's KIS limiter (20 a second) paces the set-up anyway.
            for n in range(ORDERS):
                client_id = f"gw{uuid.uuid4().hex}"
                request = OrderRequest(
                    symbol="005930",
                    side=Side.BUY,
                    order_type=OrderType.LIMIT,
                    quantity=Decimal(1),
                    client_order_id=client_id,
                    limit_price=limit,
                )
                placed = adapter.place_order(request)
                intent = OrderIntent(
                    account_id=account.id,
                    symbol="005930",
                    side="BUY",
                    order_type="LIMIT",
                    quantity=Decimal(1),
                    limit_price=limit,
                    action_key=f"bench:{n}",
                    request_hash="h",
                    status="SUBMITTED",
                )
                db.session.add(
                    Order(
                        intent=intent,
                        account_id=account.id,
                        symbol="005930",
                        side="BUY",
                        order_type="LIMIT",
                        quantity=Decimal(1),
                        limit_price=limit,
                        client_order_id=client_id,
                        broker_order_id=placed.broker_order_id,
                        broker_order_date=kst_date(placed.created_at),
                        status="SUBMITTED",
                        submitted_ts=placed.created_at,
                        send_started_ts=placed.created_at,
                    )
                )
            db.session.commit()
            setup = time.perf_counter() - start

            start = time.perf_counter()
            steady = poll_open_orders()
            steady_s = time.perf_counter() - start

            # They all fill: the price comes down to their limit.
            requests.post(
                f"{sim.url}/_sim/prices",
                json={"symbol": "005930", "price": str(limit), "liquidity": "200"},
                timeout=5,
            )
            start = time.perf_counter()
            busy = poll_open_orders()
            busy_s = time.perf_counter() - start

            rows = db.session.query(Order).limit(SAMPLE).all()
            start = time.perf_counter()
            for row in rows:
                adapter.get_order(row.broker_order_id, symbol="005930")
            per_order_s = (time.perf_counter() - start) / len(rows) * ORDERS
    sim.stop()
    print(f"set-up: {ORDERS} orders placed at the simulator and stored: {setup:6.1f} s")
    print(f"one poll pass over {ORDERS} open KIS orders (poll interval {INTERVAL:.0f} s):")
    print(f"  {'steady (nothing changed)':<38}{steady_s:7.2f} s  {dict(steady)}")
    print(f"  {'with fills at the broker':<38}{busy_s:7.2f} s  {dict(busy)}")
    print(f"  {'old way, one get_order per order':<38}{per_order_s:7.2f} s  (from {SAMPLE})")
    print(f"  ratio one call / per order: {steady_s / per_order_s:.3f}")
    ok = max(steady_s, busy_s) <= INTERVAL
    print(f"fits in the poll interval: {'yes' if ok else 'NO'}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
