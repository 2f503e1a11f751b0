"""The stocks master sync on KIS's real master files, and the validator the order path uses."""

from __future__ import annotations

import time

import psycopg
import pytest
from flask import Flask, Response

from securities.kis.master_file import parse_master, write_master_zip
from simulators.server import serve_in_thread
from tests.conftest import KIS_MASTER_DIR, run_cli
from web_server.services.stocks_sync import StocksSyncFailed, run_sync
from web_server.services.symbols import (
    SymbolDelisted,
    SymbolHalted,
    SymbolSuspended,
    UnknownSymbol,
)

pytestmark = pytest.mark.skipif(
    not (KIS_MASTER_DIR / "kospi_code.mst").exists(),
    reason=f"the real KIS master files are not at {KIS_MASTER_DIR}",
)


def _real(market: str):
    data = (KIS_MASTER_DIR / f"{market.lower()}_code.mst").read_bytes()
    return parse_master(data, market)


def _snapshot(psql):
    return psql.execute(
        "SELECT symbol, status, is_tradable, delisting_date, updated_ts FROM market.stocks"
        " ORDER BY symbol"
    ).fetchall()


@pytest.fixture
def synced(app, clean_db, database_url):
    """The real files synced once; returns the summary."""
    return run_sync(database_url, str(KIS_MASTER_DIR))


def test_real_files_give_3919_stocks(synced, psql):
    assert (synced.added, synced.changed, synced.delisted, synced.skipped) == (3919, 0, 0, 470)
    assert psql.execute("SELECT count(*) FROM market.stocks").fetchone() == (3919,)
    rows = dict(
        (symbol, (name, market))
        for symbol, name, market in psql.execute(
            "SELECT symbol, name, market FROM market.stocks WHERE symbol IN"
            " ('005930', '0001A0', '26490K')"
        )
    )
    assert rows["005930"] == ("삼성전자", "KOSPI")
    assert rows["0001A0"] == ("덕양에너젠", "KOSDAQ")
    assert rows["26490K"][1] == "KOSPI"
    letters = psql.execute("SELECT count(*) FROM market.stocks WHERE symbol ~ '[A-Z]'").fetchone()
    assert letters == (361,)
    halted = psql.execute(
        "SELECT status, is_tradable, trade_halt_reason FROM market.stocks WHERE symbol = '001470'"
    ).fetchone()
    assert halted[0] == "SUSPENDED" and halted[1] is False and "trading halted" in halted[2]


def test_second_sync_of_the_same_files_writes_nothing(synced, database_url, psql):
    before = _snapshot(psql)
    again = run_sync(database_url, str(KIS_MASTER_DIR))
    assert (again.added, again.changed, again.delisted, again.unchanged) == (0, 0, 0, 3919)
    assert _snapshot(psql) == before  # updated_ts included: no row was rewritten


def test_changed_snapshot_delists_and_halts_exactly_those(synced, database_url, psql, tmp_path):
    kospi, kosdaq = _real("KOSPI"), _real("KOSDAQ")
    removed = {"005930", "0001A0"}
    halted, administrative = "000660", "035720"
    account_id = psql.execute(
        "INSERT INTO accounts (name, exchange, account_type, api_key, api_secret)"
        " VALUES ('kis', 'KIS', 'SECURITIES_STOCK', 'gw1:x:a', 'gw1:x:b') RETURNING id"
    ).fetchone()[0]
    psql.execute(
        "INSERT INTO trade.holdings (account_id, symbol, quantity) VALUES (%s, '005930', 10)",
        (account_id,),
    )

    def change(record):
        if record.short_code == halted:
            return record.with_fields(trht_yn="Y")
        if record.short_code == administrative:
            return record.with_fields(mang_issu_yn="Y")
        return record

    for result in (kospi, kosdaq):
        kept = [change(r) for r in result.records if r.short_code not in removed]
        (tmp_path / f"{result.market.lower()}_code.mst.zip").write_bytes(
            write_master_zip(kept, result.market)
        )
    before = {row[0]: row for row in _snapshot(psql)}

    summary = run_sync(database_url, str(tmp_path))

    assert (summary.added, summary.changed, summary.delisted) == (0, 2, 2)
    after = {row[0]: row for row in _snapshot(psql)}
    assert len(after) == 3919  # nothing deleted
    for symbol in removed:
        status, tradable, delisting_date = after[symbol][1:4]
        assert (status, tradable) == ("DELISTED", False) and delisting_date is not None
    assert after[halted][1:3] == ("SUSPENDED", False)
    # A designation is a flag, not a halt: the exchange still trades the stock.
    assert after[administrative][1:3] == ("ACTIVE", True)
    designations = psql.execute(
        "SELECT designations FROM market.stocks WHERE symbol = %s", (administrative,)
    ).fetchone()[0]
    assert "ADMINISTRATIVE" in designations
    touched = {s for s in after if after[s] != before[s]}
    assert touched == removed | {halted, administrative}
    holding = psql.execute("SELECT symbol FROM trade.holdings").fetchall()
    assert holding == [("005930",)]  # the foreign key still holds

    # Relisted: the symbols come back, active again.
    back = run_sync(database_url, str(KIS_MASTER_DIR))
    assert back.changed == 4
    restored = psql.execute(
        "SELECT status, delisting_date FROM market.stocks WHERE symbol = '005930'"
    ).fetchone()
    assert restored == ("ACTIVE", None)


