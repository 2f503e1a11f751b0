"""The soak's driver: brokers, order intents and the waves of a trading day (see the test).

An intent is an order a strategy wants, under its Idempotency-Key; the driver places it, replays
its key while the answer is in doubt (a killed worker, a 409 "retry shortly"), amends and cancels
it as its role says, and runs the leader's reconcile and poll jobs after each move of the shared
clock. Every order of a day differs from the day's others in (symbol, side, type, quantity,
price), so the audit can tell each broker order's intent.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import requests

from brokers.krx import krx_stock_tick
from tests.integration.soak_ledger import KST, TERMINAL
from tests.integration.soak_support import (
    IN_DOUBT,
    Client,
    GatewayProcess,
    Killer,
    SharedClock,
    SimulatorProcess,
)
from web_server.extensions import db
from web_server.services.orders import poll_open_orders, reconcile_orders

#: Statuses in which an order can be cancelled (the first three) or amended.
OPEN = frozenset({"SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING"})
AMENDABLE = frozenset({"SUBMITTED", "PARTIALLY_FILLED"})

ORDERS_PER_DAY = int(os.environ.get("SOAK_ORDERS_PER_DAY", "210"))
WAVES = 10
SEED = int(os.environ.get("SOAK_SEED", "20261222"))
#: The broker limits the gateway keeps, raised: a simulated session passes in a minute of wall
#: time, so the real per-second limits would stretch it to an hour (they have their own tests).
FAST = 100000
LIMITS = (
    "KIS_REAL_PER_SECOND",
    "KIWOOM_REAL_PER_SECOND",
    "UPBIT_ORDER_PER_SECOND",
    "UPBIT_EXCHANGE_PER_SECOND",
    "UPBIT_QUOTATION_PER_SECOND",
    "BINANCE_WEIGHT_PER_MINUTE",
    "BINANCE_ORDERS_PER_10S",
    "BINANCE_ORDERS_PER_DAY",
)
PLACE_FAULTS = (
    {"kind": "protocol_error"},
    {"kind": "reset"},
    {"kind": "reset", "acted": True},
    {"kind": "drop"},
    {"kind": "http_status", "status": 500, "acted": True},
    {"kind": "late", "sim_seconds": 30},
)


@dataclass
class Symbol:
    """A market of a broker: where to price orders and how much to order."""

    name: str
    tick: Decimal | None  # None: KRX ticks by price
    base_qty: Decimal
    lot: Decimal
    liquidity: str | None  # per-step liquidity at the simulator (None: unlimited)


@dataclass
class Broker:
    """One broker: its simulator process, account there and in the gateway, and its markets."""

    exchange: str
    sim: SimulatorProcess
    sim_account: str
    account_id: int
    symbols: list[Symbol]
    securities: bool
    seen_numbers: set[str] = field(default_factory=set)


@dataclass
class Intent:
    """An order a strategy wants, under its Idempotency-Key, and what became of it."""

    key: str
    broker: Broker
    body: dict[str, Any]
    role: str  # take, market, cancel, partial_cancel, rest
    wave: int
    order: dict[str, Any] | None = None
    refusal: str | None = None
    replays: int = 0
    cancel_wanted: bool = False
    amend_wanted: bool = False
    amend_state: str | None = None  # None, in_doubt, done, refused …
    amend_price: str | None = None
    amend_answers: list[str] = field(default_factory=list)
    seen: set = field(default_factory=set)  # every order id the gateway gave for it
    #: Earlier orders of the intent (an amend's original): still cancelled if left open, e.g.
    #: when the amend never reached the broker.
    older: dict[str, dict[str, Any]] = field(default_factory=dict)

    def views(self) -> list[dict[str, Any]]:
        """Every order of the intent, the current one last."""
        return [*self.older.values(), *([self.order] if self.order is not None else [])]

    def keep(self, view: dict[str, Any]) -> None:
        """Record a fresh view of one of the intent's orders."""
        if self.order is not None and view["id"] == self.order["id"]:
            self.order = view
        elif view["id"] in self.older:
            self.older[view["id"]] = view

    used: set = field(default_factory=set)  # the day's order fields (shared by the day)


