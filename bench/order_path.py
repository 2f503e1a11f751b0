"""The order path against its floor: gateway vs a direct broker call vs the bare minimum.

Three ways to place the same limit order at the same simulator, measured side by side:

- **direct**: the broker adapter called in this process (a signed HTTP request to the simulator;
  what a strategy talking to the broker itself would pay);
- **floor** (``bench/_floor.py``): a bare Flask app under gunicorn doing one loopback hop, two
  PostgreSQL commits and the same broker call: what any gateway that never loses an order pays;
- **gateway**: ``POST /api/v1/orders`` under gunicorn with the same worker settings.

KIS and Upbit, 1 and 32 clients, interleaved (the order of the three rotates every batch) and
repeated, so a slow moment of this shared machine hits all three alike. For each, the *extra*
time over the direct call at p50 and p99, and the gateway's extra as a multiple of the floor's
(goal: at most 2× at p50 and 3× at p99), and at 32 clients the gateway's throughput as a share of
the floor's (goal: at least 0.7). Then a cached holdings read against a direct broker read (goal:
at most half).

The simulators run as their own processes with their rate limits lifted, and the gateway's shared
limiter is given the same room: this measures the path, not the brokers' budgets.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._db import scratch_database  # noqa: E402
from bench._floor import build_adapter, create_table, order_request  # noqa: E402
from brokers import Credentials  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
ORDERS = {1: 80, 32: 256}  # per batch
# The same gunicorn settings for the gateway and the floor (BENCH_WORKERS, BENCH_THREADS).
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
TARGETS = ("direct", "floor", "gateway")


def _key(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOGS = Path(tempfile.mkdtemp(prefix="bench-order-path-"))


def _start(args: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    log = LOGS / f"{len(list(LOGS.iterdir()))}.log"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{args[2:5]} exited: {log.read_text()[-2000:]} (logs in {LOGS})")
        try:
            requests.get(url, timeout=5)
            return process
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def _simulator(name: str, **options) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    code = (
        "import sys; from simulators.registry import create_simulator;"
        " from simulators.server import run;"
        f" run(create_simulator({name!r}, **{options!r}), '127.0.0.1', {port})"
    )
    url = f"http://127.0.0.1:{port}"
    return url, _start([sys.executable, "-c", code], f"{url}/_sim/ledger?kind=none")


def _gunicorn(app: str, env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    args += ["--workers", str(WORKERS), "--threads", str(THREADS), app]
    url = f"http://127.0.0.1:{port}"
    return url, _start(args, f"{url}/healthz" if "web_server" in app else url, env)


class Venue:
    """One broker: its simulator, a direct account, and a gateway account (each their own keys,
    so the gateway's token issuance never collides with the direct caller's)."""

    def __init__(self, exchange: str, url: str) -> None:
        self.exchange = exchange
        self.url = url
        self.direct = self._sim_account()
        self.gateway = self._sim_account()
        self.token: str | None = None
        self.body: dict = {}

    def _sim_account(self) -> dict:
        if self.exchange == "KIS":
            keys = {"app_key": _key(36), "app_secret": _key(180)}
            number = str(50_000_000 + secrets.randbelow(9_999_999))
            sim = {**keys, "account_number": number, "product_code": "01"}
            sim |= {"cash": "1000000000000", "positions": {"005930": 10}}
            credentials = {
                "api_key": keys["app_key"],
                "api_secret": keys["app_secret"],
                "account_number": number,
                "product_code": "01",
            }
        else:
            access, secret = _key(40), _key(40)
            sim = {"access_key": access, "secret_key": secret}
            sim |= {"balances": {"KRW": "1000000000000", "BTC": "1"}}
            credentials = {"api_key": access, "api_secret": secret}
        requests.post(f"{self.url}/_sim/accounts", json=sim, timeout=5).raise_for_status()
        return credentials

    def resting_body(self) -> dict:
        """A buy limit 20 % under the market: it rests, so every order is a full placement."""
        symbol = "005930" if self.exchange == "KIS" else "KRW-BTC"
        prices = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=5)
        price = Decimal(prices.json()["prices"][symbol]) * Decimal("0.8")
        price = (price / 1000).quantize(Decimal(1)) * 1000
        quantity = "1" if self.exchange == "KIS" else "0.001"
        return {"symbol": symbol, "side": "BUY", "type": "LIMIT", "quantity": quantity,
                "limit_price": str(price)}  # fmt: skip

    def adapter(self):
        return build_adapter(self.exchange, self.url, Credentials(**self.direct), self.token)


def _set_up_gateway(database_url: str, venues: dict[str, Venue], env: dict[str, str]) -> dict:
    """Migrate, create both accounts and an API key, sync the masters; return their ids."""
    os.environ.update(env)
    from flask_migrate import upgrade

    from web_server import create_app
    from web_server.extensions import db
    from web_server.services.accounts import create_account
    from web_server.services.api_keys import create_api_key
    from web_server.services.crypto_markets import sync_all_markets
    from web_server.services.stocks_sync import run_sync

    app = create_app({"DATABASE_URL": database_url})
    ids = {}
    with app.app_context():
        upgrade()
        run_sync(database_url, f"{venues['KIS'].url}/common/master")
        for exchange, venue in venues.items():
            credentials = dict(venue.gateway)
            config = {k: credentials.pop(k) for k in ("account_number", "product_code")
                      if k in credentials}  # fmt: skip
            account = create_account(
                name=f"bench-{exchange.lower()}",
                exchange=exchange,
                environment="REAL",
                base_url=venue.url,
                securities_config=config or None,
                **credentials,
            )
            db.session.flush()
            ids[exchange] = account.id
        db.session.commit()
        sync_all_markets(("UPBIT",))
        _, key = create_api_key("bench", ["orders:write", "orders:read", "holdings:read"])
        db.session.commit()
    ids["key"] = key
    return ids


def _place(target: str, venue: Venue, session: requests.Session, base: str, ids: dict) -> None:
    body = venue.body
    if target == "direct":
        venue.adapter_local.place_order(order_request(venue.exchange, body))
        return
    if target == "floor":
        response = session.post(f"{base}/orders/{venue.exchange}", json=body, timeout=30)
    else:
        response = session.post(
            f"{base}/api/v1/orders",
            json={**body, "account_id": ids[venue.exchange]},
            headers={"Authorization": f"Bearer {ids['key']}", "Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        )
    if response.status_code != 201:
        raise SystemExit(
            f"{target} {venue.exchange}: {response.status_code} {response.text[:300]}"
            f" (server logs in {LOGS})"
        )


def _batch(target: str, venue: Venue, clients: int, urls: dict, ids: dict) -> tuple[list, float]:
    """Place ``ORDERS[clients]`` orders from ``clients`` threads; return latencies and wall time."""
    import threading

    local = threading.local()

    def one(_: int) -> float:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            venue_copy = local.venue = Venue.__new__(Venue)
            venue_copy.__dict__.update(venue.__dict__)
            venue_copy.adapter_local = venue.adapter() if target == "direct" else None
        start = time.perf_counter()
        _place(target, local.venue, local.session, urls.get(target, ""), ids)
        return time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm: connections, adapters, tokens
        start = time.perf_counter()
        latencies = list(pool.map(one, range(ORDERS[clients])))
        return latencies, time.perf_counter() - start


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _report(results: dict) -> bool:
    met = True
    print(f"{'':18}{'p50 ms':>9}{'p99 ms':>9}{'orders/s':>10}   extra over direct p50 / p99")
    for (exchange, clients), by_target in results.items():
        print(f"{exchange} {clients} client{'s' if clients > 1 else ''}")
        direct = by_target["direct"]
        d50, d99 = _percentile(direct["lat"], 0.5), _percentile(direct["lat"], 0.99)
        extra = {}
        for target in TARGETS:
            lat, wall = by_target[target]["lat"], by_target[target]["wall"]
            count = len(lat)
            p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
            extra[target] = (p50 - d50, p99 - d99)
            rate = count / wall
            by_target[target]["rate"] = rate
            print(
                f"  {target:<16}{p50 * 1000:9.1f}{p99 * 1000:9.1f}{rate:10.1f}   "
                f"{extra[target][0] * 1000:6.1f} / {extra[target][1] * 1000:6.1f} ms"
            )
        # A floor whose extra is not above zero (a slow moment of the direct calls' tail) gives
        # no ratio: reported as such and counted as missed, never as a huge or negative number.
        floor50, floor99 = extra["floor"]
        r50 = extra["gateway"][0] / floor50 if floor50 > 0 else float("inf")
        r99 = extra["gateway"][1] / floor99 if floor99 > 0 else float("inf")
        share = by_target["gateway"]["rate"] / by_target["floor"]["rate"]
        verdict = r50 <= 2 and r99 <= 3 and (clients == 1 or share >= 0.7)
        met &= verdict
        print(
            f"  gateway extra / floor extra: p50 {r50:.2f}x (goal <= 2), p99 {r99:.2f}x (goal <= 3)"
            + (f"; throughput {share:.2f} of the floor's (goal >= 0.7)" if clients > 1 else "")
            + ("" if verdict else "  <- goal missed")
        )
    return met


def _holdings(venues: dict[str, Venue], urls: dict, ids: dict) -> None:
    """A cached holdings read through the gateway against a direct broker read (the goal), and
    against the floor's stored read (one loopback hop and one PostgreSQL read): what no server
    of this stack can go below."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {ids['key']}"}
    for exchange, venue in venues.items():
        url = f"{urls['gateway']}/api/v1/accounts/{ids[exchange]}/holdings"
        session.get(url, params={"refresh": "true"}, headers=headers, timeout=30).raise_for_status()
        floor_url = f"{urls['floor']}/holdings/{exchange}"
        adapter = venue.adapter()
        cached, direct, floor = [], [], []
        for _ in range(300):
            start = time.perf_counter()
            session.get(url, headers=headers, timeout=30).raise_for_status()
            cached.append(time.perf_counter() - start)
            start = time.perf_counter()
            adapter.get_holdings()
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.get(floor_url, timeout=30).raise_for_status()
            floor.append(time.perf_counter() - start)
        c50, d50 = statistics.median(cached), statistics.median(direct)
        f50 = statistics.median(floor)
        print(
            f"{exchange} holdings: cached read p50 {c50 * 1000:.2f} ms, direct broker read "
            f"{d50 * 1000:.2f} ms: {c50 / d50:.2f} of it (goal <= 0.5); the floor's stored read "
            f"{f50 * 1000:.2f} ms ({f50 / d50:.2f} of the direct read, the gateway "
            f"{c50 / f50:.2f}x the floor)"
        )


