"""Holdings and balances through ``/api/v1/accounts/{id}/{holdings,balances}``, on the simulators.

The simulators are the broker's truth: every figure the gateway serves is compared with a direct
read of the simulator (its control surface or its own API), never with a number written here.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import time
from decimal import ROUND_DOWN, Decimal

import psycopg
import pytest
import requests
from flask_migrate import downgrade, upgrade

from simulators.engine import SimClock
from simulators.krx import KST
from simulators.krx_calendar import TradingCalendar
from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import KIS_MASTER_DIR, idle_in_transaction, random_key, remember_secret
from tests.integration.accounts_support import start_kis
from web_server.services import clock as gateway_clock
from web_server.services.stocks_sync import run_sync

TIMEOUT = 10


@pytest.fixture
def gateway(app, clean_db):
    """The session's app behind a real threaded HTTP server, so requests truly run at once."""
    handle = serve_in_thread(app)
    yield handle.url
    handle.stop()


@pytest.fixture
def kis(app, database_url):
    """A KIS simulator (no rate limit), its stocks master synced, an account with two stocks."""
    sim = start_kis(app, database_url, cash="5000000", positions={"005930": 3, "000660": 2})
    yield sim.url, sim.key, sim.secret
    sim.stop()


def _add_kis_account(client, headers, url: str, app_key: str, secret: str) -> int:
    created = client.post(
        "/api/v1/accounts",
        headers=headers,
        json={
            "name": "kis",
            "exchange": "KIS",
            "api_key": app_key,
            "api_secret": secret,
            "base_url": url,
            "securities_config": {"account_number": "50123456", "product_code": "01"},
        },
    )
    assert created.status_code == 201, created.get_json()
    account_id = created.get_json()["id"]
    # One token up front: the burst below is about holdings, not about token issuance.
    refreshed = client.post(f"/api/v1/accounts/{account_id}/token/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.get_json()
    return account_id


def test_concurrent_refreshes_of_one_account_all_succeed_and_store_one_row_per_position(
    client, api_headers, gateway, kis, psql
):
    account_id = _add_kis_account(client, api_headers, *kis)
    url = f"{gateway}/api/v1/accounts/{account_id}/holdings"

    def refresh(_: int) -> tuple[int, dict]:
        response = requests.get(url, params={"refresh": "true"}, headers=api_headers, timeout=60)
        return response.status_code, response.json()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(refresh, range(20)))

    assert [status for status, _ in answers] == [200] * 20, [b for s, b in answers if s != 200]
    broker = requests.get(f"{kis[0]}/_sim/accounts/50123456-01", timeout=TIMEOUT).json()
    held = {a: b["total"] for a, b in broker["balances"].items() if a != "KRW"}
    for _, body in answers:
        assert {h["symbol"]: h["quantity"] for h in body["holdings"]} == held
    rows = psql.execute(
        "SELECT symbol, quantity FROM trade.holdings WHERE account_id = %s ORDER BY symbol",
        (account_id,),
    ).fetchall()
    assert [(s, str(q)) for s, q in rows] == sorted(held.items())


@pytest.mark.parametrize("read", ["holdings?refresh=true", "balances"])
def test_no_transaction_stays_open_while_the_broker_is_read(
    read, client, api_headers, gateway, kis, psql
):
    """A read of the broker ends the request's own reads first.

    Before, a holdings refresh or a balances read kept the transaction of its account read open
    for as long as the broker took: a TRUNCATE or a migration's ALTER queued behind its snapshot,
    and every statement behind them (the suite once hung so, on a page's background refresh).
    """
    account_id = _add_kis_account(client, api_headers, *kis)
    sim_url = kis[0]
    requests.post(
        f"{sim_url}/_sim/faults", json={"kind": "latency", "seconds": 2, "count": 5}, timeout=5
    ).raise_for_status()
    outcome: dict[str, int] = {}

    def ask() -> None:
        url = f"{gateway}/api/v1/accounts/{account_id}/{read}"
        outcome["status"] = requests.get(url, headers=api_headers, timeout=30).status_code

    asking = concurrent.futures.ThreadPoolExecutor(1).submit(ask)
    try:
        time.sleep(1.0)  # the request is now waiting on the broker
        open_ones = idle_in_transaction(psql)
    finally:
        asking.result(timeout=30)
        requests.delete(f"{sim_url}/_sim/faults", timeout=5)
    assert outcome["status"] == 200
    assert open_ones == []


