"""The error tables as data, and the shared translation rules (status, write/read, retry_after)."""

from __future__ import annotations

import pytest

from crypto_exchanges._http import ErrorTable
from crypto_exchanges.binance.errors import BINANCE_ERRORS
from crypto_exchanges.bithumb.errors import BITHUMB_ERRORS
from crypto_exchanges.upbit.errors import UPBIT_ERRORS
from web_server.errors import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
    OrderStateUnknown,
)

TABLES = [UPBIT_ERRORS, BITHUMB_ERRORS, BINANCE_ERRORS]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.broker)
def test_every_entry_maps_to_a_broker_error(table: ErrorTable) -> None:
    classes = [*table.exact.values(), *(r.error for r in table.substrings), table.fallback]
    assert all(issubclass(cls, BrokerError) for cls in classes)


@pytest.mark.parametrize(
    ("table", "code", "message", "expected"),
    [
        (
            UPBIT_ERRORS,
            "insufficient_funds_bid",
            "주문가능한 금액(KRW)이 부족합니다.",
            InsufficientFunds,
        ),
        (UPBIT_ERRORS, "insufficient_funds_ask", "", InsufficientFunds),
        (UPBIT_ERRORS, "jwt_verification", "Jwt 토큰 검증에 실패했습니다.", BrokerAuthFailed),
        (UPBIT_ERRORS, "expired_access_key", "", BrokerAuthFailed),
        (UPBIT_ERRORS, "too_many_requests", "", BrokerRateLimited),
        (UPBIT_ERRORS, "order_not_found", "주문을 찾지 못했습니다.", OrderNotFound),
        (UPBIT_ERRORS, "under_min_total_bid", "", InvalidOrder),
        (UPBIT_ERRORS, "invalid_price_bid", "", InvalidOrder),
        (UPBIT_ERRORS, "duplicate_identifier", "identifier 값이 중복되었습니다.", DuplicateOrder),
        (UPBIT_ERRORS, "400", "Missing request parameter error.", InvalidOrder),
        (UPBIT_ERRORS, "something_new", "무언가 중복", DuplicateOrder),
        (UPBIT_ERRORS, "something_new", "who knows", BrokerRejected),
        (BITHUMB_ERRORS, "insufficient_funds_bid", "", InsufficientFunds),
        (BITHUMB_ERRORS, "under_price_limit_ask", "", InvalidOrder),
        (BITHUMB_ERRORS, "expired_jwt", "", BrokerAuthFailed),
        (BITHUMB_ERRORS, "NotAllowIP", "", BrokerAuthFailed),
        (BITHUMB_ERRORS, "order_not_found", "", OrderNotFound),
        (BITHUMB_ERRORS, "order_not_ready", "", MarketClosed),
        (BITHUMB_ERRORS, "duplicate_client_order_id", "", DuplicateOrder),
        (BITHUMB_ERRORS, "5300", "Invalid Apikey", BrokerAuthFailed),
        (BITHUMB_ERRORS, "5400", "Database Fail", BrokerUnavailable),
        (BINANCE_ERRORS, "-2010", "Duplicate order sent.", DuplicateOrder),
        (
            BINANCE_ERRORS,
            "-2010",
            "Account has insufficient balance for requested action.",
            InsufficientFunds,
        ),
        (BINANCE_ERRORS, "-2010", "Market is closed.", MarketClosed),
        (BINANCE_ERRORS, "-2010", "Order would immediately match and take.", InvalidOrder),
        (BINANCE_ERRORS, "-2011", "Unknown order sent.", OrderNotFound),
        (
            BINANCE_ERRORS,
            "-2011",
            "Order was not canceled due to cancel restrictions.",
            BrokerRejected,
        ),
        (BINANCE_ERRORS, "-2013", "Order does not exist.", OrderNotFound),
        (BINANCE_ERRORS, "-1013", "Filter failure: LOT_SIZE", InvalidOrder),
        (BINANCE_ERRORS, "-1013", "Filter failure: NOTIONAL", InvalidOrder),
        (
            BINANCE_ERRORS,
            "-1021",
            "Timestamp for this request is outside of the recvWindow.",
            BrokerUnavailable,
        ),
        (BINANCE_ERRORS, "-1022", "Signature for this request is not valid.", BrokerAuthFailed),
        (BINANCE_ERRORS, "-2014", "API-key format invalid.", BrokerAuthFailed),
        (
            BINANCE_ERRORS,
            "-2015",
            "Invalid API-key, IP, or permissions for action.",
            BrokerAuthFailed,
        ),
        (BINANCE_ERRORS, "-1003", "Too much request weight used", BrokerRateLimited),
        (
            BINANCE_ERRORS,
            "-1007",
            "Timeout waiting for response from backend server.",
            OrderStateUnknown,
        ),
        (BINANCE_ERRORS, "-9999", "brand new", BrokerRejected),
    ],
)
def test_classify(table: ErrorTable, code: str, message: str, expected: type) -> None:
    assert table.classify(code, message) is expected


def test_error_keeps_code_message_and_broker() -> None:
    exc = BINANCE_ERRORS.error("-2010", "Duplicate order sent.", status=400, write=True)
    assert isinstance(exc, DuplicateOrder)
    assert (exc.broker, exc.broker_code, exc.broker_message) == (
        "BINANCE",
        "-2010",
        "Duplicate order sent.",
    )
    assert exc.retry_after is None


def test_a_5xx_on_a_write_is_unknown_and_on_a_read_unavailable() -> None:
    assert isinstance(UPBIT_ERRORS.error(None, "boom", status=500, write=True), OrderStateUnknown)
    read = UPBIT_ERRORS.error(None, "boom", status=500, write=False, retry_after=2.0)
    assert type(read) is BrokerUnavailable and read.retry_after == 2.0
    # Binance "server busy" means the request was refused outright: safe to retry even for writes.
    busy = BINANCE_ERRORS.error("-1008", "Server is currently overloaded", status=503, write=True)
    assert type(busy) is BrokerUnavailable


def test_a_read_never_yields_order_state_unknown() -> None:
    exc = BINANCE_ERRORS.error("-1007", "Timeout", status=400, write=False)
    assert type(exc) is BrokerUnavailable
    assert isinstance(
        BINANCE_ERRORS.error("-1007", "Timeout", status=400, write=True), OrderStateUnknown
    )


def test_an_unknown_401_is_an_auth_failure() -> None:
    assert isinstance(UPBIT_ERRORS.error("brand_new", "", status=401), BrokerAuthFailed)
