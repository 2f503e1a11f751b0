"""The shared exchange core: prices, rules, fills, money, history, concurrency."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

import simulators
from simulators import control, engine, server
from simulators.engine import (
    KRX_SELL_TAX_RATE_2026,
    AmendMode,
    AssetClass,
    ClientIdScope,
    DuplicateClientOrderId,
    Engine,
    FeeSchedule,
    Instrument,
    InsufficientFunds,
    InsufficientPosition,
    InvalidOrder,
    LedgerKind,
    OrderNotFound,
    OrderNotOpen,
    OrderStatus,
    RuleViolated,
    SimClock,
    fixed_tick,
    int_order_numbers,
    is_on_tick,
    krx_tick_size,
    snap_to_tick,
    upbit_krw_tick_size,
    uuid_order_numbers,
)

START = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # 09:30 KST, a Monday
KST = ZoneInfo("Asia/Seoul")
SAMSUNG = Instrument("005930", "KRW", D(70000), name="삼성전자")
KIS_FEES = FeeSchedule(fee_rate=D("0.00015"), sell_tax_rate=KRX_SELL_TAX_RATE_2026)


def make_engine(seed: int | str = 7, **kwargs: object) -> Engine:
    """A KIS-like engine on a frozen clock."""
    options: dict[str, object] = {
        "clock": SimClock.frozen(START),
        "seed": seed,
        "instruments": [SAMSUNG],
        "fees": KIS_FEES,
        "timezone": KST,
    }
    options.update(kwargs)
    return Engine(**options)  # type: ignore[arg-type]


@pytest.fixture
def kis() -> Engine:
    """A KIS-like engine with one funded account holding 10 shares."""
    eng = make_engine()
    eng.create_account("A", balances={"KRW": "10000000"}, positions={"005930": 10})
    return eng


def test_public_surface() -> None:
    assert simulators.__all__ == ["control", "engine", "server"]
    for module in (engine, control, server):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


# ---- price path ------------------------------------------------------------------------------


def test_same_seed_same_prices_different_seed_differs() -> None:
    a, b, c = make_engine(1), make_engine(1), make_engine(2)
    times = [START + timedelta(seconds=s) for s in range(0, 7200, 37)]
    times.append(START + timedelta(days=3650))
    pa = [a.price("005930", t) for t in times]
    assert pa == [b.price("005930", t) for t in times]
    assert pa != [c.price("005930", t) for t in times]
    assert len(set(pa)) > 3  # it moves


def test_path_is_bounded_on_tick_and_far_future_is_fast() -> None:
    eng = make_engine()
    started = time.perf_counter()
    prices = [
        eng.price("005930", START + timedelta(days=d, seconds=s))
        for d in (0, 1, 30, 365, 3650)
        for s in range(0, 600, 7)
    ]
    assert time.perf_counter() - started < 2.0
    for p in prices:
        assert D(63000) <= p <= D(77000)
        assert is_on_tick(p, krx_tick_size)


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (D(1999), D(1)),
        (D(2000), D(5)),
        (D(4995), D(5)),
        (D(5000), D(10)),
        (D(19990), D(10)),
        (D(20000), D(50)),
        (D(49950), D(50)),
        (D(50000), D(100)),
        (D(199900), D(100)),
        (D(200000), D(500)),
        (D(499500), D(500)),
        (D(500000), D(1000)),
        (D(2500000), D(1000)),
    ],
)
def test_krx_tick_table(price: D, tick: D) -> None:
    assert krx_tick_size(price) == tick


def test_snapping_and_other_tick_rules() -> None:
    assert snap_to_tick(D("70049"), krx_tick_size) == D(70000)
    assert snap_to_tick(D("70050"), krx_tick_size) == D(70100)
    assert snap_to_tick(D("1999.6"), krx_tick_size) == D(2000)
    assert str(snap_to_tick(D("71234"), krx_tick_size)) == "71200"
    assert snap_to_tick(D("30000.123"), fixed_tick("0.01")) == D("30000.12")
    assert not is_on_tick(D(70010), krx_tick_size)
    assert upbit_krw_tick_size(D(150_000_000)) == D(1000)
    assert upbit_krw_tick_size(D(700_000)) == D(500)
    assert upbit_krw_tick_size(D(7_000)) == D(5)
    assert upbit_krw_tick_size(D(500)) == D(1)


# ---- order rules -----------------------------------------------------------------------------


def test_rule_violations_name_the_rule(kis: Engine) -> None:
    cases = [
        ({"quantity": 1, "price": 70010}, RuleViolated.PRICE_TICK),
        ({"quantity": D("1.5"), "price": 70000}, RuleViolated.LOT_SIZE),
        ({"quantity": 0, "price": 70000}, RuleViolated.QUANTITY),
        ({"quantity": 1}, RuleViolated.ORDER_SHAPE),
    ]
    for kwargs, rule in cases:
        with pytest.raises(InvalidOrder) as info:
            kis.place_order("A", "005930", "BUY", "LIMIT", **kwargs)  # type: ignore[arg-type]
        assert info.value.rule is rule
    with pytest.raises(ValueError, match="float"):
        engine.to_decimal(1.5)  # type: ignore[arg-type]


def test_min_notional_and_market_buy_by_amount_upbit_style() -> None:
    btc = Instrument(
        "KRW-BTC",
        "KRW",
        D(100_000_000),
        tick_rule=upbit_krw_tick_size,
        base="BTC",
        lot_size=D("0.00000001"),
        min_notional=D(5000),
        asset_class=AssetClass.CRYPTO,
    )
    eng = Engine(
        clock=SimClock.frozen(START),
        seed=1,
        instruments=[btc],
        fees=FeeSchedule(fee_rate=D("0.0005")),
        money_places={"KRW": 8},
        order_numbers=uuid_order_numbers(1),
    )
    eng.create_account("U", balances={"KRW": "100000"})
    eng.pin_price("KRW-BTC", 100_000_000)
    with pytest.raises(InvalidOrder) as info:
        eng.place_order("U", "KRW-BTC", "BUY", "MARKET", quote_amount="4999")
    assert info.value.rule is RuleViolated.MIN_NOTIONAL
    order = eng.place_order("U", "KRW-BTC", "BUY", "MARKET", quote_amount="10000")
    assert len(order.order_no) == 36
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == D("0.0001")
    assert order.fees == D("5")
    assert order.quantity is None and order.locked == 0
    assert eng.balance("U", "KRW").total == D("100000") - D("10000") - D("5")
    assert eng.balance("U", "BTC").total == D("0.0001")


# ---- fills -----------------------------------------------------------------------------------


def test_limit_buy_fills_at_path_price_when_marketable_and_at_limit_when_resting(
    kis: Engine,
) -> None:
    kis.pin_price("005930", 70000)
    taker = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=71000)
    assert taker.status is OrderStatus.FILLED
    assert taker.fills[0].price == D(70000) and not taker.fills[0].maker

    resting = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=69000)
    assert resting.status is OrderStatus.OPEN
    kis.clock.advance(5)
    assert kis.get_order("A", resting.order_no).status is OrderStatus.OPEN
    kis.pin_price("005930", 68000)
    filled = kis.get_order("A", resting.order_no)
    assert filled.status is OrderStatus.FILLED
    assert filled.fills[0].price == D(69000) and filled.fills[0].maker

    sell = kis.place_order("A", "005930", "SELL", "LIMIT", quantity=2, price=67500)
    assert sell.fills[0].price == D(68000)  # marketable sell at the path price


def test_market_orders_fill_at_the_current_price(kis: Engine) -> None:
    kis.pin_price("005930", 72000)
    buy = kis.place_order("A", "005930", "BUY", "MARKET", quantity=3)
    assert buy.status is OrderStatus.FILLED and buy.average_price == D(72000)
    assert kis.balance("A", "KRW").locked == 0


def test_resting_orders_fill_when_the_path_crosses_over_time() -> None:
    eng = make_engine()
    eng.create_account("A", balances={"KRW": "100000000"})
    now = eng.price("005930")
    later = [eng.price("005930", START + timedelta(seconds=s)) for s in range(1, 86400, 30)]
    target = min(later)
    assert target < now
    order = eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=target)
    started = time.perf_counter()
    eng.clock.advance(86400)
    result = eng.get_order("A", order.order_no)
    assert time.perf_counter() - started < 2.0
    assert result.status is OrderStatus.FILLED
    assert result.fills[0].price == target
    assert result.fills[0].time > START  # stamped when matched, after the jump


def test_partial_fills_across_steps_with_limited_liquidity(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    kis.set_liquidity("005930", 3)
    order = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=10, price=70000)
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_quantity == 3
    kis.clock.advance(1)
    assert kis.get_order("A", order.order_no).filled_quantity == 6
    kis.clock.advance(5)
    done = kis.get_order("A", order.order_no)
    assert done.status is OrderStatus.FILLED
    assert [f.quantity for f in done.fills] == [3, 3, 3, 1]
    kis.set_liquidity("005930", None)
    assert kis.place_order("A", "005930", "BUY", "LIMIT", quantity=50, price=70000).status is (
        OrderStatus.FILLED
    )


def test_same_seed_same_fills() -> None:
    def scenario(seed: int) -> list[tuple[str, str, D, D]]:
        eng = make_engine(seed)
        eng.create_account("A", balances={"KRW": "100000000"})
        eng.set_liquidity("005930", 2)
        for i in range(5):
            price = eng.price("005930") - 100
            eng.place_order("A", "005930", "BUY", "LIMIT", quantity=5, price=price)
            eng.clock.advance(600 + i)
        eng.clock.advance(7200)
        return [(f.order_no, f.time.isoformat(), f.price, f.quantity) for f in eng.fills("A")]

    first = scenario(3)
    assert first and first == scenario(3)
    assert first != scenario(4)


# ---- money -----------------------------------------------------------------------------------


def test_fees_and_sell_tax_exact(kis: Engine) -> None:
    opening_avg = kis.balance("A", "005930").avg_price  # the path price when the account opened
    kis.pin_price("005930", 70000)
    buy = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=10, price=70000)
    assert buy.fees == D(105) and buy.taxes == 0  # 700,000 × 0.015 %
    assert kis.balance("A", "KRW").total == D(10_000_000 - 700_000 - 105)
    kis.pin_price("005930", 71000)
    sell = kis.place_order("A", "005930", "SELL", "LIMIT", quantity=10, price=71000)
    assert sell.fees == D(106)  # 106.5 truncated to the won
    assert sell.taxes == D(1420)  # 710,000 × 0.20 %
    assert kis.balance("A", "KRW").total == D(10_000_000 - 700_105 + 710_000 - 106 - 1420)
    holding = kis.balance("A", "005930")
    # Buying moves the average price (fees excluded); selling leaves it.
    assert holding.total == 10 and holding.avg_price == (10 * opening_avg + 700_000) / 20
    assert isinstance(holding.total, D)


def test_binance_fee_in_base_asset() -> None:
    btc = Instrument(
        "BTCUSDT",
        "USDT",
        D(30000),
        tick_rule=fixed_tick("0.01"),
        base="BTC",
        lot_size=D("0.00001"),
        min_notional=D(5),
        asset_class=AssetClass.CRYPTO,
    )
    eng = Engine(
        clock=SimClock.frozen(START),
        instruments=[btc],
        fees=FeeSchedule(fee_rate=D("0.001"), fee_in_base_on_buy=True),
        order_numbers=int_order_numbers(1000),
        client_id_scope=ClientIdScope.OPEN_ORDERS,
    )
    eng.create_account("B", balances={"USDT": "1000"})
    eng.pin_price("BTCUSDT", "30000.00")
    order = eng.place_order("B", "BTCUSDT", "BUY", "LIMIT", quantity="0.01", price="30000.00")
    assert order.order_no == "1000"
    assert order.fills[0].fee == D("0.00001") and order.fills[0].fee_asset == "BTC"
    assert eng.balance("B", "BTC").total == D("0.00999")
    assert eng.balance("B", "USDT").total == D("700.00")
    sell = eng.place_order("B", "BTCUSDT", "SELL", "MARKET", quantity="0.00999")
    assert sell.fills[0].fee_asset == "USDT" and sell.taxes == 0  # crypto pays no KRX tax


def test_insufficient_funds_and_position(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    with pytest.raises(InsufficientFunds) as funds:
        kis.place_order("A", "005930", "BUY", "LIMIT", quantity=200, price=60000)
    assert funds.value.asset == "KRW" and funds.value.available == D(10_000_000)
    kis.place_order("A", "005930", "SELL", "LIMIT", quantity=8, price=90000)  # locks 8 of 10
    with pytest.raises(InsufficientPosition) as position:
        kis.place_order("A", "005930", "SELL", "LIMIT", quantity=3, price=90000)
    assert position.value.available == 2
    rejected = kis.ledger.entries(kinds=[LedgerKind.ORDER_REJECTED])
    assert [e.data["reason"] for e in rejected] == ["InsufficientFunds", "InsufficientPosition"]


def test_duplicate_client_order_ids() -> None:
    eng = make_engine()
    eng.create_account("A", balances={"KRW": "1000000"})
    eng.create_account("B", balances={"KRW": "1000000"})
    eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=50000, client_order_id="c1")
    with pytest.raises(DuplicateClientOrderId):
        eng.place_order(
            "A", "005930", "BUY", "LIMIT", quantity=1, price=50000, client_order_id="c1"
        )
    eng.place_order("B", "005930", "BUY", "LIMIT", quantity=1, price=50000, client_order_id="c1")
    # Upbit: an identifier is burned even when the order is refused.
    with pytest.raises(InsufficientFunds):
        eng.place_order(
            "A", "005930", "BUY", "LIMIT", quantity=99, price=50000, client_order_id="c2"
        )
    with pytest.raises(DuplicateClientOrderId):
        eng.place_order(
            "A", "005930", "BUY", "LIMIT", quantity=1, price=50000, client_order_id="c2"
        )
    assert eng.get_order_by_client_id("A", "c1").price == D(50000)
    with pytest.raises(OrderNotFound):
        eng.get_order_by_client_id("A", "c2")


def test_open_orders_scope_allows_reuse_after_fill() -> None:
    eng = make_engine(client_id_scope=ClientIdScope.OPEN_ORDERS)
    eng.create_account("A", balances={"KRW": "1000000"})
    eng.pin_price("005930", 70000)
    eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=60000, client_order_id="x")
    with pytest.raises(DuplicateClientOrderId):
        eng.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=60000, client_order_id="x")
    eng.pin_price("005930", 60000)
    again = eng.place_order(
        "A", "005930", "BUY", "LIMIT", quantity=1, price=60000, client_order_id="x"
    )
    assert again.status is OrderStatus.FILLED


# ---- cancel and amend ------------------------------------------------------------------------


def test_cancel_releases_locked_funds_and_partial_cancel(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    order = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=10, price=60000)
    assert order.locked == D(600_000 + 90)  # notional plus the fee reserve
    assert kis.balance("A", "KRW").available == D(10_000_000 - 600_090)
    part = kis.cancel_order("A", order.order_no, quantity=4)
    assert part.remaining_quantity == 6 and part.status is OrderStatus.OPEN
    assert part.locked == D(360_000 + 54)
    gone = kis.cancel_order("A", order.order_no)
    assert gone.status is OrderStatus.CANCELLED and gone.cancelled_quantity == 10
    assert kis.balance("A", "KRW").locked == 0
    assert kis.balance("A", "KRW").available == D(10_000_000)
    with pytest.raises(OrderNotOpen):
        kis.cancel_order("A", order.order_no)
    with pytest.raises(OrderNotFound):
        kis.cancel_order("A", "9999999999")


def test_amend_with_new_number_kis_style(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    order = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=10, price=60000)
    assert order.order_no == "0000000001"
    moved = kis.amend_order("A", order.order_no, new_price=61000, new_quantity=4)
    assert moved.order_no == "0000000002" and moved.original_order_no == order.order_no
    original = kis.get_order("A", order.order_no)
    assert original.remaining_quantity == 6 and original.replaced_by == moved.order_no
    assert kis.balance("A", "KRW").locked == original.locked + moved.locked
    rest = kis.amend_order("A", order.order_no, new_price=70000)  # marketable: fills at once
    assert rest.status is OrderStatus.FILLED and rest.filled_quantity == 6
    assert kis.get_order("A", order.order_no).status is OrderStatus.REPLACED
    with pytest.raises(OrderNotOpen):
        kis.amend_order("A", order.order_no, new_price=60000)
    with pytest.raises(InsufficientFunds):
        kis.amend_order("A", moved.order_no, new_price=3_000_000)
    assert kis.get_order("A", moved.order_no).price == D(61000)  # unchanged after the refusal


def test_amend_in_place(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    order = kis.place_order("A", "005930", "SELL", "LIMIT", quantity=5, price=80000)
    same = kis.amend_order(
        "A", order.order_no, new_price=79000, new_quantity=3, mode=AmendMode.IN_PLACE
    )
    assert same.order_no == order.order_no and same.remaining_quantity == 3
    assert kis.balance("A", "005930").locked == 3
    amended = kis.ledger.entries(kinds=[LedgerKind.ORDER_AMENDED])
    assert len(amended) == 1 and amended[0].data["new_order_no"] == order.order_no


# ---- history ---------------------------------------------------------------------------------


def test_history_by_kst_day_open_only_and_order_no(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    day1_open = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=60000)
    day1_filled = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=1, price=70000)
    kis.clock.advance(timedelta(hours=20).total_seconds())  # 05:30 KST the next day
    day2 = kis.place_order("A", "005930", "SELL", "LIMIT", quantity=1, price=70000)
    d1 = START.astimezone(KST).date()
    d2 = d1 + timedelta(days=1)
    assert [o.order_no for o in kis.orders("A", start_date=d1, end_date=d1)] == [
        day1_open.order_no,
        day1_filled.order_no,
    ]
    assert [o.order_no for o in kis.orders("A", start_date=d2, end_date=d2)] == [day2.order_no]
    assert [o.order_no for o in kis.orders("A", open_only=True)] == [day1_open.order_no]
    assert [f.order_no for f in kis.fills("A", start_date=d2)] == [day2.order_no]
    assert [f.order_no for f in kis.fills("A", order_no=day1_filled.order_no)] == [
        day1_filled.order_no
    ]
    assert kis.get_order("A", day2.order_no).side == "SELL"
    kis.create_account("B", balances={"KRW": "1"})
    with pytest.raises(OrderNotFound):  # another account's order is invisible
        kis.get_order("B", day2.order_no)


def test_ledger_records_each_placement_once(kis: Engine) -> None:
    kis.pin_price("005930", 70000)
    order = kis.place_order("A", "005930", "BUY", "LIMIT", quantity=2, price=70000)
    placed = kis.ledger.entries(kinds=[LedgerKind.ORDER_PLACED])
    assert [e.data["order_no"] for e in placed] == [order.order_no]
    assert placed[0].to_json()["price"] == "70000"
    assert len(kis.ledger.entries(kinds=["fill"])) == 1


# ---- concurrency -----------------------------------------------------------------------------


def test_many_threads_keep_totals_consistent() -> None:
    eng = make_engine()
    accounts = [f"T{i}" for i in range(4)]
    for a in accounts:
        eng.create_account(a, balances={"KRW": "100000000"}, positions={"005930": 1000})
    eng.pin_price("005930", 70000)
    eng.set_liquidity("005930", 7)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)  # noqa: S311 - a reproducible test workload
        account = accounts[n % len(accounts)]
        try:
            for _ in range(40):
                side = rng.choice(["BUY", "SELL"])
                price = rng.choice([69000, 69500, 70000, 70500, 71000])
                order = eng.place_order(
                    account, "005930", side, "LIMIT", quantity=rng.randint(1, 20), price=price
                )
                if rng.random() < 0.3 and order.is_open:
                    with contextlib.suppress(OrderNotOpen):  # it may have filled meanwhile
                        eng.cancel_order(account, order.order_no)
                if rng.random() < 0.2:
                    eng.clock.advance(1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    numbers = [o.order_no for a in accounts for o in eng.orders(a)]
    assert len(numbers) == len(set(numbers)) == 320
    for a in accounts:
        fills = eng.fills(a)
        cash = D(100_000_000)
        shares = D(1000)
        for f in fills:
            if f.side == "BUY":
                cash -= f.notional + f.fee
                shares += f.quantity
            else:
                cash += f.notional - f.fee - f.tax
                shares -= f.quantity
        krw, stock = eng.balance(a, "KRW"), eng.balance(a, "005930")
        assert krw.total == cash and stock.total == shares
        open_orders = eng.orders(a, open_only=True)
        assert krw.locked == sum((o.locked for o in open_orders if o.side == "BUY"), D(0))
        assert stock.locked == sum((o.locked for o in open_orders if o.side == "SELL"), D(0))
        assert krw.available >= 0 and stock.available >= 0