def test_a_position_outside_the_stocks_master_is_kept_and_reported_in_every_read(
    app, client, api_headers, kis, psql, database_url
):
    account_id = _add_kis_account(client, api_headers, *kis)
    psql.execute("DELETE FROM market.stocks WHERE symbol = '000660'")  # a stale master
    app.extensions["gateway.symbols"].invalidate()
    path = f"/api/v1/accounts/{account_id}/holdings"

    fresh = client.get(f"{path}?refresh=true", headers=api_headers).get_json()
    cached = client.get(path, headers=api_headers).get_json()
    assert cached["as_of"] == fresh["as_of"]  # served from the stored snapshot
    broker = requests.get(f"{kis[0]}/_sim/accounts/50123456-01", timeout=TIMEOUT).json()
    for snapshot in (fresh, cached):
        shown = {h["symbol"]: h for h in snapshot["holdings"]}
        assert set(shown) == {a for a in broker["balances"] if a != "KRW"}
        assert shown["000660"]["in_master"] is False
        assert shown["000660"]["quantity"] == broker["balances"]["000660"]["total"]
        assert shown["000660"]["name"]  # the broker's name: the master has none
        assert shown["005930"]["in_master"] is True
        assert snapshot["unlisted_symbols"] == ["000660"]
    rows = psql.execute(
        "SELECT symbol, broker_symbol, name FROM trade.holdings ORDER BY 2, 1"
    ).fetchall()
    # Kept beside the foreign key, by the broker's code and name.
    assert rows == [(None, "000660", shown["000660"]["name"]), ("005930", None, "삼성전자")]

    # Once the master knows it again, the next refresh links it.
    run_sync(database_url, f"{kis[0]}/common/master")
    app.extensions["gateway.symbols"].invalidate()
    linked = client.get(f"{path}?refresh=true", headers=api_headers).get_json()
    assert {h["symbol"]: h["in_master"] for h in linked["holdings"]} == {
        "000660": True,
        "005930": True,
    }
    assert linked["unlisted_symbols"] == []
    rows = psql.execute("SELECT symbol, broker_symbol FROM trade.holdings ORDER BY 1").fetchall()
    assert rows == [("000660", None), ("005930", None)]  # one row each, now linked


def test_the_available_quantity_is_stored_and_served(app, client, api_headers, kis, psql):
    url = kis[0]
    account_id = _add_kis_account(client, api_headers, *kis)
    price = Decimal(
        requests.get(f"{url}/_sim/prices", params={"symbol": "005930"}, timeout=TIMEOUT).json()[
            "prices"
        ]["005930"]
    )
    # A sell far above the market rests and ties up two of the three shares.
    above = (price * Decimal("1.2") / 1000).to_integral_value(rounding=ROUND_DOWN) * 1000
    placed = client.post(
        "/api/v1/orders",
        headers={**api_headers, "Idempotency-Key": "rest-sell"},
        json={
            "account_id": account_id,
            "symbol": "005930",
            "side": "SELL",
            "type": "LIMIT",
            "quantity": "2",
            "limit_price": str(above),
        },
    )
    assert placed.status_code == 201 and placed.get_json()["status"] == "SUBMITTED", placed.json
    broker = requests.get(f"{url}/_sim/accounts/50123456-01", timeout=TIMEOUT).json()["balances"]
    assert broker["005930"]["available"] != broker["005930"]["total"]

    path = f"/api/v1/accounts/{account_id}/holdings"
    for snapshot in (
        client.get(f"{path}?refresh=true", headers=api_headers).get_json(),
        client.get(path, headers=api_headers).get_json(),
    ):
        shown = {h["symbol"]: h for h in snapshot["holdings"]}
        for symbol, held in shown.items():
            assert held["quantity"] == broker[symbol]["total"]
            assert held["available_quantity"] == broker[symbol]["available"]
    rows = psql.execute(
        "SELECT symbol, quantity, available_quantity FROM trade.holdings ORDER BY symbol"
    ).fetchall()
    assert [(s, str(q), str(a)) for s, q, a in rows] == [
        (s, broker[s]["total"], broker[s]["available"]) for s in sorted(shown)
    ]


# -- a few trading days on the KIS and Kiwoom simulators ------------------------------------------


CALENDAR = TradingCalendar.xkrx()


