"""Sending a committed order once and recording the answer, whatever the database does meanwhile.

The order and its intent are committed (``placement.py``) with a short lease
(:data:`~web_server.services.orders.lifecycle.START_LEASE`). Then :meth:`Sender.send`:

1. **Gets ready**, retrying while the database is unreachable for at most :data:`READY_BUDGET`:
   takes the order's advisory lock, reads the account's token (KIS, Kiwoom), and *claims the
   send*: one conditional UPDATE sets ``send_started_ts`` and extends the lease to the end of the
   longest broker call (:data:`~web_server.services.orders.lifecycle.SEND_WINDOW`), only if the
   order still carries the lease this request gave it. So the request never sends an order the
   reconciler has meanwhile found orphaned, and the reconciler never settles an order this
   request may still send. If it cannot get ready, nothing is sent: the request answers 503 and
   the reconciler forgets the order when its short lease ends, so the key starts over.
2. **Calls the broker once.** The call itself touches no database except through the token
   provider, which only runs before the order is sent, or after the broker refused the token
   (nothing placed) — so a database error out of the call means the broker has no order.
3. **Records the outcome**, retrying while the database is unreachable for at most
   :data:`RECORD_BUDGET`, each attempt one transaction on the order's row ``FOR UPDATE``:

   - an answer: SUBMITTED or further;
   - a refusal (``BrokerRejected``): REJECTED with the broker's code and message;
   - a refusal before the broker acted (``BrokerUnavailable``: rate limit, maintenance,
     unreachable; or the database error above): the order and its intent are forgotten — no one
     was given the id — and the error is the answer, so the same key may be retried;
   - no answer (``OrderStateUnknown``) or anything unexpected: UNKNOWN, for the reconciler.

   Recording ends the lease (the call is over), which also bounds when the broker could have
   received the order. A recording that cannot be made within the budget is left to the
   reconciler once the lease runs out (the request answers 503; a replay is told to retry).

The lock still keeps the reconciler off while its connection lives; the lease covers the time
when it does not (its connection was cut while the request was at the broker).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers import BrokerOrder, OrderRequest
from web_server.database import retry_unavailable
from web_server.errors import (
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    DatabaseUnavailable,
    GatewayBusy,
    OrderStateUnknown,
    is_database_unavailable,
)
from web_server.extensions import db
from web_server.models import Account, Order, OrderIntent, OrderStatus
from web_server.services import clock
from web_server.services.brokers import adapter_for
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    SEND_WINDOW,
    advance,
    apply_answer,
    broker_text,
    forget,
    order_lock,
)

log = logging.getLogger(__name__)

#: How long getting ready to send (lock, token, claim) may keep trying while the database is
#: unreachable. With the intent's commit budget it stays inside the order's start lease.
READY_BUDGET = 10.0
#: How long recording the broker's answer may keep trying while the database is unreachable.
RECORD_BUDGET = 20.0


#: How long an order waits for one of its process's in-flight slots before answering 503.
SLOT_WAIT = 5.0
_SLOTS_LOCK = threading.Lock()


def _order_slots() -> threading.BoundedSemaphore:
    """Return this process's slots for orders on their way to the broker.

    An order holds a connection for its lock while the broker answers, and briefly a second one
    to claim and record: more orders in flight than the pool can serve would have them all wait
    for connections and fail alike (``gunicorn --threads`` is sized for event streams, which hold
    none). ``ORDERS_MAX_IN_FLIGHT`` (default: a third of the pool) bounds them.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _SLOTS_LOCK:
        slots = app.extensions.get("gateway.order_slots")
        if slots is None:
            options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
            pool = int(options.get("pool_size", 10)) + int(options.get("max_overflow", 20))
            size = int(app.config.get("ORDERS_MAX_IN_FLIGHT") or max(1, pool // 3))
            slots = app.extensions["gateway.order_slots"] = threading.BoundedSemaphore(size)
        return slots


class _LockBusy(Exception):
    """Another actor (the reconciler, looking) holds the order's lock for a moment."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What sending an order came to, to be recorded on it."""

    kind: str  # "answered", "rejected", "withdrawn" or "unknown"
    answer: BrokerOrder | None = None
    error: BaseException | None = None

    @classmethod
    def withdrawn(cls, exc: BaseException) -> Outcome:
        """Nothing reached the broker: forget the order, and answer ``exc``."""
        return cls("withdrawn", error=exc)

    @classmethod
    def of_error(cls, exc: BaseException) -> Outcome:
        """Classify what the broker call (or the token it needed) raised."""
        if isinstance(exc, BrokerUnavailable):
            return cls("withdrawn", error=exc)
        if isinstance(exc, BrokerRejected):
            return cls("rejected", error=exc)
        if is_database_unavailable(exc):
            # Only the token provider reads the database during a broker call, before the
            # order is sent or after the broker refused the token: the broker has no order.
            return cls("withdrawn", error=DatabaseUnavailable())
        if not isinstance(exc, OrderStateUnknown):
            log.error("unexpected failure while placing an order", exc_info=exc)
        return cls("unknown", error=exc)


class _TokenCache:
    """The account's token provider, with the token read before the send is claimed.

    Reading it beforehand keeps the database out of the broker call (a refused token is still
    replaced through the provider, once, as adapters do).
    """

    def __init__(self, account_id: int) -> None:
        from web_server.services.tokens import AccountTokenProvider

        self._provider = AccountTokenProvider(account_id)
        self._token: str | None = None

    def load(self) -> None:
        self._token = self._provider.get()

    def get(self) -> str:
        return self._token if self._token is not None else self._provider.get()

    def invalidate(self, token: str) -> str:
        self._token = self._provider.invalidate(token)
        return self._token


class Sender:
    """Sends one account's committed orders; built before the intent is committed."""

    def __init__(self, account: Account) -> None:
        self._tokens = (
            _TokenCache(account.id) if account.account_type == "SECURITIES_STOCK" else None
        )
        self._adapter: Any = adapter_for(account, token_provider=self._tokens)

    @property
    def adapter(self) -> Any:
        """The account's adapter (an amend calls its ``replace_order``)."""
        return self._adapter

    def send(
        self,
        order_id: uuid.UUID,
        lease: dt.datetime,
        request: OrderRequest,
        call: Callable[[OrderRequest], BrokerOrder] | None = None,
    ) -> Order:
        """Send the committed order once and return it as recorded (see the module docstring).

        Args:
            order_id: the committed PENDING_SUBMIT order.
            lease: the ``lease_until`` it was committed with.
            request: what to send.
            call: the broker call that sends it (default ``place_order``; an amend passes the
                adapter's ``replace_order`` for the order it replaces). Recorded alike.

        Raises:
            BrokerUnavailable: the broker refused before acting; the order is forgotten.
            DatabaseUnavailable: the database did not answer long enough; the order was not
                sent (getting ready), or its answer is left to the reconciler (recording).
        """
        slots = _order_slots()
        if not slots.acquire(timeout=SLOT_WAIT):
            # Only after the intent: a replay of the key is told 409 meanwhile, and this
            # attempt is withdrawn (never sent) so the key starts over.
            return _finish(
                order_id,
                Outcome.withdrawn(
                    GatewayBusy(
                        "This gateway process has as many orders at the brokers as it may; "
                        "nothing was sent. Retry with the same Idempotency-Key.",
                        retry_after=1,
                    )
                ),
            )
        try:
            return self._send(order_id, lease, request, call)
        finally:
            slots.release()

    def _send(
        self,
        order_id: uuid.UUID,
        lease: dt.datetime,
        request: OrderRequest,
        call: Callable[[OrderRequest], BrokerOrder] | None,
    ) -> Order:
        deadline = time.monotonic() + READY_BUDGET
        with contextlib.ExitStack() as held:
            try:
                _own(held, order_id, deadline)
                if self._tokens is not None:
                    retry_unavailable(
                        self._tokens.load, budget=_left(deadline), what=f"order {order_id}: token"
                    )
                claimed = _claim(order_id, lease, deadline)
            except DatabaseUnavailable:
                raise  # nothing sent; the reconciler forgets the order when its short lease ends
            except Exception as exc:  # noqa: BLE001 - nothing was sent: say what stopped it
                # The token could not be had (as if the broker refused the order), or anything
                # else stopped the request before sending: the order is withdrawn, the error is
                # the answer.
                if isinstance(exc, BrokerError):
                    return _finish(order_id, Outcome.of_error(exc))
                return _finish(order_id, Outcome.withdrawn(exc))
            if not claimed:
                raise DatabaseUnavailable(
                    "The database was unreachable for too long before this order could be sent; "
                    "nothing was sent. Retry with the same Idempotency-Key."
                )
            try:
                answer = (call or self._adapter.place_order)(request)
            except Exception as exc:  # noqa: BLE001 - every outcome is recorded (see Outcome)
                outcome = Outcome.of_error(exc)
            else:
                # Filled at once (a marketable order): its executions, read before recording.
                answer = complete(self._adapter, Decimal(0), answer)
                outcome = Outcome("answered", answer=answer)
            return _finish(order_id, outcome)
        raise AssertionError("unreachable")  # pragma: no cover - for type checkers


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _own(held: contextlib.ExitStack, order_id: uuid.UUID, deadline: float) -> None:
    """Take the order's lock into ``held``, retrying a lost connection or a brief holder.

    Raises:
        DatabaseUnavailable: the database did not answer, or the lock stayed taken, until
            ``deadline`` (only a reconciler looking at the order can hold it, for a moment).
    """

    def attempt() -> None:
        lock = contextlib.ExitStack()
        if not lock.enter_context(order_lock(order_id)):
            lock.close()
            raise _LockBusy(str(order_id))
        held.enter_context(lock)

    try:
        retry_unavailable(
            attempt, budget=_left(deadline), what=f"order {order_id}: lock", retry_on=(_LockBusy,)
        )
    except _LockBusy:
        raise DatabaseUnavailable("The order could not be locked in time; retry.") from None


def _claim(order_id: uuid.UUID, lease: dt.datetime, deadline: float) -> bool:
    """Record that the order is being sent and extend its lease; tell whether it is still ours.

    The UPDATE succeeds only on the lease this request committed (or, when an earlier attempt's
    acknowledgement was lost, on the very values that attempt wrote), so a reconciler that took
    the order over in between wins and nothing is sent.

    Raises:
        DatabaseUnavailable: the database did not answer before ``deadline``.
    """
    started = clock.now()
    # The broker call starts before the deadline at the latest, so it can reach the broker no
    # later than this.
    until = started + dt.timedelta(seconds=_left(deadline)) + SEND_WINDOW

    def attempt() -> bool:
        with Session(db.engine) as session, session.begin():
            result = session.execute(
                update(Order)
                .where(
                    Order.id == order_id,
                    Order.status == OrderStatus.PENDING_SUBMIT.value,
                    or_(
                        and_(Order.send_started_ts.is_(None), Order.lease_until == lease),
                        and_(Order.send_started_ts == started, Order.lease_until == until),
                    ),
                )
                .values(send_started_ts=started, lease_until=until, updated_ts=started)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    return retry_unavailable(attempt, budget=_left(deadline), what=f"order {order_id}: claim")


def _finish(order_id: uuid.UUID, outcome: Outcome) -> Order:
    """Record ``outcome`` (retrying a lost connection) and answer as placement does.

    Raises:
        BrokerUnavailable: the outcome was a refusal before the broker acted.
        DatabaseUnavailable: the same, caused by the database; or nothing could be recorded.
    """
    order = retry_unavailable(
        lambda: _record(order_id, outcome), budget=RECORD_BUDGET, what=f"order {order_id}: answer"
    )
    if outcome.kind == "withdrawn":
        assert outcome.error is not None
        raise outcome.error
    if order is None:
        # Only a reconciler that found the order never arrived removes it, long after its
        # lease; an answer this late is logged for the operator, and the client told to retry.
        log.error("order %s: gone before its answer (%s) was recorded", order_id, outcome.kind)
        raise DatabaseUnavailable("The order's answer came too late to be recorded; retry.")
    return order


def _record(order_id: uuid.UUID, outcome: Outcome) -> Order | None:
    """Write ``outcome`` on the order in one transaction; return it, or None if it is gone."""
    try:
        return _write(order_id, outcome)
    except IntegrityError:
        # The broker's number is already bound to another of our orders: only a wrong
        # reconciliation can do that. Leave this one UNKNOWN for the reconciler to settle.
        log.error("order %s: broker order number already recorded elsewhere", order_id)
        return _write(order_id, Outcome("unknown"))


def _write(order_id: uuid.UUID, outcome: Outcome) -> Order | None:
    now = clock.now()
    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        order = session.get(Order, order_id, with_for_update=True)
        if order is None:
            return None  # forgotten by an earlier attempt whose acknowledgement was lost
        intent = session.get(OrderIntent, order.intent_id)
        assert intent is not None
        if outcome.kind == "withdrawn" and forget(session, order):
            return None
        if outcome.kind == "answered":
            assert outcome.answer is not None
            apply_answer(order, outcome.answer, now)
            intent.status = OrderStatus.SUBMITTED.value
        elif outcome.kind == "rejected":
            assert isinstance(outcome.error, BrokerRejected)
            advance(order, OrderStatus.REJECTED, now)
            if order.status == OrderStatus.REJECTED:
                order.reject_code = outcome.error.broker_code or outcome.error.code
                order.reject_message = broker_text(outcome.error)
                intent.status = OrderStatus.REJECTED.value
        elif outcome.kind == "unknown" and order.status == OrderStatus.PENDING_SUBMIT:
            error = outcome.error
            order.status = intent.status = OrderStatus.UNKNOWN.value
            order.reject_code = "order_state_unknown"
            order.reject_message = (
                broker_text(error)
                if isinstance(error, BrokerError)
                else type(error).__name__
                if error is not None
                else "broker order number already recorded elsewhere"
            )
            order.updated_ts = now
            log.warning("order %s: outcome unknown; the reconciler will settle it", order.id)
        # The call is over: the lease ends, and nothing this request sent can reach the broker
        # later than now (the reconciler's bound for "never arrived").
        order.lease_until = now
        intent.updated_ts = now
    return order
