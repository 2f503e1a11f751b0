"""Commissions and the KRX sell tax: the rates, and what a fill or a lock is charged.

* **KRX sell tax.** :data:`KRX_SELL_TAX_RATE_2026` = 0.20 %: 증권거래세 went 0.23 % → 0.20 % (2023)
  → 0.18 % (2024) → 0.15 % (2025), and the 2025 tax-law amendment restores 0.20 % from 2026
  (KOSPI 0.05 % + 농어촌특별세 0.15 %; KOSDAQ 0.20 %), so one rate serves both markets.
  It is a parameter of :class:`FeeSchedule`; set it if the law changes again.

Amounts are rounded with :class:`~simulators.engine.money.MoneyPlaces`: charges are truncated,
fee reserves in locks rounded up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from simulators.engine.instruments import AssetClass, Instrument
from simulators.engine.model import Side
from simulators.engine.money import MoneyPlaces

__all__ = [
    "KRX_SELL_TAX_RATE_2026",
    "FeeSchedule",
    "affordable_quantity",
    "buy_fee_reserve",
    "fill_charges",
]

KRX_SELL_TAX_RATE_2026 = Decimal("0.0020")


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


def buy_fee_reserve(
    fees: FeeSchedule, money: MoneyPlaces, notional: Decimal, quote: str
) -> Decimal:
    """Return the commission a buy locks on top of ``notional`` (rounded up).

    Zero when buys pay their commission in the base asset: nothing of the quote is reserved.
    """
    fee = Decimal(0)
    if not fees.fee_in_base_on_buy:
        fee = money.quantize(notional * fees.fee_rate, quote, ROUND_UP)
    return fee


def fill_charges(
    fees: FeeSchedule,
    money: MoneyPlaces,
    instrument: Instrument,
    side: Side,
    quantity: Decimal,
    notional: Decimal,
) -> tuple[Decimal, str, Decimal]:
    """Return ``(fee, fee_asset, tax)`` of a fill of ``quantity`` worth ``notional``.

    Buys pay the commission in the base asset when the schedule says so (on the quantity),
    otherwise in the quote (on the notional); sells of securities also pay the sell tax.
    """
    quote, base = instrument.quote, instrument.base
    fee_asset = quote
    if side is Side.BUY and fees.fee_in_base_on_buy:
        fee_asset = base
        fee = money.quantize(quantity * fees.fee_rate, base)
    else:
        fee = money.quantize(notional * fees.fee_rate, quote)
    tax = Decimal(0)
    if side is Side.SELL and instrument.asset_class is AssetClass.SECURITY:
        tax = money.quantize(notional * fees.sell_tax_rate, quote)
    return fee, fee_asset, tax


def affordable_quantity(
    fees: FeeSchedule, money: MoneyPlaces, instrument: Instrument, price: Decimal, funds: Decimal
) -> Decimal:
    """Return the largest whole-lot quantity whose notional and commission ``funds`` pay."""
    rate = Decimal(0) if fees.fee_in_base_on_buy else fees.fee_rate
    qty = instrument.floor_lot(funds / (price * (1 + rate)))
    while qty > 0:
        notional = money.quantize(qty * price, instrument.quote)
        if notional + money.quantize(notional * rate, instrument.quote) <= funds:
            return qty
        qty -= instrument.lot_size
    return Decimal(0)
