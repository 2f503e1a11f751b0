"""Upbit-style JWT request authentication (Upbit, and Bithumb API 2.0 which copies it).

A private request carries ``Authorization: Bearer <JWT>`` signed with the account's secret key
(HS256 or HS512). Its payload holds ``access_key``, a fresh ``nonce`` and, when the request has
parameters, ``query_hash`` (hex SHA-512 of the parameter string) with ``query_hash_alg: SHA512``.
Bithumb adds a ``timestamp`` (ms) claim and refuses stale tokens.

The servers' canonical form of the hashed string is not documented, and the real clients differ
(brokers/crypto.md §1.2, §2.2): ccxt hashes the *unquoted* query, pyupbit ``urlencode`` of a form
body sent on a GET, Bithumb's ccxt ``encodeURIComponent`` pairs, the official samples
``unquote(urlencode(...))``. :func:`hash_candidates` accepts any of these forms, and nothing else,
so a token signed over different parameters than were sent is still refused.

The JWT is verified by hand (HMAC over ``header.payload``) so the simulator needs no JWT library
and every failure maps to the exchange's own error name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode

from flask import Request

__all__ = [
    "ApiError",
    "Credential",
    "CredentialStore",
    "JwtErrors",
    "JwtVerifier",
    "RequestParams",
    "hash_candidates",
    "read_params",
]

_ALGORITHMS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


class ApiError(Exception):
    """An error answered as ``{"error": {"name", "message"}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        name: str | int,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {name}: {message}")
        self.status, self.name, self.message = status, name, message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Return the JSON body."""
        return {"error": {"name": self.name, "message": self.message}}


@dataclass(frozen=True)
class JwtErrors:
    """The venue's error (status, name, message) for each way authentication can fail."""

    missing: tuple[int, str, str]
    malformed: tuple[int, str, str]
    unknown_key: tuple[int, str, str]
    expired_key: tuple[int, str, str]
    nonce_used: tuple[int, str, str]
    query_hash: tuple[int, str, str]
    expired_token: tuple[int, str, str] | None = None


@dataclass
class Credential:
    """An API key pair and the engine account it trades for."""

    access_key: str
    secret_key: str
    account_id: str
    expires_at: datetime


class CredentialStore:
    """API keys and the nonces each key has used; thread-safe. Lives in ``SimState.options``."""

    def __init__(self) -> None:
        self._credentials: dict[str, Credential] = {}
        self._nonces: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def add(self, credential: Credential) -> None:
        """Register a key pair (replacing none: the engine refuses duplicate accounts first)."""
        with self._lock:
            self._credentials[credential.access_key] = credential
            self._nonces.setdefault(credential.access_key, set())

    def get(self, access_key: str) -> Credential | None:
        """Return the credential for ``access_key``, or None."""
        with self._lock:
            return self._credentials.get(access_key)

    def use_nonce(self, access_key: str, nonce: str) -> bool:
        """Record ``nonce`` for the key; return False if it was used before."""
        with self._lock:
            used = self._nonces.setdefault(access_key, set())
            if nonce in used:
                return False
            used.add(nonce)
            return True


@dataclass
class RequestParams:
    """A request's parameters from the query, a form body and a JSON body (in that order)."""

    items: list[tuple[str, str]] = field(default_factory=list)
    raw_query: str = ""
    raw_form: str = ""
    json_body: Mapping[str, Any] | None = None

    def get(self, name: str) -> str | None:
        """Return the first value of ``name`` (or ``name[]``), or None."""
        for key, value in self.items:
            if key in (name, f"{name}[]"):
                return value
        return None

    def getlist(self, name: str) -> list[str]:
        """Return every value of ``name`` and ``name[]``, comma lists not split."""
        return [v for k, v in self.items if k in (name, f"{name}[]")]

    def __bool__(self) -> bool:
        return bool(self.items)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _json_pairs(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if isinstance(value, list | tuple):
            pairs.extend((str(key), _scalar(v)) for v in value)
        else:
            pairs.append((str(key), _scalar(value)))
    return pairs


def read_params(request: Request) -> RequestParams:
    """Collect parameters as clients send them: query string, form body (even on GET), JSON body.

    pyupbit sends a form body on GET and a JSON body on DELETE; ccxt uses the query for GET and
    DELETE and JSON for POST. All are accepted for every method.
    """
    raw_query = request.query_string.decode("latin-1")
    params = RequestParams(raw_query=raw_query)
    params.items.extend(parse_qsl(raw_query, keep_blank_values=True))
    raw_body = request.get_data(cache=True)
    if raw_body:
        text = raw_body.decode("utf-8", errors="replace")
        stripped = text.lstrip()
        if stripped.startswith("{"):
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.json_body = body
                params.items.extend(_json_pairs(body))
        else:
            params.raw_form = text
            params.items.extend(parse_qsl(text, keep_blank_values=True))
    return params


def _encode_uri_component(value: str) -> str:
    return quote(value, safe="-_.!~*'()")


def hash_candidates(params: RequestParams) -> set[str]:
    """Return every parameter string a known client may have hashed for this request."""
    candidates: set[str] = set()
    for raw in (params.raw_query, params.raw_form):
        if raw:
            candidates.update({raw, unquote(raw), unquote_plus(raw), raw.replace("%5B%5D", "[]")})
    if params.json_body is not None:
        pairs = _json_pairs(params.json_body)
        bracketed = [
            (f"{k}[]" if isinstance(params.json_body.get(k), list | tuple) else k, v)
            for k, v in pairs
        ]
        for variant in (pairs, bracketed):
            encoded = urlencode(variant)
            candidates.update(
                {
                    encoded,
                    encoded.replace("%5B%5D=", "[]="),
                    unquote(encoded),
                    "&".join(f"{k}={v}" for k, v in variant),
                    "&".join(
                        f"{_encode_uri_component(k)}={_encode_uri_component(v)}".replace(
                            "%5B%5D=", "[]="
                        )
                        for k, v in variant
                    ),
                }
            )
    if params.raw_query and params.raw_form:  # parameters split over query and body
        candidates.add(f"{params.raw_query}&{params.raw_form}")
    return candidates


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class JwtVerifier:
    """Verifies one request's bearer JWT against a :class:`CredentialStore`.

    Args:
        store: the venue's keys and used nonces.
        errors: the venue's error for each failure.
        now: returns the simulated time (the SimClock), for key expiry and token age.
        require_timestamp: Bithumb: the payload must carry ``timestamp`` (ms).
        max_token_age: Bithumb: refuse tokens whose timestamp is further than this from now.
    """

    def __init__(
        self,
        store: CredentialStore,
        errors: JwtErrors,
        now: Any,
        *,
        require_timestamp: bool = False,
        max_token_age: timedelta | None = None,
    ) -> None:
        self.store = store
        self.errors = errors
        self._now = now
        self.require_timestamp = require_timestamp
        self.max_token_age = max_token_age

    def _fail(self, which: tuple[int, str, str] | None) -> ApiError:
        status, name, message = which or self.errors.malformed
        return ApiError(status, name, message)

    def verify(self, authorization: str | None, params: RequestParams) -> Credential:
        """Return the credential a valid request was signed with.

        Raises:
            ApiError: with the venue's error for a missing, malformed, badly signed, expired or
                replayed token, an unknown or expired key, or a query hash that does not match.
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise self._fail(self.errors.missing)
        token = authorization[len("Bearer ") :].strip()
        parts = token.split(".")
        if len(parts) != 3:
            raise self._fail(self.errors.malformed)
        try:
            header = json.loads(_b64decode(parts[0]))
            payload = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error):
            raise self._fail(self.errors.malformed) from None
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise self._fail(self.errors.malformed)
        digest = _ALGORITHMS.get(str(header.get("alg")))
        if digest is None:
            raise self._fail(self.errors.malformed)
        access_key = payload.get("access_key")
        credential = self.store.get(access_key) if isinstance(access_key, str) else None
        if credential is None:
            raise self._fail(self.errors.unknown_key)
        expected = hmac.new(
            credential.secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), digest
        ).digest()
        if not hmac.compare_digest(expected, signature):
            raise self._fail(self.errors.malformed)
        now: datetime = self._now()
        if credential.expires_at <= now:
            raise self._fail(self.errors.expired_key)
        self._check_timestamp(payload, now)
        nonce = payload.get("nonce")
        if not isinstance(nonce, str | int) or isinstance(nonce, bool) or not str(nonce):
            raise self._fail(self.errors.malformed)
        if not self.store.use_nonce(credential.access_key, str(nonce)):
            raise self._fail(self.errors.nonce_used)
        self._check_query_hash(payload, params)
        return credential

    def _check_timestamp(self, payload: Mapping[str, Any], now: datetime) -> None:
        if not self.require_timestamp:
            return
        stamp = payload.get("timestamp")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool):
            try:
                stamp = int(str(stamp))
            except ValueError:
                raise self._fail(self.errors.malformed) from None
        if self.max_token_age is not None:
            age_ms = abs(now.timestamp() * 1000 - float(stamp))
            if age_ms > self.max_token_age.total_seconds() * 1000:
                raise self._fail(self.errors.expired_token)

    def _check_query_hash(self, payload: Mapping[str, Any], params: RequestParams) -> None:
        query_hash = payload.get("query_hash")
        if not params:
            return  # nothing to bind; a stray query_hash of "" is harmless
        if not isinstance(query_hash, str):
            raise self._fail(self.errors.query_hash)
        alg = str(payload.get("query_hash_alg", "SHA512")).upper()
        if alg != "SHA512":
            raise self._fail(self.errors.query_hash)
        wanted = query_hash.lower()
        if not any(
            hmac.compare_digest(hashlib.sha512(c.encode()).hexdigest(), wanted)
            for c in hash_candidates(params)
        ):
            raise self._fail(self.errors.query_hash)
