"""Binance spot error codes as data: exact code → gateway error, then message rules, fallback.

Codes from binance-spot-api-docs ``errors.md`` (crypto.md §3.5). ``-2010 NEW_ORDER_REJECTED`` and
``-2011 CANCEL_REJECTED`` say what happened only in their text, so they are not in the exact table
but in code-restricted substring rules. HTTP 429/418 become ``BrokerRateLimited`` before this table
is read (``_http``); a 5xx on an order write becomes ``OrderStateUnknown`` unless its code says
the request was refused outright (``-1008``, ``-1001``).
"""

from __future__ import annotations

from brokers.errors import (
    BrokerAuthFailed,
    BrokerMaintenance,
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
from crypto_exchanges._http import ErrorTable, SubstringRule

__all__ = ["BINANCE_ERRORS"]

BINANCE_ERRORS = ErrorTable(
    broker="BINANCE",
    exact={
        # Outcome unknown: the request may have been executed (a read turns these into
        # BrokerUnavailable).
        "-1000": OrderStateUnknown,  # UNKNOWN
        "-1006": OrderStateUnknown,  # UNEXPECTED_RESP "Execution status unknown."
        "-1007": OrderStateUnknown,  # TIMEOUT "Send status unknown; execution status unknown."
        # Refused before processing: safe to retry later.
        "-1001": BrokerUnavailable,  # DISCONNECTED
        "-1008": BrokerUnavailable,  # SERVER_BUSY
        # Our clock is more than recvWindow off, or the request was slow: a retry signs anew.
        "-1021": BrokerUnavailable,  # INVALID_TIMESTAMP
        "-1003": BrokerRateLimited,  # TOO_MANY_REQUESTS
        "-1015": BrokerRateLimited,  # TOO_MANY_ORDERS
        "-1002": BrokerAuthFailed,  # UNAUTHORIZED
        "-1022": BrokerAuthFailed,  # INVALID_SIGNATURE
        "-2014": BrokerAuthFailed,  # BAD_API_KEY_FMT
        "-2015": BrokerAuthFailed,  # REJECTED_MBX_KEY "Invalid API-key, IP, or permissions…"
        "-1013": InvalidOrder,  # INVALID_MESSAGE: "Filter failure: PRICE_FILTER/LOT_SIZE/…"
        "-1100": InvalidOrder,  # ILLEGAL_CHARS
        "-1101": InvalidOrder,  # TOO_MANY_PARAMETERS
        "-1102": InvalidOrder,  # MANDATORY_PARAM_EMPTY_OR_MALFORMED
        "-1103": InvalidOrder,  # UNKNOWN_PARAM
        "-1104": InvalidOrder,  # UNREAD_PARAMETERS
        "-1105": InvalidOrder,  # PARAM_EMPTY
        "-1106": InvalidOrder,  # PARAM_NOT_REQUIRED
        "-1111": InvalidOrder,  # BAD_PRECISION
        "-1114": InvalidOrder,  # TIF_NOT_REQUIRED
        "-1115": InvalidOrder,  # INVALID_TIF
        "-1116": InvalidOrder,  # INVALID_ORDER_TYPE
        "-1117": InvalidOrder,  # INVALID_SIDE
        "-1118": InvalidOrder,  # EMPTY_NEW_CL_ORD_ID
        "-1119": InvalidOrder,  # EMPTY_ORG_CL_ORD_ID
        "-1121": InvalidOrder,  # BAD_SYMBOL
        "-1145": InvalidOrder,  # INVALID_CANCEL_RESTRICTIONS
        "-2013": OrderNotFound,  # NO_SUCH_ORDER "Order does not exist."
        "-2026": OrderNotFound,  # ORDER_ARCHIVED
    },
    substrings=(
        SubstringRule("duplicate order", DuplicateOrder, code="-2010"),
        SubstringRule("insufficient balance", InsufficientFunds, code="-2010"),
        SubstringRule("market is closed", MarketClosed, code="-2010"),
        SubstringRule("", InvalidOrder, code="-2010"),  # any other NEW_ORDER_REJECTED text
        SubstringRule("unknown order", OrderNotFound, code="-2011"),
        SubstringRule("", BrokerRejected, code="-2011"),  # e.g. cancel restrictions not met
        SubstringRule("insufficient balance", InsufficientFunds),
        SubstringRule("maintenance", BrokerMaintenance),
        SubstringRule("too many requests", BrokerRateLimited),
        SubstringRule("too much request weight", BrokerRateLimited),
    ),
    fallback=BrokerRejected,
)
