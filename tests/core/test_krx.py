"""KRX tick table and daily price band (``../shared/brokers/trading-days.md`` §1.5)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.krx import is_on_tick, krx_stock_tick, price_band


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("1", "1"),
        ("1999", "1"),
        ("2000", "5"),
        ("4995", "5"),
        ("5000", "10"),
        ("19990", "10"),
        ("20000", "50"),
        ("49950", "50"),
        ("50000", "100"),
        ("199900", "100"),
        ("200000", "500"),
        ("499500", "500"),
        ("500000", "1000"),
        ("1500000", "1000"),
    ],
)
def test_tick_table(price: str, tick: str) -> None:
    assert krx_stock_tick(Decimal(price)) == Decimal(tick)


def test_on_tick() -> None:
    assert is_on_tick(Decimal(70_000))
    assert not is_on_tick(Decimal(70_050))
    assert is_on_tick(Decimal(1_999))
    assert not is_on_tick(Decimal(2_001))


@pytest.mark.parametrize(
    ("base", "lower", "upper"),
    [
        # 70,000 ± 21,000: both already on the 50/100-won ticks of their levels.
        ("70000", "49000", "91000"),
        # 10,050 ± 3,015: 13,065 → 13,060 (tick 10), 7,035 → 7,040 (tick 10).
        ("10050", "7040", "13060"),
        # 1,000 ± 300 on the 1-won tick.
        ("1000", "700", "1300"),
        # A base crossing a tick boundary: 181,500 → upper 235,950 → 235,500 (tick 500).
        ("181500", "127100", "235500"),
    ],
)
def test_price_band(base: str, lower: str, upper: str) -> None:
    low, high = price_band(Decimal(base))
    assert (low, high) == (Decimal(lower), Decimal(upper))
    assert is_on_tick(low) and is_on_tick(high)


def test_price_band_refuses_a_non_positive_base() -> None:
    with pytest.raises(ValueError, match="positive"):
        price_band(Decimal(0))
