"""Transport and HTTP failures become the right gateway errors; reads retry, writes never do."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from urllib3.exceptions import NewConnectionError, ProtocolError

import crypto_exchanges
import crypto_exchanges.binance
import crypto_exchanges.bithumb
import crypto_exchanges.upbit
from brokers import Credentials, CryptoAdapter, OrderRequest, OrderType, Side
from crypto_exchanges._http import RetryPolicy, backoff_delay, call_with_retry
from crypto_exchanges.binance import BinanceAdapter
from crypto_exchanges.upbit import UpbitAdapter
from tests.adapters.crypto._fakes import API_KEY, SECRET, FakeSession, fixed_clock, response
from web_server.errors import (
    BrokerRateLimited,
    BrokerTimeout,
    BrokerUnavailable,
    InvalidOrder,
    OrderStateUnknown,
)

CREDS = Credentials(api_key=API_KEY, api_secret=SECRET)
EXCHANGE_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "5"},
            ],
        }
    ]
}
ORDER = OrderRequest(
    symbol="BTCUSDT",
    side=Side.BUY,
    order_type=OrderType.LIMIT,
    quantity=Decimal("0.001"),
    client_order_id="gw-1",
    limit_price=Decimal("76000"),
)


def _binance(session: FakeSession, sleeps: list[float] | None = None) -> BinanceAdapter:
    return BinanceAdapter(
        CREDS,
        base_url="http://sim",
        session=session,
        clock=fixed_clock,
        timeout=1.0,
        sleep=(sleeps.append if sleeps is not None else None) or (lambda s: None),
    )


def _connect_error() -> requests.exceptions.ConnectionError:
    reason = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(reason)


def test_exports() -> None:
    assert crypto_exchanges.__all__ == []
    for module, name in [
        (crypto_exchanges.upbit, "UpbitAdapter"),
        (crypto_exchanges.bithumb, "BithumbAdapter"),
        (crypto_exchanges.binance, "BinanceAdapter"),
    ]:
        assert sorted(module.__all__) == sorted(["DEFAULT_BASE_URLS", name])
        adapter = getattr(module, name)(CREDS, base_url="http://x", session=FakeSession())
        assert isinstance(adapter, CryptoAdapter)
        assert adapter.capabilities.client_order_id and not adapter.capabilities.amend_order
    assert crypto_exchanges.binance.DEFAULT_BASE_URLS["PAPER"] == "https://testnet.binance.vision"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), OrderStateUnknown),
        (
            requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", ConnectionResetError())
            ),
            OrderStateUnknown,
        ),
        (requests.exceptions.ConnectTimeout("connect timed out"), BrokerTimeout),
        (_connect_error(), BrokerTimeout),
        (requests.exceptions.ChunkedEncodingError("broken"), OrderStateUnknown),
    ],
)
def test_order_post_failures_are_never_resent(failure: BaseException, expected: type) -> None:
    session = FakeSession(response(200, EXCHANGE_INFO), failure)
    with pytest.raises(expected) as info:
        _binance(session).place_order(ORDER)
    assert info.value.broker == "BINANCE"
    assert [c["method"] for c in session.calls] == ["GET", "POST"]  # exactly one POST
    assert SECRET not in str(info.value) and "signature" not in str(info.value)


def test_order_post_5xx_is_unknown_and_accepted_order_maps() -> None:
    session = FakeSession(response(200, EXCHANGE_INFO), response(502, "<html>bad gateway</html>"))
    adapter = _binance(session)
    with pytest.raises(OrderStateUnknown):
        adapter.place_order(ORDER)
    session.answers.append(
        response(
            200,
            {
                "symbol": "BTCUSDT",
                "orderId": 9,
                "clientOrderId": "gw-1",
                "transactTime": 1,
                "price": "76000.00",
                "origQty": "0.001",
                "executedQty": "0",
                "cummulativeQuoteQty": "0",
                "status": "NEW",
                "type": "LIMIT",
                "side": "BUY",
            },
        )
    )
    order = adapter.place_order(ORDER)
    assert order.broker_order_id == "9" and order.client_order_id == "gw-1"
    sent = session.calls[-1]["data"].decode()
    assert "newClientOrderId=gw-1" in sent and "price=76000&" in sent


def test_rule_violation_sends_nothing() -> None:
    session = FakeSession(response(200, EXCHANGE_INFO))
    bad = OrderRequest(
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.001"),
        client_order_id="gw-2",
        limit_price=Decimal("76000.001"),
    )
    with pytest.raises(InvalidOrder, match="tick size"):
        _binance(session).place_order(bad)
    assert [c["method"] for c in session.calls] == ["GET"]


def test_reads_retry_transient_errors_with_backoff() -> None:
    sleeps: list[float] = []
    session = FakeSession(
        requests.exceptions.ReadTimeout("slow"),
        response(503, {"code": -1008, "msg": "busy"}),
        response(200, {"balances": [{"asset": "USDT", "free": "10", "locked": "1"}]}),
    )
    balances = _binance(session, sleeps).get_balance()
    assert balances[0].total == Decimal("11") and len(session.calls) == 3
    assert len(sleeps) == 2


def test_rate_limit_honours_retry_after_and_gives_up_when_too_long() -> None:
    sleeps: list[float] = []
    session = FakeSession(
        response(429, {"code": -1003, "msg": "Too much request weight used"}, {"Retry-After": "2"}),
        response(200, {"balances": []}),
    )
    assert _binance(session, sleeps).get_balance() == [] and sleeps == [2.0]
    session = FakeSession(response(418, "banned", {"Retry-After": "120"}))
    with pytest.raises(BrokerRateLimited) as info:
        _binance(session).get_balance()
    assert info.value.retry_after == 120.0 and len(session.calls) == 1


def test_upbit_text_429_without_retry_after() -> None:
    session = FakeSession(response(429, "Too many API requests."))
    adapter = UpbitAdapter(
        CREDS, base_url="http://sim", session=session, retry_policy=RetryPolicy(attempts=1)
    )
    with pytest.raises(BrokerRateLimited) as info:
        adapter.get_balance()
    assert info.value.retry_after == 1.0 and info.value.broker == "UPBIT"


def test_remaining_req_is_kept() -> None:
    session = FakeSession(response(200, [], {"Remaining-Req": "group=default; min=1800; sec=29"}))
    adapter = UpbitAdapter(CREDS, base_url="http://sim", session=session)
    adapter.get_balance()
    assert adapter.client.rate_limit["sec"] == "29"


def test_retry_policy_never_retries_unknown_outcomes() -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise OrderStateUnknown("x")

    with pytest.raises(OrderStateUnknown):
        call_with_retry(fn, policy=RetryPolicy(), sleep=lambda s: None)
    assert calls == [1]

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise BrokerUnavailable("x")
        return "ok"

    calls.clear()
    assert call_with_retry(flaky, policy=RetryPolicy(), sleep=lambda s: None, rng=lambda: 1.0)
    assert len(calls) == 3


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    assert [backoff_delay(n, policy, rng=lambda: 1.0) for n in range(4)] == [0.2, 0.4, 0.8, 1.0]
    assert backoff_delay(3, policy, rng=lambda: 0.5) == 0.5


def test_secret_never_in_repr_or_errors() -> None:
    adapter = _binance(FakeSession(response(401, {"code": -2015, "msg": "Invalid API-key"})))
    assert SECRET not in repr(adapter)
    with pytest.raises(Exception) as info:
        adapter.get_balance()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.__dict__)
