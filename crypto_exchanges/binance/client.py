"""Signed HTTP to Binance spot: HMAC-SHA256 signatures, raw dicts or mapped errors.

``X-MBX-APIKEY`` header, ``timestamp`` and ``recvWindow``, and
``signature`` = hex HMAC-SHA256 of *query string + request body* under the secret key.

GET and DELETE carry everything in the query; POST carries everything in a form body. Returns raw
dicts or raises mapped errors; ``X-MBX-USED-WEIGHT-*`` and ``X-MBX-ORDER-COUNT-*`` are kept.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from crypto_exchanges._http import ExchangeClient, PreparedCall, encode_query
from crypto_exchanges.binance.errors import BINANCE_ERRORS

__all__ = ["RECV_WINDOW_MS", "BinanceClient", "sign"]

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

    def _observe(self, headers: Mapping[str, str]) -> None:
        # X-MBX-USED-WEIGHT-1M: 21, X-MBX-ORDER-COUNT-10S: 1, X-MBX-ORDER-COUNT-1D: 1
        seen = {
            name: value
            for name, value in headers.items()
            if name.upper().startswith(("X-MBX-USED-WEIGHT", "X-MBX-ORDER-COUNT"))
        }
        if seen:
            self.rate_limit = seen
