"""HTTP plumbing both Korean securities adapters share: transport errors, KST times, numbers.

Nothing here knows a broker's envelope; :mod:`securities.kis.client` and
:mod:`securities.kiwoom.client` do. What this module decides is the one question every call must
answer the same way (DESIGN §6, STYLE H6/H8): *did the request reach the broker?*

* The connection could not be made (refused, DNS, connect timeout): the request was never sent,
  so :class:`~web_server.errors.BrokerTimeout`; any call may be tried again.
* The request was sent and no answer came (read timeout, reset, closed connection, a truncated
  body): for a read, :class:`~web_server.errors.BrokerUnavailable` (a read has no effect, so it is
  safe to ask again); for a write, :class:`~web_server.errors.OrderStateUnknown`: the broker may
  have acted, and only reconciliation (``find_order``) may tell.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
import urllib3.exceptions

from web_server.errors import BrokerError, BrokerTimeout, BrokerUnavailable, OrderStateUnknown

__all__ = [
    "KST",
    "decode_json",
    "from_kst",
    "kst_date",
    "parse_decimal",
    "retry_after_header",
    "retry_delay",
    "send",
    "with_retry_after",
]

log = logging.getLogger(__name__)

#: Korea Standard Time. Korea has no daylight saving time, so a fixed offset is exact and needs no
#: tz database on the host.
KST = dt.timezone(dt.timedelta(hours=9), "KST")


def from_kst(value: str, fmt: str) -> dt.datetime:
    """Parse a broker's KST wall-clock time and return it as aware UTC.

    Raises:
        ValueError: ``value`` does not match ``fmt``.
    """
    return dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=KST).astimezone(dt.UTC)


def kst_date(moment: dt.datetime) -> dt.date:
    """Return the KST calendar date of an aware ``moment`` (the brokers' trading day)."""
    return moment.astimezone(KST).date()


def parse_decimal(value: Any) -> Decimal | None:
    """Return a broker number string as ``Decimal``; None for blank or missing values.

    Handles the brokers' decorations: thousands separators, a leading ``+``/``-`` direction sign
    and left zero padding (``"-00000000196888"`` is -196888).
    """
    if value is None:
        return None
    text = str(value).strip().replace(",", "")
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def retry_delay(attempt: int, retry_after: float | None = None, *, cap: float = 2.0) -> float:
    """Return how long to wait before retry number ``attempt`` (0-based) of a read.

    Exponential backoff with full jitter, at least the broker's ``retry_after`` when that is short
    enough to wait for inside one call (a per-second rate limit); longer waits are the caller's.
    """
    base = min(cap, 0.2 * (2**attempt))
    delay = random.uniform(base / 2, base)  # noqa: S311 - jitter, not cryptography
    if retry_after is not None and retry_after <= cap:
        delay = max(delay, retry_after)
    return delay


def _never_connected(exc: requests.RequestException) -> bool:
    """Tell whether ``exc`` happened before the request left this host."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    # requests wraps urllib3's MaxRetryError(reason=NewConnectionError) in a ConnectionError.
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(
            current,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | urllib3.exceptions.NameResolutionError
            | ConnectionRefusedError,
        ):
            return True
        pending.extend([current.__cause__, current.__context__])
        pending.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return False


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    broker: str,
    is_write: bool,
    timeout: float,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    json_body: Any = None,
) -> requests.Response:
    """Send one request and translate transport failures into the gateway's errors.

    Args:
        session: the injected session (its retry policy only ever retries connect errors and
            GET/HEAD; see ``web_server.brokers.make_http_session``).
        method: ``GET`` or ``POST``.
        url: the full URL.
        broker: ``"KIS"`` or ``"KIWOOM"``, for the errors.
        is_write: whether the request places, amends or cancels an order (or otherwise changes
            state): decides between "safe to ask again" and "reconcile".
        timeout: seconds for connect and for each read.
        headers: request headers (they may hold secrets: never logged).
        params: query string.
        json_body: JSON body.

    Returns:
        The response, whatever its status.

    Raises:
        BrokerTimeout: the connection could not be made; nothing was sent.
        OrderStateUnknown: a write was sent and no answer came.
        BrokerUnavailable: a read was sent and no answer came.
    """
    path = url.split("://", 1)[-1].partition("/")[2]
    try:
        return session.request(
            method,
            url,
            headers=dict(headers),
            params=dict(params) if params is not None else None,
            json=json_body,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        if _never_connected(exc):
            raise BrokerTimeout(
                f"{broker} could not be reached ({type(exc).__name__}); nothing was sent",
                broker=broker,
            ) from exc
        if is_write:
            log.warning("%s %s /%s: sent, no answer (%s)", broker, method, path, type(exc).__name__)
            raise OrderStateUnknown(
                f"{broker} received the request but no answer came ({type(exc).__name__}); "
                "reconcile before sending it again",
                broker=broker,
            ) from exc
        raise BrokerUnavailable(
            f"{broker} did not answer ({type(exc).__name__})", broker=broker
        ) from exc


def decode_json(response: requests.Response) -> Any:
    """Return the response's JSON, or None when the body is not JSON (HTML error pages, text)."""
    try:
        return response.json()
    except ValueError:
        return None


def retry_after_header(response: requests.Response) -> float | None:
    """Return the ``Retry-After`` header in seconds, when it is a number."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def with_retry_after(error: BrokerError, seconds: float | None) -> BrokerError:
    """Set ``retry_after`` on ``error`` when the broker told us and the table did not."""
    if seconds is not None and error.retry_after is None:
        error.retry_after = seconds
    return error
