"""Sending signed requests, translating what comes back, and the read retry policy.

The one place where a transport failure or an HTTP error becomes a ``brokers.errors`` class, so
the three exchange clients agree on the safety rules (DESIGN §6, STYLE H6/H8):

* Connect failures (refused, DNS, connect timeout) mean the request never left: ``BrokerTimeout``.
* A request that left and got no usable answer (read timeout, reset, closed connection, a 5xx, an
  unreadable 2xx) is ``OrderStateUnknown`` when it was a *write* (place or cancel): the caller
  reconciles by client order id and never re-sends. For a read it is ``BrokerTimeout`` /
  ``BrokerUnavailable``, which the read retry policy may repeat.
* HTTP 429 and 418 are ``BrokerRateLimited`` with ``retry_after`` from ``Retry-After`` (else a
  per-exchange default), whatever the body says.
* Anything else goes through the exchange's :class:`ErrorTable`: exact code or name, then
  substring rules on the message, then a fallback (``BrokerRejected``).

Exception texts of ``requests`` hold URLs with query strings (Binance puts its ``signature``
there), so they never go into our messages; the chained ``__cause__`` keeps them for debugging.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode

import requests
from urllib3.exceptions import ConnectTimeoutError

from brokers import Clock, Credentials, utc_now
from brokers.errors import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRateLimited,
    BrokerRejected,
    BrokerTimeout,
    BrokerUnavailable,
    OrderStateUnknown,
)
from brokers.limits import NO_LIMIT, Budget, RateLimiter, scope_id

__all__ = [
    "ErrorTable",
    "ExchangeClient",
    "PreparedCall",
    "RetryPolicy",
    "SubstringRule",
    "backoff_delay",
    "call_with_retry",
    "encode_query",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------
# Error tables
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubstringRule:
    """Map errors whose message contains ``needle`` (case-insensitive) to ``error``.

    ``code`` restricts the rule to one exchange code: Binance's ``-2010`` means "duplicate",
    "insufficient balance" or something else depending on its text only.
    """

    needle: str
    error: type[BrokerError]
    code: str | None = None

    def matches(self, code: str | None, message: str) -> bool:
        """Return whether the rule applies to ``code`` and ``message``."""
        if self.code is not None and self.code != code:
            return False
        return self.needle.lower() in message.lower()


@dataclass(frozen=True)
class ErrorTable:
    """An exchange's error codes as data: exact code or name → class, then substrings, fallback.

    Attributes:
        broker: the exchange name put on every error (``"UPBIT"``).
        exact: exact error code or name (as a string) → class.
        substrings: rules tried in order when no exact entry matches.
        fallback: the class of anything unknown (permanent, so nothing unknown is retried).
    """

    broker: str
    exact: Mapping[str, type[BrokerError]]
    substrings: Sequence[SubstringRule] = ()
    fallback: type[BrokerError] = BrokerRejected

    def classify(self, code: str | None, message: str | None) -> type[BrokerError]:
        """Return the class for an exchange error ``code`` with ``message``."""
        if code is not None and code in self.exact:
            return self.exact[code]
        text = message or ""
        if text in self.exact:
            return self.exact[text]
        for rule in self.substrings:
            if rule.matches(code, text):
                return rule.error
        return self.fallback

    def error(
        self,
        code: str | None,
        message: str | None,
        *,
        status: int | None = None,
        write: bool = False,
        retry_after: float | None = None,
    ) -> BrokerError:
        """Build the gateway error for an exchange error answer.

        A 5xx on a write is ``OrderStateUnknown`` unless the table says the request was refused
        outright (a ``BrokerUnavailable`` code such as Binance ``-1008`` "server busy"); a 5xx on
        a read is at least ``BrokerUnavailable``; a read never yields ``OrderStateUnknown``;
        an unknown 401 is ``BrokerAuthFailed``.
        """
        cls = self.classify(code, message)
        if status is not None and status >= 500:
            if write and not issubclass(cls, BrokerUnavailable):
                cls = OrderStateUnknown
            elif not write and not issubclass(cls, BrokerUnavailable):
                cls = BrokerUnavailable
        elif status == 401 and cls is self.fallback:
            cls = BrokerAuthFailed
        if cls is OrderStateUnknown and not write:
            cls = BrokerUnavailable
        where = f" (HTTP {status})" if status is not None else ""
        detail = f"{self.broker} {code or 'error'}{where}: {message or 'no message'}"
        return cls(
            detail,
            broker=self.broker,
            broker_code=code,
            broker_message=message,
            retry_after=retry_after if issubclass(cls, BrokerUnavailable) else None,
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# ------------------------------------------------------------------------------------------------
# Retry policy (reads only)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How reads are retried: only ``BrokerUnavailable``, at most ``attempts`` tries in all.

    A ``retry_after`` longer than ``max_retry_after`` is not waited for: the error goes to the
    caller, who can schedule a later attempt instead of holding a worker.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    max_retry_after: float = 5.0


NO_RETRY = RetryPolicy(attempts=1)


def backoff_delay(
    attempt: int, policy: RetryPolicy, *, rng: Callable[[], float] = random.random
) -> float:
    """Return the wait before retry number ``attempt + 1``: exponential with full jitter."""
    ceiling = min(policy.max_delay, policy.base_delay * (2**attempt))
    return ceiling * rng()


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn``, retrying ``BrokerUnavailable`` under ``policy``; never ``OrderStateUnknown``.

    Raises:
        BrokerError: the last error, or any error that is not retried.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except BrokerUnavailable as exc:
            attempt += 1
            if attempt >= policy.attempts:
                raise
            wait = exc.retry_after
            if wait is None:
                wait = backoff_delay(attempt - 1, policy, rng=rng)
            if wait > policy.max_retry_after:
                raise
            log.info("retrying %s read after %s (%.2fs)", exc.broker, exc.code, wait)
            sleep(wait)


# ------------------------------------------------------------------------------------------------
# The client base
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedCall:
    """A signed request, ready to send: the exact bytes the signature covers."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None


