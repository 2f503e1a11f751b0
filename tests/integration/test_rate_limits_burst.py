"""Must-show: four gateway processes share the brokers' limits under a burst of orders.

Two gunicorn groups of two workers each (as two hosts would run them) share PostgreSQL and Redis.
Fifty concurrent clients send orders for a bounded time at a KIS account (20 requests a second per
app key) and an Upbit account (order group 8 a second), half through each group. Then the
simulators' ledgers, counted from outside, show no refusal for rate, and each broker saw at least
0.9 of its limit. A second burst at a Binance account never passes its request weight (1200 a
minute, reported in ``X-MBX-USED-WEIGHT-1M``). The tally is printed.

The simulators run in processes of their own (``tests.integration.sim_worker``), so the test's
client threads do not slow them down.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.conftest import SECRETS_IN_USE, random_key, remember_secret
from web_server.extensions import db
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.stocks_sync import run_sync

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
CLIENTS = 50
BURST_SECONDS = 15.0
KIS_LIMIT = 20
UPBIT_ORDER_LIMIT = 8
BINANCE_WEIGHT_LIMIT = 1200
BINANCE_ORDERS_10S = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


class Processes:
    """The subprocesses of the test, stopped (by their own pids) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.started.append(
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _simulator(processes: Processes, broker: str, **options) -> str:
    port = _free_port()
    processes.start(
        f"sim-{broker}",
        [
            sys.executable,
            "-m",
            "tests.integration.sim_worker",
            broker,
            str(port),
            json.dumps(options),
        ],
        dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/_sim/ledger")
    return url


def _ledger(url: str, kind: str) -> list[dict]:
    return requests.get(f"{url}/_sim/ledger", params={"kind": kind}, timeout=10).json()["entries"]


def _rate(entries: list[dict]) -> float:
    """Orders a second as the broker saw them: first to last, over the whole burst."""
    times = sorted(dt.datetime.fromisoformat(e["time"]) for e in entries)
    if len(times) < 2:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0]).total_seconds()


def _most_in_window(entries: list[dict], seconds: float) -> int:
    """The most orders the broker saw in any window of ``seconds``."""
    times = sorted(dt.datetime.fromisoformat(e["time"]).timestamp() for e in entries)
    return max(
        (sum(1 for t in times if start <= t < start + seconds) for start in times), default=0
    )


