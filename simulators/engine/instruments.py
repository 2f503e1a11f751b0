"""What can be traded and its rules: tick tables, lots, minimums, asset classes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from simulators.engine.money import Number, to_decimal

__all__ = [
    "AssetClass",
    "Instrument",
    "TickRule",
    "binance_tick",
    "fixed_tick",
    "is_on_tick",
    "krx_tick_size",
    "snap_to_tick",
    "upbit_krw_tick_size",
]

TickRule = Callable[[Decimal], Decimal]
"""A function from a price to the tick size that applies at that price."""

#: Above the last band of both tables the tick is 1,000.
_TOP_TICK = Decimal(1_000)

_KRX_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(2_000), Decimal(1)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(20_000), Decimal(10)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(200_000), Decimal(100)),
    (Decimal(500_000), Decimal(500)),
)


def _band_tick(bands: tuple[tuple[Decimal, Decimal], ...], price: Decimal) -> Decimal:
    """Return the tick of the first band whose upper bound is above ``price``."""
    for upper, tick in bands:
        if price < upper:
            return tick
    return _TOP_TICK


def krx_tick_size(price: Decimal) -> Decimal:
    """Return the KRX stock tick (호가가격단위, in force since 2023-01-25) at ``price``."""
    return _band_tick(_KRX_TICKS, price)


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
    return _band_tick(_UPBIT_KRW_TICKS, price)


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