@pytest.fixture
def flaky_master_server():
    """A download host whose KOSDAQ file is cut short or refused."""
    kospi = write_master_zip(_real("KOSPI").records, "KOSPI")
    kosdaq = write_master_zip(_real("KOSDAQ").records, "KOSDAQ")
    app = Flask("flaky")
    mode = {"kosdaq": "truncated"}

    @app.get("/common/master/<name>")
    def master(name):
        if name.startswith("kospi"):
            return Response(kospi, mimetype="application/zip")
        if name.startswith("kosdaq"):
            if mode["kosdaq"] == "error":
                return Response("maintenance", status=503)
            return Response(kosdaq[: len(kosdaq) // 2], mimetype="application/zip")
        return Response(status=404)

    handle = serve_in_thread(app)
    yield handle.url + "/common/master", mode
    handle.stop()


def test_a_download_that_fails_halfway_changes_nothing(
    synced, database_url, psql, flaky_master_server
):
    url, mode = flaky_master_server
    psql.execute("UPDATE market.stocks SET is_tradable = false WHERE symbol = '005930'")
    before = _snapshot(psql)
    with pytest.raises(StocksSyncFailed, match="KOSDAQ master file is damaged"):
        run_sync(database_url, url)
    mode["kosdaq"] = "error"
    with pytest.raises(StocksSyncFailed, match="HTTP 503"):
        run_sync(database_url, url)
    assert _snapshot(psql) == before


def test_sync_as_readonly_fails_clearly(app, make_app, database_url, clean_db, psql):
    readonly_url = database_url.replace("postgres@", "gateway_readonly@", 1)
    readonly_app = make_app(DATABASE_URL=database_url, DATASYNC_DATABASE_URL=readonly_url)
    result = run_cli(readonly_app, "stocks", "sync", "--master-dir", str(KIS_MASTER_DIR))
    assert result.exit_code != 0
    assert "may not write market.stocks" in result.output
    assert "Nothing was changed" in result.output
    assert psql.execute("SELECT count(*) FROM market.stocks").fetchone() == (0,)
    from web_server.extensions import db

    with readonly_app.app_context():
        db.engine.dispose()


def test_the_app_login_syncs_by_taking_the_datasync_role(app, clean_db, database_url, psql):
    app_login = database_url.replace("postgres@", "gateway_app@", 1)
    summary = run_sync(app_login, str(KIS_MASTER_DIR), role="gateway_datasync")
    assert summary.added == 3919
    without_role = run_sync
    with pytest.raises(StocksSyncFailed, match="may not write market.stocks"):
        without_role(app_login, str(KIS_MASTER_DIR), role=None)


def test_cli_sync_prints_one_line(app, clean_db):
    result = run_cli(app, "stocks", "sync", "--master-dir", str(KIS_MASTER_DIR))
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith(
            "stocks sync (KOSPI, KOSDAQ): added 3919, changed 0, delisted 0, halted 118,"
            " skipped 470"
        )
    )


def test_validator_refuses_with_distinct_codes(app, synced, database_url, psql):
    psql.execute(
        "UPDATE market.stocks SET status = 'DELISTED', is_tradable = false WHERE symbol = '000660'"
    )
    # Listed and active but not tradable: what a halt the master does not flag looks like.
    psql.execute(
        "UPDATE market.stocks SET is_tradable = false, trade_halt_reason = 'operator halt'"
        " WHERE symbol = '001770'"
    )
    cache = app.extensions["gateway.symbols"]
    cache.invalidate()
    assert cache.validate_tradable("005930").name == "삼성전자"
    cases = {
        "999999": UnknownSymbol,
        "000660": SymbolDelisted,
        "001470": SymbolSuspended,  # trading halted in the real file
        "001770": SymbolHalted,  # listed, not tradable
    }
    codes = set()
    for symbol, error in cases.items():
        with pytest.raises(error) as info:
            cache.validate_tradable(symbol)
        codes.add(info.value.code)
        assert info.value.http_status == 422
    assert codes == {"symbol_unknown", "symbol_delisted", "symbol_suspended", "symbol_halted"}


def test_validator_serves_from_memory_and_hears_a_sync(app, synced, database_url):
    cache = app.extensions["gateway.symbols"]
    cache.lookup("005930")  # starts the listener if this process has none yet
    # An earlier test may have cut the session app's connections: its listener's reconnection
    # drops the cache once, which is right but would count as a load here.
    assert cache.wait_listening(10)
    cache.invalidate()
    cache.lookup("005930")
    loads = cache.loads
    for _ in range(10_000):
        cache.validate_tradable("005930")
    assert cache.loads == loads  # no reload, no database round trip per lookup
    time.sleep(0.5)  # the listener is connected
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "UPDATE market.stocks SET is_tradable = false,"
            " trade_halt_reason = 'test halt' WHERE symbol = '005930'"
        )
    run_sync(database_url, str(KIS_MASTER_DIR))  # puts 005930 back and NOTIFYs
    deadline = time.monotonic() + 5
    while cache._stocks is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache._stocks is None, "the sync's NOTIFY did not reach the cache"
    assert cache.validate_tradable("005930").is_tradable


def test_stocks_api(client, synced, api_headers):
    one = client.get("/api/v1/stocks/0001A0", headers=api_headers).get_json()
    assert one["name"] == "덕양에너젠" and one["market"] == "KOSDAQ"
    found = client.get("/api/v1/stocks?q=삼성전자", headers=api_headers).get_json()
    assert "005930" in [s["symbol"] for s in found]
    by_code = client.get("/api/v1/stocks?q=00593", headers=api_headers).get_json()
    assert by_code[0]["symbol"] == "005930"
    kosdaq_untradable = client.get(
        "/api/v1/stocks?market=KOSDAQ&tradable=false&limit=500", headers=api_headers
    )
    rows = kosdaq_untradable.get_json()
    assert rows and all(r["market"] == "KOSDAQ" and not r["is_tradable"] for r in rows)
