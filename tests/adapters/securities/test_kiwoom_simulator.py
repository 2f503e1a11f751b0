"""KiwoomAdapter against the Kiwoom simulator over real HTTP (loopback): every interface method,
faults, token expiry and revocation in both wire styles, rate limits, reconciliation."""

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
from securities.kiwoom import DEFAULT_BASE_URLS, KiwoomAdapter
from securities.kiwoom.client import KiwoomClient
from simulators.engine import krx_tick_size
from tests.adapters.securities.conftest import AdapterTokens, Sim, no_sleep, unique_digits
from web_server.errors import (
    BadRequest,
    BrokerAuthFailed,
    BrokerRateLimited,
    BrokerTimeout,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderStateUnknown,
)

kiwoom_sim = pytest.importorskip("simulators.kiwoom", reason="the Kiwoom simulator is not ready")
create_app = kiwoom_sim.create_app

ORDERS = "/api/dostk/ordr"
ACCOUNT = "/api/dostk/acnt"


@dataclass
class Kiwoom:
    sim: Sim
    adapter: KiwoomAdapter
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
) -> Kiwoom:
    # The functional tests run unthrottled; the rate tests below set the limit themselves.
    options.setdefault("rate_limit_per_second", 0)
    sim = start_sim(create_app, paper=paper, **options)
    number = unique_digits(10)
    app_key = "kw-" + number
    secret = "secret-" + number
    created = sim.control(
        "POST",
        "/_sim/accounts",
        json={
            "app_key": app_key,
            "secret_key": secret,
            "account_number": number,
            "cash": cash,
            "positions": positions or {"005930": 10},
        },
    )
    credentials = Credentials(
        api_key=app_key,
        api_secret=secret,
        environment="PAPER" if paper else "REAL",
        account_number=number,
    )
    tokens = AdapterTokens()
    adapter = KiwoomAdapter(
        credentials, base_url=sim.url, session=session, token_provider=tokens, sleep=no_sleep
    )
    tokens.adapter = adapter
    return Kiwoom(sim, adapter, tokens, str(created.get("account_id", number)), credentials)


@pytest.fixture
def kw(start_sim: Callable[..., Sim], http_session: requests.Session) -> Kiwoom:
    return _open(start_sim, http_session)


def _open_limit_buy(kw: Kiwoom, quantity: int = 3) -> OrderRequest:
    """A limit buy that rests: the price is pinned, the limit a few ticks below it."""
    price = Decimal(kw.sim.price("005930"))
    kw.sim.pin("005930", str(price))
    tick = krx_tick_size(price)
    return OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        client_order_id="intent-1",
        limit_price=price - 5 * tick,
    )


def test_the_adapter_is_a_securities_adapter(kw: Kiwoom) -> None:
    assert isinstance(kw.adapter, SecuritiesAdapter)
    assert KiwoomAdapter.exchange == "KIWOOM"
    assert KiwoomAdapter.capabilities.client_order_id is False
    assert DEFAULT_BASE_URLS == {
        "REAL": "https://api.kiwoom.com",
        "PAPER": "https://mockapi.kiwoom.com",
    }


def test_undeclared_tr_is_refused_before_sending(
    kw: Kiwoom, http_session: requests.Session
) -> None:
    client = KiwoomClient(
        kw.credentials,
        base_url=kw.sim.url,
        session=http_session,
        token_provider=kw.tokens,
        timeout=5,
    )
    with pytest.raises(ValueError, match="READ_TRS or WRITE_TRS"):
        client.request(ACCOUNT, "ka99999", {})


def test_issue_and_revoke_token(kw: Kiwoom) -> None:
    token = kw.adapter.issue_token()
    assert token.expires_at.utcoffset() == dt.timedelta(0)
    assert 86000 < token.expires_in <= 86400
    assert token.token_type == "bearer"
    kw.tokens.token = token.access_token
    kw.adapter.revoke_token(token.access_token)
    assert kw.adapter.get_holdings()  # 8005 → one re-issue → success
    assert kw.tokens.invalidated == 1
    assert len(kw.sim.ledger("token_revoked")) == 1


def test_holdings_and_balance(
    start_sim: Callable[..., Sim], http_session: requests.Session
) -> None:
    kw = _open(start_sim, http_session, positions={"005930": 10, "000660": 3}, cash="5000000")
    holdings = {p.symbol: p for p in kw.adapter.get_holdings()}
    assert set(holdings) == {"005930", "000660"}
    assert holdings["005930"].quantity == Decimal(10)
    assert holdings["005930"].current_price == Decimal(kw.sim.price("005930"))
    (balance,) = kw.adapter.get_balance()
    assert balance.currency == "KRW" and balance.total == Decimal(5000000)
    assert balance.available == Decimal(5000000)


