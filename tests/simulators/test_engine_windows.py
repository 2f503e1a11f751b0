"""The engine's trading windows (orders that wait for a session and lapse at its end), order
numbers that come back on a later day, and the one-snapshot statement settlement is derived from."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest

from simulators.engine import (
    Engine,
    InvalidOrder,
    LedgerKind,
    OrderNotFound,
    OrderNotOpen,
    OrderStatus,
    SimClock,
)

from .test_engine import START, make_engine


@pytest.fixture
def eng() -> Engine:
    engine = make_engine()
    engine.create_account("A", balances={"KRW": "10000000"}, positions={"005930": 10})
    return engine


def test_an_order_waits_for_its_window_and_then_takes_the_price_there(eng: Engine) -> None:
    eng.pin_price("005930", 70000)
    opens = START + timedelta(minutes=30)
    order = eng.place_order(
        "A", "005930", "BUY", "LIMIT", quantity=1, price=71000, active_from=opens
    )
    assert order.status is OrderStatus.OPEN and order.active_from == opens
    eng.clock.advance(29 * 60)
    assert eng.get_order("A", order.order_no).filled_quantity == 0
    eng.clock.advance(60)
    filled = eng.get_order("A", order.order_no)
    assert filled.status is OrderStatus.FILLED
    (fill,) = filled.fills
    assert (fill.price, fill.time, fill.maker) == (D(70000), opens, False)  # taker at the open


def test_an_order_lapses_at_its_expiry_and_never_fills_after_it(eng: Engine) -> None:
    eng.pin_price("005930", 70000)
    closes = START + timedelta(hours=1)
    order = eng.place_order(
        "A", "005930", "BUY", "LIMIT", quantity=3, price=69000, expires_at=closes
    )
    locked = eng.balance("A", "KRW").locked
    assert locked > 0
    eng.clock.advance(2 * 3600)
    eng.pin_price("005930", 60000)  # crosses the limit, but after the window
    lapsed = eng.get_order("A", order.order_no)
    assert lapsed.status is OrderStatus.EXPIRED
    assert (lapsed.expired_quantity, lapsed.remaining_quantity, lapsed.filled_quantity) == (
        D(3),
        D(0),
        D(0),
    )
    assert lapsed.updated_at == closes and lapsed.cancelled_quantity == 0
    assert eng.balance("A", "KRW").locked == 0
    (entry,) = eng.ledger.entries(kinds=[LedgerKind.ORDER_EXPIRED])
    assert entry.data["expired_at"] == closes and entry.data["expired_quantity"] == D(3)
    with pytest.raises(OrderNotOpen):
        eng.cancel_order("A", order.order_no)


def test_a_partly_filled_order_keeps_its_fills_when_the_rest_lapses(eng: Engine) -> None:
    eng.pin_price("005930", 70000)
    eng.set_liquidity("005930", 2)
    closes = START + timedelta(seconds=1)
    order = eng.place_order(
        "A", "005930", "BUY", "LIMIT", quantity=5, price=70000, expires_at=closes
    )
    eng.clock.advance(10)
    lapsed = eng.get_order("A", order.order_no)
    assert lapsed.status is OrderStatus.EXPIRED
    assert (lapsed.filled_quantity, lapsed.expired_quantity) == (D(2), D(3))


def test_a_clock_jump_matches_up_to_the_expiry_only(eng: Engine) -> None:
    closes = START + timedelta(hours=6)
    price = eng.price("005930")
    order = eng.place_order(
        "A", "005930", "SELL", "LIMIT", quantity=1, price=price * 2, expires_at=closes
    )
    eng.clock.advance(3 * 86400)
    assert eng.get_order("A", order.order_no).status is OrderStatus.EXPIRED
    assert eng.balance("A", "005930").locked == 0


def test_an_amendment_keeps_the_window(eng: Engine) -> None:
    eng.pin_price("005930", 70000)
    closes = START + timedelta(hours=1)
    order = eng.place_order(
        "A", "005930", "BUY", "LIMIT", quantity=2, price=69000, expires_at=closes
    )
    amended = eng.amend_order("A", order.order_no, new_price=69500)
    assert amended.expires_at == closes
    eng.clock.advance(3601)
    assert eng.get_order("A", amended.order_no).status is OrderStatus.EXPIRED


def test_a_window_already_closed_is_refused(eng: Engine) -> None:
    with pytest.raises(InvalidOrder):
        eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=1000, expires_at=START)
    assert eng.ledger.entries(kinds=[LedgerKind.ORDER_REJECTED])


def test_a_number_that_comes_back_finds_the_newest_order_or_the_days_one() -> None:
    numbers = iter(["0000000001", "0000000001"])
    eng = make_engine(order_numbers=lambda _n: next(numbers))
    eng.create_account("A", balances={"KRW": "10000000"})
    eng.pin_price("005930", 70000)
    first = eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=60000)
    eng.clock.advance(86400)
    second = eng.place_order("A", "005930", "BUY", "LIMIT", quantity=2, price=60000)
    assert first.order_no == second.order_no
    assert eng.get_order("A", "0000000001").quantity == 2
    yesterday = (START + timedelta(hours=9)).date()
    assert eng.get_order("A", "0000000001", day=yesterday).quantity == 1
    with pytest.raises(OrderNotFound):
        eng.get_order("A", "0000000001", day=yesterday + timedelta(days=2))
    eng.cancel_order("A", "0000000001")  # the newest
    assert eng.get_order("A", "0000000001", day=yesterday).is_open


def test_statement_is_one_snapshot_of_cash_and_fills(eng: Engine) -> None:
    eng.pin_price("005930", 70000)
    eng.place_order("A", "005930", "BUY", "MARKET", quantity=2)
    view, fills = eng.statement("A", since=START)
    assert [f.quantity for f in fills] == [D(2)]
    cost = fills[0].notional + fills[0].fee
    assert view.balances["KRW"].total == D(10000000) - cost
    assert eng.statement("A", since=START + timedelta(seconds=1))[1] == []


def test_expiry_is_safe_under_concurrent_calls() -> None:
    eng = make_engine(clock=SimClock.frozen(START))
    eng.create_account("A", balances={"KRW": "100000000"})
    eng.pin_price("005930", 70000)
    closes = START + timedelta(minutes=1)
    for _ in range(50):
        eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=60000, expires_at=closes)
    eng.clock.advance(120)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            eng.orders("A")
            eng.balance("A", "KRW")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(eng.ledger.entries(kinds=[LedgerKind.ORDER_EXPIRED])) == 50
    assert eng.balance("A", "KRW").locked == 0