def encode_query(params: Mapping[str, str]) -> str:
    """Return ``params`` as a query string, in the given order, RFC 3986 percent-encoded.

    The same string is sent and signed (Binance's HMAC, Upbit's and Bithumb's ``query_hash``),
    so the signature covers exactly what the exchange reads. Values the gateway sends (market
    ids, decimals, uuids, client ids of ``[A-Za-z0-9_-]``) need no escaping, so this also equals
    the unquoted form Upbit's own samples hash.
    """
    return urlencode(list(params.items()), quote_via=quote, safe="")


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Tell whether a connection error happened before any byte of the request was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        # urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors.
        if isinstance(item, ConnectTimeoutError):
            return True
        if isinstance(item, BaseException):
            stack.extend(item.args)
            stack.append(getattr(item, "reason", None))
            stack.append(item.__cause__)
    return False


class ExchangeClient(ABC):
    """Signed HTTP to one exchange: prepare (sign), send, translate, and retry reads.

    Subclasses say how to sign (:meth:`_prepare`), where an error's code and message are
    (:meth:`_error_fields`), which rate-limit headers to keep (:meth:`_observe`), which broker
    budgets each request spends (:meth:`_budgets`) and what the broker reports of them
    (:meth:`_observe_budgets`). Before each request the client asks :attr:`limiter` for a slot
    on its budgets (orders first, reads in the gaps); a refusal for rate (429, 418) bans them
    for the broker's ``Retry-After``, so no process sends more until it ends.

    Args:
        credentials: the account's keys (never logged, never in an error).
        base_url: the exchange host or a simulator, without a trailing slash.
        session: the HTTP session (``make_http_session()``: pooled, GET-only transport retries).
        clock: aware UTC time, for timestamps in signatures.
        timeout: seconds to connect and, separately, to wait for an answer.
        retry_policy: how reads are retried.
        sleep: how the retry policy waits (tests pass a recorder).
        limiter: the shared rate limiter (default: none, send at once).
    """

    broker: ClassVar[str]
    errors: ClassVar[ErrorTable]
    #: Seconds to wait after a 429/418 that carries no ``Retry-After``.
    default_retry_after: ClassVar[float] = 1.0

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        session: requests.Session,
        clock: Clock = utc_now,
        timeout: float = 10.0,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter = NO_LIMIT,
    ) -> None:
        self._credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        host = self.base_url.split("://", 1)[-1].split("/", 1)[0]
        #: Ids of the broker-side scopes, hashed: budget keys never hold a key or an account.
        self.address_id = scope_id(self.broker, host)
        self.account_id = scope_id(self.broker, host, credentials.api_key)
        self._session = session
        self._clock = clock
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        #: The last rate-limit headers seen (name → value), for monitoring and tests.
        self.rate_limit: dict[str, str] = {}

    # -- to implement ---------------------------------------------------------------------------

    @abstractmethod
    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        signed: bool,
    ) -> PreparedCall:
        """Build and sign the request."""

    @abstractmethod
    def _error_fields(self, payload: Any) -> tuple[str | None, str | None]:
        """Return ``(code, message)`` of an error body (already JSON-decoded, or text)."""

    def _observe(self, headers: Mapping[str, str]) -> None:  # noqa: B027 - optional hook
        """Keep the rate-limit headers of an answer (override per exchange)."""

    def _success_error(self, payload: Any) -> tuple[str, str] | None:
        """Return ``(code, message)`` if a 2xx body is in fact an error (legacy APIs)."""
        return None

    def _budgets(
        self, method: str, path: str, params: Mapping[str, str] | None, signed: bool
    ) -> list[Budget]:
        """Return the broker budgets one request spends (override per exchange)."""
        return []

    def _observe_budgets(  # noqa: B027 - optional hook
        self, headers: Mapping[str, str], budgets: Sequence[Budget]
    ) -> None:
        """Tell the limiter what the broker reported of ``budgets`` (override per exchange)."""

    def _limit(self, name: str, default: float) -> float:
        return self.limiter.limit(name, default)

    # -- the request path -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, str] | None = None,
        signed: bool = True,
        write: bool = False,
    ) -> Any:
        """Send one request and return its decoded JSON body.

        ``write`` marks a request that changes orders (place, cancel): it is sent exactly once,
        and an answer lost after sending raises ``OrderStateUnknown``. Reads are retried under
        :attr:`retry_policy`.

        Raises:
            BrokerTimeout: the exchange could not be reached (nothing was sent), or a read timed
                out.
            BrokerRateLimited: HTTP 429/418, or a rate-limit code.
            BrokerUnavailable: a read got a 5xx or no usable answer.
            OrderStateUnknown: a write was sent but its outcome is not known.
            BrokerRejected: the exchange refused the request (subclasses per the error table).
        """
        if write:
            return self._request_once(method, path, params, body, signed, write=True)
        return call_with_retry(
            lambda: self._request_once(method, path, params, body, signed, write=False),
            policy=self.retry_policy,
            sleep=self._sleep,
        )

    def _request_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        signed: bool,
        *,
        write: bool,
    ) -> Any:
        budgets = self._budgets(method, path, params, signed)
        # Raises RateLimited before anything is prepared or sent.
        self.limiter.acquire(budgets, priority="order" if write else "read")
        call = self._prepare(method, path, params, body, signed)
        response = self._send(call, path, write=write)
        self._observe(response.headers)
        self._observe_budgets(response.headers, budgets)
        if response.status_code in (429, 418):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = 120.0 if response.status_code == 418 else self.default_retry_after
            self.limiter.ban(budgets, seconds=wait, reason=f"HTTP {response.status_code}")
        return self._decode(response, write=write)

    def _send(self, call: PreparedCall, path: str, *, write: bool) -> requests.Response:
        what = f"{call.method} {path}"
        try:
            return self._session.request(
                call.method,
                call.url,
                headers=dict(call.headers),
                data=call.body.encode("utf-8") if call.body is not None else None,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectionError as exc:
            if _never_sent(exc):
                raise BrokerTimeout(
                    f"{self.broker}: could not connect for {what}; nothing was sent",
                    broker=self.broker,
                    broker_code="CONNECT_FAILED",
                ) from exc
            if write:
                raise OrderStateUnknown(
                    f"{self.broker}: the connection broke after {what} was sent; "
                    "reconcile by client order id",
                    broker=self.broker,
                    broker_code="CONNECTION_LOST",
                ) from exc
            raise BrokerUnavailable(
                f"{self.broker}: the connection broke during {what}",
                broker=self.broker,
                broker_code="CONNECTION_LOST",
            ) from exc
        except requests.exceptions.Timeout as exc:  # ReadTimeout: sent, no answer in time
            if write:
                raise OrderStateUnknown(
                    f"{self.broker}: no answer to {what} within {self.timeout:g}s; "
                    "reconcile by client order id",
                    broker=self.broker,
                    broker_code="READ_TIMEOUT",
                ) from exc
            raise BrokerTimeout(
                f"{self.broker}: no answer to {what} within {self.timeout:g}s",
                broker=self.broker,
                broker_code="READ_TIMEOUT",
            ) from exc
        except requests.exceptions.RequestException as exc:
            # Anything else (chunked-encoding errors, invalid responses) happened after sending.
            cls = OrderStateUnknown if write else BrokerUnavailable
            raise cls(
                f"{self.broker}: {what} failed in transit ({type(exc).__name__})",
                broker=self.broker,
                broker_code="TRANSPORT_ERROR",
            ) from exc

    def _decode(self, response: requests.Response, *, write: bool) -> Any:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        if status in (429, 418):
            code, message = self._error_fields(payload)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                retry_after = 120.0 if status == 418 else self.default_retry_after
            raise BrokerRateLimited(
                f"{self.broker} rate limit (HTTP {status}): {message or 'too many requests'}",
                broker=self.broker,
                broker_code=code or str(status),
                broker_message=message,
                retry_after=retry_after,
            )
        if 200 <= status < 300:
            if isinstance(payload, str):
                # A 2xx we cannot read: for a write the exchange did act on something.
                cls = OrderStateUnknown if write else BrokerUnavailable
                raise cls(
                    f"{self.broker}: unreadable answer (HTTP {status})",
                    broker=self.broker,
                    broker_code="BAD_RESPONSE",
                )
            legacy = self._success_error(payload)
            if legacy is not None:
                raise self.errors.error(legacy[0], legacy[1], status=status, write=write)
            return payload
        code, message = self._error_fields(payload)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise self.errors.error(code, message, status=status, write=write, retry_after=retry_after)

    # -- helpers for subclasses -----------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    @staticmethod
    def _json_body(body: Mapping[str, str]) -> str:
        return json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False)
