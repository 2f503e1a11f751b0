"""KIS wire conventions shared by the routes: context, envelope, errors, headers, auth, paging.

Sources: ``shared/brokers/kis_kiwoom.md`` Part 1 (§1.3 what the official ``kis_auth.py`` needs,
§1.4 headers/envelope/paging, §1.6 error codes and statuses). Codes marked [UNVERIFIED] in the
table below were not found in any source; they keep KIS's shapes (``APBK…`` business codes, HTTP
200) so clients treat them as business rejections.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from flask import Flask, Response, jsonify, request

from simulators.control import RateLimiter, SimState, TokenStatus
from simulators.control.refusals import RefusalReason, mark_refused
from simulators.engine import Side
from simulators.krx import KST, Listing
from simulators.krx_calendar import ClosedReason
from simulators.krx_day import DayRules

__all__ = [
    "CONTEXT_KEY",
    "Credential",
    "KisContext",
    "KisGatewayError",
    "KisReject",
    "CancelRecord",
    "arg",
    "authenticate",
    "get_context",
    "krw",
    "ok",
    "pad100",
    "register_protocol",
    "require_tr",
]

CONTEXT_KEY: Final = "simulators.kis"

#: Business rejections: (rt_cd, msg_cd, msg1). HTTP 200 like the real server.
REJECTS: Final[Mapping[str, tuple[str, str, str]]] = {
    # [COMMUNITY] captured: {"rt_cd":"7","msg_cd":"APBK0952","msg1":"주문가능금액을 초과 했습니다"}
    "funds": ("7", "APBK0952", "주문가능금액을 초과 했습니다"),
    # [UNVERIFIED] codes below; messages in KIS's wording where captures show one.
    "position": ("7", "APBK0400", "주문가능수량을 초과 했습니다"),
    "tick": ("1", "APBK0506", "주문단가가 호가단위에 맞지 않습니다."),
    "limit": ("1", "APBK0508", "주문단가가 상/하한가 범위를 벗어났습니다."),
    "symbol": ("1", "APBK0656", "해당 종목정보가 없습니다."),
    "halted": ("1", "APBK0627", "매매정지 종목입니다."),
    "quantity": ("1", "APBK0564", "주문수량을 확인하세요."),
    # [COMMUNITY] "정정/취소할 수량이 없습니다." (paper: "모의투자 " prefix); code unverified.
    "nothing_left": ("1", "APBK0918", "정정/취소할 수량이 없습니다."),
    # [COMMUNITY] {"rt_cd":"7","msg_cd":"APBK1359","msg1":"정정취소수량이 주문수량보다 많습니다"}
    "too_many": ("7", "APBK1359", "정정취소수량이 주문수량보다 많습니다"),
    "order_not_found": ("1", "APBK0918", "원주문번호가 존재하지 않습니다."),
    # [COMMUNITY] OPSQ2000 bad account number.
    "account": ("2", "OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO"),
    # Outside the order's session (trading-days.md §1.4, [COMMUNITY] captures). The real host's
    # code is a switch (closed_code): KIOK0320 (default) or APBK0918 (rt_cd of the latter
    # [UNVERIFIED]); the paper host answers 40570000 before the open, 40580000 after the close
    # (and, [UNVERIFIED], on a day without trading).
    "closed": ("7", "KIOK0320", "장운영시간이 아닙니다"),
    "closed_apbk0918": ("7", "APBK0918", "장운영시간이 아닙니다.(주문불가)"),
    "paper_before_open": ("1", "40570000", "모의투자 장시작전 입니다."),
    "paper_closed": ("1", "40580000", "모의투자 장종료 입니다."),
}

#: Gateway errors: HTTP status, msg_cd, msg1 (§1.6; 500 per the majority of captures).
GATEWAY: Final[Mapping[str, tuple[int, str, str]]] = {
    "invalid_token": (500, "EGW00121", "유효하지 않은 token 입니다."),
    "expired_token": (500, "EGW00123", "기간이 만료된 token 입니다."),
    "rate": (500, "EGW00201", "초당 거래건수를 초과하였습니다."),
    "no_appkey": (500, "EGW00102", "AppKey는 필수입니다."),
    "bad_appkey": (500, "EGW00103", "유효하지 않은 AppKey입니다."),
    "no_secret": (500, "EGW00104", "AppSecret은 필수입니다."),
    "bad_secret": (500, "EGW00105", "유효하지 않은 AppSecret입니다."),
    "no_tr": (500, "EGW00002", "서버 에러가 발생했습니다."),
    "credentials_type": (500, "EGW00205", "credentials_type이 유효하지 않습니다.(Bearer)"),
    # [OFFICIAL code list] EGW2004 모의투자 TR 이 아닙니다 (a real TR sent to the paper host).
    "not_paper_tr": (500, "EGW2004", "모의투자 TR 이 아닙니다."),
    # [UNVERIFIED] a paper (V…) TR sent to the real host; no capture; mirrors EGW2004.
    "not_real_tr": (500, "EGW2005", "실전투자 TR 이 아닙니다."),
    # [UNVERIFIED] the gateway's answer to an unknown tr_id.
    "bad_tr": (500, "EGW00206", "API 사용 권한이 없습니다."),
}


#: Gateway errors that refuse a request for rate, auth or session (``request_refused``).
_REFUSAL_REASONS: Final[Mapping[str, RefusalReason]] = {
    "invalid_token": "session",
    "expired_token": "session",
    "rate": "rate",
    "no_appkey": "auth",
    "bad_appkey": "auth",
    "no_secret": "auth",
    "bad_secret": "auth",
    "credentials_type": "auth",
}


class KisGatewayError(Exception):
    """A gateway (EGW…) error: non-200 status, ``rt_cd`` "1"."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
        self.status, self.msg_cd, self.msg1 = GATEWAY[key]


