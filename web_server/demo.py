"""``gateway demo``: the whole product on one machine with no keys and no broker.

Starts the five broker simulators on loopback, creates a demo account at each (in the simulator)
and in the gateway (pointing at the simulator by ``base_url``, the only difference from a real
account), syncs the stocks master from the KIS simulator's master files, and runs the scheduler
in-process so the KIS and Kiwoom tokens are issued and refreshed by the job, as in production.
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import run_simple

from web_server.errors import GatewayError
from web_server.extensions import db
from web_server.models import Account

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoAccount:
    """One demo account: its simulator, the simulator's account body, the gateway's config."""

    name: str
    exchange: str
    simulator: str
    securities_config: dict[str, str] | None = None
    extra_body: dict[str, Any] | None = None


DEMO_ACCOUNTS = (
    DemoAccount(
        "demo-kis",
        "KIS",
        "kis",
        {"account_number": "50000001", "product_code": "01"},
        {"cash": "100000000", "positions": {"005930": 10, "000660": 5}},
    ),
    DemoAccount(
        "demo-kiwoom",
        "KIWOOM",
        "kiwoom",
        {"account_number": "60000001", "product_code": "01"},
        {"cash": "50000000", "positions": {"035720": 20}},
    ),
    DemoAccount(
        "demo-upbit",
        "UPBIT",
        "upbit",
        None,
        {"balances": {"KRW": "10000000", "BTC": "0.25", "ETH": "2"}},
    ),
    DemoAccount(
        "demo-bithumb", "BITHUMB", "bithumb", None, {"balances": {"KRW": "10000000", "BTC": "0.1"}}
    ),
    DemoAccount(
        "demo-binance", "BINANCE", "binance", None, {"balances": {"USDT": "10000", "BTC": "0.05"}}
    ),
)


def _random_key(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _simulator_body(spec: DemoAccount, api_key: str, api_secret: str) -> dict[str, Any]:
    """Return the ``POST /_sim/accounts`` body of DESIGN §7 for this broker."""
    body: dict[str, Any] = dict(spec.extra_body or {})
    if spec.simulator == "kis":
        assert spec.securities_config is not None
        body.update(
            app_key=api_key,
            app_secret=api_secret,
            account_number=spec.securities_config["account_number"],
            product_code=spec.securities_config["product_code"],
        )
    elif spec.simulator == "kiwoom":
        assert spec.securities_config is not None
        body.update(
            app_key=api_key,
            secret_key=api_secret,
            account_number=spec.securities_config["account_number"],
        )
    elif spec.simulator == "binance":
        body.update(api_key=api_key, secret_key=api_secret)
    else:
        body.update(access_key=api_key, secret_key=api_secret)
    return body


def start_simulators(host: str = "127.0.0.1") -> dict[str, str]:
    """Start the five simulators in threads on their demo ports; return their base URLs."""
    from simulators.registry import DEFAULT_PORTS, NAMES, create_simulator
    from simulators.server import serve_in_thread

    urls = {}
    for name in NAMES:
        handle = serve_in_thread(create_simulator(name), host, DEFAULT_PORTS[name])
        urls[name] = handle.url
    return urls


def ensure_demo_accounts(app: Flask, urls: dict[str, str]) -> list[Account]:
    """Create each demo account in its simulator and in the gateway (reusing stored keys)."""
    from web_server.services.accounts import create_account

    accounts = []
    with app.app_context():
        for spec in DEMO_ACCOUNTS:
            account = db.session.scalar(select(Account).where(Account.name == spec.name))
            if account is None:
                # python-kis insists on KIS's real key lengths (36 and 180); the others accept any.
                api_key = _random_key(36)
                api_secret = _random_key(180 if spec.exchange == "KIS" else 64)
                account = create_account(
                    name=spec.name,
                    exchange=spec.exchange,
                    environment="REAL",
                    api_key=api_key,
                    api_secret=api_secret,
                    securities_config=spec.securities_config,
                    base_url=urls[spec.simulator],
                )
            else:
                account.base_url = urls[spec.simulator]
            response = requests.post(
                f"{urls[spec.simulator]}/_sim/accounts",
                json=_simulator_body(spec, account.api_key, account.api_secret),
                timeout=10,
            )
            if response.status_code not in (201, 409):
                raise RuntimeError(
                    f"{spec.simulator} simulator refused the demo account: {response.status_code}"
                )
            accounts.append(account)
        db.session.commit()
    return accounts


def ensure_demo_api_key(app: Flask, instance: Path) -> str:
    """Return the demo strategy's API key (all scopes), created once and kept in the instance."""
    from web_server.services.api_keys import authenticate, create_api_key

    stored = instance / "demo_api_key"
    with app.app_context():
        if stored.exists():
            try:
                authenticate(f"Bearer {stored.read_text().strip()}")
                db.session.commit()
                return stored.read_text().strip()
            except GatewayError:
                db.session.rollback()  # revoked, or the database was reset: make a new one
        _, key = create_api_key(
            "demo strategy",
            ["orders:write", "orders:read", "holdings:read", "accounts:read", "admin"],
        )
        db.session.commit()
    descriptor = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key


def run(app: Flask, *, host: str, port: int, instance: Path) -> None:
    """Start everything and serve the gateway until interrupted."""
    from web_server.jobs.scheduler import build_scheduler, shutdown
    from web_server.services.stocks_sync import datasync_target, run_sync

    urls = start_simulators()
    app.config["KIS_MASTER_URL"] = f"{urls['kis']}/common/master"
    ensure_demo_accounts(app, urls)
    with app.app_context():
        url, role = datasync_target(app.config)
        summary = run_sync(url, app.config["KIS_MASTER_URL"], role=role)
    api_key = ensure_demo_api_key(app, instance)
    scheduler = build_scheduler(app, blocking=False)
    scheduler.start()
    print(f"  Simulators: {', '.join(f'{k} {v}' for k, v in urls.items())}")
    print(f"  Stocks master: {summary.line()}")
    print(
        "  Tokens: the scheduler issues the KIS and Kiwoom tokens within seconds "
        "(`gateway tokens status`)."
    )
    print(f"  API key (all scopes): {api_key}")
    print(f"  Try: curl -H 'Authorization: Bearer {api_key}' http://{host}:{port}/api/v1/accounts")
    try:
        # Not app.run(): Flask ignores it inside a `flask`/`gateway` CLI command.
        run_simple(host, port, app, threaded=True)
    finally:
        shutdown(app)
