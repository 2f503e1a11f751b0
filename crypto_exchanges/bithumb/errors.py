"""Bithumb error names as data: exact name → gateway error, then substring rules, then a fallback.

API 2.0 names from apidocs.bithumb.com "API 주요 에러 코드" (crypto.md §2.4), plus the legacy 1.x
status codes (``{"status": "5600", "message": …}``) in case an answer comes in the old envelope.
HTTP 429/418 become ``BrokerRateLimited`` before this table is read (``_http``), and a 5xx on an
order write becomes ``OrderStateUnknown`` whatever its name.
"""

from __future__ import annotations

from brokers.errors import (
    BrokerAuthFailed,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
)
from crypto_exchanges._http import ErrorTable, SubstringRule
from crypto_exchanges._upbit_like import UPBIT_LIKE_SUBSTRINGS

__all__ = ["BITHUMB_ERRORS"]

BITHUMB_ERRORS = ErrorTable(
    broker="BITHUMB",
    exact={
        # 400: the order itself
        "invalid_parameter": InvalidOrder,
        "invalid_price": InvalidOrder,
        "invalid_price_bid": InvalidOrder,
        "invalid_price_ask": InvalidOrder,
        "under_price_limit_bid": InvalidOrder,
        "under_price_limit_ask": InvalidOrder,
        "under_min_total_bid": InvalidOrder,
        "under_min_total_ask": InvalidOrder,
        "invalid_volume": InvalidOrder,
        "currency does not have a valid value": InvalidOrder,
        "cross_trading": InvalidOrder,
        "insufficient_funds_bid": InsufficientFunds,
        "insufficient_funds_ask": InsufficientFunds,
        "withdraw_insufficient_balance": InsufficientFunds,
        "bank_account_required": BrokerRejected,
        "two_factor_auth_required": BrokerRejected,
        "duplicate_client_order_id": DuplicateOrder,
        "400": InvalidOrder,  # {"name": 400, "message": "Missing request parameter error…"}
        # 401/403: our keys, token or IP
        "jwt_verification": BrokerAuthFailed,
        "expired_jwt": BrokerAuthFailed,
        "invalid_query_payload": BrokerAuthFailed,
        "invalid_access_key": BrokerAuthFailed,
        "NotAllowIP": BrokerAuthFailed,
        "out_of_scope": BrokerAuthFailed,
        "blocked_member_id": BrokerAuthFailed,
        # 404 / 422
        "order_not_found": OrderNotFound,
        "order_not_ready": MarketClosed,
        # throttling
        "too_many_requests": BrokerRateLimited,
        # legacy 1.x status codes
        "5100": BrokerAuthFailed,  # Bad Request (SSL / Auth Data / Request Time)
        "5200": BrokerAuthFailed,  # Not Member
        "5300": BrokerAuthFailed,  # Invalid Apikey
        "5302": BrokerAuthFailed,  # Method Not Allowed (Access IP)
        "5400": BrokerUnavailable,  # Database Fail
        "5500": InvalidOrder,  # Invalid Parameter
        "5600": BrokerRejected,  # many business messages
        "5900": BrokerRejected,  # Unknown Error
    },
    substrings=(
        SubstringRule("insufficient", InsufficientFunds),
        SubstringRule("잔고", InsufficientFunds),
        SubstringRule("duplicate", DuplicateOrder),
        SubstringRule("중복", DuplicateOrder),
        SubstringRule("not_found", OrderNotFound),
        *UPBIT_LIKE_SUBSTRINGS,
    ),
    fallback=BrokerRejected,
)
