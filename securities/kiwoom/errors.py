"""Kiwoom error codes → the gateway's error hierarchy: a data table (STYLE H6).

Source: ``shared/brokers/kis_kiwoom.md`` §2.7: the official code table (``kiwoom_api_spec.json``)
and the official client's grouping (``kiwoom/core/errors.py``). On the real wire the documented
code usually sits *inside* ``return_msg`` while ``return_code`` holds a small generic value::

    {"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"}
    {"return_code": 5, "return_msg": "허용된 요청 개수를 초과하였습니다[1700:허용된 API …]"}
    "[2000](RC4058:모의투자 장종료)"

:func:`extract_code` finds the specific code in either style; the table is keyed by it.
"""

from __future__ import annotations

import re

from brokers.errors import (
    BrokerAuthFailed,
    BrokerMaintenance,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
)
from securities.common import ErrorRule, ErrorTable

__all__ = ["BROKER", "KIWOOM_ERRORS", "extract_code"]

BROKER = "KIWOOM"

_AUTH = ErrorRule(BrokerAuthFailed)
# The token was refused: the client asks the TokenProvider for a fresh one once and resends.
_TOKEN = ErrorRule(BrokerAuthFailed, token_rejected=True)
_INPUT = ErrorRule(BrokerRejected)
_RATE = ErrorRule(BrokerRateLimited, retry_after=1.0)

_EXACT: dict[str, ErrorRule] = {
    # Input validation (official INPUT_VALIDATION group): our request is malformed.
    **{
        code: _INPUT
        for code in (
            "1501",
            "1504",
            "1505",
            "1511",
            "1512",
            "1513",
            "1514",
            "1515",
            "1516",
            "1517",
            "1687",
        )
    },
    # Rate limits: per API, total, group.
    "1700": _RATE,
    "1701": _RATE,
    "1702": _RATE,
    "1901": ErrorRule(InvalidOrder),  # 시장 코드값이 존재하지 않습니다
    "1902": ErrorRule(InvalidOrder),  # 종목 정보가 없습니다
    "1903": ErrorRule(InvalidOrder),  # 종목 정보가 없습니다 (거래소구분 포함)
    # 예기치 못한 에러: the order system may have acted before failing.
    "1999": ErrorRule(BrokerUnavailable, outcome_unknown_on_write=True),
    # Credentials (official INVALID_CREDENTIAL and friends): re-issuing cannot help.
    "8001": _AUTH,
    "8002": _AUTH,
    "8011": _AUTH,
    "8012": _AUTH,
    "8020": _AUTH,  # appkey 또는 secretkey 누락
    "8030": _AUTH,  # 투자구분(실전/모의) 불일치: a REAL key on the mock host or back
    "8031": _AUTH,
    "8010": _AUTH,  # token issued to another IP
    "8040": _AUTH,
    "8050": _AUTH,
    "8103": _AUTH,
    "8104": _INPUT,  # 모의투자에서 지원하지 않는 API
    "8200": _INPUT,  # 법인 고객 미지원
    "8006": _AUTH,  # Access Token 생성 실패
    "8009": _AUTH,  # Access Token 발급 실패
    "8015": _AUTH,  # 폐기 실패
    "8016": _AUTH,  # Token 누락 (on revoke)
    # The presented token is invalid or unknown: a fresh one may work.
    "8003": _TOKEN,  # Access Token을 조회하는데 실패
    "8005": _TOKEN,  # Token이 유효하지 않습니다
}

# First match wins, so the specific phrases come before the general ones.
_SUBSTRINGS: tuple[tuple[str, ErrorRule], ...] = (
    ("Token이 유효하지", _TOKEN),
    ("토큰이 유효하지", _TOKEN),
    ("요청 개수를 초과", _RATE),
    ("점검", ErrorRule(BrokerMaintenance)),
    ("장종료", ErrorRule(MarketClosed)),
    ("장시작전", ErrorRule(MarketClosed)),
    ("장운영", ErrorRule(MarketClosed)),
    ("장마감", ErrorRule(MarketClosed)),
    ("주문가능금액", ErrorRule(InsufficientFunds)),
    ("주문가능수량", ErrorRule(InsufficientFunds)),
    ("매도가능수량", ErrorRule(InsufficientFunds)),
    ("증거금", ErrorRule(InsufficientFunds)),
    ("예수금", ErrorRule(InsufficientFunds)),
    ("잔고", ErrorRule(InsufficientFunds)),
    ("원주문", ErrorRule(OrderNotFound)),
    ("주문번호", ErrorRule(OrderNotFound)),
    ("KRX만", ErrorRule(InvalidOrder)),  # the mock host trades KRX only
    ("정정/취소", ErrorRule(InvalidOrder)),
    ("취소가능수량", ErrorRule(InvalidOrder)),
    ("정정가능수량", ErrorRule(InvalidOrder)),
    ("호가", ErrorRule(InvalidOrder)),
    ("주문수량", ErrorRule(InvalidOrder)),
    ("주문단가", ErrorRule(InvalidOrder)),
    ("상한가", ErrorRule(InvalidOrder)),
    ("하한가", ErrorRule(InvalidOrder)),
    ("종목", ErrorRule(InvalidOrder)),
)

KIWOOM_ERRORS = ErrorTable(broker=BROKER, exact=_EXACT, substrings=_SUBSTRINGS)

# "[8005:Token이 …]", "[CODE=8005, MESSAGE=…]", "(RC4058:모의투자 장종료)".
_EMBEDDED = (
    re.compile(r"\[(\d{4}):"),
    re.compile(r"CODE=(\d{4})"),
    re.compile(r"\((RC\d{4}):"),
)


def extract_code(return_code: object, return_msg: str | None) -> str | None:
    """Return the specific Kiwoom code of an answer (pure).

    The code embedded in ``return_msg`` wins over ``return_code``, which on the real wire is a
    generic class (3 auth, 5 rate, …). A bare documented code in ``return_code`` (8005) is used
    as is. None when the answer carries no code at all.
    """
    for pattern in _EMBEDDED:
        found = pattern.search(return_msg or "")
        if found:
            return found.group(1)
    if return_code is None or str(return_code).strip() in ("", "0"):
        return None
    return str(return_code).strip()
