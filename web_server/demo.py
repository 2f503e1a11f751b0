"""``gateway demo``: the whole product on one machine with no keys and no broker.

Starts the five broker simulators on loopback, creates a demo account at each (in the simulator)
and in the gateway (pointing at the simulator by ``base_url`` and marked ``is_simulated``),
syncs the stocks master from the KIS simulator's master files and the crypto markets, and runs
the scheduler in-process so the KIS and Kiwoom tokens are issued and refreshed by the job, as in
production.

The simulators' state lives in the instance folder beside the gateway's database, so both survive
a restart together, and both go with ``gateway demo --reset``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle  # noqa: S403 - only for its exception type (simulators.persistence reads the files)
import secrets
import string
import threading
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

#: How often the simulators' state is written to the instance folder while the demo runs.
SAVE_INTERVAL_SECONDS = 10.0


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


class DemoSimulators:
    """The five simulators of the demo, their addresses, and their state kept on disk.

    Each simulator's data is saved in ``<instance>/simulators/<name>.state`` every
    :data:`SAVE_INTERVAL_SECONDS` and when the demo stops, and loaded when it starts, so that a
    restart finds at the simulators what the gateway's database remembers: the accounts and keys,
    the open orders, the positions and cash, the tokens issued (``simulators.persistence``).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.apps: dict[str, Flask] = {}
        self.urls: dict[str, str] = {}
        self.restored: dict[str, bool] = {}
        self._handles: list[Any] = []
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._save_lock = threading.Lock()

    def start(self, host: str = "127.0.0.1", base_port: int | None = None) -> dict[str, str]:
        """Build, restore and serve the five simulators; return their base URLs."""
        from simulators import persistence
        from simulators.registry import DEFAULT_PORTS, NAMES, create_simulator
        from simulators.server import serve_in_thread

        for index, name in enumerate(NAMES):
            app = create_simulator(name)
            path = self.state_dir / f"{name}.state"
            try:
                self.restored[name] = persistence.load_file(app, path) > 0
            except (persistence.SnapshotError, OSError, EOFError, pickle.UnpicklingError) as exc:
                raise DemoError(
                    f"The {name} simulator's saved state ({path}) cannot be read: {exc}. "
                    "Start over with `gateway demo --reset`."
                ) from exc
            port = base_port + index if base_port else DEFAULT_PORTS[name]
            handle = serve_in_thread(app, host, port)
            self._handles.append(handle)
            self.apps[name] = app
            self.urls[name] = handle.url
        self._saver = threading.Thread(target=self._save_periodically, name="demo-sim-saver")
        self._saver.daemon = True
        self._saver.start()
        return self.urls

    def save(self) -> None:
        """Write every simulator's state now (atomically, one file each)."""
        from simulators import persistence

        with self._save_lock:
            for name, app in self.apps.items():
                persistence.save_file(app, self.state_dir / f"{name}.state")

    def stop(self) -> None:
        """Stop saving and serving, after a last save."""
        self._stop.set()
        try:
            if self.apps:
                self.save()
        finally:
            for handle in self._handles:
                handle.stop()
            self._handles.clear()

    def _save_periodically(self) -> None:
        # A crash or SIGKILL then loses at most this much of the simulators' history.
        while not self._stop.wait(SAVE_INTERVAL_SECONDS):
            try:
                self.save()
            except Exception:  # the next round retries; the demo keeps running
                log.exception("could not save the simulators' state")


class DemoError(Exception):
    """The demo cannot start as asked; the message says what to do."""


def ensure_demo_accounts(app: Flask, simulators: DemoSimulators) -> list[Account]:
    """Create each demo account in its simulator and in the gateway (reusing stored keys).

    An account is created at its simulator when the gateway has just created it or when the
    simulator started without saved state (the first run, or state that predates persistence);
    otherwise the simulator already knows it.
    """
    from web_server.services.accounts import create_account

    urls = simulators.urls
    accounts = []
    with app.app_context():
        for spec in DEMO_ACCOUNTS:
            account = db.session.scalar(select(Account).where(Account.name == spec.name))
            created = account is None
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
            account.is_simulated = True
            if created or not simulators.restored.get(spec.simulator):
                response = requests.post(
                    f"{urls[spec.simulator]}/_sim/accounts",
                    json=_simulator_body(spec, account.api_key, account.api_secret),
                    timeout=10,
                )
                if response.status_code not in (201, 409):
                    raise DemoError(
                        f"{spec.simulator} simulator refused the demo account: "
                        f"{response.status_code} {response.text[:200]}"
                    )
            accounts.append(account)
        _follow_moved_simulators(simulators)
        db.session.commit()
    return accounts


