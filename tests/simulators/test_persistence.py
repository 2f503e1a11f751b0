"""A simulator's state saved and loaded into a fresh one: what the gateway relies on is still there.

Each of the five simulators gets an account over ``/_sim/accounts`` and a resting order; a fresh
simulator built the same way then loads the snapshot and must know the account's keys (a second
``POST /_sim/accounts`` with them is refused), the open order with its lock, the balances, and
number the next order after the restored ones.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from simulators import persistence
from simulators.control.state import STATE_EXTENSION_KEY
from simulators.engine import instruments as tick_rules
from simulators.registry import NAMES, create_simulator

BODIES = {
    "kis": {
        "app_key": "K" * 36,
        "app_secret": "S" * 180,
        "account_number": "50000001",
        "product_code": "01",
        "cash": "100000000",
        "positions": {"005930": 10},
    },
    "kiwoom": {
        "app_key": "K" * 36,
        "secret_key": "S" * 64,
        "account_number": "60000001",
        "cash": "100000000",
    },
    "upbit": {"access_key": "K" * 36, "secret_key": "S" * 64, "balances": {"KRW": "100000000"}},
    "bithumb": {"access_key": "K" * 36, "secret_key": "S" * 64, "balances": {"KRW": "100000000"}},
    "binance": {"api_key": "K" * 36, "secret_key": "S" * 64, "balances": {"USDT": "100000"}},
}
SYMBOLS = {
    "kis": "005930",
    "kiwoom": "005930",
    "upbit": "KRW-BTC",
    "bithumb": "KRW-BTC",
    "binance": "BTCUSDT",
}


@pytest.mark.parametrize("name", NAMES)
def test_a_restored_simulator_knows_accounts_orders_and_numbers(name, tmp_path):
    app = create_simulator(name)
    created = app.test_client().post("/_sim/accounts", json=BODIES[name])
    assert created.status_code == 201, created.get_json()
    account_id = created.get_json()["account_id"]
    engine = app.extensions[STATE_EXTENSION_KEY].engine
    symbol = SYMBOLS[name]
    instrument = engine.instrument(symbol)
    price = tick_rules.snap_to_tick(engine.price(symbol) * Decimal("0.7"), instrument.tick_rule)
    resting = engine.place_order(
        account_id,
        symbol,
        "BUY",
        "LIMIT",
        quantity="0.01" if "-" in symbol or symbol.endswith("USDT") else "1",
        price=price,
    )
    assert resting.is_open
    path = tmp_path / f"{name}.state"
    persistence.save_file(app, path)
    assert path.stat().st_mode & 0o077 == 0

    fresh = create_simulator(name)
    assert persistence.load_file(fresh, path) > 0
    again = fresh.test_client().post("/_sim/accounts", json=BODIES[name])
    assert again.status_code in (400, 409)  # the keys and the account are known already
    restored = fresh.extensions[STATE_EXTENSION_KEY].engine
    order = restored.get_order(account_id, resting.order_no)
    assert order.is_open and order.locked == resting.locked and order.price == price
    assert restored.account(account_id).balances == engine.account(account_id).balances
    following = restored.place_order(
        account_id,
        symbol,
        "BUY",
        "LIMIT",
        quantity="0.01" if "-" in symbol or symbol.endswith("USDT") else "1",
        price=price,
    )
    assert following.order_no != resting.order_no
    cancelled = restored.cancel_order(account_id, resting.order_no)
    assert not cancelled.is_open


def test_a_snapshot_of_another_broker_is_refused(tmp_path):
    path = tmp_path / "kis.state"
    persistence.save_file(create_simulator("kis"), path)
    with pytest.raises(persistence.SnapshotError):
        persistence.load_file(create_simulator("upbit"), path)
