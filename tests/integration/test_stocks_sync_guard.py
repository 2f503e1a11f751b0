"""The stocks sync's delisting guard: a master missing a large share of a market is refused.

Built from the real KIS master files: the first sync applies them; then a copy with a tenth of
KOSDAQ left out (what a damaged file that still parses looks like) is refused without ``--force``
— nothing changes, the refusal is recorded, logged, and shown on the stocks page — and applies
with it.
"""

from __future__ import annotations

import pytest

from securities.kis.master_file import parse_master, write_master_zip
from tests.conftest import KIS_MASTER_DIR, run_cli
from web_server.services.stocks_sync import StocksSyncDelistGuard, run_sync


def _real(market: str):
    return parse_master((KIS_MASTER_DIR / f"{market.lower()}_code.mst").read_bytes(), market)


@pytest.fixture
def damaged_master(tmp_path):
    """A master folder whose KOSDAQ file lacks every tenth stock; yields (folder, missing)."""
    kospi, kosdaq = _real("KOSPI"), _real("KOSDAQ")
    missing = {r.short_code for r in kosdaq.records[::10]}
    (tmp_path / "kospi_code.mst.zip").write_bytes(write_master_zip(kospi.records, "KOSPI"))
    kept = [r for r in kosdaq.records if r.short_code not in missing]
    (tmp_path / "kosdaq_code.mst.zip").write_bytes(write_master_zip(kept, "KOSDAQ"))
    return tmp_path, missing


def _delisted(psql) -> int:
    return psql.execute("SELECT count(*) FROM market.stocks WHERE status = 'DELISTED'").fetchone()[
        0
    ]


def test_a_master_missing_a_tenth_of_a_market_is_refused_unless_forced(
    app, clean_db, database_url, psql, damaged_master, caplog, client, make_api_key
):
    folder, missing = damaged_master
    run_sync(database_url, str(KIS_MASTER_DIR))
    assert _delisted(psql) == 0

    with pytest.raises(StocksSyncDelistGuard) as refused:
        run_sync(database_url, str(folder))
    assert refused.value.code == "stocks_sync_delist_guard"
    assert "KOSDAQ" in refused.value.detail and "--force" in refused.value.detail
    assert _delisted(psql) == 0  # nothing changed
    assert any("stocks_sync_delist_guard" in r.getMessage() for r in caplog.records)

    cli = run_cli(app, "stocks", "sync", "--master-dir", str(folder))
    assert cli.exit_code != 0
    assert "[stocks_sync_delist_guard]" in cli.output and "Nothing was changed" in cli.output
    assert _delisted(psql) == 0
    runs = psql.execute(
        "SELECT outcome, code, delist_shares FROM system.stocks_sync_runs ORDER BY id"
    ).fetchall()
    assert [r[0] for r in runs] == ["APPLIED", "REFUSED", "REFUSED"]
    assert runs[1][1] == "stocks_sync_delist_guard"
    assert runs[1][2]["KOSDAQ"]["delisted"] == len(missing)

    # Shown on the operator's stocks page.
    from web_server.services.users import create_user

    with app.app_context():
        create_user("ops", "correct horse battery staple")
        from web_server.extensions import db

        db.session.commit()
    page = _logged_in_stocks_page(client)
    assert "stocks_sync_delist_guard" in page and "refused" in page.lower()

    forced = run_cli(app, "stocks", "sync", "--master-dir", str(folder), "--force")
    assert forced.exit_code == 0, forced.output
    assert f"delisted {len(missing)}" in forced.output
    assert _delisted(psql) == len(missing)
    last = psql.execute(
        "SELECT outcome FROM system.stocks_sync_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert last == ("FORCED",)


def test_a_small_delisting_passes_and_the_share_is_configurable(
    app, clean_db, database_url, psql, tmp_path
):
    run_sync(database_url, str(KIS_MASTER_DIR))
    kospi, kosdaq = _real("KOSPI"), _real("KOSDAQ")
    gone = {r.short_code for r in kosdaq.records[:3]}
    (tmp_path / "kospi_code.mst.zip").write_bytes(write_master_zip(kospi.records, "KOSPI"))
    kept = [r for r in kosdaq.records if r.short_code not in gone]
    (tmp_path / "kosdaq_code.mst.zip").write_bytes(write_master_zip(kept, "KOSDAQ"))
    with pytest.raises(StocksSyncDelistGuard):
        run_sync(database_url, str(tmp_path), max_delist_share=0.001)
    summary = run_sync(database_url, str(tmp_path))  # 3 of ~1,800: under 5 %
    assert summary.delisted == 3 and not summary.forced


def _logged_in_stocks_page(client) -> str:
    import re

    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login)
    token = token or re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token, "no CSRF token on the login page"
    response = client.post(
        "/login",
        data={
            "username": "ops",
            "password": "correct horse battery staple",
            "csrf_token": token.group(1),
        },
    )
    assert response.status_code in (200, 302)
    return client.get("/stocks").get_data(as_text=True)
