"""KisAdapter against the KIS simulator over real HTTP (loopback): every interface method, faults,
token expiry and revocation, rate limits, reconciliation of lost answers."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests

from brokers import (
    Credentials,
    OrderRequest,
    OrderStatus,
    OrderType,
    SecuritiesAdapter,
    Side,
    utc_now,
)
from securities.kis import DEFAULT_BASE_URLS, KisAdapter
from simulators.engine import krx_tick_size
from simulators.kis import create_app
from tests.adapters.securities.conftest import AdapterTokens, Sim, no_sleep, unique_digits
from web_server.errors import (
    BadRequest,
    BrokerAuthFailed,
    BrokerRateLimited,
    BrokerTimeout,
    InsufficientFunds,
    OrderNotFound,
    OrderStateUnknown,
)

ORDER_CASH = "/uapi/domestic-stock/v1/trading/order-cash"
BALANCE = "/uapi/domestic-stock/v1/trading/inquire-balance"


@dataclass
class Kis:
    sim: Sim
    adapter: KisAdapter
    tokens: AdapterTokens
    account_id: str
    credentials: Credentials

    def orders_placed(self) -> list[dict[str, Any]]:
        return self.sim.ledger("order_placed", account_id=self.account_id)


def _open(
    start_sim: Callable[..., Sim],
    session: requests.Session,
    *,
    paper: bool = False,
    positions: dict[str, int] | None = None,
    cash: str = "100000000",
    **options: Any,
) -> Kis:
    sim = start_sim(create_app, paper=paper, **options)
    number = unique_digits()
    app_key = ("PS" + number + "k" * 36)[:36]
    secret = "s" * 180
    created = sim.control(
        "POST",
        "/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": number,
            "product_code": "01",
            "cash": cash,
            "positions": positions or {"005930": 10},
        },
    )
    credentials = Credentials(
        api_key=app_key,
        api_secret=secret,
        environment="PAPER" if paper else "REAL",
        account_number=number,
        product_code="01",
    )
    tokens = AdapterTokens()
    adapter = KisAdapter(
        credentials, base_url=sim.url, session=session, token_provider=tokens, sleep=no_sleep
    )
    tokens.adapter = adapter
    return Kis(sim, adapter, tokens, created["account_id"], credentials)


@pytest.fixture
def kis(start_sim: Callable[..., Sim], http_session: requests.Session) -> Kis:
    return _open(start_sim, http_session)


def _open_limit_buy(kis: Kis, quantity: int = 3) -> OrderRequest:
    """A limit buy that rests: the price is pinned, the limit a few ticks below it."""
    price = Decimal(kis.sim.price("005930"))
    kis.sim.pin("005930", str(price))
    tick = krx_tick_size(price)
    return OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        client_order_id="intent-1",
        limit_price=price - 5 * tick,
    )


def test_the_adapter_is_a_securities_adapter(kis: Kis) -> None:
    assert isinstance(kis.adapter, SecuritiesAdapter)
    assert KisAdapter.exchange == "KIS"
    assert KisAdapter.capabilities.client_order_id is False
    assert KisAdapter.capabilities.amend_order is True
    assert DEFAULT_BASE_URLS["PAPER"] == "https://openapivts.koreainvestment.com:29443"


def test_issue_token_then_the_one_a_minute_rule_then_revoke(kis: Kis) -> None:
    token = kis.adapter.issue_token()
    assert token.expires_at.tzinfo is not None
    assert token.expires_at.utcoffset() == dt.timedelta(0)
    assert 86000 < token.expires_in <= 86400
    assert abs((token.expires_at - utc_now()).total_seconds() - token.expires_in) < 5
    with pytest.raises(BrokerRateLimited) as info:
        kis.adapter.issue_token()
    assert info.value.broker_code == "EGW00133"
    assert info.value.retry_after == 60
    assert info.value.broker == "KIS"
    assert token.access_token not in str(info.value)

    kis.tokens.token = token.access_token
    kis.adapter.revoke_token(token.access_token)
    kis.sim.advance(61)  # past the one-a-minute window, so the re-issue is allowed
    assert kis.adapter.get_holdings()  # EGW00121 → one re-issue → success
    assert kis.tokens.invalidated == 1
    assert len(kis.sim.ledger("token_revoked")) == 1


def test_holdings_and_balance(
    start_sim: Callable[..., Sim], http_session: requests.Session
) -> None:
    kis = _open(start_sim, http_session, positions={"005930": 10, "000660": 3}, cash="5000000")
    holdings = {p.symbol: p for p in kis.adapter.get_holdings()}
    assert set(holdings) == {"005930", "000660"}
    samsung = holdings["005930"]
    assert samsung.quantity == Decimal(10) and samsung.available_quantity == Decimal(10)
    assert samsung.current_price == Decimal(kis.sim.price("005930"))
    assert isinstance(samsung.avg_price, Decimal)
    (balance,) = kis.adapter.get_balance()
    assert balance.currency == "KRW"
    assert balance.total == Decimal(5000000)
    assert balance.available == Decimal(5000000) and balance.locked == 0


def test_order_lifecycle_place_get_list_amend_cancel(kis: Kis) -> None:
    since = utc_now() - dt.timedelta(seconds=5)
    request = _open_limit_buy(kis)
    placed = kis.adapter.place_order(request)
    assert placed.status is OrderStatus.SUBMITTED
    assert placed.broker_order_id and placed.raw["ord_gno_brno"]
    assert placed.created_at is not None and placed.created_at.tzinfo is not None

    fetched = kis.adapter.get_order(placed.broker_order_id)
    assert fetched.status is OrderStatus.SUBMITTED
    assert (fetched.symbol, fetched.side, fetched.quantity, fetched.limit_price) == (
        "005930",
        Side.BUY,
        Decimal(3),
        request.limit_price,
    )
    (balance,) = kis.adapter.get_balance()
    assert balance.locked > 0  # the open buy holds cash back

    new_price = request.limit_price - krx_tick_size(request.limit_price)
    amended = kis.adapter.amend_order(placed.broker_order_id, limit_price=new_price)
    assert amended.broker_order_id != placed.broker_order_id
    assert amended.limit_price == new_price and amended.quantity == Decimal(3)
    assert kis.adapter.get_order(placed.broker_order_id).status is OrderStatus.CANCELLED
    live = kis.adapter.get_order(amended.broker_order_id)
    assert live.status is OrderStatus.SUBMITTED and live.limit_price == new_price

    cancelled = kis.adapter.cancel_order(amended.broker_order_id)
    assert cancelled.status is OrderStatus.CANCEL_PENDING
    assert cancelled.raw["cancel"]["ODNO"]
    assert kis.adapter.get_order(amended.broker_order_id).status is OrderStatus.CANCELLED

    orders = kis.adapter.list_orders(since)
    # The cancel is folded into the order it cancelled; the amendment is an order of its own.
    assert [o.broker_order_id for o in orders] == [placed.broker_order_id, amended.broker_order_id]
    assert all(o.status is OrderStatus.CANCELLED for o in orders)
    assert kis.adapter.list_orders(utc_now() + dt.timedelta(minutes=5)) == []


def test_market_order_fills_and_shows_in_holdings(kis: Kis) -> None:
    request = OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(2),
        client_order_id="m1",
    )
    placed = kis.adapter.place_order(request)
    order = kis.adapter.get_order(placed.broker_order_id)
    assert order.status is OrderStatus.FILLED
    assert order.order_type is OrderType.MARKET and order.limit_price is None
    assert order.filled_quantity == Decimal(2) and order.average_fill_price
    holdings = {p.symbol: p for p in kis.adapter.get_holdings()}
    assert holdings["005930"].quantity == Decimal(12)


def test_lookups_that_cannot_work(kis: Kis) -> None:
    with pytest.raises(BadRequest):
        kis.adapter.get_order(client_order_id="intent-1")
    with pytest.raises(OrderNotFound):
        kis.adapter.get_order("0000999999")


def test_insufficient_funds_is_mapped(kis: Kis) -> None:
    request = OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(100000),
        client_order_id="big",
        limit_price=Decimal(kis.sim.price("005930")),
    )
    with pytest.raises(InsufficientFunds) as info:
        kis.adapter.place_order(request)
    assert info.value.broker_code == "APBK0952"
    assert kis.orders_placed() == []


def test_dropped_answer_is_state_unknown_and_find_order_finds_it_once(kis: Kis) -> None:
    since = utc_now()
    request = _open_limit_buy(kis)
    kis.tokens.get()  # the token is issued before the fault, so the drop hits the order
    kis.sim.fault("drop", count=1, path_prefix=ORDER_CASH)
    with pytest.raises(OrderStateUnknown) as info:
        kis.adapter.place_order(request)
    assert info.value.broker == "KIS"
    assert len(kis.orders_placed()) == 1  # the broker acted; the adapter did not resend

    found = kis.adapter.find_order(request, since)
    assert found is not None
    assert found.broker_order_id == kis.orders_placed()[0]["order_no"]
    assert found.status is OrderStatus.SUBMITTED
    assert (found.symbol, found.quantity, found.limit_price) == (
        "005930",
        request.quantity,
        request.limit_price,
    )
    assert kis.adapter.find_order(request, since, exclude=[found.broker_order_id]) is None
    assert len(kis.orders_placed()) == 1


def test_reset_before_the_answer(kis: Kis) -> None:
    since = utc_now()
    request = _open_limit_buy(kis)
    kis.tokens.get()
    kis.sim.fault("reset", count=1, path_prefix=ORDER_CASH)
    with pytest.raises(OrderStateUnknown):
        kis.adapter.place_order(request)  # the client cannot tell a reset from a drop
    assert kis.orders_placed() == []  # reset came before the broker handled it
    assert kis.adapter.find_order(request, since) is None  # so reconcile says: never placed

    kis.sim.fault("reset", count=1, path_prefix=BALANCE)
    assert kis.adapter.get_holdings()  # a read is retried once


def test_connection_refused_is_broker_timeout(kis: Kis, http_session: requests.Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    tokens = AdapterTokens()
    tokens.token = "whatever"
    adapter = KisAdapter(
        kis.credentials,
        base_url=f"http://127.0.0.1:{port}",
        session=http_session,
        token_provider=tokens,
        timeout=2,
        sleep=no_sleep,
    )
    with pytest.raises(BrokerTimeout):
        adapter.place_order(_open_limit_buy(kis))
    with pytest.raises(BrokerTimeout):
        adapter.get_holdings()


def test_500_egw00201_on_an_order_and_on_reads(kis: Kis) -> None:
    body = {"rt_cd": "1", "msg_cd": "EGW00201", "msg1": "초당 거래건수를 초과하였습니다."}
    kis.tokens.get()
    kis.sim.fault("http_status", count=1, status=500, body=body, path_prefix=ORDER_CASH)
    with pytest.raises(BrokerRateLimited) as info:
        kis.adapter.place_order(_open_limit_buy(kis))
    assert info.value.broker_code == "EGW00201" and info.value.retry_after == 1
    assert kis.orders_placed() == []

    kis.sim.fault("http_status", count=1, status=500, body=body, path_prefix=BALANCE)
    assert kis.adapter.get_holdings()  # one retry absorbs one refusal
    kis.sim.fault("http_status", count=2, status=500, body=body, path_prefix=BALANCE)
    with pytest.raises(BrokerRateLimited):
        kis.adapter.get_holdings()  # but only one


def test_real_rate_limit_is_mapped_and_orders_are_not_resent(
    start_sim: Callable[..., Sim], http_session: requests.Session
) -> None:
    kis = _open(start_sim, http_session, rate_limit_per_second=1)
    request = _open_limit_buy(kis)
    kis.tokens.get()
    kis.adapter.place_order(request)
    with pytest.raises(BrokerRateLimited) as info:
        kis.adapter.place_order(request)
    assert info.value.broker_code == "EGW00201"
    assert len(kis.orders_placed()) == 1


def test_expired_token_is_reissued_once_for_a_read(kis: Kis) -> None:
    kis.adapter.get_holdings()
    kis.sim.advance(86400 + 60)
    (balance,) = kis.adapter.get_balance()
    assert balance.total > 0
    assert (kis.tokens.issued, kis.tokens.invalidated) == (2, 1)
    assert len(kis.sim.ledger("token_issued")) == 2


def test_expired_token_on_an_order_is_reissued_and_sent_exactly_once(kis: Kis) -> None:
    request = _open_limit_buy(kis)
    kis.tokens.get()
    kis.sim.advance(86400 + 60)
    placed = kis.adapter.place_order(request)
    assert kis.tokens.invalidated == 1
    assert [e["order_no"] for e in kis.orders_placed()] == [placed.broker_order_id]


def test_maintenance_revocation_recovered_by_one_reissue(kis: Kis) -> None:
    kis.adapter.get_holdings()
    kis.sim.fault("revoke_all_tokens")
    kis.sim.advance(61)
    assert kis.adapter.get_holdings()
    assert (kis.tokens.issued, kis.tokens.invalidated) == (2, 1)


def test_reissue_refused_within_the_minute_is_not_retried(kis: Kis) -> None:
    kis.adapter.get_holdings()
    kis.sim.fault("revoke_all_tokens")
    with pytest.raises(BrokerRateLimited) as info:
        kis.adapter.get_holdings()  # EGW00121 → re-issue → EGW00133: surface it, no loop
    assert info.value.broker_code == "EGW00133"
    assert kis.tokens.invalidated == 1


def test_bad_secret_is_auth_failed(kis: Kis, http_session: requests.Session) -> None:
    wrong = Credentials(
        api_key=kis.credentials.api_key,
        api_secret="x" * 180,
        account_number=kis.credentials.account_number,
        product_code="01",
    )
    adapter = KisAdapter(wrong, base_url=kis.sim.url, session=http_session)
    with pytest.raises(BrokerAuthFailed) as info:
        adapter.issue_token()
    assert info.value.broker_code == "EGW00105"
    assert "x" * 20 not in str(info.value)


def test_paper_host_paging_and_v_tr_ids(
    start_sim: Callable[..., Sim], http_session: requests.Session
) -> None:
    kis = _open(
        start_sim,
        http_session,
        paper=True,
        rate_limit_per_second=0,
        ccld_page_size=2,
        balance_page_size=1,
        positions={"005930": 10, "000660": 3, "035420": 4},
    )
    since = utc_now() - dt.timedelta(seconds=5)
    request = _open_limit_buy(kis, quantity=1)
    placed = [kis.adapter.place_order(request) for _ in range(5)]
    orders = kis.adapter.list_orders(since)
    assert [o.broker_order_id for o in orders] == [p.broker_order_id for p in placed]
    assert {p.symbol for p in kis.adapter.get_holdings()} == {"005930", "000660", "035420"}
    # find_order pairs identical intents one to one, oldest first.
    first = kis.adapter.find_order(request, since)
    second = kis.adapter.find_order(request, since, exclude=[first.broker_order_id])
    assert (first.broker_order_id, second.broker_order_id) == (
        placed[0].broker_order_id,
        placed[1].broker_order_id,
    )
