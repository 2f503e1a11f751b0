"""KIS error codes → the gateway's error hierarchy: a data table (STYLE H6).

Sources: ``shared/brokers/kis_kiwoom.md`` §1.6 (the EGW gateway codes from the KIS portal FAQ,
HTTP statuses seen in captures) and §1.5 (business rejections such as ``APBK0952``). KIS answers
gateway errors (EGW…) with HTTP 500 and ``rt_cd "1"``, token-endpoint errors with HTTP 403 and an
OAuth-style ``{"error_code", "error_description"}`` body, and business rejections with HTTP 200
and a non-zero ``rt_cd``; all three go through :data:`KIS_ERRORS`.

Order of lookup: exact ``msg_cd`` / ``error_code``, then substrings of ``msg1`` (KIS has many
undocumented business codes, but their Korean messages are stable), then ``BrokerRejected``.
"""

from __future__ import annotations

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

__all__ = ["BROKER", "KIS_ERRORS", "TOKEN_REJECTED_CODES"]

BROKER = "KIS"

_AUTH = ErrorRule(BrokerAuthFailed)
# The token was refused: the client asks the TokenProvider for a fresh one once and resends.
_TOKEN = ErrorRule(BrokerAuthFailed, token_rejected=True)
_TRANSIENT = ErrorRule(BrokerUnavailable)
# The API gateway timed out talking to the order system: the order may or may not exist.
_GATEWAY_TIMEOUT = ErrorRule(BrokerUnavailable, outcome_unknown_on_write=True)
_REJECTED = ErrorRule(BrokerRejected)

_EXACT: dict[str, ErrorRule] = {
    # -- gateway (EGW): HTTP 500, rt_cd "1" -------------------------------------------------
    "EGW00001": _GATEWAY_TIMEOUT,  # 일시적 오류가 발생했습니다
    "EGW00002": _GATEWAY_TIMEOUT,  # 서버 에러가 발생했습니다
    "EGW00003": _AUTH,  # 접근이 거부되었습니다
    "EGW00004": _AUTH,  # 권한을 부여받지 않은 고객입니다
    "EGW00101": _REJECTED,  # 유효하지 않은 요청입니다
    "EGW00102": _AUTH,  # AppKey는 필수입니다
    "EGW00103": _AUTH,  # 유효하지 않은 AppKey입니다
    "EGW00104": _AUTH,  # AppSecret은 필수입니다
    "EGW00105": _AUTH,  # 유효하지 않은 AppSecret입니다
    "EGW00115": _REJECTED,  # grant_type은 필수입니다
    "EGW00116": _REJECTED,  # 지원하지 않는 grant_type입니다
    "EGW00121": _TOKEN,  # 유효하지 않은 token 입니다
    "EGW00122": _TOKEN,  # token을 찾을 수 없습니다
    "EGW00123": _TOKEN,  # 기간이 만료된 token 입니다
    "EGW00131": _REJECTED,  # 유효하지 않은 hashkey입니다
    "EGW00132": _REJECTED,  # Content-Type이 유효하지 않습니다
    # 접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회): one issuance a minute per app key.
    "EGW00133": ErrorRule(BrokerRateLimited, retry_after=60.0),
    "EGW00201": ErrorRule(BrokerRateLimited, retry_after=1.0),  # 초당 거래건수를 초과하였습니다
    "EGW00205": _AUTH,  # credentials_type이 유효하지 않습니다(Bearer)
    "EGW00206": _AUTH,  # API 사용 권한이 없습니다
    "EGW00207": _AUTH,  # IP 주소가 없거나 유효하지 않습니다
    "EGW00208": _REJECTED,  # 고객유형(custtype)이 유효하지 않습니다
    "EGW00215": ErrorRule(BrokerRateLimited, retry_after=1.0),  # 원장 초당 거래건수 초과
    "EGW00300": _TRANSIENT,  # Gateway 라우팅 오류 (before the order system: nothing happened)
    "EGW00301": _GATEWAY_TIMEOUT,  # 연결 시간 초과
    "EGW00302": _GATEWAY_TIMEOUT,  # 거래시간 초과
    "EGW2004": _AUTH,  # 모의투자 TR 이 아닙니다: a REAL account pointed at the paper host
    "EGW2005": _AUTH,  # 실전투자 TR 이 아닙니다 (the simulator's mirror of EGW2004; unverified)
    # -- inquiry input (OPSQ): the account itself is wrong, or our request is ----------------
    "OPSQ2000": _AUTH,  # INVALID_CHECK_ACNO: the stored account number is wrong
    "OPSQ2001": _REJECTED,  # INVALID_CHECK_MRKT_DIV_CODE / INPUT_FIELD_NAME
    "OPSQ2002": _REJECTED,  # INVALID_CHECK_FIELD_LENGTH
    # -- business (HTTP 200, rt_cd ≠ "0") ----------------------------------------------------
    "APBK0952": ErrorRule(InsufficientFunds),  # 주문가능금액을 초과 했습니다
}

# First match wins, so the specific phrases come before the general ones.
_SUBSTRINGS: tuple[tuple[str, ErrorRule], ...] = (
    ("token", _TOKEN),  # "유효하지 않은 token 입니다" under a code we have not seen
    ("초당 거래건수", ErrorRule(BrokerRateLimited, retry_after=1.0)),
    ("발급 잠시 후", ErrorRule(BrokerRateLimited, retry_after=60.0)),
    ("점검", ErrorRule(BrokerMaintenance)),  # 시스템 점검 중
    ("장종료", ErrorRule(MarketClosed)),  # 모의투자 장종료 입니다
    ("장시작전", ErrorRule(MarketClosed)),
    ("장운영시간", ErrorRule(MarketClosed)),
    ("장마감", ErrorRule(MarketClosed)),
    ("주문가능금액", ErrorRule(InsufficientFunds)),
    ("주문가능수량", ErrorRule(InsufficientFunds)),
    ("매도가능수량", ErrorRule(InsufficientFunds)),
    ("잔고", ErrorRule(InsufficientFunds)),  # 잔고가 부족합니다 / 매도잔고가 없습니다
    ("증거금", ErrorRule(InsufficientFunds)),
    ("예수금", ErrorRule(InsufficientFunds)),
    ("원주문", ErrorRule(OrderNotFound)),  # 원주문번호가 존재하지 않습니다
    ("주문번호", ErrorRule(OrderNotFound)),
    ("정정/취소할 수량", ErrorRule(InvalidOrder)),  # the order is already closed
    ("호가단위", ErrorRule(InvalidOrder)),
    ("주문수량", ErrorRule(InvalidOrder)),
    ("주문단가", ErrorRule(InvalidOrder)),
    ("상한가", ErrorRule(InvalidOrder)),
    ("하한가", ErrorRule(InvalidOrder)),
    ("종목", ErrorRule(InvalidOrder)),  # 종목코드 오류 / 거래정지 종목
)

KIS_ERRORS = ErrorTable(broker=BROKER, exact=_EXACT, substrings=_SUBSTRINGS)

#: Codes after which the client re-issues the token once (derived from the table, not repeated).
TOKEN_REJECTED_CODES = frozenset(code for code, rule in _EXACT.items() if rule.token_rejected)
