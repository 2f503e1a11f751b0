"""Kiwoom REST wire conventions: context, envelope, errors, headers, auth, continuation.

Sources: ``shared/brokers/kis_kiwoom.md`` Part 2 (§2.3 headers/envelope, §2.7 error codes and the
observed wire format, §2.8 rate limits) and Part 3 (what is unverified).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from flask import Flask, Response, jsonify, request

from simulators.control import RateLimiter, SimState, TokenStatus
from simulators.control.refusals import RefusalReason, mark_refused
from simulators.krx import Listing
from simulators.krx_calendar import ClosedReason
from simulators.krx_day import DayRules

__all__ = [
    "CONTEXT_KEY",
    "answer",
    "required",
    "Credential",
    "KiwoomContext",
    "KiwoomError",
    "body",
    "check_api_id",
    "authenticate",
    "page",
    "padded",
    "register_protocol",
    "signed",
]

CONTEXT_KEY: Final = "simulators.kiwoom"

#: code → (generic return_code of the embedded style, outer text, documented message).
ERRORS: Final[Mapping[int, tuple[int, str, str]]] = {
    1501: (1, "요청이 올바르지 않습니다", "API ID가 Null이거나 값이 없습니다"),
    1504: (1, "요청이 올바르지 않습니다", "해당 URI에서는 지원하는 API ID가 아닙니다"),
    1505: (1, "요청이 올바르지 않습니다", "해당 API ID는 존재하지 않습니다"),
    1511: (1, "요청이 올바르지 않습니다", "필수 입력 값에 값이 존재하지 않습니다"),
    1513: (3, "인증에 실패했습니다", "Http Header에 authorization 필드가 설정되어 있어야 합니다"),
    1514: (3, "인증에 실패했습니다", "authorization 필드 형식이 맞지 않습니다"),
    1517: (1, "요청이 올바르지 않습니다", "입력 값 형식이 올바르지 않습니다"),
    1700: (5, "허용된 요청 개수를 초과하였습니다", "허용된 API 요청 개수를 초과하였습니다"),
    1901: (1, "요청이 올바르지 않습니다", "시장 코드값이 존재하지 않습니다"),
    1902: (1, "요청이 올바르지 않습니다", "종목 정보가 없습니다"),
    8001: (3, "인증 실패", "App Key와 Secret Key 검증에 실패했습니다"),
    8005: (3, "인증에 실패했습니다", "Token이 유효하지 않습니다"),
    8009: (3, "인증 실패", "Access Token 발급에 실패했습니다"),
    8011: (3, "인증 실패", "입력파라미터로 grant_type이 들어오지 않았습니다."),
    8012: (3, "인증 실패", "입력파라미터로 grant_type이 client_credentials가 아닙니다."),
    8015: (3, "인증 실패", "Access Token 폐기에 실패했습니다"),
    8016: (3, "인증 실패", "입력파라미터로 token이 들어오지 않았습니다."),
    8020: (3, "인증 실패", "입력파라미터로 appkey 또는 secretkey가 들어오지 않았습니다."),
}

#: Business rejections (HTTP 200). The ``[2000](RCxxxx:…)`` shape is the observed one (mock
#: "장종료" capture); the RC numbers and texts below are [UNVERIFIED].
REJECTS: Final[Mapping[str, str]] = {
    "funds": "[2000](RC4025:주문가능금액을 초과하였습니다)",
    "position": "[2000](RC4032:매도가능수량을 초과하였습니다)",
    "tick": "[2000](RC4007:호가단위가 맞지 않습니다)",
    "limit": "[2000](RC4008:주문가격이 상하한가를 벗어났습니다)",
    "halted": "[2000](RC4017:매매거래정지 종목입니다)",
    "quantity": "[2000](RC4003:주문수량을 확인하십시오)",
    "order_not_found": "[2000](RC4051:원주문번호가 존재하지 않습니다)",
    "nothing_left": "[2000](RC4052:정정/취소 가능수량이 없습니다)",
    "too_many": "[2000](RC4053:정정/취소수량이 가능수량을 초과하였습니다)",
    "mock_exchange": "[2000](RC4101:모의투자에서는 KRX만 가능합니다)",
}

#: Outside a session (trading-days.md §1.4, [COMMUNITY] captures, ``return_code`` 20 as captured):
#: the real host takes only cancels; the mock host answers RC4058 on a trading day (also before
#: the open, [UNVERIFIED]) and RC4010 on a day without trading.
CLOSED_RETURN_CODE: Final = 20
CLOSED_REAL: Final = "[2000](505217:휴장시간으로 취소주문만 가능합니다.)"
CLOSED_MOCK: Final = "[2000](RC4058:모의투자 장종료)"
CLOSED_MOCK_HOLIDAY: Final = "[2000](RC4010:모의투자 영업일이 아닙니다.)"


#: Codes that refuse a request for rate, auth or session: recorded as ``request_refused``.
_REFUSAL_REASONS: Final[Mapping[int, RefusalReason]] = {
    1513: "auth",
    1514: "auth",
    1700: "rate",
    8001: "auth",
    8005: "session",
    8009: "auth",
    8011: "auth",
    8012: "auth",
    8020: "auth",
}


class KiwoomError(Exception):
    """An error answer: HTTP status, ``return_code`` and ``return_msg``."""

    def __init__(self, status: int, return_code: int, return_msg: str) -> None:
        super().__init__(return_msg)
        self.status, self.return_code, self.return_msg = status, return_code, return_msg


@dataclass(frozen=True)
class Credential:
    """An app key's secret key and its account."""

    app_key: str
    secret_key: str
    account_number: str

    @property
    def account_id(self) -> str:
        """The engine's account id (the 10-digit account number)."""
        return self.account_number


