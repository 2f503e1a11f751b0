"""A gateway process for the multi-process token test: a scheduler plus request paths.

Run as ``python -m tests.integration.token_worker`` with the database and keys in the environment
(``DATABASE_URL``, ``GATEWAY_SECRET_KEY``, ``GATEWAY_ENCRYPTION_KEYS``) and ``WORKER_ACCOUNTS``, a
comma-separated list of account ids its request threads ask tokens for. It runs until killed.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time

from web_server import create_app
from web_server.errors import GatewayError
from web_server.jobs.scheduler import build_scheduler
from web_server.services.token_provider import AccountTokenProvider


def request_path(app, account_ids: list[int], stop: threading.Event) -> None:
    """Ask for tokens the way order requests would, forever."""
    rng = random.Random(os.getpid())
    while not stop.is_set():
        # A deferred issuance: the request would answer 429/503 and its client retry later.
        with app.app_context(), contextlib.suppress(GatewayError):
            AccountTokenProvider(rng.choice(account_ids)).get()
        time.sleep(rng.uniform(0.05, 0.2))


def main() -> None:
    app = create_app({"TOKEN_REFRESH_INTERVAL_SECONDS": 1, "LOG_LEVEL": "WARNING"})
    account_ids = [int(x) for x in os.environ["WORKER_ACCOUNTS"].split(",")]
    stop = threading.Event()
    for _ in range(2):
        threading.Thread(target=request_path, args=(app, account_ids, stop), daemon=True).start()
    scheduler = build_scheduler(app, blocking=True)
    print("worker ready", flush=True)
    scheduler.start()


if __name__ == "__main__":
    main()
