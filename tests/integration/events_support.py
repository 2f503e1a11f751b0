"""What the event tests and the event bench share: gateways in processes, orders, an SSE reader.

Orders are written straight into ``trade.orders`` (an account, a crypto market, intents) and
moved through their states by :func:`step`, which does what a writer of the order lifecycle does:
change the row, call ``services.events.record_change`` in the same session, commit. That makes
thousands of real events in seconds without a broker in the loop; the lifecycle's own calls are
covered by the order tests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.orm import Session

from web_server.models import Account, CryptoMarket, Fill, Order, OrderIntent

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers at all."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def gunicorn_command(
    app: str, port: int, *, workers: int, threads: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """The command of ``app`` under gunicorn's threaded workers on loopback ``port``."""
    return [
        *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
        *("--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads)),
        *("--timeout", "60", *extra, app),
    ]


class Gateways:
    """Gunicorn gateways (gthread) in processes of their own, stopped by their own pids."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, *, workers: int = 1, threads: int = 32) -> tuple[str, Any]:
        """Start a gateway; return its URL and its process (the gunicorn master)."""
        port = free_port()
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            gunicorn_command(
                "web_server:create_app()",
                port,
                workers=workers,
                threads=threads,
                extra=("--no-control-socket",),
            ),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        return url, process

    def start_scheduler(self, **env: str) -> Any:
        """Start ``gateway scheduler`` (the poller, the reconciler, the webhooks) with ``env``."""
        log = open(self.logs / "scheduler.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gateway"), "scheduler"],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def stop(self) -> None:
        """Stop every gateway this object started."""
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def gateway_env(database_url: str, base_config: dict[str, Any]) -> dict[str, str]:
    """The environment of a gateway process sharing the test's database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": base_config["SECRET_KEY"],
        "GATEWAY_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
        "GATEWAY_ENV": "test",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_EVENTS_HEARTBEAT_SECONDS": "1",
    }


# -- accounts and orders ------------------------------------------------------------------------


def make_accounts(engine: Any, count: int) -> tuple[list[int], int]:
    """Create ``count`` Upbit accounts and the KRW-BTC market; return their ids."""
    with Session(engine) as session, session.begin():
        market = CryptoMarket(
            exchange="UPBIT", symbol="KRW-BTC", base_asset="BTC", quote_asset="KRW"
        )
        session.add(market)
        accounts = []
        for number in range(count):
            account = Account(
                name=f"events-{number}-{uuid.uuid4().hex[:6]}",
                exchange="UPBIT",
                account_type="CRYPTO",
                environment="REAL",
                base_url="http://127.0.0.1:9",
            )
            account.api_key = f"key-{number}"
            account.api_secret = f"secret-{number}"
            session.add(account)
            accounts.append(account)
        session.flush()
        return [a.id for a in accounts], market.id


def new_orders(engine: Any, account_id: int, market_id: int, count: int) -> list[uuid.UUID]:
    """Create ``count`` PENDING_SUBMIT orders, each with its ``accepted`` event."""
    ids = []
    with Session(engine) as session, session.begin():
        for _ in range(count):
            intent = OrderIntent(
                account_id=account_id,
                crypto_market_id=market_id,
                side="BUY",
                order_type="LIMIT",
                quantity=Decimal("2"),
                limit_price=Decimal("1000000"),
                action_key=f"events-{uuid.uuid4()}",
                request_hash="x",
            )
            session.add(intent)
            session.flush()
            order = Order(
                intent_id=intent.intent_id,
                account_id=account_id,
                crypto_market_id=market_id,
                side="BUY",
                order_type="LIMIT",
                quantity=Decimal("2"),
                limit_price=Decimal("1000000"),
                client_order_id=f"c-{uuid.uuid4().hex}",
                status="PENDING_SUBMIT",
            )
            session.add(order)
            session.flush()  # its "accepted" event is recorded by the flush, written at commit
            ids.append(order.id)
    return ids


#: The path every test order takes: submitted, a partial fill, filled.
PATH = ("SUBMITTED", "PARTIALLY_FILLED", "FILLED")


def step(engine: Any, order_id: uuid.UUID, status: str) -> None:
    """Move an order to ``status`` as a lifecycle writer does (its events follow from the flush).

    PARTIALLY_FILLED fills one of two at 1,000,000; FILLED the other at 1,000,100.
    """
    with Session(engine) as session, session.begin():
        order = session.get(Order, order_id, with_for_update=True)
        assert order is not None
        order.status = status
        if status in ("PARTIALLY_FILLED", "FILLED"):
            price = Decimal("1000000") if status == "PARTIALLY_FILLED" else Decimal("1000100")
            order.filled_quantity += 1
            order.average_fill_price = (
                Decimal("1000000") if order.filled_quantity == 1 else (Decimal("1000050"))
            )
            session.add(
                Fill(
                    order_id=order.id,
                    broker_fill_key=f"cum:{order.filled_quantity}",
                    ts=dt.datetime.now(dt.UTC),
                    quantity=Decimal("1"),
                    price=price,
                )
            )


# -- reading a stream ---------------------------------------------------------------------------


def sse_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Yield the events of an SSE response as dicts (``id``, ``event``, ``data`` parsed)."""
    fields: dict[str, Any] = {}
    for raw in response.iter_lines(decode_unicode=True, chunk_size=None):
        line = raw if raw is not None else ""
        if line == "":
            if "data" in fields:
                fields["data"] = json.loads(fields["data"])
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            fields.setdefault("comments", 0)
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


class StreamReader(threading.Thread):
    """A client holding one stream open, reconnecting with Last-Event-ID when it is cut."""

    def __init__(
        self, urls: list[str], headers: dict[str, str], *, after: int, until: float
    ) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.headers = headers
        self.last = after
        self.until = until
        self.received: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.reconnects = 0
        self.errors: list[str] = []

    def run(self) -> None:
        attempt = 0
        while time.time() < self.until:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                with requests.get(
                    f"{url}/api/v1/events",
                    headers={
                        **self.headers,
                        "Accept": "text/event-stream",
                        "Last-Event-ID": str(self.last),
                    },
                    stream=True,
                    timeout=(5, 3),
                ) as response:
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                        time.sleep(0.2)
                        continue
                    for event in sse_events(response):
                        self.arrivals.append(time.time())
                        self.received.append(event)
                        self.last = int(event["id"])
                        if time.time() >= self.until:
                            return
            except (requests.RequestException, ValueError) as exc:
                self.errors.append(type(exc).__name__)
            self.reconnects += 1
            time.sleep(0.05)
