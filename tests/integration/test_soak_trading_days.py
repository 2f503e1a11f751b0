"""The multi-day soak (issue 11, "Must show"): four brokers, five trading days, faults and kills.

KIS, Kiwoom, Upbit and Binance are driven through the gateway's API for five KRX trading days,
Tue 2026-12-22 to Tue 2026-12-29: the Christmas holiday (Fri 12-25) and a weekend lie between
the third and the fourth. Everything runs on one simulated clock (``soak_support.SharedClock``):
the simulators (each in its own process), the gateway — a real gunicorn with two workers, which
a thread SIGKILLs at random moments while orders are in flight — and the scheduler's reconcile
and poll jobs, which the test runs as the leader would after each move of the clock.

Each day every broker gets ``SOAK_ORDERS_PER_DAY`` orders (default 210) in ten waves: orders
that take liquidity (filled at once, or partially where the simulator's liquidity is thin),
market orders, resting orders cancelled a wave later, orders cancelled right after a partial
fill, and resting orders left to the close (KIS/Kiwoom: day orders lapse, EXPIRED; Upbit and
Binance have no day orders in the gateway's API, so theirs are cancelled at the end of the
session). Before each wave the simulators are told to misbehave on the next place and cancel
(``protocol_error``, ``reset`` before or after acting, ``drop``, a 500 after acting, ``late``).
A client whose answer was lost replays its Idempotency-Key, as a strategy would; a cancel is
repeated until the order is closed.

At the end of each day (after the KRX close and past KST midnight, when an absent order is
final) the audit (``soak_ledger.py``) compares the gateway's orders with each simulator's ledger
one to one — fields, fills, average price, status, the day of each number —, the holdings with
the broker's, and counts duplicates, lost orders and orders left open. It prints the tally.

Capabilities still being built (issue 11 items 6 and 9) are checked only when the served OpenAPI
document has them, and the test prints which were and were not checked.

Scale and time: ``SOAK_ORDERS_PER_DAY`` (default 210, the issue's "at least 200") and
``SOAK_SEED``. On the 2-core machine with other suites running the default takes about 5 minutes
(about 4,580 orders, 2,230 cancels, 390 amends through two gunicorn workers): the accounts are
polled and reconciled side by side, the orders are listed per account instead of read one by
one, amends and cancels go out together, and a lost answer costs the 1 s broker timeout.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections import Counter
from typing import Any

import pytest
import requests

from simulators.krx_calendar import TradingCalendar
from tests.conftest import KIS_MASTER_DIR, SECRETS_IN_USE, random_key, remember_secret
from tests.integration.soak_driver import (
    FAST,
    LIMITS,
    ORDERS_PER_DAY,
    SEED,
    SPECS,
    Broker,
    Soak,
    capabilities_of,
)
from tests.integration.soak_ledger import KST, TERMINAL, Tally, audit_day, holdings_match
from tests.integration.soak_support import (
    Client,
    GatewayProcess,
    Killer,
    SharedClock,
    SimulatorProcess,
)
from web_server.extensions import db
from web_server.services import clock as gateway_clock
from web_server.services.crypto_markets import sync_all_markets
from web_server.services.stocks_sync import run_sync

pytestmark = pytest.mark.slow

#: Tue 22 … Tue 29 December 2026: Christmas (Fri 25) and a weekend lie between the 3rd and 4th.
DAYS = [dt.date(2026, 12, d) for d in (22, 23, 24, 28, 29)]


@pytest.fixture
def soak(app, client, api_headers, database_url, base_config, tmp_path, monkeypatch):
    """Four simulator processes and a gunicorn gateway on one shared clock, accounts in both."""
    clock = SharedClock.create(
        tmp_path / "clock", dt.datetime.combine(DAYS[0], dt.time(8, 30), tzinfo=KST)
    )
    limits = {name: FAST for name in LIMITS}
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_INTERVAL_SECONDS", {"KIS": 0, "KIWOOM": 0})
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_MARGIN_SECONDS", 0)
    # A lost answer (the simulators' ``late`` fault holds the request) costs the caller this
    # long, on the critical path of every wave: 1 s is still 10-100 times a normal call.
    monkeypatch.setitem(app.config, "BROKER_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setitem(app.config, "RATE_LIMITS", limits)
    app.extensions.pop("gateway.rate_limiter", None)
    gateway_clock.install(app, clock.now)
    sims: dict[str, SimulatorProcess] = {}
    gateway = None
    try:
        for exchange, (options, _) in SPECS.items():
            sims[exchange] = SimulatorProcess(
                exchange.lower(), str(clock.path), tmp_path / f"{exchange}.log", **options
            )
        run_sync(database_url, str(KIS_MASTER_DIR))
        app.extensions["gateway.symbols"].invalidate()
        brokers = [_open_account(app, client, api_headers, e, sims[e]) for e in SPECS]
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "GATEWAY_SECRET_KEY": base_config["SECRET_KEY"],
            "GATEWAY_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
            "GATEWAY_ENV": "test",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_BROKER_TIMEOUT_SECONDS": "1",
            "GATEWAY_TOKEN_ISSUE_INTERVAL_SECONDS__KIS": "0",
            "GATEWAY_TOKEN_ISSUE_INTERVAL_SECONDS__KIWOOM": "0",
            "GATEWAY_TOKEN_ISSUE_MARGIN_SECONDS": "0",
            "SOAK_CLOCK_FILE": str(clock.path),
            **{f"GATEWAY_RATE_LIMITS__{name}": str(FAST) for name in LIMITS},
        }
        env.pop("GATEWAY_REDIS_URL", None)
        gateway = GatewayProcess(env, tmp_path / "gateway.log", workers=2, threads=8)
        running = Soak(app, clock, gateway, Client(gateway.url, api_headers))
        running.brokers = brokers
        yield running
        running.pool.shutdown()
    finally:
        if gateway is not None:
            gateway.stop()
        for sim in sims.values():
            sim.stop()
        gateway_clock.install(app, None)
        app.extensions.pop("gateway.rate_limiter", None)
        logged = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        assert all(value not in logged for value in SECRETS_IN_USE)


def _open_account(app, client, headers, exchange: str, sim: SimulatorProcess) -> Broker:
    key, secret = random_key(36), remember_secret(random_key(180))
    gateway_body: dict[str, Any] = {}
    if exchange in ("KIS", "KIWOOM"):
        body: dict[str, Any] = {
            "app_key": key,
            "account_number": "50123456",
            "cash": "100000000000",
            "positions": {"005930": 1000000, "000660": 1000000},
        }
        body.update(
            {"app_secret": secret, "product_code": "01"}
            if exchange == "KIS"
            else {"secret_key": secret}
        )
        gateway_body = {"securities_config": {"account_number": "50123456", "product_code": "01"}}
    else:
        quote = "KRW" if exchange == "UPBIT" else "USDT"
        body = {
            ("api_key" if exchange == "BINANCE" else "access_key"): key,
            "secret_key": secret,
            "balances": {quote: "100000000000", "BTC": "1000", "ETH": "10000"},
        }
    created = requests.post(f"{sim.url}/_sim/accounts", json=body, timeout=10)
    assert created.status_code == 201, created.text
    for symbol in SPECS[exchange][1]:
        if symbol.liquidity is not None:
            requests.post(
                f"{sim.url}/_sim/prices",
                json={"symbol": symbol.name, "liquidity": symbol.liquidity},
                timeout=10,
            ).raise_for_status()
    account = client.post(
        "/api/v1/accounts",
        headers=headers,
        json={
            "name": exchange.lower(),
            "exchange": exchange,
            "api_key": key,
            "api_secret": secret,
            "base_url": sim.url,
            **gateway_body,
        },
    )
    assert account.status_code == 201, account.get_json()
    if exchange in ("UPBIT", "BINANCE"):
        with app.app_context():
            sync_all_markets((exchange,))
            db.session.commit()
    return Broker(
        exchange,
        sim,
        created.json()["account_id"],
        account.get_json()["id"],
        SPECS[exchange][1],
        exchange in ("KIS", "KIWOOM"),
    )


def _day_orders(soak: Soak, broker: Broker, day: dt.date) -> list[dict[str, Any]]:
    """The gateway's orders of the account created on ``day`` (KST), through the API."""
    found, cursor = [], None
    while True:
        params: dict[str, Any] = {"account_id": broker.account_id, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = soak.client.get("/api/v1/orders", **params)
        for order in page["orders"]:
            created = dt.datetime.fromisoformat(order["created_at"]).astimezone(KST).date()
            if created == day:
                found.append(order)
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _gateway_fills(psql, broker: Broker) -> dict[str, list[dict[str, Any]]]:
    """The gateway's stored fills of the account's orders, by order id."""
    rows = psql.execute(
        "SELECT f.order_id::text, f.broker_fill_id, f.broker_fill_key, f.quantity, f.price,"
        " f.fee, f.tax FROM trade.fills f JOIN trade.orders o ON o.id = f.order_id"
        " WHERE o.account_id = %s",
        (broker.account_id,),
    ).fetchall()
    found: dict[str, list[dict[str, Any]]] = {}
    names = ("broker_fill_id", "broker_fill_key", "quantity", "price", "fee", "tax")
    for order_id, *values in rows:
        found.setdefault(order_id, []).append(dict(zip(names, values, strict=True)))
    return found


def _audit(soak: Soak, psql, broker: Broker, day: dt.date, mine: list, kills: int) -> Tally:
    """Audit one broker's day against its simulator's ledger and print its tally line."""
    since = dt.datetime.combine(day, dt.time(0), tzinfo=KST).isoformat()
    ledger = requests.get(
        f"{broker.sim.url}/_sim/ledger",
        params={"since": since, "account_id": broker.sim_account},
        timeout=30,
    ).json()["entries"]
    faults = requests.get(
        f"{broker.sim.url}/_sim/ledger",
        params={"since": since, "kind": "fault_applied"},
        timeout=30,
    ).json()["entries"]
    orders = _day_orders(soak, broker, day)
    tally = audit_day(
        securities=broker.securities,
        day=day,
        orders=orders,
        ledger=ledger + faults,
        gateway_fills=_gateway_fills(psql, broker) if soak.capabilities["fills"] else None,
        seen_numbers=broker.seen_numbers if broker.securities else None,
        charges_per_day=broker.exchange == "KIS",
    )
    unresolved = [i.key for i in mine if i.order is None and i.refusal is None]
    tally.lost += len(unresolved)
    tally.problems += [f"no answer for key {k}" for k in unresolved]
    owners = {o: i for i in mine for o in i.seen}
    for order in orders:
        if order["status"] not in TERMINAL:  # whose is it, and what became of its intent
            owner = owners.get(order["id"])
            tally.problems.append(
                f"open order {order['id']} of intent {owner and owner.key}"
                f" ({owner and owner.role}, amend {owner and owner.amend_answers})"
                f" replaces {order.get('replaces_order_id')}"
                f" by {order.get('replaced_by_order_id')}"
            )
    tally.replays = sum(i.replays for i in mine)
    tally.kills = kills
    refusals = Counter(i.refusal for i in mine if i.refusal)
    refusals.update(i.amend_state for i in mine if (i.amend_state or "").startswith("refused"))
    tally.refused = sum(refusals.values())
    holdings = soak.client.get(f"/api/v1/accounts/{broker.account_id}/holdings", refresh="true")
    sim_view = requests.get(
        f"{broker.sim.url}/_sim/accounts/{broker.sim_account}", timeout=10
    ).json()
    tally.problems += holdings_match(holdings, sim_view)
    if broker.securities:
        broker.seen_numbers |= {
            o["broker_order_id"].lstrip("0") for o in orders if o["broker_order_id"]
        }
    print(tally.line(day, broker.exchange), dict(refusals) or "", flush=True)
    return tally


def _print_problems(problems: list[str]) -> None:
    """Print every kind of problem found: a count of each, and its first five."""
    kinds: dict[str, list[str]] = {}
    for problem in problems:
        words = problem.split()
        kind = " ".join(w for w in words[2:] if not any(c.isdigit() for c in w))[:60]
        kinds.setdefault(kind, []).append(problem)
    for kind, found in kinds.items():
        print(f"PROBLEM x{len(found)}: {kind}")
        for problem in found[:5]:
            print("   ", problem)


def test_five_trading_days_on_four_brokers_with_faults_and_killed_workers(soak, psql):
    started = time.monotonic()
    capabilities = soak.capabilities = capabilities_of(soak.client)
    # A kill every 2-5 s of the waves: about as many kills a day as when a day took twice as long.
    killer = Killer(soak.gateway, random.Random(SEED + 1), every=(2.0, 5.0))
    calendar = TradingCalendar.xkrx()
    assert [calendar.is_trading_day(d) for d in DAYS] == [True] * 5
    gap = [DAYS[2] + dt.timedelta(days=n) for n in range(1, 4)]
    assert not any(calendar.is_trading_day(d) for d in gap)  # Christmas, then a weekend
    print(
        f"\nsoak: {ORDERS_PER_DAY} orders a day per broker, seed {SEED}; checked: orders,"
        f" fills (quantity, average price), status, day of each number, holdings; "
        + ", ".join(
            f"{k}: {'checked' if v else 'NOT available, not checked'}"
            for k, v in {
                "amends (orders replaced, both ledgers)": capabilities["amend"],
                "trade.fills per order (quantity, fee, tax, broker ids) and the orders'"
                " fee_total/tax_total": capabilities["fills"],
            }.items()
        )
    )
    print(Tally.HEADER)
    problems: list[str] = []
    totals = Tally()
    try:
        for day in DAYS:
            kills = soak.gateway.kills
            intents = soak.run_day(day, killer)
            for broker in soak.brokers:
                mine = [i for i in intents if i.broker is broker]
                tally = _audit(soak, psql, broker, day, mine, soak.gateway.kills - kills)
                problems += [f"{day} {broker.exchange}: {p}" for p in tally.problems]
                for name in (
                    "orders",
                    "fills",
                    "partials",
                    "amends",
                    "cancels",
                    "expiries",
                    "faults",
                    "duplicates",
                    "lost",
                    "non_terminal",
                    "replays",
                    "repeated_numbers",
                    "refused",
                    "gateway_fills",
                    "estimated_charges_off",
                ):
                    setattr(totals, name, getattr(totals, name) + getattr(tally, name))
                assert tally.orders >= 200 or ORDERS_PER_DAY < 200
    finally:
        killer.stop()
    totals.kills = soak.gateway.kills
    print(totals.line(DAYS[-1], "TOTAL"))
    print(f"scheduler outcomes: {dict(sorted(soak.scheduler_counts.items()))}")
    print(
        f"wall time {time.monotonic() - started:.0f} s:",
        ", ".join(f"{k} {v:.0f} s" for k, v in sorted(soak.seconds.items())),
    )
    _print_problems(problems)
    assert not problems, f"{len(problems)} problems; first: {problems[:10]}"
    assert totals.duplicates == totals.lost == totals.non_terminal == 0
    assert totals.kills > 0 and totals.faults > 0 and totals.partials > 0
    assert totals.expiries > 0 and totals.cancels > 0
    assert totals.amends > 0 or not capabilities["amend"]
