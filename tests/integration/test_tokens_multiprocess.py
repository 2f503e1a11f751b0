"""Exactly once across processes: 8 gateway processes, 20 due accounts, one KIS simulator.

Two groups of four processes (as two hosts would run them), each with a scheduler and with
request threads asking for tokens, share one PostgreSQL. The simulator's ledger is the proof: one
issuance per account per cycle and never an EGW00133. Then the leader is killed: another process
takes over within 15 s and the next cycle is still once per account.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import requests

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import SECRETS_IN_USE
from tests.integration.test_tokens import make_account
from web_server.jobs.scheduler import LEADER_LOCK_NAME

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 20
PROCESSES_PER_HOST = 4


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _issued_per_key(sim_url: str, keys: set[str]) -> Counter:
    entries = requests.get(f"{sim_url}/_sim/ledger", params={"kind": "token_issued"}, timeout=5)
    return Counter(e["app_key"] for e in entries.json()["entries"] if e["app_key"] in keys)


def _refusals(sim_url: str, keys: set[str]) -> list[dict]:
    entries = requests.get(f"{sim_url}/_sim/ledger", params={"kind": "token_refused"}, timeout=5)
    return [e for e in entries.json()["entries"] if e["app_key"] in keys]


@pytest.mark.slow
def test_eight_processes_issue_each_token_exactly_once(
    app, app_ctx, database_url, base_config, tmp_path
):
    sim = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    processes: list[subprocess.Popen] = []
    try:
        accounts = [make_account(sim.url) for _ in range(ACCOUNTS)]
        ids = [a.id for a in accounts]
        keys = {a.api_key for a in accounts}
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "GATEWAY_SECRET_KEY": base_config["SECRET_KEY"],
            "GATEWAY_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
            "GATEWAY_ENV": "test",
        }
        for host in ("host-a", "host-b"):
            for number in range(PROCESSES_PER_HOST):
                log = open(tmp_path / f"{host}-{number}.log", "w")  # noqa: SIM115
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.integration.token_worker"],
                        cwd=ROOT,
                        env={**env, "WORKER_ACCOUNTS": ",".join(map(str, ids))},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        raw = database_url.replace("+psycopg", "")

        def token_count() -> int:
            with psycopg.connect(raw) as conn:
                return conn.execute("SELECT count(*) FROM securities_tokens").fetchone()[0]

        # Cycle 1: no account has a token; every scheduler and every request thread wants one.
        _wait_for(lambda: token_count() == ACCOUNTS, 90, "20 tokens")
        time.sleep(3)  # give any duplicate a chance to show up
        issued = _issued_per_key(sim.url, keys)
        assert set(issued.values()) == {1} and len(issued) == ACCOUNTS, issued
        assert _refusals(sim.url, keys) == []

        # Kill the leader; another process must take over within 15 s.
        with psycopg.connect(raw) as conn:
            leader_pid, leader_instance = conn.execute(
                "SELECT pid, instance_id FROM system.process_locks WHERE lock_name = %s",
                (LEADER_LOCK_NAME,),
            ).fetchone()
        assert leader_pid in {p.pid for p in processes}
        os.kill(leader_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def new_leader():
            with psycopg.connect(raw) as conn:
                row = conn.execute(
                    "SELECT instance_id FROM system.process_locks WHERE lock_name = %s",
                    (LEADER_LOCK_NAME,),
                ).fetchone()
            return row and row[0] != leader_instance

        _wait_for(new_leader, 15, "a new leader")
        takeover = time.monotonic() - killed_at
        assert takeover < 15

        # Cycle 2: every token due again (6 h before expiry, still usable, so only the job
        # refreshes), the broker's 6-hour reuse and the one-a-minute window behind us.
        requests.post(f"{sim.url}/_sim/clock", json={"advance_seconds": 18 * 3600}, timeout=5)
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(
                "UPDATE system.token_issuance_windows"
                " SET last_attempt_at = last_attempt_at - interval '2 minutes'"
            )
            conn.execute("UPDATE securities_tokens SET expires_at = now() + interval '1 hour'")

        def refreshed() -> bool:
            with psycopg.connect(raw) as conn:
                return (
                    conn.execute(
                        "SELECT count(*) FROM securities_tokens"
                        " WHERE expires_at > now() + interval '20 hours'"
                    ).fetchone()[0]
                    == ACCOUNTS
                )

        _wait_for(refreshed, 60, "the second cycle")
        time.sleep(3)
        issued = _issued_per_key(sim.url, keys)
        assert set(issued.values()) == {2} and len(issued) == ACCOUNTS, issued
        assert _refusals(sim.url, keys) == []
        print(f"leader takeover after {takeover:.1f} s")
        # What the eight processes logged holds none of the keys or secrets they handled.
        logged = "".join(path.read_text() for path in tmp_path.glob("*.log"))
        assert all(secret not in logged for secret in SECRETS_IN_USE)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        sim.stop()
