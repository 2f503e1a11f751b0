"""Token refresh at scale: 1,000 due tokens on 1,000 app keys against the KIS simulator.

Prints the wall time of the refresh job (as the scheduler's leader runs it), a second run with
nothing due, and the issuance counts from the simulator's ledger, which must be exactly one per
app key with no EGW00133 refusal.
"""

from __future__ import annotations

import secrets
import string
import sys
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from simulators.registry import create_simulator  # noqa: E402
from simulators.server import serve_in_thread  # noqa: E402
from web_server.extensions import db  # noqa: E402
from web_server.services.accounts import create_account  # noqa: E402
from web_server.services.tokens import refresh_due_tokens  # noqa: E402

ACCOUNTS = 1000


def _key(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def main() -> None:
    sim = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    with scratch_database("gateway_bench_tokens") as url:
        app = migrated_app(url)
        keys = set()
        with app.app_context():
            start = time.perf_counter()
            for number in range(ACCOUNTS):
                app_key, secret = _key(36), _key(180)
                account_number = f"{70000000 + number}"
                requests.post(
                    f"{sim.url}/_sim/accounts",
                    json={
                        "app_key": app_key,
                        "app_secret": secret,
                        "account_number": account_number,
                        "product_code": "01",
                        "cash": "1000000",
                    },
                    timeout=5,
                ).raise_for_status()
                create_account(
                    name=f"bench-{number}",
                    exchange="KIS",
                    environment="REAL",
                    api_key=app_key,
                    api_secret=secret,
                    base_url=sim.url,
                    securities_config={"account_number": account_number, "product_code": "01"},
                )
                keys.add(app_key)
            db.session.commit()
            setup = time.perf_counter() - start

            start = time.perf_counter()
            counts = refresh_due_tokens()
            refresh = time.perf_counter() - start
            start = time.perf_counter()
            again = refresh_due_tokens()
            idle = time.perf_counter() - start
        ledger = requests.get(f"{sim.url}/_sim/ledger", timeout=30).json()["entries"]
    sim.stop()
    issued = Counter(e["app_key"] for e in ledger if e["kind"] == "token_issued")
    refused = [e for e in ledger if e["kind"] == "token_refused"]
    print(f"accounts set up (simulator + encrypted gateway rows): {setup:6.2f} s")
    print(
        f"refresh job, {ACCOUNTS} due tokens on {ACCOUNTS} app keys: {refresh:6.2f} s"
        f"  ({refresh / ACCOUNTS * 1000:.1f} ms per token), outcomes {dict(counts)}"
    )
    print(
        f"refresh job again, nothing due:                    {idle * 1000:6.1f} ms"
        f"  ({dict(again) or 'no work'})"
    )
    print(
        f"ledger: {sum(issued.values())} issuances on {len(issued)} app keys, "
        f"max per key {max(issued.values())}, refusals (EGW00133 included) {len(refused)}"
    )
    print(f"ratio full refresh / idle check: {refresh / idle:,.0f}x")


if __name__ == "__main__":
    main()
