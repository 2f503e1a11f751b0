"""Upbit error names as data: exact name → gateway error, then substring rules, then a fallback.

Names from docs.upbit.com "API 주요 에러 코드 목록", ccxt's and pyupbit's tables (crypto.md §1.5).
HTTP 429/418 become ``BrokerRateLimited`` before this table is read (``_http``), and a 5xx on an
order write becomes ``OrderStateUnknown`` whatever its name.
"""

from __future__ import annotations

from brokers.errors import (
    BrokerAuthFailed,
    BrokerMaintenance,
    BrokerRateLimited,
    BrokerRejected,
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
)
from crypto_exchanges._http import ErrorTable, SubstringRule
from crypto_exchanges._upbit_like import UPBIT_LIKE_SUBSTRINGS

__all__ = ["UPBIT_ERRORS"]

UPBIT_ERRORS = ErrorTable(
    broker="UPBIT",
    exact={
        # 400: the order itself
        "insufficient_funds_bid": InsufficientFunds,
        "insufficient_funds_ask": InsufficientFunds,
        "under_min_total_bid": InvalidOrder,
        "under_min_total_ask": InvalidOrder,
        "invalid_price_bid": InvalidOrder,
        "invalid_price_ask": InvalidOrder,
        "invalid_volume_bid": InvalidOrder,
        "invalid_volume_ask": InvalidOrder,
        "volume_too_large": InvalidOrder,
        "invalid_funds": InvalidOrder,
        "validation_error": InvalidOrder,
        "invalid_parameter": InvalidOrder,
        "market_does_not_exist": InvalidOrder,
        "create_bid_error": BrokerRejected,
        "create_ask_error": BrokerRejected,
        "400": InvalidOrder,  # {"name": 400, "message": "Missing request parameter error…"}
        "duplicate_identifier": DuplicateOrder,
        # 401: our keys, token or IP
        "jwt_verification": BrokerAuthFailed,
        "expired_access_key": BrokerAuthFailed,
        "invalid_access_key": BrokerAuthFailed,
        "invalid_query_payload": BrokerAuthFailed,
        "nonce_used": BrokerAuthFailed,
        "no_authorization_i_p": BrokerAuthFailed,
        "no_authorization_ip": BrokerAuthFailed,
        "out_of_scope": BrokerAuthFailed,
        "thirdparty_agreement_required": BrokerAuthFailed,
        "This key has expired.": BrokerAuthFailed,
        # 404
        "order_not_found": OrderNotFound,
        # throttling and maintenance
        "too_many_requests": BrokerRateLimited,
        "Too many API requests.": BrokerRateLimited,
        "server_maintenance": BrokerMaintenance,
    },
    substrings=(
        SubstringRule("insufficient_funds", InsufficientFunds),
        SubstringRule("duplicate", DuplicateOrder),
        SubstringRule("중복", DuplicateOrder),
        SubstringRule("not_found", OrderNotFound),
        SubstringRule("under_min_total", InvalidOrder),
        SubstringRule("invalid_price", InvalidOrder),
        *UPBIT_LIKE_SUBSTRINGS,
    ),
    fallback=BrokerRejected,
)
