"""KRX trading rules the gateway checks before an order leaves: the tick table and the price band.

The simulators keep their own copy of these rules on purpose (``simulators/krx.py``), so that a
mistake here shows up as a disagreement in the tests instead of being shared by both sides.
Sources: ``../shared/brokers/trading-days.md`` §1.5.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from brokers.statuses import Side

__all__ = [
    "DAILY_LIMIT_RATE",
    "KRX_COMMISSION_RATE",
    "KRX_SELL_TAX_RATE",
    "is_on_tick",
    "krx_charges",
    "krx_stock_tick",
    "price_band",
]

# KRX stock price ticks (호가가격단위), unified for KOSPI and KOSDAQ since 2023-01-25:
# (price below, tick). ETF and ETN ticks differ and are not modelled here.
_KRX_STOCK_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal(2_000), Decimal(1)),
    (Decimal(5_000), Decimal(5)),
    (Decimal(20_000), Decimal(10)),
    (Decimal(50_000), Decimal(50)),
    (Decimal(200_000), Decimal(100)),
    (Decimal(500_000), Decimal(500)),
)
_TOP_TICK = Decimal(1_000)

#: KOSPI and KOSDAQ daily price limit (가격제한폭), ±30 % of the base price since 2015-06-15.
DAILY_LIMIT_RATE = Decimal("0.30")


def krx_stock_tick(price: Decimal) -> Decimal:
    """Return the KRX tick of an ordinary stock (group ST) at ``price``; ETFs have their own."""
    for below, tick in _KRX_STOCK_TICKS:
        if price < below:
            return tick
    return _TOP_TICK


def is_on_tick(price: Decimal) -> bool:
    """Tell whether ``price`` is a whole number of ticks for its price level."""
    return price % krx_stock_tick(price) == 0


def _to_tick(price: Decimal, rounding: str) -> Decimal:
    tick = krx_stock_tick(price)
    return (price / tick).to_integral_value(rounding=rounding) * tick


def price_band(base_price: Decimal, rate: Decimal = DAILY_LIMIT_RATE) -> tuple[Decimal, Decimal]:
    """Return today's (lower, upper) price limits around ``base_price`` (usually the last close).

    KRX computes ``base ± base × rate`` and drops what is below one tick ("1호가 가격 미만의 단위는
    절사"): the upper limit is rounded down to its tick, the lower limit up to its tick, so both
    limits are prices one may order at. The direction for the lower limit is unverified (§1.5).

    Raises:
        ValueError: ``base_price`` is not positive.
    """
    if base_price <= 0:
        raise ValueError("the base price must be positive")
    width = base_price * rate
    upper = _to_tick(base_price + width, ROUND_FLOOR)
    lower = _to_tick(base_price - width, ROUND_CEILING)
    return max(lower, krx_stock_tick(Decimal(1))), upper


#: The online commission both simulators charge (and a common retail rate): the gateway's
#: estimate of a KIS fill until KIS's figures of the day true it up (docs/trading-days.md §5).
KRX_COMMISSION_RATE = Decimal("0.00015")
#: 증권거래세 with 농어촌특별세 from 2026: 0.20 % of the sell amount (KOSPI and KOSDAQ alike).
KRX_SELL_TAX_RATE = Decimal("0.0020")


def krx_charges(side: Side, amount: Decimal) -> tuple[Decimal, Decimal]:
    """Return the (commission, tax) in whole won of fills worth ``amount`` (both truncated).

    The gateway's estimate of a stock fill whose charges the broker has not reported (KIS's
    order history never does; Kiwoom's ``ka10076`` only for today): each fill it derives (one
    per rise in the filled quantity) is charged on its own amount, as the brokers truncate per
    execution. Trued up to the broker's figures later (docs/trading-days.md §5).
    """
    fee = (amount * KRX_COMMISSION_RATE).quantize(Decimal(1), rounding=ROUND_DOWN)
    tax = Decimal(0)
    if side is Side.SELL:
        tax = (amount * KRX_SELL_TAX_RATE).quantize(Decimal(1), rounding=ROUND_DOWN)
    return fee, tax