SPECS = {
    "KIS": (
        {"market_hours": "krx", "rate_limit_per_second": 0},
        [
            Symbol("005930", None, Decimal(1), Decimal(1), None),
            Symbol("000660", None, Decimal(5), Decimal(1), "2"),
        ],
    ),
    "KIWOOM": (
        {"market_hours": "krx", "rate_limit_per_second": 0},
        [
            Symbol("005930", None, Decimal(1), Decimal(1), None),
            Symbol("000660", None, Decimal(5), Decimal(1), "2"),
        ],
    ),
    "UPBIT": (
        {"order_rate": FAST, "exchange_rate": FAST, "quotation_rate": FAST},
        [
            Symbol("KRW-BTC", Decimal(1000), Decimal("0.0001"), Decimal("0.000001"), None),
            Symbol("KRW-ETH", Decimal(1000), Decimal("0.004"), Decimal("0.00001"), "0.002"),
        ],
    ),
    "BINANCE": (
        {"weight_limit": FAST * 100, "orders_per_10s": FAST, "orders_per_day": FAST * 10},
        [
            Symbol("BTCUSDT", Decimal("0.01"), Decimal("0.0002"), Decimal("0.00001"), None),
            Symbol("ETHUSDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.0001"), "0.006"),
        ],
    ),
}