@dataclass
class KiwoomContext:
    """Everything the Kiwoom routes share; kept in ``app.extensions``.

    Attributes:
        state: shared simulator state.
        paper: imitate mockapi.kiwoom.com (KRX only).
        listings: the KRX universe by symbol.
        limiter: per-app-key limiter (None: unlimited).
        invalid_token_style: "return_msg" (embedded ``[8005:…]``, return_code 3) or "code".
        rate_limit_status: HTTP status of a 1700 answer (200 or 429).
        token_lifetime_seconds: token validity.
        reuse_token: re-issue returns the still-valid token instead of a new one.
        page_size: rows per page of list TRs.
        rules: the trading-day switches (sessions, order numbers, lapsed orders in history).
    """

    state: SimState
    paper: bool
    listings: Mapping[str, Listing]
    limiter: RateLimiter | None
    rate: float
    rules: DayRules
    invalid_token_style: str = "return_msg"  # noqa: S105 - a style, not a secret
    rate_limit_status: int = 200
    token_lifetime_seconds: int = 86_400
    reuse_token: bool = False
    page_size: int = 20
    credentials: dict[str, Credential] = field(default_factory=dict)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_ord_no(self) -> str:
        """Draw the next 7-digit order number (orders, amendments and cancels share it daily)."""
        return f"{self.rules.numbers.next(self.state.clock.now()):07d}"

    def closed(self, reason: ClosedReason) -> KiwoomError:
        """The answer to an order outside its session (§1.4)."""
        if not self.paper:
            return KiwoomError(200, CLOSED_RETURN_CODE, CLOSED_REAL)
        text = CLOSED_MOCK_HOLIDAY if reason is ClosedReason.HOLIDAY else CLOSED_MOCK
        return KiwoomError(200, CLOSED_RETURN_CODE, text)

    def error(self, code: int, detail: str = "", *, status: int = 200) -> KiwoomError:
        """Build an error in the configured style."""
        generic, outer, message = ERRORS[code]
        text = f"{message}{detail}"
        reason = _REFUSAL_REASONS.get(code)
        if reason is not None:
            mark_refused(reason, code)
        if self.invalid_token_style == "code":  # noqa: S105 - a style, not a secret
            return KiwoomError(status, code, text)
        return KiwoomError(status, generic, f"{outer}[{code}:{text}]")

    def reject(self, key: str) -> KiwoomError:
        """A business rejection (HTTP 200, return_code 2)."""
        text = REJECTS[key]
        return KiwoomError(200, 2, f"모의투자 {text}" if self.paper else text)


def get_context(app: Flask) -> KiwoomContext:
    """Return the Kiwoom context of an app built by :func:`simulators.kiwoom.create_app`."""
    return app.extensions[CONTEXT_KEY]  # type: ignore[no-any-return]


def body() -> dict[str, Any]:
    """The JSON body ({} when absent)."""
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


def required(ctx: KiwoomContext, data: Mapping[str, Any], name: str) -> str:
    """A required body field as a string.

    Raises:
        KiwoomError: 1511 naming the parameter.
    """
    value = data.get(name)
    if value is None or str(value).strip() == "":
        raise ctx.error(1511, f". 필수입력 파라미터={name}")
    return str(value).strip()