def test_order_lifecycle_place_get_list_amend_cancel(kw: Kiwoom) -> None:
    since = utc_now() - dt.timedelta(seconds=5)
    request = _open_limit_buy(kw)
    placed = kw.adapter.place_order(request)
    assert placed.status is OrderStatus.SUBMITTED and placed.broker_order_id

    fetched = kw.adapter.get_order(placed.broker_order_id)
    assert fetched.status is OrderStatus.SUBMITTED
    assert (fetched.symbol, fetched.side, fetched.quantity, fetched.limit_price) == (
        "005930",
        Side.BUY,
        Decimal(3),
        request.limit_price,
    )

    new_price = request.limit_price - krx_tick_size(request.limit_price)
    amended = kw.adapter.amend_order(placed.broker_order_id, limit_price=new_price)
    assert amended.broker_order_id != placed.broker_order_id
    assert amended.limit_price == new_price
    live = kw.adapter.get_order(amended.broker_order_id)
    assert live.status is OrderStatus.SUBMITTED and live.limit_price == new_price
    assert kw.adapter.get_order(placed.broker_order_id).status is OrderStatus.CANCELLED

    cancelled = kw.adapter.cancel_order(amended.broker_order_id)
    assert cancelled.status is OrderStatus.CANCEL_PENDING
    assert kw.adapter.get_order(amended.broker_order_id).status is OrderStatus.CANCELLED

    orders = kw.adapter.list_orders(since)
    assert [o.broker_order_id for o in orders] == [placed.broker_order_id, amended.broker_order_id]
    # Nothing left to cancel: the order comes back as the history shows it and nothing is sent
    # (a repeated cancel is safe).
    cancels = len(kw.sim.ledger("order_cancelled"))
    again = kw.adapter.cancel_order(amended.broker_order_id)
    assert again.status is OrderStatus.CANCELLED
    assert len(kw.sim.ledger("order_cancelled")) == cancels


def test_market_order_fills(kw: Kiwoom) -> None:
    placed = kw.adapter.place_order(
        OrderRequest(
            symbol="005930",
            side=Side.SELL,
            order_type=OrderType.MARKET,
            quantity=Decimal(4),
            client_order_id="m1",
        )
    )
    order = kw.adapter.get_order(placed.broker_order_id)
    assert order.status is OrderStatus.FILLED and order.side is Side.SELL
    assert order.order_type is OrderType.MARKET and order.filled_quantity == Decimal(4)
    assert {p.symbol: p.quantity for p in kw.adapter.get_holdings()}["005930"] == Decimal(6)


def test_lookups_that_cannot_work(kw: Kiwoom) -> None:
    with pytest.raises(BadRequest):
        kw.adapter.get_order(client_order_id="intent-1")
    with pytest.raises(OrderNotFound):
        kw.adapter.get_order("9999999")


def test_insufficient_funds(kw: Kiwoom) -> None:
    request = OrderRequest(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(100000),
        client_order_id="big",
        limit_price=Decimal(kw.sim.price("005930")),
    )
    with pytest.raises(InsufficientFunds) as info:
        kw.adapter.place_order(request)
    assert info.value.broker == "KIWOOM" and info.value.broker_code
    assert kw.orders_placed() == []


def test_dropped_answer_is_state_unknown_and_find_order_finds_it_once(kw: Kiwoom) -> None:
    since = utc_now()
    request = _open_limit_buy(kw)
    kw.tokens.get()
    kw.sim.fault("drop", count=1, path_prefix=ORDERS)
    with pytest.raises(OrderStateUnknown):
        kw.adapter.place_order(request)
    placed = kw.orders_placed()
    assert len(placed) == 1
    found = kw.adapter.find_order(request, since)
    assert found is not None and found.broker_order_id == placed[0]["order_no"]
    assert kw.adapter.find_order(request, since, exclude=[found.broker_order_id]) is None
    assert len(kw.orders_placed()) == 1


def test_reset_before_the_answer(kw: Kiwoom) -> None:
    since = utc_now()
    request = _open_limit_buy(kw)
    kw.tokens.get()
    kw.sim.fault("reset", count=1, path_prefix=ORDERS)
    with pytest.raises(OrderStateUnknown):
        kw.adapter.place_order(request)
    assert kw.orders_placed() == []
    assert kw.adapter.find_order(request, since) is None
    kw.sim.fault("reset", count=1, path_prefix=ACCOUNT)
    assert kw.adapter.get_holdings()  # a read TR is retried once