class Soak:
    """The running soak: clock, simulators, gateway, scheduler jobs, client and counters."""

    def __init__(self, app, clock: SharedClock, gateway: GatewayProcess, client: Client):
        self.app, self.clock, self.gateway, self.client = app, clock, gateway, client
        self.brokers: list[Broker] = []
        self.rng = random.Random(SEED)
        self.pool = ThreadPoolExecutor(16)
        self.seq = 0
        self.kills_before = 0
        self.scheduler_counts: dict[str, int] = {}
        self.capabilities: dict[str, bool] = {}
        self.seconds: dict[str, float] = {}  # where the wall time went

    def timed(self, what: str, started: float) -> None:
        self.seconds[what] = self.seconds.get(what, 0.0) + time.monotonic() - started

    # -- time -----------------------------------------------------------------------------------

    def move(self, when: dt.datetime) -> None:
        """Move every clock to ``when``; the simulators catch up (fills, lapses, held requests)."""
        if when > self.clock.now():
            self.clock.set(when)
        started = time.monotonic()

        def catch_up(broker: Broker) -> None:
            requests.post(
                f"{broker.sim.url}/_sim/clock", json={"advance_seconds": 0}, timeout=60
            ).raise_for_status()

        self.each(catch_up, self.brokers)  # the simulators catch up side by side
        self.timed("clock", started)

    def later(self, seconds: float) -> None:
        self.move(self.clock.now() + dt.timedelta(seconds=seconds))

    def schedule(self) -> None:
        """One pass of the leader's order jobs, as ``gateway scheduler`` runs them."""
        for job in (reconcile_orders, poll_open_orders):
            started = time.monotonic()
            with self.app.app_context():
                for outcome, n in job().items():
                    self.scheduler_counts[outcome] = self.scheduler_counts.get(outcome, 0) + n
                db.session.commit()
            self.timed(job.__name__, started)

    # -- orders ---------------------------------------------------------------------------------

    def price(self, broker: Broker, symbol: Symbol) -> Decimal:
        answer = requests.get(
            f"{broker.sim.url}/_sim/prices", params={"symbol": symbol.name}, timeout=10
        )
        return Decimal(answer.json()["prices"][symbol.name])

    @staticmethod
    def on_tick(symbol: Symbol, price: Decimal, up: bool) -> str:
        tick = symbol.tick or krx_stock_tick(price)
        rounding = ROUND_UP if up else ROUND_DOWN
        return str((price / tick).to_integral_value(rounding=rounding) * tick)

    def intents(self, broker: Broker, wave: int, count: int, used: set) -> list[Intent]:
        """``count`` orders for one wave, each unique in the day by its fields."""
        prices = {s.name: self.price(broker, s) for s in broker.symbols}
        made = []
        for _ in range(count):
            role = self.rng.choices(
                ["take", "market", "cancel", "partial_cancel", "rest", "amend"],
                [30, 10, 20, 15, 15, 10],
            )[0]
            thin = role == "partial_cancel" or (role == "take" and self.rng.random() < 0.5)
            symbol = broker.symbols[1] if thin else broker.symbols[0]
            side = self.rng.choice(["BUY", "SELL"])
            if role == "market" and broker.exchange == "UPBIT":
                side = "SELL"  # an Upbit market buy is by amount (quote_amount), not quantity
            market = prices[symbol.name]
            if role in ("take", "partial_cancel"):
                factor = Decimal("1.02") if side == "BUY" else Decimal("0.98")
            else:
                factor = Decimal("0.9") if side == "BUY" else Decimal("1.1")
            price = self.on_tick(symbol, market * factor, up=side == "BUY")
            qty = symbol.base_qty + symbol.lot * self.rng.randrange(0, 40)
            unique = (symbol.name, side, qty, None if role == "market" else Decimal(price))
            while unique in used:
                qty += symbol.lot
                unique = (symbol.name, side, qty, None if role == "market" else Decimal(price))
            used.add(unique)
            body = {
                "account_id": broker.account_id,
                "symbol": symbol.name,
                "side": side,
                "type": "MARKET" if role == "market" else "LIMIT",
                "quantity": str(qty),
            }
            if role != "market":
                body["limit_price"] = price
            self.seq += 1
            made.append(Intent(f"soak-{SEED}-{self.seq}", broker, body, role, wave, used=used))
        return made

    def place(self, intent: Intent) -> None:
        status, body = self.client.place(intent.key, intent.body)
        if status in (200, 201):
            intent.order = body
            intent.seen.add(body["id"])
        elif status == 0 or status in IN_DOUBT:
            intent.replays += 1  # lost or not yet known: replayed later with the same key
        else:
            intent.refusal = f"{status} {body and body.get('code')}"

    def cancel(self, item: tuple[Intent, dict[str, Any]]) -> None:
        intent, view = item
        status, body = self.client.cancel(view["id"])
        if status == 200:
            intent.keep(body)

    def amend(self, intent: Intent) -> None:
        """Amend the resting order to a new price (the whole remainder), under its own key."""
        if intent.amend_price is None:
            intent.amend_price = self.amend_price(intent)
        status, body = self.client.amend(
            intent.order["id"], f"{intent.key}-amend", {"limit_price": intent.amend_price}
        )
        if status in (200, 201):
            if intent.order is not None and intent.order["id"] != body["id"]:
                intent.older[intent.order["id"]] = intent.order
            intent.order, intent.amend_state = body, "done"
            intent.seen.add(body["id"])
        elif status == 0 or status in IN_DOUBT:
            intent.amend_state = "in_doubt"  # the same key again later
            intent.replays += 1
        else:
            intent.amend_state = f"refused {status} {body and body.get('code')}"
        intent.amend_answers.append(f"{status} {body and (body.get('code') or body.get('status'))}")

    def amend_price(self, intent: Intent) -> str:
        symbol = next(s for s in intent.broker.symbols if s.name == intent.body["symbol"])
        side, qty = intent.body["side"], Decimal(intent.body["quantity"])
        price = Decimal(intent.body["limit_price"])
        step = Decimal("0.98") if side == "BUY" else Decimal("1.02")
        while True:  # a new price no other order of the day has
            price = Decimal(self.on_tick(symbol, price * step, up=side != "BUY"))
            if (symbol.name, side, qty, price) not in intent.used:
                intent.used.add((symbol.name, side, qty, price))
                return str(price)

    def refresh(self, intents: list[Intent]) -> None:
        """Bring the intents' orders up to date with a few calls, not one per order.

        Each account's orders are listed newest first (the day's fit in a page or two) until
        every order still open on our side is seen; only an order the listing misses (none,
        normally) is read on its own. The accounts are listed concurrently.
        """
        wanted: dict[int, set[str]] = {}
        for intent in intents:
            for view in intent.views():
                if view["status"] not in TERMINAL:
                    wanted.setdefault(intent.broker.account_id, set()).add(view["id"])

        def listing(account_id: int) -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            missing, cursor = set(wanted[account_id]), None
            while missing:  # newest first: the orders still open are mostly the newest
                params: dict[str, Any] = {"account_id": account_id, "limit": 100}
                if cursor:
                    params["cursor"] = cursor
                page = self.client.get("/api/v1/orders", **params)
                for order in page["orders"]:
                    found[order["id"]] = order
                    missing.discard(order["id"])
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            return found

        views: dict[str, dict[str, Any]] = {}
        for found in self.pool.map(listing, list(wanted)):
            views.update(found)
        moved = []
        for intent in intents:
            for view in intent.views():
                if view["status"] in TERMINAL:
                    continue
                if view["id"] in views:
                    intent.keep(views[view["id"]])
                else:
                    moved.append((intent, view))

        def read(item: tuple[Intent, dict[str, Any]]) -> None:
            item[0].keep(self.client.get(f"/api/v1/orders/{item[1]['id']}"))

        self.each(read, moved)

    def each(self, work, items) -> None:
        list(self.pool.map(work, items))

    def catch_up(self, day_intents: list[Intent]) -> None:
        """Replay keys in doubt; amend and cancel again what should be and is still open."""
        started = time.monotonic()
        self.each(self.place, [i for i in day_intents if i.order is None and i.refusal is None])
        self.timed("catch_up: replay", started)
        step = time.monotonic()
        self.refresh(day_intents)
        self.timed("catch_up: refresh", step)
        step = time.monotonic()
        amends = [
            i
            for i in day_intents
            if self.capabilities["amend"]
            and i.amend_wanted
            and i.order is not None
            and (
                i.amend_state == "in_doubt"
                or (i.amend_state is None and i.order["status"] in AMENDABLE)
            )
        ]
        amending = {id(i) for i in amends}
        cancels = [
            (i, view)
            for i in day_intents
            if i.cancel_wanted and i.amend_state != "in_doubt" and id(i) not in amending
            for view in i.views()
            if view["status"] in OPEN
        ]
        # Amends and cancels of different intents side by side (an intent being amended is
        # cancelled at the next round): a lost answer at one broker does not hold up the rest.
        self.each(
            lambda job: job(),
            [(lambda i=i: self.amend(i)) for i in amends]
            + [(lambda item=item: self.cancel(item)) for item in cancels],
        )
        self.timed("catch_up: amend and cancel", step)
        self.timed("catch_up", started)

    def faults(self, broker: Broker) -> None:
        """Queue one fault on the next place, cancel (and amend, half the time)."""
        targets = ["order", "cancel"]
        if self.capabilities["amend"] and self.rng.random() < 0.5:
            targets.append("amend")
        for target in targets:
            fault = {**self.rng.choice(PLACE_FAULTS), "target": target}
            requests.post(
                f"{broker.sim.url}/_sim/faults", json=fault, timeout=10
            ).raise_for_status()

    # -- a day ----------------------------------------------------------------------------------

    def run_day(self, day: dt.date, killer: Killer) -> list[Intent]:
        at = dt.datetime.combine(day, dt.time(9, 5), tzinfo=KST)
        self.move(at)
        per_wave = -(-ORDERS_PER_DAY // WAVES)
        used: set = set()
        intents: list[Intent] = []
        for wave in range(WAVES):
            self.move(at + dt.timedelta(minutes=35 * wave))
            wave_intents: list[Intent] = []
            for broker in self.brokers:
                self.faults(broker)
                wave_intents += self.intents(broker, wave, per_wave, used)
            intents += wave_intents
            killer.arm(True)
            started = time.monotonic()
            self.each(self.place, wave_intents)
            self.timed("place", started)
            for intent in intents:
                if intent.role == "partial_cancel" and intent.wave == wave:
                    intent.cancel_wanted = True
                if intent.role == "cancel" and intent.wave == wave - 1:
                    intent.cancel_wanted = True
                if intent.role == "amend" and intent.wave == wave - 1:
                    intent.amend_wanted = True
            self.catch_up(intents)
            killer.arm(False)
            self.later(90)  # past the cancel re-check and the start lease
            self.schedule()
            self.catch_up(intents)
        # The end of the session: cancel what should be cancelled and crypto's resting orders.
        for intent in intents:
            if intent.role == "cancel" or not intent.broker.securities:
                intent.cancel_wanted = True
        self.move(dt.datetime.combine(day, dt.time(15, 0), tzinfo=KST))
        self.settle(intents, rounds=4)
        self.move(dt.datetime.combine(day, dt.time(15, 35), tzinfo=KST))  # day orders lapse
        self.settle(intents, rounds=3)
        # Past KST midnight an order still absent from its day's complete history is final.
        self.move(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 5), tzinfo=KST))
        self.settle(intents, rounds=8)
        for broker in self.brokers:
            requests.delete(f"{broker.sim.url}/_sim/faults", timeout=10).raise_for_status()
        return intents

    def settle(self, intents: list[Intent], rounds: int) -> None:
        for _ in range(rounds):
            self.schedule()
            self.catch_up(intents)
            if all(
                i.refusal is not None
                or (i.order is not None and all(v["status"] in TERMINAL for v in i.views()))
                for i in intents
            ):
                self.schedule()
                return
            self.later(130)  # past the send window and the reconcile grace


def capabilities_of(client: Client) -> dict[str, bool]:
    """What of issue 11 items 6 and 9 the served API has (checked only when present)."""
    document = client.get("/api/v1/openapi.json")
    paths = document.get("paths", {})
    order = document.get("components", {}).get("schemas", {}).get("Order", {})
    properties = set(order.get("properties", {}))
    return {
        "amend": any(p.endswith("/amend") for p in paths),
        "fills": any("fill" in p for p in paths) or bool({"fees", "fee", "taxes"} & properties),
    }
