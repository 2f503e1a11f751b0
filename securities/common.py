"""What both securities adapters share above HTTP: error tables, construction, order history.

* Each broker's ``errors.py`` is data: exact codes, then substring rules on the message, then a
  fallback. :class:`ErrorTable` turns a broker answer into one error of ``brokers.errors``,
  always keeping the broker's own code and message (STYLE H6).
* :class:`SecuritiesAdapterBase` is the adapters' construction (everything injected, STYLE H5)
  and their history-based look-ups: ``get_order``, ``list_orders`` and ``find_order`` over the
  broker's order history, which each adapter reads in its own way (its paths, TR ids and
  fields) in ``_history`` and ``_lookup_windows``.
* Neither broker has a client order id, so a lost answer is settled by matching the history
  (:func:`first_match`, STYLE H8); both number orders with varying zero padding
  (:func:`same_order_number`).
* Both answer a cancel or an amendment with a new order number of its own:
  :func:`cancel_pending` and :func:`amended_order` say what the caller gets back.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar

import requests

from brokers import (
    BrokerOrder,
    Capabilities,
    Clock,
    Credentials,
    OrderRequest,
    OrderStatus,
    OrderType,
    TokenProvider,
    utc_now,
)
from brokers.errors import (
    BadRequest,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
    OrderStateUnknown,
)
from brokers.krx import KRX_COMMISSION_RATE, KRX_SELL_TAX_RATE, krx_charges
from brokers.limits import NO_LIMIT, RateLimiter
from securities._http import TokenClient, kst_date

__all__ = [
    "CLOCK_SKEW",
    "LOOKBACK_DAYS",
    "SECURITIES_CAPABILITIES",
    "ErrorRule",
    "ErrorTable",
    "SecuritiesAdapterBase",
    "KRX_COMMISSION_RATE",
    "KRX_SELL_TAX_RATE",
    "amended_order",
    "cancel_pending",
    "krx_charges",
    "cancellable",
    "first_match",
    "lapse_if_day_over",
    "oldest_first",
    "order_number_key",
    "same_order_number",
]

#: How many KST days back ``get_order`` looks for an order number that is not in today's history.
LOOKBACK_DAYS = 7
#: Tolerance between our clock and the broker's when matching an order by time in ``find_order``.
CLOCK_SKEW = dt.timedelta(seconds=60)

#: Both brokers: no client order id (reconcile by history), market orders, amendments, OAuth.
SECURITIES_CAPABILITIES = Capabilities(
    client_order_id=False, market_orders=True, amend_order=True, oauth_tokens=True
)


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
    """What both securities adapters share: construction, tokens and history-based look-ups.

    Subclasses name their client in :attr:`client_class`, document the arguments, and read the
    broker's order history in :meth:`_history` and :meth:`_lookup_windows`; ``get_order``,
    ``list_orders`` and ``find_order`` are built on those two.

    Args:
        credentials: the account's keys, environment and account number.
        base_url: ``DEFAULT_BASE_URLS[environment]`` or a simulator.
        session: a pooled ``requests.Session`` (``make_http_session()``).
        token_provider: gives access tokens (the token service).
        clock: aware UTC now.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
        limiter: the shared rate limiter every account call asks first (default: none).
    """

    exchange: ClassVar[str]
    capabilities: ClassVar[Capabilities] = SECURITIES_CAPABILITIES
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
        limiter: RateLimiter = NO_LIMIT,
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
            limiter=limiter,
        )

    # -- tokens ------------------------------------------------------------------------------

    def revoke_token(self, access_token: str) -> None:
        """Tell the broker to revoke ``access_token`` (KIS ``/oauth2/revokeP``, Kiwoom au10002).

        Raises:
            BrokerError: the broker refused or did not answer.
        """
        self._client.revoke_token(access_token)

    # -- the order history: what each broker reads in its own way ----------------------------

    def _history(
        self, first: dt.date, last: dt.date, *, symbol: str | None = None
    ) -> Iterable[BrokerOrder]:
        """Return the orders placed on the KST days ``first`` to ``last``, oldest first.

        Cancellations are folded into the orders they cancel. ``symbol`` may narrow the broker's
        query; callers still match on it. Read lazily where the broker answers a day at a time,
        so that ``find_order`` stops reading at its first match.
        """
        raise NotImplementedError

    def _lookup_windows(
        self, broker_order_id: str, today: dt.date, *, symbol: str | None
    ) -> Iterator[list[BrokerOrder]]:
        """Yield the history to search for ``broker_order_id``, newest window first.

        The windows cover ``today`` back to :data:`LOOKBACK_DAYS` days; each is read only when
        the newer ones did not have the order. ``symbol`` (when given) narrows the look-up.
        """
        raise NotImplementedError

    # -- history-based look-ups --------------------------------------------------------------

    def _day_lookup(
        self, broker_order_id: str, day: dt.date, *, symbol: str | None
    ) -> list[BrokerOrder]:
        """Return the history of the KST day ``day`` that may hold ``broker_order_id``.

        The default reads the whole day; an adapter narrows the query where its broker can.
        """
        return list(self._history(day, day, symbol=symbol))

    def get_order(
        self,
        broker_order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Look an order up by its KST order date and number (the broker's identity of it).

        Numbers restart each trading day, so with ``order_date`` only that day's history is
        read, and ``symbol`` (when given) must match too: yesterday's #1 is never taken for
        today's. Without ``order_date`` (a caller that never learnt it) the newest window of
        history back to :data:`LOOKBACK_DAYS` days is searched, the newest match winning.

        An open order of a day that is over is reported EXPIRED: day orders lapse at the close,
        whatever the row still shows (``expired_in_history`` "remaining").

        Raises:
            BadRequest: only ``client_order_id`` was given; the broker has no client order ids
                (use :meth:`find_order`).
            OrderNotFound: no such order.
            BrokerError: any other failure.
        """
        label = self.client_class.label
        if not broker_order_id:
            raise BadRequest(
                f"{label} orders have no client order id; look them up by broker_order_id or "
                "reconcile with find_order"
            )
        today = kst_date(self._clock())
        if order_date is not None:
            matches = [
                o
                for o in self._day_lookup(broker_order_id, order_date, symbol=symbol)
                if same_order_number(o.broker_order_id, broker_order_id)
                and (symbol is None or o.symbol == symbol)
            ]
            if matches:
                return lapse_if_day_over(matches[-1], today)
            raise OrderNotFound(
                f"{label} has no order {broker_order_id} of {order_date.isoformat()}",
                broker=self.exchange,
            )
        for window in self._lookup_windows(broker_order_id, today, symbol=symbol):
            matches = [o for o in window if same_order_number(o.broker_order_id, broker_order_id)]
            if matches:
                return lapse_if_day_over(matches[-1], today)
        raise OrderNotFound(
            f"{label} has no order {broker_order_id} in the last {LOOKBACK_DAYS} days",
            broker=self.exchange,
        )

    def replace_order(
        self,
        broker_order_id: str,
        request: OrderRequest,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Amend an open limit order to ``request``'s quantity and price (KRX 정정).

        The broker moves the amended quantity to a **new** order number (returned), and the
        original, with nothing left, closes (its history row reads cancelled). The gateway only
        amends a whole remainder, so the original never stays partly open.
        """
        amend: Any = getattr(self, "amend_order")  # noqa: B009 - each adapter defines it
        return amend(
            broker_order_id,
            quantity=request.quantity,
            limit_price=request.limit_price,
            symbol=symbol,
            order_date=order_date,
        )

    def day_orders(self, day: dt.date) -> list[BrokerOrder]:
        """Return every order of the KST day ``day``, open and closed, read completely.

        One query for the account (all pages): what the poller reads for all of an account's
        orders of a day in one call, and the complete read the reconciler needs before it may
        call an order absent. Open orders of a day that is over are reported EXPIRED.

        Raises:
            BrokerError: the history could not be read (completely).
        """
        today = kst_date(self._clock())
        return [lapse_if_day_over(o, today) for o in self._history(day, day)]

    def list_orders(self, since: dt.datetime) -> list[BrokerOrder]:
        """Return the orders placed since ``since`` (open and closed), oldest first.

        Cancellations are folded into the orders they cancel; amendments appear as the new
        orders they are.

        Raises:
            BrokerError: any failure.
        """
        orders = self._history(kst_date(since), kst_date(self._clock()))
        return [o for o in orders if o.created_at is None or o.created_at >= since]

    def find_order(
        self,
        request: OrderRequest,
        since: dt.datetime,
        *,
        until: dt.datetime | None = None,
        exclude: Collection[str] = (),
    ) -> BrokerOrder | None:
        """Find the order ``request`` became, when its answer was lost (no client id here).

        Matches the history from ``since`` (minus :data:`CLOCK_SKEW`) to ``until`` (default now,
        plus the skew) on symbol, side, order type, quantity and limit price. Orders already
        bound to other intents go in ``exclude``; among the rest the earliest match wins, so
        reconciling identical intents oldest first pairs them one to one.

        Returns:
            The order, or None when the broker has no such order (the request never took
            effect).

        Raises:
            BrokerError: the history could not be read.
        """
        low = since - CLOCK_SKEW
        high = (until or self._clock()) + CLOCK_SKEW
        history = self._history(kst_date(low), kst_date(high), symbol=request.symbol)
        return first_match(history, request, low=low, high=high, exclude=exclude)


def lapse_if_day_over(order: BrokerOrder, today: dt.date) -> BrokerOrder:
    """Return ``order`` as EXPIRED if it is open but its KST day is before ``today``.

    KIS and Kiwoom day orders never outlive their trading day (trading-days.md §1.2, §2.3): a
    row still showing a remainder after its day lapsed with the close.
    """
    open_states = (
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.CANCEL_PENDING,
    )
    if order.status not in open_states or order.created_at is None:
        return order
    if kst_date(order.created_at) >= today:
        return order
    return replace(order, status=OrderStatus.EXPIRED)


def cancellable(order: BrokerOrder) -> bool:
    """Tell whether the broker still has a remainder of ``order`` to cancel.

    CANCEL_PENDING counts: a cancel whose outcome was lost may be sent again.
    """
    return order.status in (
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.CANCEL_PENDING,
    )


def cancel_pending(
    original: BrokerOrder, answer: Mapping[str, Any], *, now: dt.datetime
) -> BrokerOrder:
    """Return ``original`` as CANCEL_PENDING once the broker accepted its cancellation.

    ``raw["cancel"]`` keeps the broker's answer (the cancellation has an order number of its
    own); the status poller settles the original.
    """
    return replace(
        original,
        status=OrderStatus.CANCEL_PENDING,
        updated_at=now,
        raw={**original.raw, "cancel": dict(answer)},
    )


def amended_order(
    original: BrokerOrder,
    *,
    broker_order_id: str,
    quantity: Decimal | None,
    limit_price: Decimal,
    now: dt.datetime,
    raw: Mapping[str, Any],
) -> BrokerOrder:
    """Return the order an accepted amendment created: a new SUBMITTED limit order.

    Both brokers replace the original with a new order number (``broker_order_id``) for the same
    symbol and side; ``quantity`` None amended all of the original's unfilled remainder.
    """
    remaining = original.quantity - original.filled_quantity
    return BrokerOrder(
        broker_order_id=broker_order_id,
        symbol=original.symbol,
        side=original.side,
        order_type=OrderType.LIMIT,
        status=OrderStatus.SUBMITTED,
        quantity=quantity if quantity is not None else remaining,
        limit_price=limit_price,
        created_at=now,
        updated_at=now,
        raw=raw,
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
