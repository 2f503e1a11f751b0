"""Token refresh at scale: 1,000 due tokens on 1,000 app keys against the KIS simulator.

Every account first gets its token (the first issuance, timed for comparison). Then both clocks
move 18 hours ahead, as production sees it the next day: the simulator's, so KIS issues new tokens
rather than re-serving the old ones, and the gateway's (``app.extensions["gateway.clock"]``), so
every token is inside the refresh margin; the issuance windows are pushed back too. The refresh
job then runs against 1,000 existing due rows (the due query, row locks, encryption, commits).

Prints the wall time of the first issuance and of the due refresh side by side, a further run with
nothing due, and the issuance counts from the simulator's ledger, which must be exactly two per
app key (first + refresh) with no EGW00133 refusal.
"""

from __future__ import annotations

import secrets
import string
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import migrated_app, scratch_database  # noqa: E402
from simulators.registry import create_simulator  # noqa: E402
from simulators.server import serve_in_thread  # noqa: E402
from web_server.extensions import db  # noqa: E402
from web_server.services.accounts import create_account  # noqa: E402
from web_server.services.tokens import refresh_due_tokens  # noqa: E402

ACCOUNTS = 1000
AHEAD = timedelta(hours=18)


def _key(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _per_token(seconds: float) -> str:
    return f"{seconds:6.2f} s  ({seconds / ACCOUNTS * 1000:5.1f} ms per token)"


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

            # First issuance: no token rows yet (timed only for comparison).
            start = time.perf_counter()
            first_counts = refresh_due_tokens()
            first = time.perf_counter() - start

            # The next day: every token is due. Move both clocks and the issuance windows.
            requests.post(
                f"{sim.url}/_sim/clock",
                json={"advance_seconds": int(AHEAD.total_seconds())},
                timeout=30,
            ).raise_for_status()
            app.extensions["gateway.clock"] = lambda: datetime.now(UTC) + AHEAD
            db.session.execute(
                text(
                    "UPDATE system.token_issuance_windows"
                    " SET last_attempt_at = last_attempt_at - interval '2 minutes'"
                )
            )
            db.session.commit()

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
    per_key = Counter(issued[key] for key in keys)
    print(f"accounts set up (simulator + encrypted gateway rows): {setup:6.2f} s")
    rows = [
        ("first issuance (no token rows)", _per_token(first), dict(first_counts)),
        (f"due refresh (18 h on, {ACCOUNTS} rows)", _per_token(refresh), dict(counts)),
        ("again, nothing due", f"{idle * 1000:6.1f} ms", dict(again) or "no work"),
    ]
    print(f"refresh job, {ACCOUNTS} accounts on {ACCOUNTS} app keys:")
    for label, took, outcomes in rows:
        print(f"  {label:<34} {took:<34} outcomes {outcomes}")
    print(f"  {'ratio due refresh / idle check':<34} {refresh / idle:,.0f}x")
    exact = per_key.get(2, 0) == len(keys) and sum(issued.values()) == 2 * len(keys)
    verdict = "exactly 2 each: first + refresh" if exact else "NOT exactly 2 each"
    print(f"ledger: {sum(issued.values())} issuances on {len(issued)} app keys")
    print(f"  issuances per app key: {dict(sorted(per_key.items()))}  ({verdict})")
    print(f"  refusals (EGW00133 included): {len(refused)}")
    if not exact or refused:
        sys.exit(1)


if __name__ == "__main__":
    main()
