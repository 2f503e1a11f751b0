"""The pre-trade risk gate: each rule refuses with its own 422 code, and the broker sees nothing.

The KIS simulator's ledger is the ground truth of what was sent: a refused order must leave no
``order_placed`` entry and no intent; an order inside every limit goes out.
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from decimal import Decimal

import pytest
import requests

from tests.integration.accounts_support import add_account, start_kis
from web_server.extensions import db
from web_server.services import kill_switches, risk_policies

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")


@pytest.fixture
def kis(app, client, api_headers, database_url):
    """A KIS simulator with its master synced and a funded account; yields (url, account id)."""
    sim = start_kis(app, database_url, positions={"005930": 10})
    yield sim.url, add_account(client, api_headers, sim)
    sim.stop()


def _placed(url: str) -> list[dict]:
    ledger = requests.get(f"{url}/_sim/ledger", params={"kind": "order_placed"}, timeout=5)
    return ledger.json()["entries"]


def _price(url: str, symbol: str = "005930") -> Decimal:
    prices = requests.get(f"{url}/_sim/prices", params={"symbol": symbol}, timeout=5).json()
    return Decimal(prices["prices"][symbol])


def _resting(url: str) -> str:
    # Below the market and on every tick up to 500,000 won: the order rests at the broker.
    return str((_price(url) * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000)


def _set_base_price(psql, symbol: str, price: Decimal) -> None:
    today = dt.datetime.now(SEOUL).date()
    psql.execute(
        "INSERT INTO market.stock_base_prices (symbol, trading_date, base_price, source)"
        " VALUES (%s, %s, %s, 'OPERATOR') ON CONFLICT (symbol, trading_date)"
        " DO UPDATE SET base_price = EXCLUDED.base_price, source = 'OPERATOR'",
        (symbol, today, price),
    )


def _key_id(app, headers) -> int:
    from web_server.services.api_keys import authenticate

    with app.app_context():
        return authenticate(headers["Authorization"]).id


def test_each_rule_refuses_with_its_code_and_nothing_is_sent(app, client, api_headers, kis, psql):
    url, account_id = kis
    resting = Decimal(_resting(url))
    _set_base_price(psql, "005930", _price(url))
    key_id = _key_id(app, api_headers)

    def order(**changes) -> dict:
        body = {
            "account_id": account_id,
            "symbol": "005930",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "2",
            "limit_price": str(resting),
        }
        body.update(changes)
        return body

    def post(body: dict, key: str):
        return client.post(
            "/api/v1/orders", json=body, headers={**api_headers, "Idempotency-Key": key}
        )

    def policy(scope: str, **limits) -> None:
        with app.app_context():
            target = key_id if scope == "API_KEY" else account_id
            risk_policies.set_policy(scope, target, limits, "test")

    def clear() -> None:
        psql.execute("DELETE FROM trade.risk_policies")

    # Inside every limit: it passes and the broker has it.
    policy("ACCOUNT", max_order_notional=str(resting * 10), max_order_quantity="5")
    first = post(order(), "inside-1")
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["status"] == "SUBMITTED"
    assert len(_placed(url)) == 1
    sent = 1

    cases = [
        ("ACCOUNT", {"max_order_quantity": "1"}, {}, "risk_order_quantity"),
        ("API_KEY", {"max_order_notional": str(resting)}, {}, "risk_order_notional"),
        ("ACCOUNT", {"max_daily_orders": 1}, {}, "risk_daily_count"),
        ("API_KEY", {"max_daily_notional": str(resting * 3)}, {}, "risk_daily_notional"),
        ("ACCOUNT", {"max_open_orders": 1}, {}, "risk_open_orders"),
        ("API_KEY", {"allowed_symbols": ["000660"]}, {}, "risk_symbol_not_allowed"),
        ("ACCOUNT", {"allowed_sides": ["SELL"]}, {}, "risk_side_not_allowed"),
        ("ACCOUNT", {"max_order_notional": "1"}, {"type": "MARKET"}, "risk_notional_unknown"),
    ]
    for number, (scope, limits, change, code) in enumerate(cases):
        clear()
        policy(scope, **limits)
        body = order(**change)
        if change.get("type") == "MARKET":
            body.pop("limit_price")
            psql.execute("DELETE FROM market.stock_base_prices")
        response = post(body, f"rule-{number}")
        assert response.status_code == 422, (code, response.get_json())
        problem = response.get_json()
        assert problem["code"] == code, (code, problem)
        assert problem["scope"] == scope
        assert response.mimetype == "application/problem+json"
        assert len(_placed(url)) == sent, f"{code}: the broker saw an order"
        _set_base_price(psql, "005930", _price(url))
    clear()

    # Designations: a flag, not a halt; a policy may refuse them.
    psql.execute(
        "UPDATE market.stocks SET designations = ARRAY['INVESTMENT_WARNING']"
        " WHERE symbol = '005930'"
    )
    assert post(order(), "designated-ok").status_code == 201  # no policy: allowed
    sent += 1
    policy("API_KEY", refused_designations=["INVESTMENT_WARNING", "ADMINISTRATIVE"])
    refused = post(order(), "designated-refused")
    assert refused.status_code == 422 and refused.get_json()["code"] == "risk_designated"
    clear()
    stock = client.get("/api/v1/stocks/005930", headers=api_headers).get_json()
    assert stock["designations"] == ["INVESTMENT_WARNING"]

    # KRX: the band around today's base price.
    base = _price(url)
    _set_base_price(psql, "005930", base)
    too_high = str((base * Decimal("1.35") / 1000).quantize(Decimal(1)) * 1000)
    band = post(order(limit_price=too_high), "band")
    assert band.status_code == 422 and band.get_json()["code"] == "krx_price_band", band.get_json()
    assert Decimal(band.get_json()["upper_limit"]) < Decimal(too_high)

    # KRX: NXT eligibility.
    psql.execute("UPDATE market.stocks SET nxt_eligible = false WHERE symbol = '005930'")
    nxt = post(order(route="NXT"), "nxt")
    assert nxt.status_code == 422 and nxt.get_json()["code"] == "nxt_not_eligible"

    # KRX: the session of the route (hours on, a table in which no session is open now).
    app.config["KRX_MARKET_HOURS"] = True
    app.config["KRX_SESSIONS"] = {"KRX": {"LIMIT": [], "MARKET": []}}
    try:
        closed = post(order(route="KRX"), "closed")
    finally:
        app.config.pop("KRX_MARKET_HOURS")
        app.config.pop("KRX_SESSIONS")
    assert closed.status_code == 422 and closed.get_json()["code"] == "krx_session_closed"

    # A kill switch on the account.
    with app.app_context():
        kill_switches.engage("ACCOUNT", account_id, "runaway strategy", "test")
    killed = post(order(), "killed")
    assert killed.status_code == 422 and killed.get_json()["code"] == "kill_switch_engaged"
    assert killed.get_json()["kill_switch"]["reason"] == "runaway strategy"
    with app.app_context():
        kill_switches.release("ACCOUNT", account_id, "test")

    assert len(_placed(url)) == sent
    intents = psql.execute("SELECT count(*) FROM trade.order_intents").fetchone()[0]
    assert intents == sent  # a refusal writes nothing
    again = post(order(), "after-all")
    assert again.status_code == 201
    assert len(_placed(url)) == sent + 1


def test_the_daily_count_holds_under_concurrent_requests(app, api_headers, kis, psql):
    url, account_id = kis
    resting = _resting(url)
    with app.app_context():
        risk_policies.set_policy("ACCOUNT", account_id, {"max_daily_orders": 3}, "test")
    statuses: list[int] = []
    lock = threading.Lock()

    def place(number: int) -> None:
        with app.test_client() as own:
            response = own.post(
                "/api/v1/orders",
                json={
                    "account_id": account_id,
                    "symbol": "005930",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "1",
                    "limit_price": resting,
                },
                headers={**api_headers, "Idempotency-Key": f"race-{number}"},
            )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=place, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 3 + [422] * 5, statuses
    assert len(_placed(url)) == 3
    with app.app_context():
        db.session.remove()
