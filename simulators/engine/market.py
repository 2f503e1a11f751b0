"""The listed instruments and the price each trades at: the path, unless a test pinned it.

Tests pin prices with :meth:`Engine.pin_price <simulators.engine.Engine.pin_price>` and limit
what can trade per step with :meth:`Engine.set_liquidity <simulators.engine.Engine.set_liquidity>`;
both are kept here per symbol.
"""

from __future__ import annotations

import bisect
from decimal import Decimal

from simulators.engine.errors import UnknownInstrument
from simulators.engine.instruments import Instrument
from simulators.engine.settings import EngineSettings

__all__ = ["Market"]


class Market:
    """Listings, price pins and liquidity overrides of one engine.

    Not locked itself: the engine calls it while holding its lock.

    Args:
        settings: the engine's settings (for the price path).
    """

    def __init__(self, settings: EngineSettings) -> None:
        self._settings = settings
        self._instruments: dict[str, Instrument] = {}
        # Per symbol, (first step, price or None for "back to the path"), in step order.
        self._pins: dict[str, list[tuple[int, Decimal | None]]] = {}
        self._liquidity_override: dict[str, Decimal | None] = {}

    def add(self, instrument: Instrument) -> None:
        """List (or re-list with new rules) an instrument."""
        self._instruments[instrument.symbol] = instrument

    def get(self, symbol: str) -> Instrument:
        """Return a listed instrument.

        Raises:
            UnknownInstrument: if the symbol is not listed.
        """
        try:
            return self._instruments[symbol]
        except KeyError:
            raise UnknownInstrument(symbol) from None

    def listed(self) -> list[Instrument]:
        """Return all listed instruments, in listing order."""
        return list(self._instruments.values())

    def for_base(self, asset: str) -> Instrument | None:
        """Return the first instrument whose base asset is ``asset``, if any."""
        for instrument in self._instruments.values():
            if instrument.base == asset:
                return instrument
        return None

    def price_at(self, instrument: Instrument, step: int) -> Decimal:
        """Return the price of ``instrument`` at ``step``: the pin in force, else the path's."""
        pins = self._pins.get(instrument.symbol)
        if pins:
            index = bisect.bisect_right(pins, step, key=lambda p: p[0]) - 1
            if index >= 0 and pins[index][1] is not None:
                return pins[index][1]  # type: ignore[return-value]
        return self._settings.path.price(instrument, step)

    def pin(self, symbol: str, step: int, price: Decimal | None) -> None:
        """Hold ``symbol`` at ``price`` from ``step`` on (None: back to the path)."""
        pins = self._pins.setdefault(symbol, [])
        while pins and pins[-1][0] >= step:
            pins.pop()
        pins.append((step, price))

    def pin_starts(self, symbol: str) -> list[int]:
        """Return the steps at which a pin of ``symbol`` begins (or ends, with a None pin)."""
        return [p[0] for p in self._pins.get(symbol, ())]

    def set_liquidity(self, symbol: str, quantity: Decimal | None) -> None:
        """Override the per-step liquidity of ``symbol`` (None: unlimited)."""
        self._liquidity_override[symbol] = quantity

    def liquidity(self, instrument: Instrument) -> Decimal | None:
        """Return the base quantity that can trade per step and side (None: unlimited)."""
        if instrument.symbol in self._liquidity_override:
            return self._liquidity_override[instrument.symbol]
        return instrument.liquidity_per_step
