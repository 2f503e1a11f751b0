"""The exchange core every broker simulator builds on.

One :class:`Engine` holds accounts (cash and holdings with available/locked amounts), instruments
(tick, lot and notional rules), a deterministic seeded price path per symbol, orders with partial
fills, fees and the KRX sell tax. Protocol facades (``simulators/kis`` …) translate their broker's
wire format into calls on this module and map its exceptions to the broker's error codes.

Time comes only from a :class:`SimClock`, so tests can jump hours ahead. What a broker "saw"
(orders, cancels, amendments, fills, token issuances) is appended to a :class:`Ledger`, the ground
truth for "nothing lost, nothing doubled".

Exception tree (facades map each leaf to their broker's code)::

    SimulatorError
    ├── UnknownAccount
    ├── DuplicateAccount
    ├── UnknownInstrument
    ├── InvalidOrder                 .rule says which rule failed (RuleViolated)
    ├── InsufficientFunds            .asset, .required, .available
    ├── InsufficientPosition         .asset, .required, .available
    ├── DuplicateClientOrderId       .client_order_id
    ├── OrderNotFound
    └── OrderNotOpen                 .status

Design choices (documented once, here):

* **Price path.** Knots every ``segment_steps`` steps carry a multi-octave value noise (octave
  ``k`` interpolates hashed random values every ``2**k`` knots with weight ``sqrt(2**k)``), which
  behaves like a random walk at short horizons and is bounded by ``±max_deviation`` around the
  instrument's initial price. Between knots the price moves linearly, then snaps to the tick.
  Any step is computed in ``O(octaves)`` from ``(seed, symbol, step)`` alone, all in integer and
  ``Decimal`` arithmetic, so it is identical on every platform; and because a segment is monotone,
  matching over a 24 h jump only looks inside segments whose end points cross a limit.
* **Fill price.** A marketable order fills at the path price at the step it was placed or amended
  (it takes liquidity, so it gets the better price). A resting limit order that the path crosses
  later fills at its limit price (it made the price). Market orders fill at the path price.
* **Liquidity.** ``Instrument.liquidity_per_step`` (or :meth:`Engine.set_liquidity`) is the base
  quantity that can trade per step and side, shared in time priority; ``None`` means unlimited, so
  every crossing order fills completely at once. Tests pin prices with :meth:`Engine.pin_price`.
* **Money.** ``Decimal`` everywhere. Notional, fees and taxes are truncated to the currency's
  places (``money_places``; KRW 0 by default), the way Korean brokers drop fractions of a won
  ("원 미만 절사"). Locks for fees are rounded up, so a lock always covers what it reserves.
* **KRX sell tax.** :data:`KRX_SELL_TAX_RATE_2026` = 0.20 %: 증권거래세 went 0.23 % → 0.20 % (2023)
  → 0.18 % (2024) → 0.15 % (2025), and the 2025 tax-law amendment restores 0.20 % from 2026
  (KOSPI 0.05 % + 농어촌특별세 0.15 %; KOSDAQ 0.20 %), so one rate serves both markets.
  It is a parameter of :class:`FeeSchedule`; set it if the law changes again.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import itertools
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any, cast

__all__ = [
    "KRX_SELL_TAX_RATE_2026",
    "PATH_EPOCH",
    "AmendMode",
    "AssetClass",
    "Balance",
    "ClientIdScope",
    "DuplicateAccount",
    "DuplicateClientOrderId",
    "Engine",
    "FeeSchedule",
    "Fill",
    "InsufficientFunds",
    "InsufficientPosition",
    "Instrument",
    "InvalidOrder",
    "Ledger",
    "LedgerEntry",
    "LedgerKind",
    "Order",
    "OrderNotFound",
    "OrderNotOpen",
    "OrderStatus",
    "OrderType",
    "PricePath",
    "RuleViolated",
    "Side",
    "SimClock",
    "SimulatorError",
    "TickRule",
    "UnknownAccount",
    "UnknownInstrument",
    "binance_tick",
    "fixed_tick",
    "int_order_numbers",
    "is_on_tick",
    "krx_tick_size",
    "sequential_order_numbers",
    "snap_to_tick",
    "to_decimal",
    "upbit_krw_tick_size",
    "uuid_order_numbers",
]

KRX_SELL_TAX_RATE_2026 = Decimal("0.0020")
#: Price steps are counted from this instant, so equal clock times give equal steps everywhere.
PATH_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

Number = Decimal | int | str


def to_decimal(value: Number, what: str = "value") -> Decimal:
    """Convert an int, a decimal string or a Decimal to a finite Decimal.

    Floats are refused on purpose: money never passes through binary floating point.

    Raises:
        ValueError: if the value is a float, not a number, or not finite.
    """
    if isinstance(value, bool | float):
        raise ValueError(
            f"{what} must be a decimal string or an integer, not {type(value).__name__}"
        )
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ValueError(f"{what} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{what} is not finite: {value!r}")
    return result


# --------------------------------------------------------------------------------------------
# Clock
# --------------------------------------------------------------------------------------------


class SimClock:
    """Real UTC time plus an offset that only moves forward.

    Args:
        time_source: returns the "real" aware UTC time; defaults to the system clock. Tests use
            :meth:`frozen` so the clock moves only when they advance it.
    """

    def __init__(self, time_source: Callable[[], datetime] | None = None) -> None:
        self._source = time_source or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    @classmethod
    def frozen(cls, at: datetime) -> SimClock:
        """Return a clock standing still at ``at`` (aware) until advanced."""
        if at.tzinfo is None:
            raise ValueError("the frozen time must be timezone-aware")
        start = at.astimezone(UTC)
        return cls(lambda: start)

    def now(self) -> datetime:
        """Return the simulated time, an aware UTC datetime."""
        with self._lock:
            offset = self._offset
        return self._source().astimezone(UTC) + offset

    def advance(self, seconds: float | int | Decimal) -> datetime:
        """Move the clock ``seconds`` ahead and return the new time.

        Raises:
            ValueError: if ``seconds`` is negative (simulated time never goes back).
        """
        delta = timedelta(seconds=float(seconds))
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()

    @property
    def offset(self) -> timedelta:
        """How far the simulated time is ahead of the time source."""
        with self._lock:
            return self._offset


# --------------------------------------------------------------------------------------------
# Ledger
# --------------------------------------------------------------------------------------------


class LedgerKind(enum.StrEnum):
    """What a ledger entry records."""

    ACCOUNT_CREATED = "account_created"
    ORDER_PLACED = "order_placed"
    ORDER_REJECTED = "order_rejected"
    ORDER_AMENDED = "order_amended"
    ORDER_CANCELLED = "order_cancelled"
    FILL = "fill"
    TOKEN_ISSUED = "token_issued"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REUSED = "token_reused"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REFUSED = "token_refused"  # noqa: S105 - a ledger kind, not a secret
    TOKENS_REVOKED_ALL = "tokens_revoked_all"
    FAULT_APPLIED = "fault_applied"


_RESERVED_LEDGER_KEYS = frozenset({"seq", "kind", "time", "account_id", "app_key"})


@dataclass(frozen=True)
class LedgerEntry:
    """One thing the broker saw, at a simulated time."""

    seq: int
    kind: str
    time: datetime
    account_id: str | None
    app_key: str | None
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Return a flat JSON-ready dict (Decimals and datetimes as strings)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time.isoformat(),
            "account_id": self.account_id,
            "app_key": self.app_key,
        }
        out.update({key: _jsonable(value) for key, value in self.data.items()})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class Ledger:
    """Append-only record of what the broker saw; thread-safe.

    Never store secrets here: app keys and account ids are fine, secrets and tokens are not
    (tokens appear as a fingerprint).
    """

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._entries: list[LedgerEntry] = []
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        *,
        account_id: str | None = None,
        app_key: str | None = None,
        **data: Any,
    ) -> LedgerEntry:
        """Append an entry stamped with the clock's time and return it.

        Raises:
            ValueError: if a data key collides with a reserved entry field.
        """
        clash = _RESERVED_LEDGER_KEYS.intersection(data)
        if clash:
            raise ValueError(f"reserved ledger keys: {sorted(clash)}")
        with self._lock:
            entry = LedgerEntry(
                seq=len(self._entries) + 1,
                kind=str(kind),
                time=self._clock.now(),
                account_id=account_id,
                app_key=app_key,
                data=dict(data),
            )
            self._entries.append(entry)
            return entry

    def entries(
        self,
        *,
        kinds: Iterable[str] | None = None,
        since: datetime | None = None,
        account_id: str | None = None,
    ) -> list[LedgerEntry]:
        """Return entries in order, filtered by kind(s), time (inclusive) and account."""
        wanted = {str(k) for k in kinds} if kinds is not None else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (wanted is None or e.kind in wanted)
            and (since is None or e.time >= since)
            and (account_id is None or e.account_id == account_id)
        ]


# --------------------------------------------------------------------------------------------
# Ticks and instruments
# --------------------------------------------------------------------------------------------

TickRule = Callable[[Decimal], Decimal]
"""A function from a price to the tick size that applies at that price."""

_KRX_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(2_000), Decimal(1)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(20_000), Decimal(10)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(200_000), Decimal(100)),
    (Decimal(500_000), Decimal(500)),
)


def krx_tick_size(price: Decimal) -> Decimal:
    """Return the KRX stock tick (호가가격단위, in force since 2023-01-25) at ``price``."""
    for upper, tick in _KRX_TICKS:
        if price < upper:
            return tick
    return Decimal(1_000)


# Upbit KRW market, docs.upbit.com "원화 마켓 주문 가격 단위" (table after the 2025-07-31
# change) for prices from 100 won up. Below 100 won the finer pre-change units are used
# [UNVERIFIED]; a facade that needs per-market exceptions (USDT/KRW 0.5, the 16 coins) passes
# its own rule.
_UPBIT_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.0001"), Decimal("0.00000001")),
    (Decimal("0.001"), Decimal("0.0000001")),
    (Decimal("0.01"), Decimal("0.000001")),
    (Decimal("0.1"), Decimal("0.00001")),
    (Decimal("1"), Decimal("0.0001")),
    (Decimal("10"), Decimal("0.001")),
    (Decimal("100"), Decimal("0.01")),
    (Decimal("5000"), Decimal("1")),
    (Decimal("10000"), Decimal("5")),
    (Decimal("50000"), Decimal("10")),
    (Decimal("100000"), Decimal("50")),
    (Decimal("500000"), Decimal("100")),
    (Decimal("1000000"), Decimal("500")),
)


def upbit_krw_tick_size(price: Decimal) -> Decimal:
    """Return the Upbit KRW-market price unit at ``price``."""
    for upper, tick in _UPBIT_KRW_TICKS:
        if price < upper:
            return tick
    return Decimal(1_000)


def fixed_tick(size: Number) -> TickRule:
    """Return a rule with one tick at every price (Binance ``PRICE_FILTER.tickSize``, Upbit BTC)."""
    tick = to_decimal(size, "tick size")
    if tick <= 0:
        raise ValueError("tick size must be positive")
    return lambda _price: tick


binance_tick = fixed_tick


def snap_to_tick(price: Decimal, rule: TickRule, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Round ``price`` to a multiple of the tick that applies there (at least one tick)."""
    tick = rule(price)
    snapped = (price / tick).quantize(Decimal(1), rounding=rounding) * tick
    # A price just under a band boundary can round up onto the next band, whose tick may be
    # coarser; the boundaries of both tables are multiples of both ticks, so this stays valid.
    return snapped if snapped > 0 else tick