def test_connection_refused_is_broker_timeout(kw: Kiwoom, http_session: requests.Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = AdapterTokens()
    tokens.token = "whatever"
    adapter = KiwoomAdapter(
        kw.credentials,
        base_url=f"http://127.0.0.1:{port}",
        session=http_session,
        token_provider=tokens,
        timeout=2,
    )
    with pytest.raises(BrokerTimeout):
        adapter.place_order(_open_limit_buy(kw))
    with pytest.raises(BrokerTimeout):
        adapter.get_balance()


@pytest.mark.parametrize("status", [200, 429])
def test_rate_limit_1700_is_mapped_and_orders_are_not_resent(
    start_sim: Callable[..., Sim], http_session: requests.Session, status: int
) -> None:
    kw = _open(start_sim, http_session, rate_limit_per_second=1, rate_limit_status=status)
    request = _open_limit_buy(kw)
    kw.tokens.get()
    kw.adapter.place_order(request)
    with pytest.raises(BrokerRateLimited) as info:
        kw.adapter.place_order(request)
    assert info.value.broker_code == "1700"
    assert len(kw.orders_placed()) == 1


def test_reads_recover_from_the_default_rate_limit_with_one_backoff(
    start_sim: Callable[..., Sim], http_session: requests.Session
) -> None:
    kw = _open(start_sim, http_session, rate_limit_per_second=None)  # the simulator's 5/s
    adapter = KiwoomAdapter(
        kw.credentials, base_url=kw.sim.url, session=http_session, token_provider=kw.tokens
    )  # real backoff this time
    kw.tokens.get()
    balances = [adapter.get_balance() for _ in range(8)]
    assert len(balances) == 8


def test_500_on_an_order_is_state_unknown_and_on_a_read_retried(kw: Kiwoom) -> None:
    kw.tokens.get()
    kw.sim.fault("http_status", count=1, status=500, body={"error": "internal"}, path_prefix=ORDERS)
    with pytest.raises(OrderStateUnknown):
        kw.adapter.place_order(_open_limit_buy(kw))
    kw.sim.fault(
        "http_status", count=1, status=500, body={"error": "internal"}, path_prefix=ACCOUNT
    )
    assert kw.adapter.get_balance()


@pytest.mark.parametrize("style", ["return_msg", "code"])
def test_expired_token_is_reissued_once_in_both_wire_styles(
    start_sim: Callable[..., Sim], http_session: requests.Session, style: str
) -> None:
    kw = _open(start_sim, http_session, invalid_token_style=style)
    kw.adapter.get_holdings()
    kw.sim.advance(86400 + 60)
    assert kw.adapter.get_balance()
    assert (kw.tokens.issued, kw.tokens.invalidated) == (2, 1)


def test_expired_token_on_an_order_is_reissued_and_sent_exactly_once(kw: Kiwoom) -> None:
    request = _open_limit_buy(kw)
    kw.tokens.get()
    kw.sim.advance(86400 + 60)
    placed = kw.adapter.place_order(request)
    assert kw.tokens.invalidated == 1
    assert [e["order_no"] for e in kw.orders_placed()] == [placed.broker_order_id]


def test_maintenance_revocation_recovered_by_one_reissue(kw: Kiwoom) -> None:
    kw.adapter.get_holdings()
    kw.sim.fault("revoke_all_tokens")
    assert kw.adapter.get_holdings()
    assert (kw.tokens.issued, kw.tokens.invalidated) == (2, 1)


def test_token_refusal_after_a_revocation_surfaces(kw: Kiwoom) -> None:
    kw.adapter.get_holdings()
    kw.sim.fault("revoke_all_tokens")
    kw.sim.fault("token_refusal", count=1)
    with pytest.raises(BrokerAuthFailed):
        kw.adapter.get_holdings()
    assert kw.tokens.invalidated == 1


def test_bad_secret_is_auth_failed(kw: Kiwoom, http_session: requests.Session) -> None:
    wrong = Credentials(api_key=kw.credentials.api_key, api_secret="wrong-secret-value")
    adapter = KiwoomAdapter(wrong, base_url=kw.sim.url, session=http_session)
    with pytest.raises(BrokerAuthFailed) as info:
        adapter.issue_token()
    assert info.value.broker_code == "8001"
    assert "wrong-secret-value" not in str(info.value)


def test_paper_host_paging(start_sim: Callable[..., Sim], http_session: requests.Session) -> None:
    kw = _open(
        start_sim,
        http_session,
        paper=True,
        rate_limit_per_second=0,
        page_size=2,
        positions={"005930": 10, "000660": 3, "035420": 4},
    )
    since = utc_now() - dt.timedelta(seconds=5)
    request = _open_limit_buy(kw, quantity=1)
    placed = [kw.adapter.place_order(request) for _ in range(5)]
    orders = kw.adapter.list_orders(since)
    assert [o.broker_order_id for o in orders] == [p.broker_order_id for p in placed]
    assert {p.symbol for p in kw.adapter.get_holdings()} == {"005930", "000660", "035420"}
    with pytest.raises(InvalidOrder):
        kw.adapter.place_order(
            OrderRequest(
                symbol="005930",
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=Decimal(1),
                client_order_id="n",
                route="NXT",
                limit_price=request.limit_price,
            )
        )