def _burst(targets: list[tuple[str, dict]], hosts: list[str], headers: dict, seconds: float):
    """Run CLIENTS threads, each sending orders to its target through alternating hosts."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    ends = time.monotonic() + seconds

    def client(number: int) -> None:
        name, body = targets[number % len(targets)]
        session = requests.Session()
        sent = 0
        while time.monotonic() < ends:
            host = hosts[(number + sent) % len(hosts)]
            key = f"burst-{number}-{sent}-{secrets.token_hex(4)}"
            try:
                response = session.post(
                    f"{host}/api/v1/orders",
                    json=body,
                    headers={**headers, "Idempotency-Key": key},
                    timeout=30,
                )
                outcome = str(response.status_code)
                if response.status_code == 201:
                    outcome = response.json()["status"]
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with lock:
                statuses[(name, outcome)] += 1
            sent += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.slow
def test_four_processes_never_draw_a_rate_refusal(
    app, app_ctx, client, api_headers, database_url, base_config, tmp_path
):
    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()  # make redis starts it
    prefix = f"test-burst:{secrets.token_hex(6)}:"
    processes = Processes(tmp_path)
    try:
        kis_url = _simulator(processes, "kis", rate_limit_per_second=KIS_LIMIT)
        upbit_url = _simulator(processes, "upbit", order_rate=UPBIT_ORDER_LIMIT)
        binance_url = _simulator(
            processes,
            "binance",
            weight_limit=BINANCE_WEIGHT_LIMIT,
            orders_per_10s=BINANCE_ORDERS_10S,
        )

        # The accounts, in the simulators and in the gateway.
        kis_key, kis_secret = remember_secret(random_key(36)), remember_secret(random_key(180))
        requests.post(
            f"{kis_url}/_sim/accounts",
            json={
                "app_key": kis_key,
                "app_secret": kis_secret,
                "account_number": "50123456",
                "product_code": "01",
                "cash": "10000000000",
            },
            timeout=5,
        ).raise_for_status()
        run_sync(database_url, f"{kis_url}/common/master")
        app.extensions["gateway.symbols"].invalidate()
        upbit_key, upbit_secret = random_key(40), remember_secret(random_key(40))
        requests.post(
            f"{upbit_url}/_sim/accounts",
            json={
                "access_key": upbit_key,
                "secret_key": upbit_secret,
                "balances": {"KRW": "100000000000"},
            },
            timeout=5,
        ).raise_for_status()
        binance_key, binance_secret = random_key(64), remember_secret(random_key(64))
        requests.post(
            f"{binance_url}/_sim/accounts",
            json={
                "api_key": binance_key,
                "secret_key": binance_secret,
                "balances": {"USDT": "100000000"},
            },
            timeout=5,
        ).raise_for_status()

        def account(name: str, exchange: str, key: str, secret: str, url: str, **extra) -> int:
            created = client.post(
                "/api/v1/accounts",
                headers=api_headers,
                json={
                    "name": name,
                    "exchange": exchange,
                    "api_key": key,
                    "api_secret": secret,
                    "base_url": url,
                    **extra,
                },
            )
            assert created.status_code == 201, created.get_json()
            return int(created.get_json()["id"])

        kis_id = account(
            "kis",
            "KIS",
            kis_key,
            kis_secret,
            kis_url,
            securities_config={"account_number": "50123456", "product_code": "01"},
        )
        upbit_id = account("upbit", "UPBIT", upbit_key, upbit_secret, upbit_url)
        binance_id = account("binance", "BINANCE", binance_key, binance_secret, binance_url)
        with app.app_context():
            sync_all_markets(("UPBIT", "BINANCE"))
            db.session.commit()
        price = Decimal(
            requests.get(f"{kis_url}/_sim/prices", params={"symbol": "005930"}, timeout=5).json()[
                "prices"
            ]["005930"]
        )
        resting = str((price * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)
        btc = Decimal(
            requests.get(
                f"{binance_url}/_sim/prices", params={"symbol": "BTCUSDT"}, timeout=5
            ).json()["prices"]["BTCUSDT"]
        )
        binance_price = str((btc * Decimal("0.8")).quantize(Decimal("0.01")))

        # Two "hosts" of two gunicorn workers each, sharing PostgreSQL and Redis.
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "GATEWAY_SECRET_KEY": base_config["SECRET_KEY"],
            "GATEWAY_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
            "GATEWAY_ENV": "test",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_REDIS_URL": REDIS_URL,
            "GATEWAY_RATE_LIMIT_PREFIX": prefix,
            "GATEWAY_RATE_LIMITS__KIS_REAL_PER_SECOND": str(KIS_LIMIT),
            "GATEWAY_RATE_LIMITS__UPBIT_ORDER_PER_SECOND": str(UPBIT_ORDER_LIMIT),
            "GATEWAY_RATE_LIMITS__BINANCE_WEIGHT_PER_MINUTE": str(BINANCE_WEIGHT_LIMIT),
            "GATEWAY_RATE_LIMITS__BINANCE_ORDERS_PER_10S": str(BINANCE_ORDERS_10S),
        }
        hosts = []
        for name in ("host-a", "host-b"):
            port = _free_port()
            processes.start(
                name,
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    # Each request thread may hold two database connections while it waits for
                    # its slot: 4 processes × 8 threads stay well inside PostgreSQL's 100.
                    "--threads",
                    "8",
                    "--timeout",
                    "60",
                    "--no-control-socket",
                    "web_server:create_app()",
                ],
                env,
            )
            hosts.append(f"http://127.0.0.1:{port}")
        for host in hosts:
            _wait_http(f"{host}/healthz")

        kis_order = {
            "account_id": kis_id,
            "symbol": "005930",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "1",
            "limit_price": resting,
        }
        upbit_order = {
            "account_id": upbit_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limit_price": "1000000",
        }
        # Warm each process first (its KIS token read, its adapters and connections made), as a
        # running gateway is: the burst measures pacing, not each worker's first request.
        for host in hosts:
            for body in (kis_order, upbit_order):
                warm = requests.post(
                    f"{host}/api/v1/orders",
                    json=body,
                    headers={**api_headers, "Idempotency-Key": f"warm-{secrets.token_hex(6)}"},
                    timeout=30,
                )
                assert warm.status_code == 201, warm.text
        time.sleep(1.0)  # the warm-up's slots pass
        burst_start = dt.datetime.now(dt.UTC)
        statuses = _burst(
            [("kis", kis_order), ("upbit", upbit_order)], hosts, api_headers, BURST_SECONDS
        )

        def in_burst(entries: list[dict]) -> list[dict]:
            return [e for e in entries if dt.datetime.fromisoformat(e["time"]) >= burst_start]

        kis_placed = in_burst(_ledger(kis_url, "order_placed"))
        upbit_placed = in_burst(_ledger(upbit_url, "order_placed"))
        kis_refused = [e for e in _ledger(kis_url, "request_refused") if e["reason"] == "rate"]
        upbit_refused = [e for e in _ledger(upbit_url, "request_refused") if e["reason"] == "rate"]
        kis_rate, upbit_rate = _rate(kis_placed), _rate(upbit_placed)

        # A Binance burst: orders weigh 1, the exchange's rules 20; the weight never passes 1200.
        binance_order = {
            "account_id": binance_id,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.001",
            "limit_price": binance_price,
        }
        # Meanwhile a watcher reads the weight Binance reports for this address (weight 1 a read).
        weights: list[int] = []
        watching = threading.Event()

        def watch() -> None:
            while not watching.wait(0.5):
                answer = requests.get(f"{binance_url}/api/v3/time", timeout=5)
                weights.append(int(answer.headers["X-MBX-USED-WEIGHT-1M"]))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            binance_statuses = _burst([("binance", binance_order)], hosts, api_headers, 5.0)
        finally:
            watching.set()
            watcher.join()
        binance_refused = [
            e for e in _ledger(binance_url, "request_refused") if e["reason"] == "rate"
        ]
        binance_placed = _ledger(binance_url, "order_placed")
        used = max(weights)

        tally = {
            "kis": {
                "placed": len(kis_placed),
                "rate_per_s": round(kis_rate, 2),
                "limit": KIS_LIMIT,
                "rate_refusals": len(kis_refused),
            },
            "upbit": {
                "placed": len(upbit_placed),
                "rate_per_s": round(upbit_rate, 2),
                "limit": UPBIT_ORDER_LIMIT,
                "rate_refusals": len(upbit_refused),
            },
            "binance": {
                "placed": len(binance_placed),
                "rate_per_s": round(_rate(binance_placed), 2),
                "most_orders_in_10s": _most_in_window(binance_placed, 10.0),
                "orders_limit_10s": BINANCE_ORDERS_10S,
                "rate_refusals": len(binance_refused),
                "max_weight_used_1m": used,
                "weight_limit": BINANCE_WEIGHT_LIMIT,
            },
            "answers": {
                f"{k[0]}:{k[1]}": v for k, v in sorted((statuses + binance_statuses).items())
            },
        }
        print("rate-limit burst tally:", json.dumps(tally, indent=1))

        assert kis_refused == [] and upbit_refused == [] and binance_refused == [], tally
        assert kis_rate >= 0.9 * KIS_LIMIT, tally
        assert upbit_rate >= 0.9 * UPBIT_ORDER_LIMIT, tally
        assert used <= BINANCE_WEIGHT_LIMIT, tally
        assert binance_placed, tally
        assert _most_in_window(binance_placed, 10.0) <= BINANCE_ORDERS_10S, tally
        # Every order the gateway did not send was answered 429 with nothing at the broker.
        assert set(k[1] for k in statuses) <= {"SUBMITTED", "FILLED", "PARTIALLY_FILLED", "429"}, (
            tally
        )
        logged = "".join(path.read_text() for path in tmp_path.glob("*.log"))
        assert all(secret not in logged for secret in SECRETS_IN_USE)
    finally:
        processes.stop()
        client_redis = redis.Redis.from_url(REDIS_URL)
        for key in client_redis.scan_iter(f"{prefix}*"):
            client_redis.delete(key)
