"""The KIS and Kiwoom error tables, on recorded answers (no network)."""

from __future__ import annotations

import pytest

from securities.kis.errors import KIS_ERRORS, TOKEN_REJECTED_CODES
from securities.kiwoom.errors import KIWOOM_ERRORS, extract_code
from web_server.errors import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
    OrderStateUnknown,
)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)", BrokerRateLimited),
        ("EGW00201", "초당 거래건수를 초과하였습니다.", BrokerRateLimited),
        ("EGW00121", "유효하지 않은 token 입니다.", BrokerAuthFailed),
        ("EGW00123", "기간이 만료된 token 입니다.", BrokerAuthFailed),
        ("EGW00103", "유효하지 않은 AppKey입니다.", BrokerAuthFailed),
        ("EGW00105", "유효하지 않은 AppSecret입니다.", BrokerAuthFailed),
        ("OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO", BrokerAuthFailed),
        ("APBK0952", "주문가능금액을 초과 했습니다", InsufficientFunds),
        # Simulator / community wordings under codes not in the exact table:
        ("APBK0400", "주문가능수량을 초과 했습니다", InsufficientFunds),
        ("APBK0506", "주문단가가 호가단위에 맞지 않습니다.", InvalidOrder),
        ("APBK0918", "원주문번호가 존재하지 않습니다.", OrderNotFound),
        ("APBK0918", "모의투자 정정/취소할 수량이 없습니다.", InvalidOrder),
        ("APBK1359", "정정취소수량이 주문수량보다 많습니다", InvalidOrder),
        ("APBK0656", "해당 종목정보가 없습니다.", InvalidOrder),
        ("40580000", "모의투자 장종료 입니다.", MarketClosed),
        ("ZZZZ9999", "처음 보는 오류", BrokerRejected),
    ],
)
def test_kis_table(code: str, message: str, expected: type[BrokerError]) -> None:
    error = KIS_ERRORS.error(code, message, http_status=200)
    assert type(error) is expected
    assert error.broker == "KIS"
    assert error.broker_code == code
    assert error.broker_message == message.strip()


def test_kis_retry_after_and_token_codes() -> None:
    assert KIS_ERRORS.error("EGW00133", "x").retry_after == 60
    assert KIS_ERRORS.error("EGW00201", "x").retry_after == 1
    assert {"EGW00121", "EGW00123"} <= TOKEN_REJECTED_CODES
    assert "EGW00103" not in TOKEN_REJECTED_CODES


def test_kis_unknown_5xx_on_a_write_is_state_unknown_and_on_a_read_transient() -> None:
    assert type(KIS_ERRORS.error("EGW99999", "?", is_write=True, http_status=500)) is (
        OrderStateUnknown
    )
    assert type(KIS_ERRORS.error("EGW99999", "?", is_write=False, http_status=500)) is (
        BrokerUnavailable
    )
    # A gateway timeout behind KIS may have placed the order.
    assert type(KIS_ERRORS.error("EGW00302", "거래시간 초과", is_write=True)) is OrderStateUnknown
    assert type(KIS_ERRORS.error("EGW00302", "거래시간 초과", is_write=False)) is BrokerUnavailable
    # A refused token on a write is known not to have been placed.
    assert type(KIS_ERRORS.error("EGW00123", "expired", is_write=True, http_status=500)) is (
        BrokerAuthFailed
    )
    assert type(KIS_ERRORS.error("EGW00201", "rate", is_write=True, http_status=500)) is (
        BrokerRateLimited
    )


@pytest.mark.parametrize(
    ("return_code", "message", "code"),
    [
        (3, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]", "8005"),
        (8005, "Token이 유효하지 않습니다", "8005"),
        (
            5,
            "허용된 요청 개수를 초과하였습니다[1700:허용된 API 요청 개수를 초과하였습니다. "
            "유량=1, API ID=kt10001]",
            "1700",
        ),
        (1, "[CODE=8005, MESSAGE=Token이 유효하지 않습니다]", "8005"),
        (2, "[2000](RC4058:모의투자 장종료)", "RC4058"),
        (0, "정상적으로 처리되었습니다", None),
        (None, "", None),
    ],
)
def test_kiwoom_code_in_either_style(return_code: object, message: str, code: str | None) -> None:
    assert extract_code(return_code, message) == code


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("8005", "인증에 실패했습니다[8005:Token이 유효하지 않습니다]", BrokerAuthFailed),
        ("1700", "허용된 요청 개수를 초과하였습니다[1700:…]", BrokerRateLimited),
        ("1701", "", BrokerRateLimited),
        ("8001", "App Key와 Secret Key 검증에 실패했습니다", BrokerAuthFailed),
        ("8030", "투자구분(실전/모의)이 달라서 Appkey를 사용할수가 없습니다", BrokerAuthFailed),
        ("1902", "종목 정보가 없습니다", InvalidOrder),
        ("1511", "필수 입력 값에 값이 존재하지 않습니다", BrokerRejected),
        ("RC4058", "[2000](RC4058:모의투자 장종료)", MarketClosed),
        ("RC4025", "[2000](RC4025:주문가능금액을 초과합니다)", InsufficientFunds),
        ("9", "정체불명", BrokerRejected),
    ],
)
def test_kiwoom_table(code: str, message: str, expected: type[BrokerError]) -> None:
    error = KIWOOM_ERRORS.error(code, message, http_status=200)
    assert type(error) is expected
    assert error.broker == "KIWOOM"
    assert error.broker_code == code


def test_kiwoom_token_rule_and_unknown_outcome() -> None:
    assert KIWOOM_ERRORS.rule("8005", None).token_rejected
    assert KIWOOM_ERRORS.rule("8003", None).token_rejected
    assert not KIWOOM_ERRORS.rule("8001", None).token_rejected
    assert KIWOOM_ERRORS.error("1700", "").retry_after == 1
    assert type(KIWOOM_ERRORS.error("1999", "예기치 못한 에러", is_write=True)) is (
        OrderStateUnknown
    )


def test_error_text_never_contains_what_was_not_in_the_message() -> None:
    error = KIS_ERRORS.error("EGW00123", "기간이 만료된 token 입니다.")
    assert str(error) == "KIS EGW00123: 기간이 만료된 token 입니다."
