"""Binance SIGNED-endpoint authentication: ``X-MBX-APIKEY`` + HMAC-SHA256 ``signature``.

The signed payload is the query string followed directly by the request body, each as sent and
without its ``signature=`` pair (bn-docs rest-api.md "SIGNED endpoint security"). ccxt signs
GET/DELETE queries and POST form bodies; python-binance sorts parameters and sends POST *and*
DELETE as form bodies; both are covered. Timing: ``timestamp`` (ms, or µs when 16 digits) must
satisfy ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow`` (default
5000, at most 60000), against the simulator's clock.

Check order: API key (-2014/-2015), mandatory ``timestamp``/``signature`` (-1102), signature
(-1022), ``recvWindow`` (-1131), timing (-1021). Binance's own order between the last three is
undocumented; a bad signature is reported before a stale timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from flask import Request

__all__ = [
    "BinanceError",
    "BinanceParams",
    "Credential",
    "KeyStore",
    "SignatureVerifier",
    "read_params",
    "sign",
    "strip_signature",
]


class BinanceError(Exception):
    """An error answered as ``{"code", "msg"}`` with an HTTP status."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status
        self.headers = dict(headers or {})


def mandatory(name: str) -> BinanceError:
    """-1102 for a parameter that was not sent, was empty, or was malformed."""
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


@dataclass(frozen=True)
class Credential:
    """An API key, its secret and the engine account it trades for."""

    api_key: str
    secret_key: str
    account_id: str


class KeyStore:
    """API keys; thread-safe. Lives in ``SimState.options``."""

    def __init__(self) -> None:
        self._keys: dict[str, Credential] = {}
        self._lock = threading.Lock()

    def add(self, credential: Credential) -> None:
        """Register a key."""
        with self._lock:
            self._keys[credential.api_key] = credential

    def get(self, api_key: str) -> Credential | None:
        """Return the credential of ``api_key``, or None."""
        with self._lock:
            return self._keys.get(api_key)


@dataclass
class BinanceParams:
    """Parameters from the query string and a form body; the query wins on duplicates."""

    values: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""
    raw_body: str = ""

    def get(self, name: str) -> str | None:
        """Return a parameter, or None when absent or empty."""
        value = self.values.get(name)
        return value if value not in (None, "") else None


def read_params(request: Request) -> BinanceParams:
    """Collect the query and an ``application/x-www-form-urlencoded`` body."""
    raw_query = request.query_string.decode("latin-1")
    raw_body = request.get_data(cache=True).decode("utf-8", errors="replace")
    params = BinanceParams(raw_query=raw_query, raw_body=raw_body)
    if raw_body and not raw_body.lstrip().startswith("{"):
        params.values.update(parse_qsl(raw_body, keep_blank_values=True))
    params.values.update(parse_qsl(raw_query, keep_blank_values=True))
    return params


def strip_signature(raw: str) -> str:
    """Remove the ``signature=…`` pair from a raw parameter string."""
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))


def sign(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` under ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class SignatureVerifier:
    """Checks a SIGNED request against a :class:`KeyStore` and the simulator clock.

    Args:
        keys: the registered API keys.
        now: returns the simulated time.
        max_recv_window: the largest ``recvWindow`` accepted (60000 ms).
    """

    def __init__(
        self, keys: KeyStore, now: Callable[[], datetime], max_recv_window: int = 60_000
    ) -> None:
        self.keys = keys
        self._now = now
        self.max_recv_window = max_recv_window

    def api_key(self, header: str | None) -> Credential:
        """Resolve ``X-MBX-APIKEY`` (also for USER_DATA endpoints that need no signature).

        Raises:
            BinanceError: -2014 if the header is missing or malformed, -2015 if unknown.
        """
        if not header or not header.isprintable() or len(header) > 256:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        credential = self.keys.get(header)
        if credential is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return credential

    def verify(self, header: str | None, params: BinanceParams) -> Credential:
        """Return the credential of a correctly signed, timely request.

        Raises:
            BinanceError: -2014/-2015, -1102, -1022, -1131 or -1021 as described above.
        """
        credential = self.api_key(header)
        timestamp_raw = params.get("timestamp")
        if timestamp_raw is None:
            raise mandatory("timestamp")
        signature = params.get("signature")
        if signature is None:
            raise mandatory("signature")
        payload = strip_signature(params.raw_query) + strip_signature(params.raw_body)
        expected = sign(credential.secret_key, payload)
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        try:
            timestamp = int(timestamp_raw)
            window = Decimal(params.get("recvWindow") or "5000")
        except (ValueError, InvalidOperation):
            raise mandatory("timestamp") from None
        if window <= 0 or window > self.max_recv_window:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        # 16-digit timestamps are microseconds.
        timestamp_ms = Decimal(timestamp) / 1000 if timestamp >= 10**15 else Decimal(timestamp)
        server_ms = Decimal(int(self._now().timestamp() * 1_000_000)) / 1000
        if timestamp_ms >= server_ms + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server_ms - timestamp_ms > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return credential