def main() -> None:
    processes: list[subprocess.Popen] = []
    try:
        kis_url, kis = _simulator("kis", rate_limit_per_second=0)
        upbit_url, upbit = _simulator(
            "upbit", order_rate=100_000, exchange_rate=100_000, quotation_rate=100_000
        )
        processes += [kis, upbit]
        venues = {"KIS": Venue("KIS", kis_url), "UPBIT": Venue("UPBIT", upbit_url)}
        with scratch_database("gateway_bench_order_path") as database_url:
            from web_server.crypto import generate_key_entry

            env = {
                "GATEWAY_ENV": "development",
                "GATEWAY_SECRET_KEY": secrets.token_urlsafe(40),
                "GATEWAY_ENCRYPTION_KEYS": generate_key_entry("bench"),
                "GATEWAY_DATABASE_URL": database_url,
                "GATEWAY_LOG_LEVEL": "WARNING",
                # The shared limiter runs as in production (Redis), with the brokers' budgets
                # lifted as they are in the simulators: its cost is measured, not its pacing.
                "GATEWAY_REDIS_URL": os.environ.get(
                    "GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0"
                ),
                **{
                    f"GATEWAY_RATE_LIMITS__{name}": "100000"
                    for name in (
                        "KIS_REAL_PER_SECOND",
                        "UPBIT_ORDER_PER_SECOND",
                        "UPBIT_EXCHANGE_PER_SECOND",
                        "UPBIT_QUOTATION_PER_SECOND",
                    )
                },
            }
            ids = _set_up_gateway(database_url, venues, env)
            kis_adapter = venues["KIS"].adapter()
            venues["KIS"].token = kis_adapter.issue_token().access_token
            for venue in venues.values():
                venue.body = venue.resting_body()
            floor_settings = {
                "database_url": database_url,
                "venues": {
                    exchange: {"url": v.url, "credentials": v.direct, "token": v.token}
                    for exchange, v in venues.items()
                },
            }
            urls = {}
            urls["gateway"], gateway = _gunicorn("web_server:create_app()", env)
            processes.append(gateway)
            create_table(database_url)
            floor_env = {"FLOOR_SETTINGS": json.dumps(floor_settings)}
            urls["floor"], floor = _gunicorn("bench._floor:create_app()", floor_env)
            processes.append(floor)
            print(
                f"{ROUNDS} rounds; batches of {ORDERS[1]} orders (1 client) and {ORDERS[32]} "
                f"(32 clients); gunicorn {WORKERS} workers x {THREADS} threads for both servers"
            )
            results: dict = {}
            turn = 0
            for _ in range(ROUNDS):
                for clients in (1, 32):
                    for exchange, venue in venues.items():
                        cell = results.setdefault((exchange, clients), {})
                        turn += 1
                        order = TARGETS[turn % 3 :] + TARGETS[: turn % 3]
                        for target in order:
                            lat, wall = _batch(target, venue, clients, urls, ids)
                            slot = cell.setdefault(target, {"lat": [], "wall": 0.0})
                            slot["lat"] += lat
                            slot["wall"] += wall
            met = _report(results)
            _holdings(venues, urls, ids)
            print("goals met" if met else "some goals missed (see above)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