def is_on_tick(price: Decimal, rule: TickRule) -> bool:
    """Return whether ``price`` is a positive multiple of its tick."""
    return price > 0 and price % rule(price) == 0


class AssetClass(enum.StrEnum):
    """Securities pay the KRX sell tax; crypto does not."""

    SECURITY = "security"
    CRYPTO = "crypto"


@dataclass(frozen=True)
class Instrument:
    """A tradable symbol and its trading rules.

    Attributes:
        symbol: the broker's code ("005930", "KRW-BTC", "BTCUSDT").
        quote: the currency prices are in and cash moves in ("KRW", "USDT").
        initial_price: centre of the price path (snapped to the tick).
        tick_rule: price → tick size (:func:`krx_tick_size`, :func:`fixed_tick`(…)).
        base: the asset held ("BTC"); defaults to ``symbol`` (a stock is its own asset).
        lot_size: quantity step (1 share; Binance ``LOT_SIZE.stepSize``; 1e-8 for Upbit).
        min_quantity: smallest order quantity; 0 means one lot.
        min_notional: smallest price × quantity (Upbit 5,000 KRW; Binance ``NOTIONAL``).
        asset_class: securities pay the sell tax.
        name: display name.
        liquidity_per_step: base quantity that can trade per step and side (None: unlimited).
        max_deviation: the path stays within initial × (1 ± max_deviation).
    """

    symbol: str
    quote: str
    initial_price: Decimal
    tick_rule: TickRule = krx_tick_size
    base: str = ""
    lot_size: Decimal = Decimal(1)
    min_quantity: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    asset_class: AssetClass = AssetClass.SECURITY
    name: str = ""
    liquidity_per_step: Decimal | None = None
    max_deviation: Decimal = Decimal("0.10")

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.symbol)
        for attr in ("initial_price", "lot_size", "min_quantity", "min_notional", "max_deviation"):
            object.__setattr__(self, attr, to_decimal(getattr(self, attr), attr))
        if self.liquidity_per_step is not None:
            object.__setattr__(
                self, "liquidity_per_step", to_decimal(self.liquidity_per_step, "liquidity")
            )
        if self.initial_price <= 0 or self.lot_size <= 0:
            raise ValueError("initial_price and lot_size must be positive")
        if not Decimal(0) <= self.max_deviation < Decimal(1):
            raise ValueError("max_deviation must be in [0, 1)")

    @property
    def quantity_places(self) -> int:
        """Decimal places of a quantity (from the lot size)."""
        return max(0, -self.lot_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    def floor_lot(self, quantity: Decimal) -> Decimal:
        """Round ``quantity`` down to a whole number of lots."""
        if quantity <= 0:
            return Decimal(0)
        return (quantity // self.lot_size) * self.lot_size


# --------------------------------------------------------------------------------------------
# Price path
# --------------------------------------------------------------------------------------------

_NOISE_HALF_RANGE = 1 << 20


class PricePath:
    """Deterministic, seeded, bounded price path per symbol (see the module docstring).

    Args:
        seed: the simulator's seed; equal seeds give equal prices at equal times.
        step_seconds: length of one price step.
        segment_steps: steps between two knots (the path is linear in between).
        octaves: number of noise octaves; the slowest one spans ``2**(octaves-1)`` segments.
    """

    def __init__(
        self,
        seed: int | str,
        *,
        step_seconds: float = 1.0,
        segment_steps: int = 60,
        octaves: int = 12,
    ) -> None:
        if step_seconds <= 0 or segment_steps < 1 or not 1 <= octaves <= 24:
            raise ValueError("bad price path parameters")
        self.seed = str(seed)
        self.step_us = int(round(step_seconds * 1_000_000))
        self.segment_steps = segment_steps
        self.octaves = octaves
        # Integer weights sqrt(2**k) * 1000: platform-independent, random-walk-like scaling.
        self._weights = [math.isqrt(1_000_000 * (1 << k)) for k in range(octaves)]
        self._scale_max = sum(self._weights) * _NOISE_HALF_RANGE * (1 << (octaves - 1))
        self._knots: dict[tuple[str, int], Decimal] = {}
        self._lock = threading.Lock()

    def step_at(self, when: datetime) -> int:
        """Return the step index containing ``when``."""
        delta = when - PATH_EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros // self.step_us

    def step_start(self, step: int) -> datetime:
        """Return the instant a step begins."""
        return PATH_EPOCH + timedelta(microseconds=step * self.step_us)

    def segment_end(self, step: int) -> int:
        """Return the last step of the segment containing ``step``."""
        return (step // self.segment_steps + 1) * self.segment_steps - 1

    def _noise(self, symbol: str, octave: int, index: int) -> int:
        digest = hashlib.blake2b(
            f"{self.seed}|{symbol}|{octave}|{index}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") % (2 * _NOISE_HALF_RANGE + 1) - _NOISE_HALF_RANGE

    def _knot(self, instrument: Instrument, knot: int) -> Decimal:
        key = (instrument.symbol, knot)
        with self._lock:
            cached = self._knots.get(key)
        if cached is not None:
            return cached
        top = self.octaves - 1
        total = 0
        for k, weight in enumerate(self._weights):
            span = 1 << k
            i, r = divmod(knot, span)
            a = self._noise(instrument.symbol, k, i)
            b = self._noise(instrument.symbol, k, i + 1)
            total += weight * (a * (span - r) + b * r) * (1 << (top - k))
        deviation = Decimal(total) * instrument.max_deviation / Decimal(self._scale_max)
        value = instrument.initial_price * (1 + deviation)
        with self._lock:
            if len(self._knots) > 200_000:  # bound memory on very long runs
                self._knots.clear()
            self._knots[key] = value
        return value

    def price(self, instrument: Instrument, step: int) -> Decimal:
        """Return the tick-snapped path price of ``instrument`` at ``step``."""
        knot, r = divmod(step, self.segment_steps)
        start = self._knot(instrument, knot)
        if r:
            end = self._knot(instrument, knot + 1)
            raw = start + (end - start) * r / self.segment_steps
        else:
            raw = start
        return snap_to_tick(raw, instrument.tick_rule)


# --------------------------------------------------------------------------------------------
# Orders, fills, balances (public value objects)
# --------------------------------------------------------------------------------------------


class Side(enum.StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Order type. A MARKET BUY may be sized by quantity or by quote amount."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class OrderStatus(enum.StrEnum):
    """Order state.

    REJECTED is for facades that keep broker-side rejections as orders; the engine itself raises
    before creating an order it refuses. REPLACED marks an order whose remainder moved to a new
    order number by an amendment (KIS, Kiwoom).
    """

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    REPLACED = "replaced"


_OPEN_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})


class AmendMode(enum.StrEnum):
    """Whether an amendment gets a new order number (KIS, Kiwoom) or changes the order in place."""

    NEW_NUMBER = "new_number"
    IN_PLACE = "in_place"


class ClientIdScope(enum.StrEnum):
    """How long a client order id stays taken: forever (Upbit) or while open (Binance)."""

    FOREVER = "forever"
    OPEN_ORDERS = "open_orders"


@dataclass(frozen=True)
class FeeSchedule:
    """Commission and tax rates.

    Attributes:
        fee_rate: commission on the notional of every fill (KIS 0.00015, Upbit 0.0005,
            Binance 0.001).
        sell_tax_rate: tax on the notional of SELL fills of securities (see the module docstring).
        fee_in_base_on_buy: charge buy commissions in the base asset (Binance without BNB).
    """

    fee_rate: Decimal = Decimal(0)
    sell_tax_rate: Decimal = Decimal(0)
    fee_in_base_on_buy: bool = False


@dataclass(frozen=True)
class Fill:
    """One execution."""

    fill_id: int
    order_no: str
    account_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str
    tax: Decimal
    time: datetime
    maker: bool


@dataclass(frozen=True)
class Order:
    """A snapshot of an order.

    ``quantity``/``remaining_quantity`` are None for a market buy sized by ``quote_amount``; such an
    order tracks ``quote_remaining`` instead and ends FILLED when the rest cannot buy one lot.
    """

    order_no: str
    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal | None
    price: Decimal | None
    quote_amount: Decimal | None
    client_order_id: str | None
    filled_quantity: Decimal
    remaining_quantity: Decimal | None
    cancelled_quantity: Decimal
    quote_remaining: Decimal | None
    filled_notional: Decimal
    fees: Decimal
    taxes: Decimal
    locked: Decimal
    locked_asset: str
    created_at: datetime
    updated_at: datetime
    fills: tuple[Fill, ...]
    original_order_no: str | None
    replaced_by: str | None
    extra: Mapping[str, Any]

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill."""
        return self.status in _OPEN_STATUSES

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price, or None before the first fill."""
        if not self.filled_quantity:
            return None
        return self.filled_notional / self.filled_quantity


@dataclass(frozen=True)
class Balance:
    """An asset in an account: cash (avg_price 0) or a holding."""

    asset: str
    total: Decimal
    locked: Decimal
    avg_price: Decimal

    @property
    def available(self) -> Decimal:
        """What new orders may use (Upbit ``balance``, KIS ``ord_psbl_qty``)."""
        return self.total - self.locked


@dataclass(frozen=True)
class AccountView:
    """A snapshot of an account."""

    account_id: str
    credential_id: str | None
    balances: Mapping[str, Balance]
    meta: Mapping[str, Any]


# --------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------


class SimulatorError(Exception):
    """Root of the engine's exceptions."""


class UnknownAccount(SimulatorError):
    """No account with this id."""


class DuplicateAccount(SimulatorError):
    """An account with this id already exists."""


class UnknownInstrument(SimulatorError):
    """The symbol is not listed."""


class RuleViolated(enum.StrEnum):
    """Which order rule failed (Binance names its filters; KIS/Upbit have their own codes)."""

    PRICE_TICK = "PRICE_TICK"
    PRICE = "PRICE"
    QUANTITY = "QUANTITY"
    LOT_SIZE = "LOT_SIZE"
    MIN_QUANTITY = "MIN_QUANTITY"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    ORDER_SHAPE = "ORDER_SHAPE"


class InvalidOrder(SimulatorError):
    """The order breaks a trading rule."""

    def __init__(self, rule: RuleViolated, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class InsufficientFunds(SimulatorError):
    """Not enough available cash (quote asset) for the order."""

    def __init__(self, asset: str, required: Decimal, available: Decimal) -> None:
        super().__init__(f"insufficient {asset}: required {required}, available {available}")
        self.asset, self.required, self.available = asset, required, available


class InsufficientPosition(SimulatorError):
    """Not enough available holding to sell."""

    def __init__(self, asset: str, required: Decimal, available: Decimal) -> None:
        super().__init__(f"insufficient {asset}: required {required}, available {available}")
        self.asset, self.required, self.available = asset, required, available


class DuplicateClientOrderId(SimulatorError):
    """The client order id was used before (within the engine's :class:`ClientIdScope`)."""

    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"duplicate client order id {client_order_id!r}")
        self.client_order_id = client_order_id


class OrderNotFound(SimulatorError):
    """No such order in this account."""


class OrderNotOpen(SimulatorError):
    """The order can no longer be cancelled or amended."""

    def __init__(self, order_no: str, status: OrderStatus) -> None:
        super().__init__(f"order {order_no} is {status.value}")
        self.order_no, self.status = order_no, status


# --------------------------------------------------------------------------------------------
# Order number formats (facades pick one)
# --------------------------------------------------------------------------------------------


def sequential_order_numbers(width: int = 10) -> Callable[[int], str]:
    """Zero-padded sequence numbers: KIS ``0000000001`` (width 10), Kiwoom width 7."""
    return lambda n: f"{n:0{width}d}"


def int_order_numbers(start: int = 1) -> Callable[[int], str]:
    """Plain integers as strings, from ``start`` (Binance ``orderId``)."""
    return lambda n: str(start + n - 1)


def uuid_order_numbers(seed: int | str) -> Callable[[int], str]:
    """Deterministic version-4-shaped UUIDs derived from the seed (Upbit, Bithumb ``uuid``)."""

    def make(n: int) -> str:
        digest = hashlib.blake2b(f"{seed}|order|{n}".encode(), digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    return make


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


@dataclass
class _Holding:
    total: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)


@dataclass
class _Account:
    account_id: str
    credential_id: str | None
    meta: dict[str, Any]
    holdings: dict[str, _Holding] = field(default_factory=dict)
    used_client_ids: set[str] = field(default_factory=set)

    def holding(self, asset: str) -> _Holding:
        return self.holdings.setdefault(asset, _Holding())


@dataclass
class _OrderRecord:
    seq: int
    order_no: str
    account_id: str
    instrument: Instrument
    side: Side
    order_type: OrderType
    quantity: Decimal | None
    price: Decimal | None
    quote_amount: Decimal | None
    client_order_id: str | None
    reserve_price: Decimal
    taker_step: int
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any]
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = Decimal(0)
    cancelled: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    taxes: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    fills: list[Fill] = field(default_factory=list)
    original_order_no: str | None = None
    replaced_by: str | None = None

    @property
    def remaining(self) -> Decimal | None:
        if self.quantity is None:
            return None
        return self.quantity - self.filled - self.cancelled

    @property
    def quote_remaining(self) -> Decimal | None:
        if self.quote_amount is None:
            return None
        return self.quote_amount - self.filled_notional

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN_STATUSES

    @property
    def lock_asset(self) -> str:
        return self.instrument.quote if self.side is Side.BUY else self.instrument.base


class Engine:
    """The shared exchange core. All public methods are thread-safe (one lock around state).

    Every public call first matches open orders against the price path up to the clock's now,
    so fills happen "on every interaction"; :meth:`sync` does only that (call it after moving
    the clock).

    Args:
        clock: the simulator's clock.
        seed: seeds the price path (and nothing else; order numbers come from ``order_numbers``).
        ledger: where placements, cancels, amendments and fills are recorded (a fresh one if None).
        instruments: listed symbols.
        fees: commission and tax rates.
        order_numbers: ``n -> order number`` for the n-th order (1-based), e.g.
            :func:`sequential_order_numbers`, :func:`uuid_order_numbers`, :func:`int_order_numbers`.
        money_places: decimal places per currency for notional, fees and taxes (default KRW 0).
        default_money_places: places for currencies not listed (8).
        client_id_scope: how long a client order id stays taken.
        burn_client_id_on_reject: a rejected placement still takes its client id (Upbit).
        amend_mode: default for :meth:`amend_order`.
        market_buy_reserve: a market buy by quantity locks ``qty × price × this`` (KIS reserves at
            the upper price limit, +30 %).
        timezone: the facade's timezone for date-range queries (Asia/Seoul for KRX brokers).
        price_path: a ready path (otherwise built from ``seed``, ``step_seconds``,
            ``segment_steps``).
        step_seconds: length of a price step.
        segment_steps: steps between price knots.
    """

    def __init__(
        self,
        *,
        clock: SimClock,
        seed: int | str = 0,
        ledger: Ledger | None = None,
        instruments: Iterable[Instrument] = (),
        fees: FeeSchedule | None = None,
        order_numbers: Callable[[int], str] | None = None,
        money_places: Mapping[str, int] | None = None,
        default_money_places: int = 8,
        client_id_scope: ClientIdScope = ClientIdScope.FOREVER,
        burn_client_id_on_reject: bool = True,
        amend_mode: AmendMode = AmendMode.NEW_NUMBER,
        market_buy_reserve: Decimal = Decimal("1.3"),
        timezone: tzinfo = UTC,
        price_path: PricePath | None = None,
        step_seconds: float = 1.0,
        segment_steps: int = 60,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.ledger = ledger or Ledger(clock)
        self.fees = fees or FeeSchedule()
        self.path = price_path or PricePath(
            seed, step_seconds=step_seconds, segment_steps=segment_steps
        )
        self.timezone = timezone
        self.client_id_scope = client_id_scope
        self.burn_client_id_on_reject = burn_client_id_on_reject
        self.amend_mode = amend_mode
        self.market_buy_reserve = to_decimal(market_buy_reserve, "market_buy_reserve")
        self._order_numbers = order_numbers or sequential_order_numbers()
        self._money_places = {"KRW": 0, **(money_places or {})}
        self._default_money_places = default_money_places
        self._lock = threading.RLock()
        self._instruments: dict[str, Instrument] = {}
        self._accounts: dict[str, _Account] = {}
        self._orders: dict[str, _OrderRecord] = {}
        self._orders_by_account: dict[str, list[_OrderRecord]] = {}
        self._open_by_symbol: dict[str, list[_OrderRecord]] = {}
        self._matched_through: dict[str, int] = {}
        self._liquidity_used: dict[tuple[str, Side], tuple[int, Decimal]] = {}
        self._liquidity_override: dict[str, Decimal | None] = {}
        self._pins: dict[str, list[tuple[int, Decimal | None]]] = {}
        self._order_seq = itertools.count(1)
        self._fill_seq = itertools.count(1)
        for instrument in instruments:
            self.add_instrument(instrument)

    # ---- instruments and prices ---------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """List (or re-list with new rules) an instrument."""
        with self._lock:
            self._instruments[instrument.symbol] = instrument

    def instrument(self, symbol: str) -> Instrument:
        """Return a listed instrument.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            try:
                return self._instruments[symbol]
            except KeyError:
                raise UnknownInstrument(symbol) from None

    def instruments(self) -> list[Instrument]:
        """Return all listed instruments, in listing order."""
        with self._lock:
            return list(self._instruments.values())

    def price(self, symbol: str, at: datetime | None = None) -> Decimal:
        """Return the price of ``symbol`` now (or at ``at``), tick-snapped.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            self._sync()
            instrument = self.instrument(symbol)
            step = self.path.step_at(at or self.clock.now())
            return self._price_at(instrument, step)

    def pin_price(self, symbol: str, price: Number | None) -> None:
        """Hold ``symbol`` at ``price`` from now on (None: back to the path). For tests.

        Raises:
            UnknownInstrument: if the symbol is not listed.
            InvalidOrder: if the price is not on the tick.
        """
        with self._lock:
            self._sync()
            instrument = self.instrument(symbol)
            value = None if price is None else to_decimal(price, "price")
            if value is not None and not is_on_tick(value, instrument.tick_rule):
                raise InvalidOrder(RuleViolated.PRICE_TICK, f"{value} is not on the tick")
            step = self.path.step_at(self.clock.now())
            pins = self._pins.setdefault(symbol, [])
            while pins and pins[-1][0] >= step:
                pins.pop()
            pins.append((step, value))
            self._match_new_price(symbol, step)

    def set_liquidity(self, symbol: str, quantity: Number | None) -> None:
        """Set the per-step liquidity of ``symbol`` (None: unlimited). For tests.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        with self._lock:
            self._sync()
            self.instrument(symbol)
            self._liquidity_override[symbol] = (
                None if quantity is None else to_decimal(quantity, "liquidity")
            )

    # ---- accounts ---------------------------------------------------------------------------

    def create_account(
        self,
        account_id: str,
        *,
        balances: Mapping[str, Number] | None = None,
        positions: Mapping[str, Number] | None = None,
        credential_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> AccountView:
        """Open an account with cash ``balances`` and ``positions`` (asset → quantity).

        Positions get the instrument's current price as average price when the symbol is listed.

        Raises:
            DuplicateAccount: if the id is taken.
            ValueError: for a negative or non-decimal amount.
        """
        with self._lock:
            self._sync()
            if account_id in self._accounts:
                raise DuplicateAccount(account_id)
            account = _Account(account_id, credential_id, dict(meta or {}))
            for asset, amount in (balances or {}).items():
                value = to_decimal(amount, f"balance of {asset}")
                if value < 0:
                    raise ValueError(f"balance of {asset} is negative")
                account.holding(asset).total = value
            now_step = self.path.step_at(self.clock.now())
            for asset, amount in (positions or {}).items():
                value = to_decimal(amount, f"position in {asset}")
                if value < 0:
                    raise ValueError(f"position in {asset} is negative")
                holding = account.holding(asset)
                holding.total = value
                listed = self._instrument_for_base(asset)
                if listed is not None and value:
                    holding.avg_price = self._price_at(listed, now_step)
            self._accounts[account_id] = account
            self._orders_by_account[account_id] = []
            self.ledger.record(
                LedgerKind.ACCOUNT_CREATED, account_id=account_id, app_key=credential_id
            )
            return self._account_view(account)

    def has_account(self, account_id: str) -> bool:
        """Return whether the account exists."""
        with self._lock:
            return account_id in self._accounts

    def account(self, account_id: str) -> AccountView:
        """Return a snapshot of an account.

        Raises:
            UnknownAccount: if there is no such account.
        """
        with self._lock:
            self._sync()
            return self._account_view(self._account(account_id))

    def balance(self, account_id: str, asset: str) -> Balance:
        """Return one asset of an account (zero if never held).

        Raises:
            UnknownAccount: if there is no such account.
        """
        with self._lock:
            self._sync()
            holding = self._account(account_id).holdings.get(asset, _Holding())
            return Balance(asset, holding.total, holding.locked, holding.avg_price)

    def deposit(self, account_id: str, asset: str, amount: Number) -> Balance:
        """Add (or with a negative amount, withdraw available) ``amount`` of ``asset``.

        Raises:
            UnknownAccount: if there is no such account.
            InsufficientFunds: if a withdrawal exceeds what is available.
        """
        with self._lock:
            self._sync()
            value = to_decimal(amount, "amount")
            holding = self._account(account_id).holding(asset)
            if value < 0 and holding.total - holding.locked < -value:
                raise InsufficientFunds(asset, -value, holding.total - holding.locked)
            holding.total += value
            return Balance(asset, holding.total, holding.locked, holding.avg_price)

    # ---- orders -----------------------------------------------------------------------------

    def place_order(
        self,
        account_id: str,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        *,
        quantity: Number | None = None,
        price: Number | None = None,
        quote_amount: Number | None = None,
        client_order_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Order:
        """Validate, lock funds or holdings, record, and match an order at the current step.

        LIMIT needs ``quantity`` and ``price``; MARKET needs ``quantity``, or for a BUY either
        ``quantity`` or ``quote_amount`` (Upbit ``ord_type=price``, Binance ``quoteOrderQty``).
        ``extra`` is kept on the order for the facade (route, broker order type code, …).

        Raises:
            UnknownAccount, UnknownInstrument, InvalidOrder, InsufficientFunds,
            InsufficientPosition, DuplicateClientOrderId.
        """
        with self._lock:
            self._sync()
            account = self._account(account_id)
            try:
                record = self._new_order(
                    account,
                    symbol,
                    Side(side),
                    OrderType(order_type),
                    quantity,
                    price,
                    quote_amount,
                    client_order_id,
                    extra,
                )
            except SimulatorError as exc:
                if (
                    client_order_id is not None
                    and self.burn_client_id_on_reject
                    and self.client_id_scope is ClientIdScope.FOREVER
                    and not isinstance(exc, DuplicateClientOrderId)
                ):
                    account.used_client_ids.add(client_order_id)
                self.ledger.record(
                    LedgerKind.ORDER_REJECTED,
                    account_id=account_id,
                    app_key=account.credential_id,
                    symbol=symbol,
                    side=str(side),
                    order_type=str(order_type),
                    quantity=None if quantity is None else str(quantity),
                    price=None if price is None else str(price),
                    quote_amount=None if quote_amount is None else str(quote_amount),
                    client_order_id=client_order_id,
                    reason=type(exc).__name__,
                    message=str(exc),
                )
                raise
            return self._snapshot(record)

    def _new_order(
        self,
        account: _Account,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Number | None,
        price: Number | None,
        quote_amount: Number | None,
        client_order_id: str | None,
        extra: Mapping[str, Any] | None,
    ) -> _OrderRecord:
        instrument = self.instrument(symbol)
        now = self.clock.now()
        step = self.path.step_at(now)
        current = self._price_at(instrument, step)
        qty, limit, amount = self._validate_shape(
            instrument, side, order_type, quantity, price, quote_amount, current
        )
        if client_order_id is not None:
            self._check_client_id(account, client_order_id)
        record = _OrderRecord(
            seq=0,
            order_no="",
            account_id=account.account_id,
            instrument=instrument,
            side=side,
            order_type=order_type,
            quantity=qty,
            price=limit,
            quote_amount=amount,
            client_order_id=client_order_id,
            reserve_price=limit if limit is not None else current,
            taker_step=step,
            created_at=now,
            updated_at=now,
            extra=dict(extra or {}),
        )
        self._retarget_lock(account, record)  # raises before anything is recorded
        record.seq = next(self._order_seq)
        record.order_no = self._order_numbers(record.seq)
        if client_order_id is not None:
            account.used_client_ids.add(client_order_id)
        self._register(record)
        self.ledger.record(
            LedgerKind.ORDER_PLACED,
            account_id=account.account_id,
            app_key=account.credential_id,
            **self._ledger_order_fields(record),
        )
        self._matched_through.setdefault(symbol, step)
        self._match_step(instrument, step, [record])
        return record

    def _validate_shape(
        self,
        instrument: Instrument,
        side: Side,
        order_type: OrderType,
        quantity: Number | None,
        price: Number | None,
        quote_amount: Number | None,
        current: Decimal,
    ) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
        def number(value: Number, what: str, rule: RuleViolated) -> Decimal:
            try:
                result = to_decimal(value, what)
            except ValueError as exc:
                raise InvalidOrder(rule, str(exc)) from exc
            if result <= 0:
                raise InvalidOrder(rule, f"{what} must be positive")
            return result

        qty = None if quantity is None else number(quantity, "quantity", RuleViolated.QUANTITY)
        limit = None if price is None else number(price, "price", RuleViolated.PRICE)
        amount = (
            None if quote_amount is None else number(quote_amount, "amount", RuleViolated.QUANTITY)
        )
        if order_type is OrderType.LIMIT:
            if qty is None or limit is None or amount is not None:
                raise InvalidOrder(
                    RuleViolated.ORDER_SHAPE, "a limit order needs quantity and price"
                )
        else:
            if limit is not None:
                raise InvalidOrder(RuleViolated.ORDER_SHAPE, "a market order takes no price")
            if (qty is None) == (amount is None):
                raise InvalidOrder(
                    RuleViolated.ORDER_SHAPE, "a market order needs quantity or quote amount"
                )
            if amount is not None and side is Side.SELL:
                raise InvalidOrder(RuleViolated.ORDER_SHAPE, "a market sell is sized by quantity")
        if limit is not None and not is_on_tick(limit, instrument.tick_rule):
            raise InvalidOrder(
                RuleViolated.PRICE_TICK,
                f"price {limit} is not a multiple of the tick {instrument.tick_rule(limit)}",
            )
        if qty is not None:
            if qty % instrument.lot_size:
                raise InvalidOrder(
                    RuleViolated.LOT_SIZE,
                    f"quantity {qty} is not a multiple of {instrument.lot_size}",
                )
            if qty < max(instrument.min_quantity, instrument.lot_size):
                raise InvalidOrder(
                    RuleViolated.MIN_QUANTITY, f"quantity {qty} is below the minimum"
                )
        notional = amount if amount is not None else qty * (limit or current)  # type: ignore[operator]
        if notional < instrument.min_notional:
            raise InvalidOrder(
                RuleViolated.MIN_NOTIONAL,
                f"order value {notional} is below the minimum {instrument.min_notional}",
            )
        return qty, limit, amount

    def _check_client_id(self, account: _Account, client_order_id: str) -> None:
        if self.client_id_scope is ClientIdScope.FOREVER:
            taken = client_order_id in account.used_client_ids
        else:
            taken = any(
                o.client_order_id == client_order_id and o.is_open
                for o in self._orders_by_account[account.account_id]
            )
        if taken:
            raise DuplicateClientOrderId(client_order_id)

    def cancel_order(
        self, account_id: str, order_no: str, *, quantity: Number | None = None
    ) -> Order:
        """Cancel ``quantity`` of the remainder (default: all of it) and release its lock.

        An order whose remainder reaches zero becomes CANCELLED (keeping any fills).

        Raises:
            UnknownAccount, OrderNotFound, OrderNotOpen,
            InvalidOrder: if ``quantity`` exceeds the remainder or is not a whole lot.
        """
        with self._lock:
            self._sync()
            account = self._account(account_id)
            record = self._order(account_id, order_no)
            if not record.is_open:
                raise OrderNotOpen(order_no, record.status)
            now = self.clock.now()
            remaining = record.remaining
            if quantity is None or remaining is None:
                cut = remaining
            else:
                cut = self._checked_quantity(record.instrument, quantity)
                if cut > remaining:
                    raise InvalidOrder(
                        RuleViolated.QUANTITY,
                        f"cancel quantity {cut} exceeds remainder {remaining}",
                    )
            if remaining is None:  # a market buy by amount: cancel what is left of the amount
                record.quote_amount = record.filled_notional
                record.status = OrderStatus.CANCELLED
            else:
                record.cancelled += cut  # type: ignore[operator]
                if record.remaining == 0:
                    record.status = OrderStatus.CANCELLED
            record.updated_at = now
            self._retarget_lock(account, record)
            self._unregister_if_closed(record)
            self.ledger.record(
                LedgerKind.ORDER_CANCELLED,
                account_id=account_id,
                app_key=account.credential_id,
                order_no=order_no,
                symbol=record.instrument.symbol,
                cancelled_quantity=cut,
                status=record.status,
            )
            return self._snapshot(record)

    def amend_order(
        self,
        account_id: str,
        order_no: str,
        *,
        new_price: Number | None = None,
        new_quantity: Number | None = None,
        mode: AmendMode | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Order:
        """Change the price and/or quantity of an open limit order's remainder.

        ``NEW_NUMBER`` (KIS, Kiwoom): ``new_quantity`` units of the remainder (default all) move to
        a new order number at ``new_price`` (default the old price); the original keeps the rest,
        or becomes REPLACED when nothing is left. ``IN_PLACE``: the order keeps its number and its
        remainder becomes ``new_quantity``. Locks are re-computed (raising if more is needed than
        available) and the amended order is matched at once (a now-marketable price fills).
        Returns the live order: the new one, or the same one in place.

        Raises:
            UnknownAccount, OrderNotFound, OrderNotOpen, InvalidOrder, InsufficientFunds,
            InsufficientPosition.
        """
        with self._lock:
            self._sync()
            account = self._account(account_id)
            record = self._order(account_id, order_no)
            if not record.is_open:
                raise OrderNotOpen(order_no, record.status)
            if record.order_type is not OrderType.LIMIT:
                raise InvalidOrder(RuleViolated.ORDER_SHAPE, "only limit orders can be amended")
            instrument = record.instrument
            price = record.price if new_price is None else to_decimal(new_price, "price")
            if price is None or record.remaining is None:  # limit orders always have both
                raise InvalidOrder(RuleViolated.ORDER_SHAPE, "not a limit order")
            if price <= 0 or not is_on_tick(price, instrument.tick_rule):
                raise InvalidOrder(RuleViolated.PRICE_TICK, f"price {price} is not on the tick")
            qty = (
                record.remaining
                if new_quantity is None
                else self._checked_quantity(instrument, new_quantity)
            )
            if qty * price < instrument.min_notional:
                raise InvalidOrder(RuleViolated.MIN_NOTIONAL, "amended order below the minimum")
            now = self.clock.now()
            step = self.path.step_at(now)
            if (mode or self.amend_mode) is AmendMode.IN_PLACE:
                live = self._amend_in_place(account, record, price, qty, now, step)
            else:
                live = self._amend_new_number(account, record, price, qty, now, step, extra)
            self.ledger.record(
                LedgerKind.ORDER_AMENDED,
                account_id=account_id,
                app_key=account.credential_id,
                order_no=order_no,
                new_order_no=live.order_no,
                symbol=instrument.symbol,
                price=price,
                quantity=qty,
            )
            self._match_step(instrument, step, [live])
            return self._snapshot(live)

    def _amend_in_place(
        self,
        account: _Account,
        record: _OrderRecord,
        price: Decimal,
        qty: Decimal,
        now: datetime,
        step: int,
    ) -> _OrderRecord:
        old = (record.price, record.quantity, record.reserve_price, record.taker_step)
        record.price, record.reserve_price, record.taker_step = price, price, step
        record.quantity = record.filled + record.cancelled + qty
        try:
            self._retarget_lock(account, record)
        except SimulatorError:
            record.price, record.quantity, record.reserve_price, record.taker_step = old
            raise
        record.updated_at = now
        return record

    def _amend_new_number(
        self,
        account: _Account,
        record: _OrderRecord,
        price: Decimal,
        qty: Decimal,
        now: datetime,
        step: int,
        extra: Mapping[str, Any] | None,
    ) -> _OrderRecord:
        remaining = record.remaining or Decimal(0)
        if qty > remaining:
            raise InvalidOrder(
                RuleViolated.QUANTITY, f"amend quantity {qty} exceeds remainder {remaining}"
            )
        new = _OrderRecord(
            seq=0,
            order_no="",
            account_id=record.account_id,
            instrument=record.instrument,
            side=record.side,
            order_type=record.order_type,
            quantity=qty,
            price=price,
            quote_amount=None,
            client_order_id=None,
            reserve_price=price,
            taker_step=step,
            created_at=now,
            updated_at=now,
            extra={**record.extra, **(extra or {})},
            original_order_no=record.order_no,
        )
        # Move the amended units out of the original first, so its lock is released before the
        # new order's lock is taken; undo if the new lock does not fit.
        record.cancelled += qty
        self._retarget_lock(account, record)
        try:
            self._retarget_lock(account, new)
        except SimulatorError:
            record.cancelled -= qty
            self._retarget_lock(account, record)
            raise
        new.seq = next(self._order_seq)
        new.order_no = self._order_numbers(new.seq)
        if record.remaining == 0:
            record.status = OrderStatus.REPLACED
        record.replaced_by = new.order_no
        record.updated_at = now
        self._unregister_if_closed(record)
        self._register(new)
        return new

    # ---- queries ----------------------------------------------------------------------------

    def get_order(self, account_id: str, order_no: str) -> Order:
        """Return an order of this account.

        Raises:
            UnknownAccount, OrderNotFound.
        """
        with self._lock:
            self._sync()
            self._account(account_id)
            return self._snapshot(self._order(account_id, order_no))

    def get_order_by_client_id(self, account_id: str, client_order_id: str) -> Order:
        """Return the latest order of this account with this client order id.

        Raises:
            UnknownAccount, OrderNotFound.
        """
        with self._lock:
            self._sync()
            self._account(account_id)
            for record in reversed(self._orders_by_account[account_id]):
                if record.client_order_id == client_order_id:
                    return self._snapshot(record)
            raise OrderNotFound(client_order_id)

    def orders(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        symbol: str | None = None,
        side: Side | None = None,
        open_only: bool = False,
        statuses: Iterable[OrderStatus] | None = None,
    ) -> list[Order]:
        """Return the account's orders, oldest first, filtered.

        ``since``/``until`` bound ``created_at`` (inclusive, exclusive); ``start_date``/
        ``end_date`` are inclusive calendar days in the engine's timezone (KST for KRX brokers).

        Raises:
            UnknownAccount.
        """
        with self._lock:
            self._sync()
            self._account(account_id)
            lo, hi = self._bounds(since, until, start_date, end_date)
            wanted = set(statuses) if statuses is not None else None
            return [
                self._snapshot(r)
                for r in self._orders_by_account[account_id]
                if (lo is None or r.created_at >= lo)
                and (hi is None or r.created_at < hi)
                and (symbol is None or r.instrument.symbol == symbol)
                and (side is None or r.side == side)
                and (not open_only or r.is_open)
                and (wanted is None or r.status in wanted)
            ]

    def fills(
        self,
        account_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        order_no: str | None = None,
        symbol: str | None = None,
    ) -> list[Fill]:
        """Return the account's fills, oldest first, filtered like :meth:`orders` (by fill time).

        Raises:
            UnknownAccount.
        """
        with self._lock:
            self._sync()
            self._account(account_id)
            lo, hi = self._bounds(since, until, start_date, end_date)
            out = [
                f
                for r in self._orders_by_account[account_id]
                if (order_no is None or r.order_no == order_no)
                and (symbol is None or r.instrument.symbol == symbol)
                for f in r.fills
                if (lo is None or f.time >= lo) and (hi is None or f.time < hi)
            ]
            return sorted(out, key=lambda f: f.fill_id)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """Return the UTC start and end of a calendar day in the engine's timezone."""
        start = datetime.combine(day, time(0), tzinfo=self.timezone)
        return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)

    def sync(self) -> None:
        """Match open orders against the price path up to the clock's now."""
        with self._lock:
            self._sync()

    # ---- internals: bookkeeping -------------------------------------------------------------

    def _account(self, account_id: str) -> _Account:
        try:
            return self._accounts[account_id]
        except KeyError:
            raise UnknownAccount(account_id) from None

    def _order(self, account_id: str, order_no: str) -> _OrderRecord:
        record = self._orders.get(order_no)
        if record is None or record.account_id != account_id:
            raise OrderNotFound(order_no)
        return record

    def _instrument_for_base(self, asset: str) -> Instrument | None:
        for instrument in self._instruments.values():
            if instrument.base == asset:
                return instrument
        return None

    def _register(self, record: _OrderRecord) -> None:
        self._orders[record.order_no] = record
        self._orders_by_account[record.account_id].append(record)
        self._open_by_symbol.setdefault(record.instrument.symbol, []).append(record)

    def _unregister_if_closed(self, record: _OrderRecord) -> None:
        if not record.is_open:
            book = self._open_by_symbol.get(record.instrument.symbol, [])
            if record in book:
                book.remove(record)

    def _bounds(
        self,
        since: datetime | None,
        until: datetime | None,
        start_date: date | None,
        end_date: date | None,
    ) -> tuple[datetime | None, datetime | None]:
        lo, hi = since, until
        if start_date is not None:
            day_lo = self.day_bounds(start_date)[0]
            lo = day_lo if lo is None else max(lo, day_lo)
        if end_date is not None:
            day_hi = self.day_bounds(end_date)[1]
            hi = day_hi if hi is None else min(hi, day_hi)
        return lo, hi

    def _places(self, asset: str) -> int:
        return self._money_places.get(asset, self._default_money_places)

    def _money(self, value: Decimal, asset: str, rounding: str = ROUND_DOWN) -> Decimal:
        return value.quantize(Decimal(1).scaleb(-self._places(asset)), rounding=rounding)

    def _checked_quantity(self, instrument: Instrument, value: Number) -> Decimal:
        try:
            qty = to_decimal(value, "quantity")
        except ValueError as exc:
            raise InvalidOrder(RuleViolated.QUANTITY, str(exc)) from exc
        if qty <= 0 or qty % instrument.lot_size:
            raise InvalidOrder(RuleViolated.LOT_SIZE, f"quantity {qty} is not a positive lot")
        return qty

    def _required_lock(self, record: _OrderRecord) -> Decimal:
        """What an open order must keep locked; zero once it is closed."""
        if not record.is_open:
            return Decimal(0)
        if record.side is Side.SELL:
            return record.remaining or Decimal(0)
        quote = record.instrument.quote
        if record.quote_amount is not None:
            notional = record.quote_remaining or Decimal(0)
        else:
            price = record.reserve_price
            if record.order_type is OrderType.MARKET:
                price = price * self.market_buy_reserve
            notional = self._money((record.remaining or Decimal(0)) * price, quote, ROUND_UP)
        fee = Decimal(0)
        if not self.fees.fee_in_base_on_buy:
            fee = self._money(notional * self.fees.fee_rate, quote, ROUND_UP)
        return notional + fee

    def _retarget_lock(self, account: _Account, record: _OrderRecord) -> None:
        """Bring the order's lock to what it requires, taking from or giving back to available.

        Raises:
            InsufficientFunds: (BUY) or InsufficientPosition (SELL) if more is needed than free.
        """
        holding = account.holding(record.lock_asset)
        delta = self._required_lock(record) - record.locked
        if delta > 0 and holding.total - holding.locked < delta:
            error = InsufficientFunds if record.side is Side.BUY else InsufficientPosition
            raise error(record.lock_asset, delta, holding.total - holding.locked)
        holding.locked += delta
        record.locked += delta

    # ---- internals: matching ----------------------------------------------------------------

    def _price_at(self, instrument: Instrument, step: int) -> Decimal:
        pins = self._pins.get(instrument.symbol)
        if pins:
            index = bisect.bisect_right(pins, step, key=lambda p: p[0]) - 1
            if index >= 0 and pins[index][1] is not None:
                return pins[index][1]  # type: ignore[return-value]
        return self.path.price(instrument, step)

    def _liquidity(self, instrument: Instrument) -> Decimal | None:
        if instrument.symbol in self._liquidity_override:
            return self._liquidity_override[instrument.symbol]
        return instrument.liquidity_per_step

    def _sync(self) -> None:
        now_step = self.path.step_at(self.clock.now())
        for symbol, book in self._open_by_symbol.items():
            start = self._matched_through.get(symbol, now_step)
            if book and start < now_step:
                self._match_range(self._instruments[symbol], start + 1, now_step)
            self._matched_through[symbol] = max(start, now_step)

    def _match_new_price(self, symbol: str, step: int) -> None:
        book = self._open_by_symbol.get(symbol)
        if book:
            self._match_step(self._instruments[symbol], step, list(book))

    def _match_range(self, instrument: Instrument, first: int, last: int) -> None:
        """Match open orders over steps ``first..last``, skipping segments nobody can trade in."""
        book = self._open_by_symbol[instrument.symbol]
        if self._liquidity(instrument) == 0:
            return
        pin_starts = [p[0] for p in self._pins.get(instrument.symbol, ())]
        step = first
        while step <= last and book:
            end = min(last, self.path.segment_end(step))
            # Within a segment the path is monotone and a pin is constant, so the extremes lie at
            # the ends of the stretches between pin boundaries.
            points = {step, end}
            for p in pin_starts:
                if step < p <= end:
                    points.update((p - 1, p))
            prices = [self._price_at(instrument, s) for s in points]
            low, high = min(prices), max(prices)
            if any(self._may_trade(o, low, high) for o in book):
                for s in range(step, end + 1):
                    if not book:
                        break
                    self._match_step(instrument, s, list(book))
            step = end + 1

    @staticmethod
    def _may_trade(record: _OrderRecord, low: Decimal, high: Decimal) -> bool:
        if record.order_type is OrderType.MARKET:
            return True
        limit = cast(Decimal, record.price)  # a limit order has a price
        return low <= limit if record.side is Side.BUY else high >= limit

    def _match_step(
        self, instrument: Instrument, step: int, candidates: list[_OrderRecord]
    ) -> None:
        price = self._price_at(instrument, step)
        liquidity = self._liquidity(instrument)
        for record in candidates:
            if not record.is_open:
                continue
            if record.order_type is OrderType.LIMIT:
                limit = cast(Decimal, record.price)  # a limit order has a price
                crosses = price <= limit if record.side is Side.BUY else price >= limit
                if not crosses:
                    continue
                maker = step != record.taker_step
                fill_price = limit if maker else price
            else:
                maker, fill_price = False, price
            budget = None
            if liquidity is not None:
                used_step, used = self._liquidity_used.get(
                    (instrument.symbol, record.side), (step, 0)
                )
                budget = liquidity - (used if used_step == step else Decimal(0))
                if budget <= 0:
                    continue
            self._fill(record, instrument, step, fill_price, budget, maker)

    def _fill(
        self,
        record: _OrderRecord,
        instrument: Instrument,
        step: int,
        price: Decimal,
        budget: Decimal | None,
        maker: bool,
    ) -> None:
        account = self._accounts[record.account_id]
        quote, base = instrument.quote, instrument.base
        if record.quote_amount is not None:
            wanted = instrument.floor_lot((record.quote_remaining or Decimal(0)) / price)
        else:
            wanted = record.remaining or Decimal(0)
        qty = wanted if budget is None else instrument.floor_lot(min(wanted, budget))
        now = self.clock.now()
        if qty <= 0:
            if wanted <= 0:  # what is left of a quote amount cannot buy one lot
                self._close_unfillable(account, record, wanted, now)
            return  # otherwise this step's liquidity is below one lot: wait for the next step
        if record.side is Side.BUY:
            affordable = self._affordable(account, record, instrument, price)
            if affordable <= 0:  # a market buy whose reserve the price has outrun
                self._close_unfillable(account, record, wanted, now)
                return
            qty = min(qty, affordable)
        notional = self._money(qty * price, quote)
        fee_asset = quote
        if record.side is Side.BUY and self.fees.fee_in_base_on_buy:
            fee_asset = base
            fee = self._money(qty * self.fees.fee_rate, base)
        else:
            fee = self._money(notional * self.fees.fee_rate, quote)
        tax = Decimal(0)
        if record.side is Side.SELL and instrument.asset_class is AssetClass.SECURITY:
            tax = self._money(notional * self.fees.sell_tax_rate, quote)
        cash, held = account.holding(quote), account.holding(base)
        if record.side is Side.BUY:
            cost = notional + (fee if fee_asset == quote else Decimal(0))
            from_lock = min(cost, record.locked)
            cash.total -= cost
            cash.locked -= from_lock
            record.locked -= from_lock
            received = qty - (fee if fee_asset == base else Decimal(0))
            if held.total + received > 0:
                held.avg_price = (
                    (held.total * held.avg_price + qty * price) / (held.total + received)
                ).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)
            held.total += received
        else:
            held.total -= qty
            held.locked -= qty
            record.locked -= qty
            if held.total == 0:
                held.avg_price = Decimal(0)
            cash.total += notional - fee - tax
        record.filled += qty
        record.filled_notional += notional
        record.fees += fee
        record.taxes += tax
        record.updated_at = now
        fill = Fill(
            fill_id=next(self._fill_seq),
            order_no=record.order_no,
            account_id=record.account_id,
            symbol=instrument.symbol,
            side=record.side,
            price=price,
            quantity=qty,
            notional=notional,
            fee=fee,
            fee_asset=fee_asset,
            tax=tax,
            time=now,
            maker=maker,
        )
        record.fills.append(fill)
        if budget is not None:
            key = (instrument.symbol, record.side)
            used_step, used = self._liquidity_used.get(key, (step, Decimal(0)))
            self._liquidity_used[key] = (step, (used if used_step == step else Decimal(0)) + qty)
        done = (
            record.remaining == 0
            if record.quote_amount is None
            else instrument.floor_lot((record.quote_remaining or Decimal(0)) / price) <= 0
        )
        record.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        self._retarget_lock(account, record)
        self._unregister_if_closed(record)
        self.ledger.record(
            LedgerKind.FILL,
            account_id=record.account_id,
            app_key=account.credential_id,
            order_no=record.order_no,
            fill_id=fill.fill_id,
            symbol=instrument.symbol,
            side=record.side,
            price=price,
            quantity=qty,
            fee=fee,
            tax=tax,
        )

    def _affordable(
        self, account: _Account, record: _OrderRecord, instrument: Instrument, price: Decimal
    ) -> Decimal:
        """Largest quantity the order's lock plus free cash can pay for at ``price``."""
        cash = account.holding(instrument.quote)
        funds = record.locked + (cash.total - cash.locked)
        rate = Decimal(0) if self.fees.fee_in_base_on_buy else self.fees.fee_rate
        qty = instrument.floor_lot(funds / (price * (1 + rate)))
        while qty > 0:
            notional = self._money(qty * price, instrument.quote)
            if notional + self._money(notional * rate, instrument.quote) <= funds:
                return qty
            qty -= instrument.lot_size
        return Decimal(0)

    def _close_unfillable(
        self, account: _Account, record: _OrderRecord, wanted: Decimal, now: datetime
    ) -> None:
        """End a market order that cannot progress: dust left of an amount, or no funds left."""
        if record.order_type is not OrderType.MARKET:
            return
        if record.quote_amount is not None and wanted <= 0:
            # The rest of the amount cannot buy one lot: the order is done and the dust released.
            record.status = OrderStatus.FILLED if record.filled else OrderStatus.CANCELLED
        elif record.side is Side.BUY:
            remaining = record.remaining
            if remaining is not None:
                record.cancelled += remaining
            record.status = OrderStatus.CANCELLED
        else:
            return
        record.updated_at = now
        self._retarget_lock(account, record)
        self._unregister_if_closed(record)

    # ---- internals: views -------------------------------------------------------------------

    def _snapshot(self, record: _OrderRecord) -> Order:
        return Order(
            order_no=record.order_no,
            account_id=record.account_id,
            symbol=record.instrument.symbol,
            side=record.side,
            order_type=record.order_type,
            status=record.status,
            quantity=record.quantity,
            price=record.price,
            quote_amount=record.quote_amount,
            client_order_id=record.client_order_id,
            filled_quantity=record.filled,
            remaining_quantity=record.remaining,
            cancelled_quantity=record.cancelled,
            quote_remaining=record.quote_remaining,
            filled_notional=record.filled_notional,
            fees=record.fees,
            taxes=record.taxes,
            locked=record.locked,
            locked_asset=record.lock_asset,
            created_at=record.created_at,
            updated_at=record.updated_at,
            fills=tuple(record.fills),
            original_order_no=record.original_order_no,
            replaced_by=record.replaced_by,
            extra=dict(record.extra),
        )

    @staticmethod
    def _account_view(account: _Account) -> AccountView:
        return AccountView(
            account_id=account.account_id,
            credential_id=account.credential_id,
            balances={
                asset: Balance(asset, h.total, h.locked, h.avg_price)
                for asset, h in account.holdings.items()
            },
            meta=dict(account.meta),
        )

    @staticmethod
    def _ledger_order_fields(record: _OrderRecord) -> dict[str, Any]:
        return {
            "order_no": record.order_no,
            "symbol": record.instrument.symbol,
            "side": record.side,
            "order_type": record.order_type,
            "quantity": record.quantity,
            "price": record.price,
            "quote_amount": record.quote_amount,
            "client_order_id": record.client_order_id,
        }