class KisReject(Exception):
    """A business rejection: HTTP 200, ``rt_cd`` != "0"."""

    def __init__(self, key: str, msg1: str | None = None, *, paper: bool = False) -> None:
        super().__init__(key)
        self.rt_cd, self.msg_cd, default = REJECTS[key]
        text = msg1 if msg1 is not None else default
        self.msg1 = f"모의투자 {text}" if paper and not text.startswith("모의투자") else text


@dataclass(frozen=True)
class Credential:
    """An app key's secret and the account it trades."""

    app_key: str
    app_secret: str
    account_number: str
    product_code: str

    @property
    def account_id(self) -> str:
        """The engine's account id, e.g. ``50012345-01``."""
        return f"{self.account_number}-{self.product_code}"


@dataclass(frozen=True)
class CancelRecord:
    """A cancel order: KIS gives it its own order number and lists it in the daily history."""

    odno: str
    orgn_odno: str
    account_id: str
    symbol: str
    side: Side
    quantity: Decimal
    time: datetime


@dataclass
class KisContext:
    """Everything the KIS routes share; one per app, kept in ``app.extensions``.

    Attributes:
        state: the shared simulator state.
        paper: the app imitates the paper host (openapivts).
        listings: the KRX universe by symbol.
        limiter: per-app-key request limiter (None: unlimited).
        credentials: app key → credential.
        reuse_expires_in: "remaining" or "full" (see the package docstring).
        token_window_counts: "requests" or "issuances" (see the package docstring).
        token_window_seconds: the one-a-minute issuance window (tests shorten it).
        balance_page_size, ccld_page_size: rows per page.
        branch: the 5-digit order branch (KRX_FWDG_ORD_ORGNO).
        rules: the trading-day switches (sessions, order numbers, lapsed orders in history).
        closed_code: the real host's answer outside a session, "KIOK0320" or "APBK0918".
    """

    state: SimState
    paper: bool
    listings: Mapping[str, Listing]
    limiter: RateLimiter | None
    rules: DayRules
    closed_code: str = "KIOK0320"
    reuse_expires_in: str = "remaining"
    token_window_counts: str = "requests"  # noqa: S105 - a mode, not a secret
    token_window_seconds: float = 60.0
    balance_page_size: int = 50
    ccld_page_size: int = 100
    branch: str = "06010"
    credentials: dict[str, Credential] = field(default_factory=dict)
    cancels: list[CancelRecord] = field(default_factory=list)
    last_token_answer: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _uid: itertools.count = field(default_factory=lambda: itertools.count(1))

    def next_odno(self) -> str:
        """Draw the next order number (orders, amendments and cancels share one daily sequence)."""
        return f"{self.rules.numbers.next(self.state.clock.now()):010d}"

    def closed(self, reason: ClosedReason) -> KisReject:
        """The answer to an order (or, on paper, a cancel) outside its session (§1.4)."""
        if self.paper:
            key = "paper_before_open" if reason is ClosedReason.BEFORE_OPEN else "paper_closed"
            return KisReject(key)
        return KisReject("closed_apbk0918" if self.closed_code == "APBK0918" else "closed")

    def gt_uid(self) -> str:
        """A 32-hex global transaction id, deterministic per seed and request."""
        n = next(self._uid)
        return hashlib.blake2b(f"{self.state.seed}|gt|{n}".encode(), digest_size=16).hexdigest()

    def success_code(self, real: tuple[str, str], paper: tuple[str, str]) -> tuple[str, str]:
        """Pick the real or paper (msg_cd, msg1) pair."""
        return paper if self.paper else real


def get_context(app: Flask) -> KisContext:
    """Return the KIS context of an app built by :func:`simulators.kis.create_app`."""
    return app.extensions[CONTEXT_KEY]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def krw(value: Decimal | int) -> str:
    """KRW as an integer string (KIS drops fractions of a won)."""
    return str(int(value))


def pad100(value: str) -> str:
    """A 100-character space-padded cursor (ctx_area_fk100 / nk100)."""
    return value.ljust(100)


def kst_now(ctx: KisContext) -> datetime:
    """The simulator's time in KST."""
    return ctx.state.clock.now().astimezone(KST)


def ok(payload: Mapping[str, Any], msg_cd: str, msg1: str) -> dict[str, Any]:
    """The success envelope: ``rt_cd`` "0", ``msg_cd``, ``msg1`` plus the payload keys."""
    return {"rt_cd": "0", "msg_cd": msg_cd, "msg1": msg1, **payload}