def _trading_days(count: int) -> list[dt.date]:
    """The next ``count`` KRX trading days after today (weekends and holidays between them)."""
    day = dt.datetime.now(KST).date()
    days = []
    while len(days) < count:
        day = CALENDAR.next_trading_day(day)
        days.append(day)
    return days


class Securities:
    """A KIS or Kiwoom simulator on the simulated clock the gateway shares, and direct reads."""

    def __init__(self, exchange: str, clock: SimClock) -> None:
        self.exchange = exchange
        self.clock = clock
        name = exchange.lower()
        self.handle = serve_in_thread(
            create_simulator(name, market_hours="krx", clock=clock, rate_limit_per_second=0)
        )
        self.url = self.handle.url
        self.app_key, self.secret = random_key(36), remember_secret(random_key(180))
        self.number = "50123456"
        body = {
            "app_key": self.app_key,
            "account_number": self.number,
            "cash": "10000000",
            "positions": {"005930": 10, "000660": 5},
        }
        body.update(
            {"app_secret": self.secret, "product_code": "01"}
            if exchange == "KIS"
            else {"secret_key": self.secret}
        )
        created = requests.post(f"{self.url}/_sim/accounts", json=body, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        self.sim_account = created.json()["account_id"]

    def move_to(self, when: dt.datetime) -> None:
        seconds = (when - self.clock.now()).total_seconds()
        moved = requests.post(
            f"{self.url}/_sim/clock", json={"advance_seconds": seconds}, timeout=TIMEOUT
        )
        assert moved.status_code == 200, moved.text

    def fills(self) -> list[dict]:
        ledger = requests.get(
            f"{self.url}/_sim/ledger",
            params={"kind": "fill", "account_id": self.sim_account},
            timeout=TIMEOUT,
        )
        return list(ledger.json()["entries"])

    def price(self, symbol: str) -> Decimal:
        prices = requests.get(f"{self.url}/_sim/prices", params={"symbol": symbol}, timeout=5)
        return Decimal(prices.json()["prices"][symbol])

    def broker_cash(self) -> tuple[Decimal, Decimal]:
        """Today's and the D+2 cash, read from the broker's own balance inquiry.

        The test asks for its own token, a minute after the gateway's last one (the brokers
        allow one a minute per app key); no trade is open, so the minute changes no figure.
        """
        self.move_to(self.clock.now() + dt.timedelta(seconds=61))
        if self.exchange == "KIS":
            token = requests.post(
                f"{self.url}/oauth2/tokenP",
                json={
                    "grant_type": "client_credentials",
                    "appkey": self.app_key,
                    "appsecret": self.secret,
                },
                timeout=TIMEOUT,
            ).json()["access_token"]
            answer = requests.get(
                f"{self.url}/uapi/domestic-stock/v1/trading/inquire-balance",
                headers={
                    "authorization": f"Bearer {token}",
                    "appkey": self.app_key,
                    "appsecret": self.secret,
                    "tr_id": "TTTC8434R",
                    "custtype": "P",
                },
                params={
                    "CANO": self.number,
                    "ACNT_PRDT_CD": "01",
                    "AFHR_FLPR_YN": "N",
                    "OFL_YN": "",
                    "INQR_DVSN": "02",
                    "UNPR_DVSN": "01",
                    "FUND_STTL_ICLD_YN": "N",
                    "FNCG_AMT_AUTO_RDPT_YN": "N",
                    "PRCS_DVSN": "00",
                    "CTX_AREA_FK100": "",
                    "CTX_AREA_NK100": "",
                },
                timeout=TIMEOUT,
            ).json()
            summary = answer["output2"][0]
            return Decimal(summary["dnca_tot_amt"]), Decimal(summary["prvs_rcdl_excc_amt"])
        token = requests.post(
            f"{self.url}/oauth2/token",
            json={
                "grant_type": "client_credentials",
                "appkey": self.app_key,
                "secretkey": self.secret,
            },
            timeout=TIMEOUT,
        ).json()["token"]
        answer = requests.post(
            f"{self.url}/api/dostk/acnt",
            headers={
                "authorization": f"Bearer {token}",
                "api-id": "kt00001",
                "Content-Type": "application/json;charset=UTF-8",
            },
            json={"qry_tp": "3"},
            timeout=TIMEOUT,
        ).json()
        return Decimal(answer["entr"]), Decimal(answer["d2_entra"])


@pytest.fixture(params=["KIS", "KIWOOM"])
def securities(request, app, clean_db, database_url, monkeypatch):
    """A KIS or Kiwoom simulator at 10:00 KST on the next trading day, the gateway on its clock.

    The gateway spaces token requests on the database's clock, which does not move with the
    simulated one: days pass here in a second, so its spacing is off and the simulator's own
    one-a-minute rule (on the simulated clock) is the one that holds.
    """
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_INTERVAL_SECONDS", {"KIS": 0, "KIWOOM": 0})
    monkeypatch.setitem(app.config, "TOKEN_ISSUE_MARGIN_SECONDS", 0)
    clock = SimClock()
    first = _trading_days(1)[0]
    clock.advance(
        (dt.datetime.combine(first, dt.time(10), tzinfo=KST) - clock.now()).total_seconds()
    )
    venue = Securities(request.param, clock)
    run_sync(database_url, str(KIS_MASTER_DIR))
    app.extensions["gateway.symbols"].invalidate()
    gateway_clock.install(app, clock.now)
    yield venue
    gateway_clock.install(app, None)
    venue.handle.stop()


def _expected_cash(start: Decimal, fills: list[dict], today: dt.date) -> tuple[Decimal, Decimal]:
    """D+0 and D+2 cash from the ledger's fills: each settles two trading days after its day."""
    d0 = d2 = start
    for fill in fills:
        notional = (Decimal(fill["price"]) * Decimal(fill["quantity"])).to_integral_value(
            rounding=ROUND_DOWN
        )
        costs = Decimal(fill["fee"]) + Decimal(fill["tax"])
        flow = -(notional + costs) if fill["side"].upper() == "BUY" else notional - costs
        d2 += flow
        traded = dt.datetime.fromisoformat(fill["time"]).astimezone(KST).date()
        if CALENDAR.settlement_day(traded) <= today:
            d0 += flow
    return d0, d2


def _trade(client, headers, account_id: int, key: str, side: str, symbol: str, qty: int) -> None:
    placed = client.post(
        "/api/v1/orders",
        headers={**headers, "Idempotency-Key": key},
        json={
            "account_id": account_id,
            "symbol": symbol,
            "side": side,
            "type": "MARKET",
            "quantity": str(qty),
        },
    )
    assert placed.status_code == 201, placed.get_json()
    assert placed.get_json()["broker_order_id"], placed.get_json()


def test_balances_give_today_and_d2_cash_as_the_simulator_reports_them_after_days_of_trades(
    client, api_headers, securities
):
    venue = securities
    created = client.post(
        "/api/v1/accounts",
        headers=api_headers,
        json={
            "name": venue.exchange.lower(),
            "exchange": venue.exchange,
            "api_key": venue.app_key,
            "api_secret": venue.secret,
            "base_url": venue.url,
            "securities_config": {"account_number": venue.number, "product_code": "01"},
        },
    )
    assert created.status_code == 201, created.get_json()
    account_id = created.get_json()["id"]
    path = f"/api/v1/accounts/{account_id}/balances"
    start = Decimal("10000000")
    days = _trading_days(3)

    def check(day: dt.date) -> dict:
        answer = client.get(path, headers=api_headers)
        assert answer.status_code == 200, answer.get_json()
        (krw,) = answer.get_json()
        broker_d0, broker_d2 = venue.broker_cash()
        assert (krw["settled_today"], krw["settled_d2"]) == (str(broker_d0), str(broker_d2))
        assert (broker_d0, broker_d2) == _expected_cash(start, venue.fills(), day)
        assert krw["total"] == krw["settled_today"]
        assert krw["locked"] == "0"  # no order rests: a pending settlement is not "locked"
        return krw

    # Day 1: buy and sell; nothing has settled yet, the D+2 cash has every trade in it.
    _trade(client, api_headers, account_id, "d1-buy", "BUY", "005930", 3)
    _trade(client, api_headers, account_id, "d1-sell", "SELL", "000660", 2)
    assert len(venue.fills()) >= 2
    first = check(days[0])
    assert first["settled_today"] == str(start) and first["settled_d2"] != str(start)

    # Day 2 (after a weekend or a holiday if the calendar has one): more trades.
    venue.move_to(dt.datetime.combine(days[1], dt.time(9, 30), tzinfo=KST))
    _trade(client, api_headers, account_id, "d2-buy", "BUY", "000660", 1)
    _trade(client, api_headers, account_id, "d2-sell", "SELL", "005930", 4)
    second = check(days[1])
    assert second["settled_today"] == str(start)

    # Day 3: day 1 has settled (T+2), day 2 has not.
    venue.move_to(dt.datetime.combine(days[2], dt.time(9, 30), tzinfo=KST))
    third = check(days[2])
    assert third["settled_today"] not in (str(start), third["settled_d2"])
    assert third["settled_d2"] == second["settled_d2"]  # no trade since


def test_crypto_cash_settles_at_once_so_both_figures_are_the_total(client, api_headers):
    handle = serve_in_thread(create_simulator("upbit"))
    try:
        access, secret = random_key(40), remember_secret(random_key(40))
        created = requests.post(
            f"{handle.url}/_sim/accounts",
            json={"access_key": access, "secret_key": secret, "balances": {"KRW": "1000000"}},
            timeout=TIMEOUT,
        )
        account = client.post(
            "/api/v1/accounts",
            headers=api_headers,
            json={
                "name": "upbit",
                "exchange": "UPBIT",
                "api_key": access,
                "api_secret": secret,
                "base_url": handle.url,
            },
        ).get_json()
        (krw,) = client.get(
            f"/api/v1/accounts/{account['id']}/balances", headers=api_headers
        ).get_json()
        broker = requests.get(
            f"{handle.url}/_sim/accounts/{created.json()['account_id']}", timeout=TIMEOUT
        ).json()["balances"]["KRW"]
        assert Decimal(krw["total"]) == Decimal(broker["total"])
        assert krw["settled_today"] == krw["settled_d2"] == krw["total"]
    finally:
        handle.stop()


# -- migration 0014 --------------------------------------------------------------------------------


@pytest.fixture
def scratch(pg_server, make_app):
    """A second, empty database in the same cluster, and an app bound to it."""
    name = f"gateway_holdings_{os.getpid()}"
    url = pg_server.create_database(name)
    application = make_app(DATABASE_URL=url)
    yield application, url.replace("+psycopg", "")
    from web_server.extensions import db

    with application.app_context():
        db.engine.dispose()
    pg_server.drop_database(name)


def test_migration_0014_keeps_existing_holdings_and_goes_both_ways(scratch):
    application, url = scratch
    with application.app_context():
        upgrade(revision="0013")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO market.stocks (symbol, name, market) VALUES ('005930', 'Samsung', 'KOSPI')"
        )
        account = conn.execute(
            "INSERT INTO accounts (name, exchange, account_type, api_key, api_secret)"
            " VALUES ('kis', 'KIS', 'SECURITIES_STOCK', 'gw1:x:a', 'gw1:x:b') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO trade.holdings (account_id, symbol, quantity) VALUES (%s, '005930', 3)",
            (account,),
        )
        conn.execute(
            "INSERT INTO trade.holdings (account_id, asset, quantity) VALUES (%s, 'BTC', 0.5)",
            (account,),
        )
    with application.app_context():
        upgrade(revision="0014")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT symbol, broker_symbol, asset, available_quantity"
            " FROM trade.holdings ORDER BY id"
        ).fetchall()
        assert rows == [("005930", None, None, None), (None, None, "BTC", None)]
        conn.execute(
            "INSERT INTO trade.holdings (account_id, broker_symbol, quantity, available_quantity)"
            " VALUES (%s, '999999', 7, 5)",
            (account,),
        )
        with pytest.raises(psycopg.errors.UniqueViolation):  # one row per position
            conn.execute(
                "INSERT INTO trade.holdings (account_id, broker_symbol, quantity)"
                " VALUES (%s, '005930', 1)",
                (account,),
            )
        with pytest.raises(psycopg.errors.CheckViolation):  # one name per position
            conn.execute(
                "INSERT INTO trade.holdings (account_id, symbol, broker_symbol, quantity)"
                " VALUES (%s, '005930', '005930', 1)",
                (account,),
            )
    with application.app_context():
        downgrade(revision="0013")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT symbol, asset FROM trade.holdings ORDER BY id").fetchall()
        assert rows == [("005930", None), (None, "BTC")]  # the old schema cannot hold 999999
    with application.app_context():
        upgrade(revision="0014")
