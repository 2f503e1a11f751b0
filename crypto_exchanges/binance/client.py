"""Signed HTTP to Binance spot: HMAC-SHA256 signatures, raw dicts or mapped errors.

``X-MBX-APIKEY`` header, ``timestamp`` and ``recvWindow``, and
``signature`` = hex HMAC-SHA256 of *query string + request body* under the secret key.

GET and DELETE carry everything in the query; POST carries everything in a form body. Returns raw
dicts or raises mapped errors; ``X-MBX-USED-WEIGHT-*`` and ``X-MBX-ORDER-COUNT-*`` are kept.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from brokers.limits import Budget
from crypto_exchanges._http import ExchangeClient, PreparedCall, encode_query
from crypto_exchanges.binance.errors import BINANCE_ERRORS

__all__ = ["RECV_WINDOW_MS", "BinanceClient", "request_weight", "sign"]

#: Request weight per endpoint (Binance rest-api.md; brokers/crypto.md §3.3, trading-days.md §6);
#: a callable where it depends on the parameters. Anything not listed weighs 1.
_WEIGHTS: dict[tuple[str, str], Any] = {
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): lambda p: 6 if p.get("symbol") else 80,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): lambda p: 5 if p.get("orderId") else 20,
    ("GET", "/api/v3/rateLimit/order"): 40,
    ("GET", "/api/v3/ticker/24hr"): lambda p: 2 if p.get("symbol") else 80,
    ("GET", "/api/v3/ticker/price"): lambda p: 2 if p.get("symbol") else 4,
    ("PUT", "/api/v3/order/amend/keepPriority"): 4,
}
#: Requests that count as new orders (per account: per 10 s and per day).
_ORDER_PATHS = frozenset({("POST", "/api/v3/order"), ("POST", "/api/v3/order/cancelReplace")})


def request_weight(method: str, path: str, params: Mapping[str, str] | None) -> int:
    """Return the request weight Binance charges for one request."""
    weight = _WEIGHTS.get((method, path), 1)
    return int(weight(params or {}) if callable(weight) else weight)


#: Binance's default window; a request older than this when it arrives is refused (-1021).
RECV_WINDOW_MS = 5000


def sign(secret: str, payload: str) -> str:
    """Return the hex HMAC-SHA256 of ``payload`` (query string + body) under ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class BinanceClient(ExchangeClient):
    """Binance's signed HTTP."""

    broker = "BINANCE"
    errors = BINANCE_ERRORS
    # Binance sends Retry-After on every 429/418; this is only a fallback.
    default_retry_after = 1.0

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        signed: bool,
    ) -> PreparedCall:
        fields = dict(params or {})
        fields.update(body or {})
        headers = {"Accept": "application/json"}
        if signed:
            fields["recvWindow"] = str(RECV_WINDOW_MS)
            fields["timestamp"] = str(self._now_ms())
            headers["X-MBX-APIKEY"] = self._credentials.api_key
        encoded = encode_query(fields)
        if signed:
            encoded = f"{encoded}&signature={sign(self._credentials.api_secret, encoded)}"
        url = self.base_url + path
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return PreparedCall(method=method, url=url, headers=headers, body=encoded)
        if encoded:
            url = f"{url}?{encoded}"
        return PreparedCall(method=method, url=url, headers=headers)

    def _error_fields(self, payload: Any) -> tuple[str | None, str | None]:
        # {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        if isinstance(payload, Mapping):
            code = payload.get("code")
            message = payload.get("msg")
            if code is None and message is None:
                return None, str(payload)[:200]
            return (None if code is None else str(code)), (
                None if message is None else str(message)
            )
        text = str(payload).strip()
        return None, text[:200] or None

    def _budgets(
        self, method: str, path: str, params: Mapping[str, str] | None, signed: bool
    ) -> list[Budget]:
        # Request weight per address (all accounts of the gateway share it); new orders per
        # account, per 10 s and per day. The weight budget comes first: the header follows it.
        weight = Budget(
            f"binance:weight:{self.address_id}",
            self._limit("BINANCE_WEIGHT_PER_MINUTE", 1200),
            60.0,
            request_weight(method, path, params),
        )
        budgets = [weight]
        if (method, path) in _ORDER_PATHS:
            budgets.append(
                Budget(
                    f"binance:orders10s:{self.account_id}",
                    self._limit("BINANCE_ORDERS_PER_10S", 50),
                    10.0,
                )
            )
            budgets.append(
                Budget(
                    f"binance:orders1d:{self.account_id}",
                    self._limit("BINANCE_ORDERS_PER_DAY", 160_000),
                    86_400.0,
                )
            )
        return budgets

    def _observe_budgets(self, headers: Mapping[str, str], budgets: Sequence[Budget]) -> None:
        # X-MBX-USED-WEIGHT-1M: the weight this address spent in the current minute, whoever
        # spent it.
        value = headers.get("X-MBX-USED-WEIGHT-1M")
        if value and value.strip().isdigit() and budgets:
            self.limiter.observe(budgets[0], used=int(value))

    def _observe(self, headers: Mapping[str, str]) -> None:
        # X-MBX-USED-WEIGHT-1M: 21, X-MBX-ORDER-COUNT-10S: 1, X-MBX-ORDER-COUNT-1D: 1
        seen = {
            name: value
            for name, value in headers.items()
            if name.upper().startswith(("X-MBX-USED-WEIGHT", "X-MBX-ORDER-COUNT"))
        }
        if seen:
            self.rate_limit = seen
