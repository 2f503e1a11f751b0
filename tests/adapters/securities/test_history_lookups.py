"""The history-based look-ups and order results both securities adapters share (no network)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from brokers import BrokerOrder, Credentials, OrderRequest, OrderStatus, OrderType, Side
from securities._http import KST, TokenClient
from securities.common import (
    CLOCK_SKEW,
    LOOKBACK_DAYS,
    SecuritiesAdapterBase,
    amended_order,
    cancel_pending,
)
from web_server.errors import BadRequest, OrderNotFound

NOW = dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.UTC)  # 10:00 KST
TODAY = NOW.astimezone(KST).date()


class _Client(TokenClient):
    label = "Fake"
    broker = "FAKE"


def _order(number: str, *, symbol: str = "005930", minutes: int = 0, **extra) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=number,
        symbol=symbol,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=OrderStatus.SUBMITTED,
        quantity=Decimal(10),
        limit_price=Decimal(70000),
        created_at=NOW - dt.timedelta(minutes=minutes),
        **extra,
    )


class _Adapter(SecuritiesAdapterBase):
    """Windows and history from lists; records what was read."""

    exchange = "FAKE"
    client_class = _Client

    def __init__(self, windows: list[list[BrokerOrder]], history: list[BrokerOrder]) -> None:
        super().__init__(
            Credentials(api_key="k", api_secret="s"),
            base_url="http://unused",
            session=requests.Session(),
            clock=lambda: NOW,
        )
        self.windows = windows
        self.history = history
        self.read: list[object] = []

    def _lookup_windows(
        self, broker_order_id: str, today: dt.date, *, symbol: str | None
    ) -> Iterator[list[BrokerOrder]]:
        assert today == TODAY
        for index, window in enumerate(self.windows):
            self.read.append(("window", index, symbol))
            yield window

    def _history(
        self, first: dt.date, last: dt.date, *, symbol: str | None = None
    ) -> Iterator[BrokerOrder]:
        self.read.append(("history", first, last, symbol))
        yield from self.history


def test_get_order_reads_windows_newest_first_and_stops_at_the_first_that_has_it() -> None:
    older_24 = _order("0000024", minutes=30)
    newer_24 = _order("24", minutes=5)
    adapter = _Adapter([[_order("7")], [older_24, _order("25"), newer_24], [_order("0024")]], [])
    found = adapter.get_order("000024", symbol="005930")
    assert found is newer_24  # padding does not matter; the newest in the window wins
    assert adapter.read == [("window", 0, "005930"), ("window", 1, "005930")]


def test_get_order_needs_the_broker_number_and_says_how_far_it_looked() -> None:
    adapter = _Adapter([[_order("1")], []], [])
    with pytest.raises(BadRequest, match="Fake orders have no client order id"):
        adapter.get_order(client_order_id="intent-1")
    assert adapter.read == []
    with pytest.raises(OrderNotFound) as info:
        adapter.get_order("2")
    assert str(info.value) == f"Fake has no order 2 in the last {LOOKBACK_DAYS} days"
    assert info.value.broker == "FAKE"


def test_list_orders_reads_since_to_today_and_drops_older_orders() -> None:
    since = NOW - dt.timedelta(minutes=10)
    undated = BrokerOrder(
        broker_order_id="9",
        symbol="005930",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        status=OrderStatus.FILLED,
        quantity=Decimal(1),
    )
    adapter = _Adapter([], [_order("1", minutes=20), _order("2", minutes=5), undated])
    assert [o.broker_order_id for o in adapter.list_orders(since)] == ["2", "9"]
    assert adapter.read == [("history", TODAY, TODAY, None)]


def test_find_order_widens_by_the_clock_skew_and_names_the_symbol() -> None:
    request = OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(10),
        client_order_id="intent-1",
        limit_price=Decimal(70000),
    )
    late = _order("3", minutes=-1)  # 60 s after our clock: inside the skew
    adapter = _Adapter([], [_order("1", minutes=20), late, _order("4", minutes=-2)])
    since = NOW - dt.timedelta(minutes=1)
    assert adapter.find_order(request, since) is late
    assert adapter.find_order(request, since, exclude=["0003"]) is None
    low, high = since - CLOCK_SKEW, NOW + CLOCK_SKEW
    assert adapter.read[0] == (
        "history",
        low.astimezone(KST).date(),
        high.astimezone(KST).date(),
        "005930",
    )


def test_cancel_pending_keeps_the_original_and_the_answer() -> None:
    original = _order("5", raw={"ord_gno_brno": "06590"})
    later = NOW + dt.timedelta(seconds=3)
    pending = cancel_pending(original, {"ODNO": "6"}, now=later)
    assert pending.status is OrderStatus.CANCEL_PENDING
    assert pending.broker_order_id == "5" and pending.updated_at == later
    assert pending.raw == {"ord_gno_brno": "06590", "cancel": {"ODNO": "6"}}
    assert original.status is OrderStatus.SUBMITTED


def test_amended_order_is_a_new_limit_order_for_the_remainder_by_default() -> None:
    original = BrokerOrder(
        broker_order_id="5",
        symbol="005930",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        status=OrderStatus.PARTIALLY_FILLED,
        quantity=Decimal(10),
        filled_quantity=Decimal(4),
    )
    whole = amended_order(
        original,
        broker_order_id="8",
        quantity=None,
        limit_price=Decimal(71000),
        now=NOW,
        raw={"orgn_odno": "5"},
    )
    assert (whole.broker_order_id, whole.symbol, whole.side) == ("8", "005930", Side.SELL)
    assert whole.order_type is OrderType.LIMIT and whole.status is OrderStatus.SUBMITTED
    assert (whole.quantity, whole.limit_price) == (Decimal(6), Decimal(71000))
    assert whole.created_at == whole.updated_at == NOW and whole.raw == {"orgn_odno": "5"}
    part = amended_order(
        original, broker_order_id="9", quantity=Decimal(2), limit_price=Decimal(1), now=NOW, raw={}
    )
    assert part.quantity == Decimal(2)
