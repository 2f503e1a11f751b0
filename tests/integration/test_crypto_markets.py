"""``market.crypto_markets`` synced from the three crypto simulators' market lists."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import run_cli
from web_server.extensions import db
from web_server.models import CryptoMarket
from web_server.services.accounts import create_account


@pytest.fixture
def crypto_sims(app_ctx):
    """The three crypto simulators, each with a gateway account pointing at it."""
    handles = {
        name: serve_in_thread(create_simulator(name)) for name in ("upbit", "bithumb", "binance")
    }
    for name, handle in handles.items():
        create_account(
            name=f"{name}-1",
            exchange=name.upper(),
            environment="REAL",
            api_key="k" * 32,
            api_secret="s" * 32,
            base_url=handle.url,
        )
    db.session.commit()
    yield handles
    for handle in handles.values():
        handle.stop()


def test_markets_sync_reads_each_exchange(app, crypto_sims):
    result = run_cli(app, "markets", "sync")
    assert result.exit_code == 0, result.output
    rows = {(m.exchange, m.symbol): m for m in db.session.scalars(select(CryptoMarket))}
    assert ("UPBIT", "KRW-BTC") in rows and ("BITHUMB", "KRW-BTC") in rows
    btcusdt = rows[("BINANCE", "BTCUSDT")]
    assert btcusdt.base_asset == "BTC" and btcusdt.quote_asset == "USDT"
    assert btcusdt.tick_size > 0 and btcusdt.lot_size > 0 and btcusdt.min_notional >= Decimal(5)
    assert isinstance(btcusdt.tick_size, Decimal)
    again = run_cli(app, "markets", "sync")
    assert "added 0, changed 0" in again.output


def test_vanished_market_is_kept_but_not_tradable(app, crypto_sims):
    run_cli(app, "markets", "sync", "--exchange", "BINANCE")
    db.session.add(
        CryptoMarket(exchange="BINANCE", symbol="OLDUSDT", base_asset="OLD", quote_asset="USDT")
    )
    db.session.commit()
    result = run_cli(app, "markets", "sync", "--exchange", "BINANCE")
    assert "no longer listed 1" in result.output
    db.session.expire_all()
    old = db.session.scalar(select(CryptoMarket).where(CryptoMarket.symbol == "OLDUSDT"))
    assert old is not None and old.is_tradable is False


def test_the_market_list_download_is_paced_on_the_shared_budgets(app, crypto_sims):
    from sqlalchemy import text

    run_cli(app, "markets", "sync")
    keys = db.session.scalars(text("SELECT key FROM system.rate_limit_buckets")).all()
    # One budget per address (hashed), each exchange's unit for its public market list.
    units = sorted(key.rsplit(":", 1)[0] for key in keys)
    assert units == ["binance:weight", "bithumb:public:market", "upbit:quotation:market"], keys
