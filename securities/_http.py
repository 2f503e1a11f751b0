"""HTTP plumbing both Korean securities adapters share: transport errors, KST times, numbers.

The clients' common base, :class:`TokenClient`, holds the OAuth calls and the token/retry loop.
Nothing here knows a broker's envelope; :mod:`securities.kis.client` and
:mod:`securities.kiwoom.client` do. What this module decides is the one question every call must
answer the same way (DESIGN §6, STYLE H6/H8): *did the request reach the broker?*

* The connection could not be made (refused, DNS, connect timeout): the request was never sent,
  so :class:`~brokers.errors.BrokerTimeout`; any call may be tried again.
* The request was sent and no answer came (read timeout, reset, closed connection, a truncated
  body): for a read, :class:`~brokers.errors.BrokerUnavailable` (a read has no effect, so it is
  safe to ask again); for a write, :class:`~brokers.errors.OrderStateUnknown`: the broker may
  have acted, and only reconciliation (``find_order``) may tell.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar

import requests
import urllib3.exceptions

from brokers import Credentials, TokenProvider
from brokers.errors import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRateLimited,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigError,
    OrderStateUnknown,
)
from brokers.limits import NO_LIMIT, Budget, RateLimiter, scope_id

__all__ = [
    "KST",
    "TokenClient",
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

T = TypeVar("T")

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
            GET/HEAD; see ``brokers.make_http_session``).
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


class TokenClient:
    """What the KIS and Kiwoom clients share: construction, OAuth and the token/retry call loop.

    Both brokers issue and revoke tokens with the same client-credentials calls (a JSON POST with
    the app key and secret, no bearer token), which differ only in paths and field names: the
    class attributes below. Both authenticate every account call with a bearer token from the
    TokenProvider and follow one policy (DESIGN §6, STYLE H8), kept here so that it cannot drift
    between them:

    * a refused token is re-issued *once* and the request resent, reads and writes alike (both
      brokers check the token before anything reaches the order system);
    * a read gets one more attempt after a short jittered backoff on ``BrokerUnavailable``,
      unless the broker asked for a wait longer than one call should block;
    * a write is never resent for any other reason.

    Subclasses send one request (their envelope and headers), map a refused answer
    (:meth:`_error`) and say which refusals are token refusals (:meth:`_token_refused`); where
    their OAuth answers differ from their other answers, they say so in :meth:`_oauth_accepted`
    and :meth:`_oauth_error`.

    Args:
        credentials: the account's app key and secret (and, for KIS, account number).
        base_url: the broker host or a simulator.
        session: the injected pooled session.
        token_provider: gives the access token; required for every account call.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
        limiter: the shared rate limiter asked before every account call (default: none).

    Every call but OAuth spends the app key's budget (:meth:`_budgets`; token issuance has its own
    window in the token service); a refusal for rate (:meth:`_rate_refused`: KIS EGW00201,
    Kiwoom 1700, HTTP 429) bans it for the broker's ``Retry-After`` or a second.
    """

    #: Configured per-second limit of the app key and its default, per environment.
    rate_limits: ClassVar[Mapping[str, tuple[str, float]]] = {}

    #: The broker as people write it, for log lines and messages (``"KIS"``, ``"Kiwoom"``).
    label: ClassVar[str]
    #: The broker's code in errors (``"KIS"``, ``"KIWOOM"``).
    broker: ClassVar[str]
    #: The JSON content-type header, spelled as the broker's own client spells it.
    json_headers: ClassVar[Mapping[str, str]]
    #: The OAuth endpoints: issue and revoke.
    token_path: ClassVar[str]
    revoke_path: ClassVar[str]
    #: The body field that carries the app secret (KIS ``appsecret``, Kiwoom ``secretkey``).
    secret_field: ClassVar[str]
    #: The answer field that carries the issued token (KIS ``access_token``, Kiwoom ``token``).
    token_field: ClassVar[str]

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        session: requests.Session,
        token_provider: TokenProvider | None,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter = NO_LIMIT,
    ) -> None:
        self._credentials = credentials
        self._limiter = limiter
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._tokens = token_provider
        self._timeout = timeout
        self._sleep = sleep

    # -- OAuth (no bearer token) -------------------------------------------------------------

    def issue_token(self) -> Mapping[str, Any]:
        """POST the token endpoint (client-credentials grant) and return the raw answer.

        Raises:
            BrokerRateLimited: the broker's issuance limit (KIS EGW00133: one a minute,
                ``retry_after`` 60).
            BrokerAuthFailed: bad app key or secret.
            BrokerError: any other refusal or transport failure.
        """
        body = {
            "grant_type": "client_credentials",
            "appkey": self._credentials.api_key,
            self.secret_field: self._credentials.api_secret,
        }
        return self._oauth(self.token_path, body, required=self.token_field)

    def revoke_token(self, token: str) -> Mapping[str, Any]:
        """POST the revoke endpoint for ``token``.

        Raises:
            BrokerError: the broker refused or did not answer.
        """
        body = {
            "appkey": self._credentials.api_key,
            self.secret_field: self._credentials.api_secret,
            "token": token,
        }
        return self._oauth(self.revoke_path, body, required=None)

    def _oauth(
        self, path: str, body: Mapping[str, Any], *, required: str | None
    ) -> Mapping[str, Any]:
        # Issuing a token changes nothing that matters twice (KIS re-serves the same token within
        # 6 h), but a lost answer still counts against the one-a-minute rule: treat as a read.
        # No bearer token here: Kiwoom's official client sends no api-id or authorization on the
        # auth endpoints either.
        response = self._send(
            "POST", path, is_write=False, headers=self.json_headers, json_body=dict(body)
        )
        data = decode_json(response)
        if (
            response.status_code == 200
            and isinstance(data, Mapping)
            and self._oauth_accepted(data)
            and (required is None or data.get(required))
        ):
            return data
        raise self._oauth_error(path, response, data)

    def _oauth_accepted(self, data: Mapping[str, Any]) -> bool:
        """Tell whether an HTTP 200 OAuth answer reports success in its body (by default: yes)."""
        return True

    def _oauth_error(self, path: str, response: requests.Response, data: Any) -> BrokerError:
        """Map a refused OAuth answer to ``path`` (by default like any other answer)."""
        return self._error(response, data, is_write=False)

    def _send(
        self,
        method: str,
        path: str,
        *,
        is_write: bool,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> requests.Response:
        """Send one request to ``path`` on this broker (see :func:`send`), paced by the limiter.

        Raises:
            RateLimited: no slot on the app key's budget in time, or it is banned: not sent.
        """
        budgets = [] if path in (self.token_path, self.revoke_path) else self._budgets()
        self._limiter.acquire(budgets, priority="order" if is_write else "read")
        response = send(
            self._session,
            method,
            self._base_url + path,
            broker=self.broker,
            is_write=is_write,
            timeout=self._timeout,
            headers=headers,
            params=params,
            json_body=json_body,
        )
        if budgets and self._rate_refused(response):
            wait = retry_after_header(response) or 1.0
            self._limiter.ban(budgets, seconds=wait, reason=f"{self.broker} rate refusal")
        return response

    def _budgets(self) -> list[Budget]:
        """Return the app key's per-second budget (KIS and Kiwoom count per app key)."""
        environment = str(self._credentials.environment or "REAL").upper()
        name, default = self.rate_limits.get(environment) or self.rate_limits["REAL"]
        key_id = scope_id(self.broker, environment, self._credentials.api_key)
        return [Budget(f"{self.broker.lower()}:app:{key_id}", self._limiter.limit(name, default))]

    def _rate_refused(self, response: requests.Response) -> bool:
        """Tell whether the broker refused the request for its rate (by default HTTP 429)."""
        return response.status_code == 429

    # -- to implement --------------------------------------------------------------------------

    def _error(self, response: requests.Response, data: Any, *, is_write: bool) -> BrokerError:
        """Map a non-success answer (pure apart from reading the response)."""
        raise NotImplementedError

    def _token_refused(self, exc: BrokerAuthFailed) -> bool:
        """Tell whether ``exc`` refused the token itself (a fresh token may work)."""
        raise NotImplementedError

    def _with_token(self, tr: str, send_once: Callable[[str], T], *, is_write: bool) -> T:
        """Call ``send_once(token)`` under the re-issue and read-retry policy above.

        Args:
            tr: the TR id, for log lines.
            send_once: sends the request once with the given token and returns the answer.
            is_write: whether the request places, amends or cancels an order.

        Raises:
            ConfigError: the client has no token provider.
            BrokerError: what ``send_once`` raised once the policy gave up.
        """
        if self._tokens is None:
            raise ConfigError(f"the {self.label} adapter needs a token_provider for account calls")
        # Log under the broker's client module, as each client did before sharing this loop.
        logger = logging.getLogger(type(self).__module__)
        token = self._tokens.get()
        reissued = False
        attempt = 0
        while True:
            try:
                return send_once(token)
            except BrokerAuthFailed as exc:
                if reissued or not self._token_refused(exc):
                    raise
                reissued = True
                logger.info(
                    "%s %s: token refused (%s); re-issuing once", self.label, tr, exc.broker_code
                )
                token = self._tokens.invalidate(token)
            except BrokerUnavailable as exc:
                # Only reads come here for a second try; a write's lost answer is
                # OrderStateUnknown, which is not a BrokerUnavailable, and a write's refusal is
                # not retried.
                if is_write or attempt >= 1:
                    raise
                if isinstance(exc, BrokerRateLimited) and (exc.retry_after or 0) > 2:
                    raise
                delay = retry_delay(attempt, exc.retry_after)
                attempt += 1
                logger.info(
                    "%s %s: %s; retrying the read in %.2fs", self.label, tr, exc.code, delay
                )
                self._sleep(delay)
