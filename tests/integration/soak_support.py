"""What the multi-day soak needs besides the test itself: one clock for many processes, gateway
processes to kill, simulator processes, and a client that behaves like a careful strategy.

- :class:`SharedClock`: the simulated time in a small memory-mapped file. The test is its only
  writer; the gunicorn workers (through :func:`gateway_app`), the simulator processes (through a
  :class:`~simulators.engine.SimClock` whose time source it is) and the in-process scheduler jobs
  all read it, so the gateway and every broker live on one clock.
- :class:`GatewayProcess`: ``gunicorn`` serving the gateway with several workers, whose workers
  can be SIGKILLed at any moment (the master starts new ones).
- ``python -m tests.integration.soak_support sim <broker> <port> <clock file> <options>``: one
  simulator in its own process on the shared clock.
- :class:`Client`: places and cancels through the API with real HTTP. An answer lost to a killed
  worker (or a 409 "retry shortly", a 503) leaves the key *in doubt*; the key is replayed later,
  as a strategy would, until the gateway gives the order it made.
"""

from __future__ import annotations

import datetime as dt
import json
import mmap
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.integration.events_support import gunicorn_command

ROOT = Path(__file__).resolve().parents[2]
_LAYOUT = struct.Struct("<qq")  # sequence (odd while writing), microseconds since the epoch
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SharedClock:
    """A simulated UTC time kept in a file every process maps (a seqlock: one writer).

    Args:
        path: the file (created by :meth:`create`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        with open(self.path, "r+b") as handle:
            self._map = mmap.mmap(handle.fileno(), _LAYOUT.size)

    @classmethod
    def create(cls, path: str | os.PathLike[str], at: dt.datetime) -> SharedClock:
        """Create the file at ``at`` and return a clock on it."""
        Path(path).write_bytes(_LAYOUT.pack(0, _micros(at)))
        return cls(path)

    def now(self) -> dt.datetime:
        """Return the simulated time, aware UTC."""
        while True:
            before, micros = _LAYOUT.unpack_from(self._map, 0)
            after, _ = _LAYOUT.unpack_from(self._map, 0)
            if before == after and before % 2 == 0:
                return _EPOCH + dt.timedelta(microseconds=micros)

    def set(self, at: dt.datetime) -> None:
        """Move the time to ``at`` (never back)."""
        seq, micros = _LAYOUT.unpack_from(self._map, 0)
        target = _micros(at)
        if target < micros:
            raise ValueError("the shared clock only moves forward")
        _LAYOUT.pack_into(self._map, 0, seq + 1, micros)
        _LAYOUT.pack_into(self._map, 0, seq + 1, target)
        _LAYOUT.pack_into(self._map, 0, seq + 2, target)


def _micros(at: dt.datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("aware times only")
    return (at - _EPOCH) // dt.timedelta(microseconds=1)


def gateway_app() -> Any:
    """The gateway's app for gunicorn, on the shared clock named by ``SOAK_CLOCK_FILE``."""
    from web_server import create_app
    from web_server.services import clock

    app = create_app()
    clock.install(app, SharedClock(os.environ["SOAK_CLOCK_FILE"]).now)
    return app


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200, or fail if ``process`` exits."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited ({process.returncode})")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


class SimulatorProcess:
    """One broker simulator in a process of its own, on the shared clock."""

    def __init__(self, name: str, clock_file: str, log: Path, **options: Any) -> None:
        self.name = name
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.soak_support",
                "sim",
                name,
                str(port),
                clock_file,
                json.dumps(options),
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/_sim/clock", self.process)

    def stop(self) -> None:
        """Stop the process this object started."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class GatewayProcess:
    """The gateway under gunicorn (gthread), whose workers the test kills with SIGKILL."""

    def __init__(self, env: dict[str, str], log: Path, *, workers: int, threads: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("w")
        self.process = subprocess.Popen(
            gunicorn_command(
                "tests.integration.soak_support:gateway_app()",
                port,
                workers=workers,
                threads=threads,
                extra=("--graceful-timeout", "5"),
            ),
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/healthz", self.process)
        self.kills = 0

    def workers(self) -> list[int]:
        """The live worker pids (children of the gunicorn master)."""
        path = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
        try:
            with open(path) as handle:
                return [int(p) for p in handle.read().split()]
        except FileNotFoundError:
            return []

    def kill_one(self, rng: random.Random) -> int | None:
        """SIGKILL one worker at random (whatever it is doing); return its pid."""
        pids = self.workers()
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.kills += 1
        return pid

    def stop(self) -> None:
        """Stop gunicorn (the master and its workers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class Killer:
    """A thread that SIGKILLs a random gateway worker at random moments while it is armed."""

    def __init__(self, gateway: GatewayProcess, rng: random.Random, every: tuple[float, float]):
        self._gateway, self._rng, self._every = gateway, rng, every
        self._armed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-killer", daemon=True)
        self._thread.start()

    def arm(self, on: bool) -> None:
        """Kill while armed (the order waves); hold fire while the test checks."""
        (self._armed.set if on else self._armed.clear)()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(self._rng.uniform(*self._every)):
                return
            if self._armed.is_set():
                self._gateway.kill_one(self._rng)

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(timeout=10)


#: Answers after which the outcome of a request is not known yet: ask again later, same key.
IN_DOUBT = frozenset({409, 429, 500, 502, 503, 504})


class Client:
    """A strategy's view of the gateway: real HTTP, one session per thread, replays by key."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Return (status, JSON body); status 0 when the answer was lost (a killed worker)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            answer = self._session().request(
                method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs
            )
        except requests.RequestException:
            self._local.session = None  # the connection died with the worker
            return 0, None
        try:
            body = answer.json()
        except ValueError:
            body = None
        return answer.status_code, body

    def place(self, key: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST the order under ``key`` (the first time or a replay)."""
        return self.call("POST", "/api/v1/orders", json=body, headers={"Idempotency-Key": key})

    def cancel(self, order_id: str) -> tuple[int, Any]:
        """Ask for a cancel (repeatable)."""
        return self.call("POST", f"/api/v1/orders/{order_id}/cancel")

    def amend(self, order_id: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Ask for an amend under its own idempotency key."""
        return self.call(
            "POST",
            f"/api/v1/orders/{order_id}/amend",
            json=body,
            headers={"Idempotency-Key": key},
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON resource; a lost answer is retried (reads are safe to repeat)."""
        for _ in range(20):
            status, body = self.call("GET", path, params=params)
            if status == 200:
                return body
            time.sleep(0.2)
        raise AssertionError(f"GET {path} kept failing ({status}: {body})")


def _serve_simulator(name: str, port: int, clock_file: str, options: dict[str, Any]) -> None:
    from simulators.engine import SimClock
    from simulators.registry import create_simulator
    from simulators.server import run

    shared = SharedClock(clock_file)
    app = create_simulator(name, clock=SimClock(shared.now), **options)
    run(app, "127.0.0.1", port, quiet=True)


if __name__ == "__main__":
    if sys.argv[1] == "sim":
        _serve_simulator(sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]))