def signed(value: Decimal | int, *, sign: bool = True) -> str:
    """A price with its direction sign (``+74100``, ``-91200``; zero has none)."""
    number = int(value)
    if not sign or number == 0:
        return str(number)
    return f"+{number}" if number > 0 else str(number)


def padded(value: Decimal | int, width: int = 15) -> str:
    """Zero-padded signed number: ``000000017598258``, ``-00000000196888`` (width incl. sign)."""
    number = int(value)
    if number < 0:
        return "-" + str(-number).zfill(width - 1)
    return str(number).zfill(width)


def check_api_id(ctx: KiwoomContext, supported: Mapping[str, Any]) -> str:
    """Return the ``api-id`` header if this URI supports it.

    Raises:
        KiwoomError: 1501 missing, 1504 not at this URI, 1505 unknown.
    """
    api_id = request.headers.get("api-id", "").strip()
    if not api_id:
        raise ctx.error(1501)
    if api_id not in supported:
        known = api_id[:2] in {"ka", "kt", "au"} and api_id[2:].isdigit()
        if known:
            raise ctx.error(1504, f". API ID={api_id}, URI={request.path}")
        raise ctx.error(1505)
    return api_id


def authenticate(ctx: KiwoomContext, api_id: str) -> Credential:
    """Check the bearer token and the rate limit.

    Raises:
        KiwoomError: 1513/1514 (header), 8005 (invalid, expired or revoked token), 1700 (rate).
    """
    header = request.headers.get("authorization", "")
    if not header:
        raise ctx.error(1513)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ctx.error(1514)
    token = token.strip()
    issued = ctx.state.tokens.lookup(token)
    if ctx.state.tokens.status(token) is not TokenStatus.VALID or issued is None:
        raise ctx.error(8005)
    credential = ctx.credentials.get(issued.app_key)
    if credential is None:
        raise ctx.error(8005)
    if ctx.limiter is not None and not ctx.limiter.try_acquire(credential.app_key):
        rate = int(ctx.rate) if ctx.rate == int(ctx.rate) else ctx.rate
        error = ctx.error(1700, f". 유량={rate}, API ID={api_id}", status=ctx.rate_limit_status)
        mark_refused("rate", 1700, app_key=credential.app_key)
        raise error
    return credential


def page(ctx: KiwoomContext, rows: Sequence[Any]) -> tuple[list[Any], str, str]:
    """Cut a page by the ``cont-yn``/``next-key`` request headers.

    Returns:
        The rows of this page, the ``cont-yn`` answer and the ``next-key`` answer.
    """
    start = 0
    if request.headers.get("cont-yn", "").strip().upper() == "Y":
        key = request.headers.get("next-key", "").strip()
        start = int(key) if key.isdigit() else 0
    chunk = list(rows[start : start + ctx.page_size])
    more = start + ctx.page_size < len(rows)
    return chunk, ("Y" if more else "N"), (str(start + ctx.page_size) if more else "")


def answer(
    payload: Mapping[str, Any],
    api_id: str,
    *,
    message: str = "정상적으로 처리되었습니다",
    cont_yn: str = "N",
    next_key: str = "",
) -> Response:
    """A success answer (``return_code`` 0) with the continuation headers."""
    response = jsonify({**payload, "return_code": 0, "return_msg": message})
    response.headers["api-id"] = api_id
    response.headers["cont-yn"] = cont_yn
    response.headers["next-key"] = next_key
    return response


def register_protocol(app: Flask, ctx: KiwoomContext) -> None:
    """Install the error handler and the CORS-style header list Kiwoom sends."""

    @app.errorhandler(KiwoomError)
    def kiwoom_error(exc: KiwoomError) -> tuple[Response, int]:
        response = jsonify({"return_code": exc.return_code, "return_msg": exc.return_msg})
        api_id = request.headers.get("api-id", "")
        if api_id:
            response.headers["api-id"] = api_id
            response.headers["cont-yn"] = "N"
            response.headers["next-key"] = ""
        return response, exc.status

    @app.after_request
    def expose(response: Response) -> Response:
        # Browser clients (and some Python ones) read the continuation headers through this list.
        if request.path.startswith("/api/"):
            response.headers["Access-Control-Expose-Headers"] = "api-id,cont-yn,next-key"
        return response
