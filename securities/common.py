"""What both securities adapters share above HTTP: error tables, construction, order matching.

* Each broker's ``errors.py`` is data: exact codes, then substring rules on the message, then a
  fallback. :class:`ErrorTable` turns a broker answer into one error of ``brokers.errors``,
  always keeping the broker's own code and message (STYLE H6).
* :class:`SecuritiesAdapterBase` is the adapters' construction: everything injected (STYLE H5).
* Neither broker has a client order id, so a lost answer is settled by matching the history
  (:func:`first_match`, STYLE H8); both number orders with varying zero padding
  (:func:`same_order_number`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from brokers import (
    BrokerOrder,
    Clock,
    Credentials,
    OrderRequest,
    OrderType,
    TokenProvider,
    utc_now,
)
from brokers.errors import BrokerError, BrokerRejected, BrokerUnavailable, OrderStateUnknown
from securities._http import TokenClient

__all__ = [
    "ErrorRule",
    "ErrorTable",
    "SecuritiesAdapterBase",
    "first_match",
    "oldest_first",
    "order_number_key",
    "same_order_number",
]


@dataclass(frozen=True)
class ErrorRule:
    """What one broker code or message means.

    Attributes:
        error: the class to raise.
        retry_after: seconds to suggest to the caller (rate limits).
        outcome_unknown_on_write: the broker may have acted before failing (a gateway timeout
            behind the API front end); on an order write this becomes ``OrderStateUnknown``.
        token_rejected: the access token was refused; the client may re-issue once and resend.
    """

    error: type[BrokerError]
    retry_after: float | None = None
    outcome_unknown_on_write: bool = False
    token_rejected: bool = False


@dataclass(frozen=True)
class ErrorTable:
    """Exact code → rule, then (substring, rule) in order, then the fallback.

    Attributes:
        broker: ``"KIS"`` or ``"KIWOOM"``.
        exact: rules by the broker's exact code.
        substrings: rules by a substring of the broker's message, first match wins.
        fallback: the rule for anything else (``BrokerRejected``: permanent until understood).
    """

    broker: str
    exact: Mapping[str, ErrorRule]
    substrings: Sequence[tuple[str, ErrorRule]]
    fallback: ErrorRule = ErrorRule(BrokerRejected)

    def rule(self, code: str | None, message: str | None) -> ErrorRule:
        """Return the rule for a code and message (pure)."""
        if code and code in self.exact:
            return self.exact[code]
        text = message or ""
        for needle, rule in self.substrings:
            if needle in text:
                return rule
        return self.fallback

    def error(
        self,
        code: str | None,
        message: str | None,
        *,
        is_write: bool = False,
        http_status: int | None = None,
    ) -> BrokerError:
        """Build (not raise) the error for a broker answer.

        An unknown code that came with a 5xx on a write is ``OrderStateUnknown``: a server error
        we do not understand does not prove that the order was refused. On a read it is
        ``BrokerUnavailable``.
        """
        rule = self.rule(code, message)
        cls = rule.error
        unknown = rule is self.fallback
        if is_write and (rule.outcome_unknown_on_write or (unknown and (http_status or 0) >= 500)):
            cls = OrderStateUnknown
        elif unknown and (http_status or 0) >= 500:
            cls = BrokerUnavailable
        clean = (message or "").strip()
        detail = (
            f"{self.broker} {code or 'unknown'}: {clean}"
            if clean
            else (f"{self.broker} {code or 'unknown'}")
        )
        return cls(
            detail,
            broker=self.broker,
            broker_code=code,
            broker_message=clean or None,
            retry_after=rule.retry_after,
        )


class SecuritiesAdapterBase:
    """The construction both securities adapters share: credentials, clock and their client.

    Subclasses name their client in :attr:`client_class` and document the arguments.

    Args:
        credentials: the account's keys, environment and account number.
        base_url: ``DEFAULT_BASE_URLS[environment]`` or a simulator.
        session: a pooled ``requests.Session`` (``make_http_session()``).
        token_provider: gives access tokens (the token service).
        clock: aware UTC now.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
    """

    client_class: ClassVar[type[TokenClient]]

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        session: requests.Session,
        token_provider: TokenProvider | None = None,
        clock: Clock = utc_now,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._client = self.client_class(
            credentials,
            base_url=base_url,
            session=session,
            token_provider=token_provider,
            timeout=timeout,
            sleep=sleep,
        )


def order_number_key(value: Any) -> str:
    """Return an order number without padding, for comparing (``"0000024"`` → ``"24"``)."""
    return str(value or "").strip().lstrip("0")


def same_order_number(a: str, b: str) -> bool:
    """Compare order numbers regardless of zero padding (``"00024"`` vs ``"0000024"``).

    KIS paper trading sometimes sends its numbers unpadded; Kiwoom pads to varying widths.
    """
    return order_number_key(a) == order_number_key(b)


def oldest_first(orders: Iterable[BrokerOrder]) -> list[BrokerOrder]:
    """Return ``orders`` sorted by creation time, then order number (undated ones first)."""
    return sorted(
        orders,
        key=lambda o: (o.created_at or dt.datetime.min.replace(tzinfo=dt.UTC), o.broker_order_id),
    )


def first_match(
    orders: Iterable[BrokerOrder],
    request: OrderRequest,
    *,
    low: dt.datetime,
    high: dt.datetime,
    exclude: Collection[str] = (),
) -> BrokerOrder | None:
    """Return the first of ``orders`` that ``request`` may have become, or None.

    An order matches on symbol, side, order type, quantity and (for a limit order) limit price,
    when it was created between ``low`` and ``high`` (an undated order is not ruled out by time)
    and its number is not in ``exclude`` (orders already bound to other intents). ``orders`` is
    read lazily and only as far as the first match.
    """
    excluded = {str(x).lstrip("0") for x in exclude}
    for order in orders:
        if order.broker_order_id.lstrip("0") in excluded:
            continue
        if order.created_at is not None and not low <= order.created_at <= high:
            continue
        if _matches(order, request):
            return order
    return None


def _matches(order: BrokerOrder, request: OrderRequest) -> bool:
    if order.symbol != request.symbol or order.side is not request.side:
        return False
    if order.order_type is not request.order_type or order.quantity != request.quantity:
        return False
    if request.order_type is OrderType.LIMIT:
        return order.limit_price is not None and order.limit_price == request.limit_price
    return True
