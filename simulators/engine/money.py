"""Numbers and money: conversion to ``Decimal`` and rounding to each currency's places.

* **Money.** ``Decimal`` everywhere. Notional, fees and taxes are truncated to the currency's
  places (``money_places``; KRW 0 by default), the way Korean brokers drop fractions of a won
  ("원 미만 절사"). Locks for fees are rounded up, so a lock always covers what it reserves.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

__all__ = ["MoneyPlaces", "Number", "to_decimal"]

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


class MoneyPlaces:
    """Decimal places per currency for notional, fees and taxes.

    Args:
        places: places per currency; KRW has 0 unless listed here.
        default: places for currencies not listed.
    """

    def __init__(self, places: Mapping[str, int] | None = None, default: int = 8) -> None:
        self._places = {"KRW": 0, **(places or {})}
        self._default = default

    def places(self, asset: str) -> int:
        """Return the decimal places of ``asset``."""
        return self._places.get(asset, self._default)

    def quantize(self, value: Decimal, asset: str, rounding: str = ROUND_DOWN) -> Decimal:
        """Return ``value`` at ``asset``'s places, truncated unless ``rounding`` says otherwise."""
        return value.quantize(Decimal(1).scaleb(-self.places(asset)), rounding=rounding)