def _follow_moved_simulators(simulators: DemoSimulators) -> None:
    """Mark hand-added accounts at the simulators as simulated; follow the simulators' ports.

    An operator may add accounts of their own at a demo simulator (``POST /_sim/accounts`` and
    the accounts page). They are simulated too, and when the simulators come up on other ports
    (``--simulator-ports``) their ``base_url`` follows, as the demo accounts' does.
    """
    urls_file = simulators.state_dir / "urls.json"
    previous: dict[str, str] = {}
    if urls_file.exists():
        previous = json.loads(urls_file.read_text())
    moves = {
        old: simulators.urls[name]
        for name, old in previous.items()
        if name in simulators.urls and old != simulators.urls[name]
    }
    for account in db.session.scalars(select(Account).where(Account.base_url.is_not(None))):
        if account.base_url in moves:
            account.base_url = moves[account.base_url]
        if account.base_url in simulators.urls.values():
            account.is_simulated = True
    simulators.state_dir.mkdir(parents=True, exist_ok=True)
    urls_file.write_text(json.dumps(simulators.urls, indent=2))


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


def _sync_markets(app: Flask) -> str:
    """Read the crypto simulators' markets, so crypto orders work from the first minute."""
    from web_server.services.crypto_markets import CRYPTO_EXCHANGES, sync_all_markets

    with app.app_context():
        summaries = sync_all_markets(CRYPTO_EXCHANGES)
        db.session.commit()
    return "; ".join(summary.line() for summary in summaries)


def run(
    app: Flask,
    *,
    host: str,
    port: int,
    instance: Path,
    simulator_base_port: int | None = None,
) -> None:
    """Start everything and serve the gateway until interrupted (Ctrl-C, SIGTERM, SIGHUP).

    Whatever ends the demo, the scheduler stops and the simulators' state is saved before this
    returns or raises; the caller then stops the embedded database.
    """
    from web_server.jobs.scheduler import build_scheduler, shutdown
    from web_server.services.stocks_sync import datasync_target, run_sync

    simulators = DemoSimulators(instance / "simulators")
    try:
        urls = simulators.start(base_port=simulator_base_port)
        app.config["KIS_MASTER_URL"] = f"{urls['kis']}/common/master"
        # Simulators on other ports than last time: the accounts follow them before any job runs.
        ensure_demo_accounts(app, simulators)
        with app.app_context():
            url, role = datasync_target(app.config)
            summary = run_sync(url, app.config["KIS_MASTER_URL"], role=role)
        markets = _sync_markets(app)
        api_key = ensure_demo_api_key(app, instance)
        scheduler = build_scheduler(app, blocking=False)
        scheduler.start()
        print(f"  Simulators: {', '.join(f'{k} {v}' for k, v in urls.items())}")
        restored = [name for name, done in simulators.restored.items() if done]
        if restored:
            print(f"  Simulator state restored from {simulators.state_dir}: {', '.join(restored)}")
        print(f"  Stocks master: {summary.line()}")
        print(f"  Crypto markets: {markets}")
        print(
            "  Tokens: the scheduler issues the KIS and Kiwoom tokens within seconds "
            "(`gateway tokens status`)."
        )
        print(f"  API key (all scopes): {api_key}")
        print(
            f"  Try: curl -H 'Authorization: Bearer {api_key}' http://{host}:{port}/api/v1/accounts"
        )
        print("  Stop with Ctrl-C; `gateway demo --reset` starts over.", flush=True)
        # Not app.run(): Flask ignores it inside a `flask`/`gateway` CLI command. Werkzeug's
        # server returns on Ctrl-C; SIGTERM/SIGHUP raise SystemExit (see the `demo` command).
        run_simple(host, port, app, threaded=True)
    finally:
        shutdown(app)
        simulators.stop()
        print("  Demo stopped; simulator state saved.", flush=True)
