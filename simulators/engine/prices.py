"""The deterministic, seeded price path every instrument follows.

* **Price path.** Knots every ``segment_steps`` steps carry a multi-octave value noise (octave
  ``k`` interpolates hashed random values every ``2**k`` knots with weight ``sqrt(2**k)``), which
  behaves like a random walk at short horizons and is bounded by ``±max_deviation`` around the
  instrument's initial price. Between knots the price moves linearly, then snaps to the tick.
  Any step is computed in ``O(octaves)`` from ``(seed, symbol, step)`` alone, all in integer and
  ``Decimal`` arithmetic, so it is identical on every platform; and because a segment is monotone,
  matching over a 24 h jump only looks inside segments whose end points cross a limit.
"""

from __future__ import annotations

import hashlib
import math
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulators.engine.instruments import Instrument, snap_to_tick

__all__ = ["PATH_EPOCH", "PricePath"]

#: Price steps are counted from this instant, so equal clock times give equal steps everywhere.
PATH_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

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