def arg(name: str, default: str = "") -> str:
    """A query parameter looked up case-insensitively (the real server accepts either case)."""
    if name in request.args:
        return request.args[name]
    wanted = name.lower()
    for key, value in request.args.items():
        if key.lower() == wanted:
            return value
    return default


def body() -> dict[str, Any]:
    """The JSON body (KIS clients send ``data=json.dumps(...)`` or ``json=``), {} if none."""
    data = request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else {}


def field_value(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    """An UPPERCASE POST body field as a string.

    Raises:
        KisReject: OPSQ2001-style when a required field is missing (KIS wants uppercase keys).
    """
    value = data.get(name)
    if value is None:
        if required:
            raise _input_field_error(name)
        return ""
    return str(value)


def _input_field_error(name: str) -> KisReject:
    reject = KisReject("account")
    reject.rt_cd, reject.msg_cd, reject.msg1 = "2", "OPSQ2001", f"ERROR : INPUT_FIELD_NAME {name}"
    return reject


def input_error(name: str) -> KisReject:
    """The OPSQ2001 rejection for a missing or malformed input field."""
    return _input_field_error(name)


# --------------------------------------------------------------------------------------------
# Auth, rate limit and tr_id checks
# --------------------------------------------------------------------------------------------


def authenticate(ctx: KisContext) -> Credential:
    """Check the bearer token, app key and secret, and the rate limit of a ``/uapi`` call.

    Raises:
        KisGatewayError: EGW00121/00123 (token), EGW00102–00105 (keys), EGW00201 (rate).
    """
    app_key = request.headers.get("appkey", "")
    if not app_key:
        raise KisGatewayError("no_appkey")
    credential = ctx.credentials.get(app_key)
    if credential is None:
        raise KisGatewayError("bad_appkey")
    secret = request.headers.get("appsecret", "")
    if not secret:
        raise KisGatewayError("no_secret")
    if secret != credential.app_secret:
        raise KisGatewayError("bad_secret")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        raise KisGatewayError("invalid_token")
    status = ctx.state.tokens.status(token.strip())
    if status is TokenStatus.EXPIRED:
        raise KisGatewayError("expired_token")
    issued = ctx.state.tokens.lookup(token.strip())
    if status is not TokenStatus.VALID or issued is None or issued.app_key != app_key:
        raise KisGatewayError("invalid_token")
    if ctx.limiter is not None and not ctx.limiter.try_acquire(app_key):
        raise KisGatewayError("rate")
    return credential


def require_tr(ctx: KisContext, real_ids: Mapping[str, str]) -> str:
    """Check the ``tr_id`` header against this host's mode; return what it means.

    Args:
        ctx: the KIS context.
        real_ids: real-host tr_id → meaning (e.g. ``{"TTTC0012U": "buy"}``). On the paper host
            the same ids with a leading ``V`` instead of ``T``/``C`` are accepted; ids that start
            with ``F`` (quotations) are the same on both hosts.

    Raises:
        KisGatewayError: missing, unknown, or wrong-mode tr_id.
    """
    tr_id = request.headers.get("tr_id", "").strip().upper()
    if not tr_id:
        raise KisGatewayError("no_tr")
    paper_ids = {
        ("V" + key[1:] if key[0] in "TC" else key): meaning for key, meaning in real_ids.items()
    }
    mine, other = (paper_ids, real_ids) if ctx.paper else (real_ids, paper_ids)
    if tr_id in mine:
        return mine[tr_id]
    if tr_id in other:
        raise KisGatewayError("not_paper_tr" if ctx.paper else "not_real_tr")
    raise KisGatewayError("bad_tr")


# --------------------------------------------------------------------------------------------
# Error handlers and header rules
# --------------------------------------------------------------------------------------------


def register_protocol(app: Flask, ctx: KisContext) -> None:
    """Install the error handlers and the response-header rules on ``app``."""

    @app.errorhandler(KisGatewayError)
    def gateway_error(exc: KisGatewayError) -> tuple[Response, int]:
        reason = _REFUSAL_REASONS.get(exc.key)
        if reason is not None:
            mark_refused(reason, exc.msg_cd, app_key=request.headers.get("appkey") or None)
        return jsonify({"rt_cd": "1", "msg_cd": exc.msg_cd, "msg1": exc.msg1}), exc.status

    @app.errorhandler(KisReject)
    def business_reject(exc: KisReject) -> tuple[Response, int]:
        return jsonify({"rt_cd": exc.rt_cd, "msg_cd": exc.msg_cd, "msg1": exc.msg1}), 200

    @app.after_request
    def kis_headers(response: Response) -> Response:
        # The official kis_auth.py turns every all-lowercase response header into a namedtuple
        # field: custom headers must be lowercase identifiers, standard ones capitalised.
        if request.path.startswith("/uapi/"):
            tr_id = request.headers.get("tr_id", "")
            response.headers["tr_id"] = tr_id
            response.headers["gt_uid"] = ctx.gt_uid()
        return response
