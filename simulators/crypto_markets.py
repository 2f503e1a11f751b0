"""Listed markets of the crypto simulators (Upbit, Bithumb, Binance spot), shared in one place.

Each :class:`SpotMarket` carries the numbers the venue publishes (tick, lot, minimum order value)
and turns them into an engine :class:`~simulators.engine.Instrument`. The facades serialize the
same record into their market lists (``/v1/market/all``, ``/api/v3/exchangeInfo``), so what a
client reads and what the engine enforces can never drift apart.

Choices:

* **KRW markets (Upbit, Bithumb)** use Upbit's KRW price-unit table
  (:func:`~simulators.engine.upbit_krw_tick_size`), volumes to 8 decimals and a 5,000 KRW minimum
  order value (Upbit ``orders/chance`` ``min_total``; Bithumb's KRW minimum is the same amount).
  Bithumb publishes its own tick table; using Upbit's for both is a simplification the brief
  asked for.
* **Binance** rules are the real spot values (``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``,
  ``NOTIONAL.minNotional`` 5 USDT) as ``exchangeInfo`` showed them in 2025/26.
* Initial prices are plausible late-2026 levels; the engine's seeded path moves within ±10 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from decimal import Decimal

from simulators.engine import AssetClass, Instrument, fixed_tick, upbit_krw_tick_size

__all__ = [
    "BINANCE_SPOT_MARKETS",
    "KRW_MARKETS",
    "KST",
    "SpotMarket",
    "decimal_string",
]

#: Korea Standard Time; Upbit and Bithumb stamp times as ``2026-03-02T09:30:00+09:00``.
KST = timezone(timedelta(hours=9), "KST")


def decimal_string(value: Decimal | None) -> str | None:
    """Render a Decimal the way exchanges print numbers: plain digits, no exponent, no ``-0``."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


@dataclass(frozen=True)
class SpotMarket:
    """A listed spot market and its trading rules.

    Attributes:
        symbol: the venue's id and the engine symbol (``KRW-BTC``, ``BTCUSDT``).
        base: traded asset (``BTC``).
        quote: pricing asset (``KRW``, ``USDT``).
        english_name: display name.
        korean_name: Korean display name (Upbit/Bithumb market lists).
        initial_price: centre of the seeded price path.
        tick_size: fixed tick, or None for Upbit's KRW price-unit table.
        step_size: quantity increment (Binance ``stepSize``; 1e-8 on the KRW venues).
        min_qty: smallest quantity (``LOT_SIZE.minQty``).
        max_qty: largest quantity (``LOT_SIZE.maxQty``).
        min_notional: smallest order value in the quote asset.
        max_notional: largest order value (Binance ``NOTIONAL.maxNotional``).
        min_price: ``PRICE_FILTER.minPrice``.
        max_price: ``PRICE_FILTER.maxPrice``.
    """

    symbol: str
    base: str
    quote: str
    english_name: str
    korean_name: str
    initial_price: Decimal
    tick_size: Decimal | None
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal = Decimal("9000000")
    min_price: Decimal = Decimal("0")
    max_price: Decimal = Decimal("0")

    def instrument(self, liquidity_per_step: Decimal | None = None) -> Instrument:
        """Return the engine instrument enforcing these rules."""
        return Instrument(
            symbol=self.symbol,
            quote=self.quote,
            base=self.base,
            initial_price=self.initial_price,
            tick_rule=fixed_tick(self.tick_size) if self.tick_size else upbit_krw_tick_size,
            lot_size=self.step_size,
            min_quantity=self.min_qty,
            min_notional=self.min_notional,
            asset_class=AssetClass.CRYPTO,
            name=self.english_name,
            liquidity_per_step=liquidity_per_step,
        )

    def tick_at(self, price: Decimal) -> Decimal:
        """Return the tick that applies at ``price``."""
        return self.tick_size if self.tick_size else upbit_krw_tick_size(price)


def _krw(base: str, english: str, korean: str, price: str) -> SpotMarket:
    return SpotMarket(
        symbol=f"KRW-{base}",
        base=base,
        quote="KRW",
        english_name=english,
        korean_name=korean,
        initial_price=Decimal(price),
        tick_size=None,
        step_size=Decimal("0.00000001"),
        min_qty=Decimal("0.00000001"),
        max_qty=Decimal("100000000000"),
        min_notional=Decimal(5000),
        max_notional=Decimal("1000000000"),
    )


#: KRW markets listed on the Upbit and Bithumb simulators.
KRW_MARKETS: tuple[SpotMarket, ...] = (
    _krw("BTC", "Bitcoin", "비트코인", "140000000"),
    _krw("ETH", "Ethereum", "이더리움", "5000000"),
    _krw("XRP", "XRP", "엑스알피(리플)", "3000"),
    _krw("SOL", "Solana", "솔라나", "250000"),
    _krw("DOGE", "Dogecoin", "도지코인", "350"),
    _krw("ADA", "Cardano", "에이다", "1000"),
)


def _usdt(
    base: str, english: str, price: str, tick: str, step: str, max_qty: str, max_price: str
) -> SpotMarket:
    return SpotMarket(
        symbol=f"{base}USDT",
        base=base,
        quote="USDT",
        english_name=english,
        korean_name=english,
        initial_price=Decimal(price),
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal(max_qty),
        min_notional=Decimal(5),
        max_notional=Decimal("9000000"),
        min_price=Decimal(tick),
        max_price=Decimal(max_price),
    )


#: Binance spot symbols listed on the Binance simulator (real filter values).
BINANCE_SPOT_MARKETS: tuple[SpotMarket, ...] = (
    _usdt("BTC", "Bitcoin", "95000", "0.01", "0.00001", "9000", "1000000"),
    _usdt("ETH", "Ethereum", "3500", "0.01", "0.0001", "9000", "1000000"),
    _usdt("BNB", "BNB", "650", "0.01", "0.001", "9000", "100000"),
    _usdt("SOL", "Solana", "180", "0.01", "0.001", "90000", "10000"),
    _usdt("XRP", "XRP", "2.2", "0.0001", "0.1", "9222449", "10000"),
    _usdt("DOGE", "Dogecoin", "0.25", "0.00001", "1", "9000000", "1000"),
)
