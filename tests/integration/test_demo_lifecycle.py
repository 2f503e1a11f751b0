"""``gateway demo`` as an operator runs it: a real process, stopped by signals, started again.

What must hold (issue 15, item 9): the embedded PostgreSQL stops on every exit path (Ctrl-C,
SIGTERM, a start-up error); a restart finds the simulators knowing what the gateway remembers
(accounts, open orders); ``--reset`` gives a clean demo; the demo's accounts say SIMULATED.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

GATEWAY = Path(sys.executable).parent / "gateway"
READY = "Stop with Ctrl-C"


def _free_block(count: int) -> int:
    """Return the first of ``count`` consecutive free loopback ports."""
    for _ in range(200):
        # Below the ephemeral range (32768-60999): no outgoing connection can take it meanwhile.
        base = random.randint(20000, 32000 - count)  # noqa: S311 - a port, not a secret
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of ports")


class Demo:
    """One ``gateway demo`` process, its output read in the background."""

    def __init__(self, instance: Path, port: int, sim_base: int, *extra: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") and k != "DATABASE_URL"
        }
        env["GATEWAY_INSTANCE_DIR"] = str(instance)
        self.instance = instance
        self.port = port
        self.sim_base = sim_base
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [
                str(GATEWAY),
                "demo",
                "--port",
                str(port),
                "--simulator-ports",
                str(sim_base),
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if READY in self.lines.get(timeout=0.5):
                    break
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError("demo exited:\n" + "".join(self.output[-40:])) from None
        # The banner is printed before the server binds its port: wait until it answers.
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("demo did not start:\n" + "".join(self.output[-40:]))

    def stop(self, signum: int, timeout: float = 20) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        time.sleep(0.2)  # the reader thread drains the last lines
        return code

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sim(self, name: str) -> str:
        index = ("kis", "kiwoom", "upbit", "bithumb", "binance").index(name)
        return f"http://127.0.0.1:{self.sim_base + index}"

    def headers(self) -> dict[str, str]:
        key = (self.instance / "demo_api_key").read_text().strip()
        return {"Authorization": f"Bearer {key}"}


def _postgres_left(instance: Path) -> int | None:
    """The pid of a PostgreSQL still running on the demo's data folder, if any."""
    pid_file = instance / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split("\n", 1)[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _accounts(demo: Demo) -> dict[str, dict]:
    response = requests.get(f"{demo.url}/api/v1/accounts", headers=demo.headers(), timeout=10)
    response.raise_for_status()
    return {a["name"]: a for a in response.json()}


@pytest.fixture
def ports() -> tuple[int, int]:
    return _free_block(1), _free_block(5)


def test_restart_keeps_gateway_and_simulators_in_step_and_reset_starts_over(tmp_path, ports):
    started = time.monotonic()
    instance = tmp_path / "instance"
    port, sim_base = ports

    first = Demo(instance, port, sim_base)
    try:
        first.wait_ready()
        accounts = _accounts(first)
        assert {a["is_simulated"] for a in accounts.values()} == {True}
        upbit = accounts["demo-upbit"]["id"]
        price = Decimal(
            requests.get(
                f"{first.sim('upbit')}/_sim/prices", params={"symbol": "KRW-BTC"}, timeout=5
            ).json()["prices"]["KRW-BTC"]
        )
        resting = str((price / 2 / 1000).quantize(Decimal(1)) * 1000)  # on Upbit's 1,000 tick
        placed = requests.post(
            f"{first.url}/api/v1/orders",
            headers={**first.headers(), "Idempotency-Key": "restart-1"},
            json={
                "account_id": upbit,
                "symbol": "KRW-BTC",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "0.001",
                "limit_price": resting,
            },
            timeout=10,
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["status"] == "SUBMITTED"
        # The UI says so too: the accounts list shows SIMULATED, not REAL.
        page = requests.Session()
        login = page.get(f"{first.url}/login", timeout=10).text
        token = login.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
        password = (instance / "demo_operator").read_text().strip()
        page.post(
            f"{first.url}/login",
            data={"username": "demo", "password": password, "csrf_token": token},
            timeout=10,
        )
        listing = page.get(f"{first.url}/", timeout=10).text
        assert "SIMULATED" in listing and ">REAL<" not in listing
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, "".join(first.output[-20:])
    assert "Embedded PostgreSQL stopped." in "".join(first.output)
    assert _postgres_left(instance) is None

    second = Demo(instance, port, sim_base)
    try:
        second.wait_ready()
        assert "Simulator state restored" in "".join(second.output)
        again = requests.get(
            f"{second.url}/api/v1/orders/{order['id']}", headers=second.headers(), timeout=10
        ).json()
        assert again["status"] == "SUBMITTED"
        # The simulator still has the order open: the cancel reaches it and it answers.
        cancelled = requests.post(
            f"{second.url}/api/v1/orders/{order['id']}/cancel",
            headers={**second.headers(), "Idempotency-Key": "restart-cancel-1"},
            timeout=10,
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] in ("CANCELLED", "CANCEL_PENDING")
        ledger = requests.get(
            f"{second.sim('upbit')}/_sim/ledger",
            params={"kind": "order_placed,order_cancelled"},
            timeout=5,
        ).json()["entries"]
        assert [e["kind"] for e in ledger] == ["order_placed", "order_cancelled"]
        assert ledger[1]["order_no"] == order["broker_order_id"]
        # The account still works with the keys the gateway stored.
        holdings = requests.get(
            f"{second.url}/api/v1/accounts/{upbit}/balances", headers=second.headers(), timeout=10
        )
        assert holdings.status_code == 200, holdings.text
    finally:
        code = second.stop(signal.SIGTERM)
    assert code in (0, 128 + signal.SIGTERM), "".join(second.output[-20:])
    assert "Embedded PostgreSQL stopped." in "".join(second.output)
    assert _postgres_left(instance) is None

    third = Demo(instance, port, sim_base, "--reset")
    try:
        third.wait_ready()
        output = "".join(third.output)
        assert "starts over" in output and "Simulator state restored" not in output
        orders = requests.get(
            f"{third.url}/api/v1/orders", headers=third.headers(), timeout=10
        ).json()["orders"]
        assert orders == []
        ledger = requests.get(
            f"{third.sim('upbit')}/_sim/ledger", params={"kind": "order_placed"}, timeout=5
        ).json()["entries"]
        assert ledger == []
        assert len(_accounts(third)) == 5
    finally:
        third.stop(signal.SIGINT)
    assert _postgres_left(instance) is None
    assert time.monotonic() - started < 60


def test_a_start_up_error_stops_the_embedded_database(tmp_path, ports):
    instance = tmp_path / "instance"
    port, sim_base = ports
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", sim_base + 2))  # the Upbit simulator's port is taken
    blocker.listen()
    try:
        demo = Demo(instance, port, sim_base)
        code = demo.process.wait(60)
    finally:
        blocker.close()
    time.sleep(0.2)
    assert code != 0
    assert "Embedded PostgreSQL stopped." in "".join(demo.output), "".join(demo.output[-20:])
    assert (instance / "pgdata").exists() and _postgres_left(instance) is None
