"""Sending a committed order once and recording the answer, whatever the database does meanwhile.

The order and its intent are committed (``placement.py``) with a short lease
(:data:`~web_server.services.orders.lifecycle.START_LEASE`). Then :meth:`Sender.send`:

1. **Gets ready**, retrying while the database is unreachable for at most :data:`READY_BUDGET`:
   makes sure of the account's token (KIS, Kiwoom: this process's copy, read from the database
   when it has none), then, in one statement, takes the order's advisory lock and *claims the
   send*: a conditional UPDATE sets ``send_started_ts`` and extends the lease to the end of the
   longest broker call (:data:`~web_server.services.orders.lifecycle.SEND_WINDOW`), only if the
   lock was free and the order still carries the lease this request gave it. So the request
   never sends an order the reconciler has meanwhile found orphaned, and the reconciler never
   settles an order this request may still send. If it cannot get ready, nothing is sent: the
   request answers 503 and the reconciler forgets the order when its short lease ends, so the
   key starts over.
2. **Calls the broker once.** The call itself touches no database except through the token
   provider, which only runs before the order is sent, or after the broker refused the token
   (nothing placed) — so a database error out of the call means the broker has no order.
3. **Records the outcome**, retrying while the database is unreachable for at most
   :data:`RECORD_BUDGET`, each attempt one transaction on the order's row ``FOR UPDATE``, on the
   connection that holds the lock (a new one if it was lost), which then releases it:

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
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

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
from web_server.locks import lock_key
from web_server.models import Account, CryptoMarket, Order, OrderStatus
from web_server.services import clock
from web_server.services.brokers import adapter_for
from web_server.services.orders import answered
from web_server.services.orders.fills import complete
from web_server.services.orders.lifecycle import (
    SEND_WINDOW,
    advance,
    apply_answer,
    broker_text,
    forget,
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


class Sender:
    """Sends one account's committed orders; built before the intent is committed.

    The account's adapter is the process's kept one (``services/brokers.py``); for KIS and Kiwoom
    its token provider keeps this process's copy of the stored token (``services/tokens.py``),
    which :meth:`send` makes sure of before claiming the send, so the broker call itself reads
    no database unless the broker refuses the token.
    """

    def __init__(self, account: Account, held: Held | None = None) -> None:
        self._held = held  # placement's connection for this order (see Held)
        self._adapter: Any = adapter_for(account)
        self._tokens: Any = self._adapter.tokens  # the adapter's own (None for crypto)

    def token_in_memory(self) -> bool:
        """Tell whether the send needs no read for its token (none needed, or a copy held)."""
        return self._tokens is None or self._tokens.in_memory()

    def prefetch_token(self) -> None:
        """Copy the account's stored token into this process now, if it has none (KIS, Kiwoom).

        Called before the order's intent takes its connection: the send then finds the token in
        memory instead of taking a second connection to read it.
        """
        if self._tokens is not None:
            self._tokens.prefetch()

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
        if not slots.acquire(blocking=False):
            # Waiting for a slot holds no connection: the slots exist so that orders queue
            # here rather than for the pool. The send takes a connection again when it goes.
            if self._held is not None and self._held.order_id == order_id:
                self._held.release()
            got = slots.acquire(timeout=SLOT_WAIT)
        else:
            got = True
        if not got:
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
        held = self._held if self._held and self._held.order_id == order_id else Held(order_id)
        try:
            try:
                if self._tokens is not None:
                    retry_unavailable(
                        self._tokens.get, budget=_left(deadline), what=f"order {order_id}: token"
                    )
                claimed = held.lock_and_claim(lease, deadline)
            except DatabaseUnavailable:
                raise  # nothing sent; the reconciler forgets the order when its short lease ends
            except Exception as exc:  # noqa: BLE001 - nothing was sent: say what stopped it
                # The token could not be had (as if the broker refused the order), or anything
                # else stopped the request before sending: the order is withdrawn, the error is
                # the answer.
                if isinstance(exc, BrokerError):
                    return _finish(order_id, Outcome.of_error(exc), held)
                return _finish(order_id, Outcome.withdrawn(exc), held)
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
            return _finish(order_id, outcome, held)
        finally:
            held.release()


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


#: Takes the order's advisory lock (``lifecycle.order_lock``'s key) and claims the send in one
#: statement, so in one round trip and one transaction: the lock only if free, the claim only if
#: the lock was had; the claimed row comes back (the order as the answer will find it, since no
#: one else writes it while the lock is held). See :meth:`Held.lock_and_claim` for the claim's
#: condition.
_LOCK_AND_CLAIM = text(
    "WITH lock AS MATERIALIZED (SELECT pg_try_advisory_lock(:key) AS got),"
    " claimed AS (UPDATE trade.orders SET send_started_ts = :started, lease_until = :until,"
    " updated_ts = :started FROM lock WHERE lock.got AND trade.orders.id = :id"
    " AND trade.orders.status = 'PENDING_SUBMIT' AND ((trade.orders.send_started_ts IS NULL"
    " AND trade.orders.lease_until = :lease) OR (trade.orders.send_started_ts = :started"
    " AND trade.orders.lease_until = :until)) RETURNING trade.orders.*)"
    " SELECT lock.got, claimed.* FROM lock LEFT JOIN claimed ON true"
)
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")
#: The intent's status (unchanged when NULL) and time, as the answer is recorded.
_UPDATE_INTENT = text(
    "UPDATE trade.order_intents SET status = coalesce(CAST(:status AS text), status),"
    " updated_ts = :now WHERE intent_id = :id"
    " RETURNING CASE WHEN :unlock THEN pg_advisory_unlock(:key) END"
)
#: PostgreSQL's default, which the pool's connections are in.
_DEFAULT_ISOLATION = "READ COMMITTED"


class Held:
    """One connection that carries an order from its claim to its answer, holding its lock.

    The lock is taken and the send claimed in one statement (:data:`_LOCK_AND_CLAIM`), the
    answer is recorded on the same connection, and the lock is released there after the
    answer's commit (issue 12: before, the lock, the claim, the answer and the unlock each had
    their own transaction and the answer its own connection). A connection lost on the way is
    discarded — the server released its lock with it — and the work continues on a new one:
    the lease covers the order meanwhile (``lifecycle.py``).
    """

    def __init__(self, order_id: uuid.UUID, market: tuple[int, str] | None = None) -> None:
        self.order_id = order_id
        self.market = market  # a crypto order's (market id, symbol): see known_market
        self.key = lock_key("order", str(order_id))
        self.connection: Connection | None = None
        self.locked = False
        #: The order's row as claimed, while this connection's lock has kept it so.
        self.claimed: dict[str, Any] | None = None

    def _connect(self) -> Connection:
        if self.connection is None:
            self.connection = db.engine.connect()
        return self.connection

    def drop(self) -> None:
        """Discard the connection (lost, or in an unknown state): its lock goes with it."""
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.invalidate()
            with contextlib.suppress(Exception):
                self.connection.close()
        self.connection, self.locked, self.claimed = None, False, None

    def lock_and_claim(self, lease: dt.datetime, deadline: float) -> bool:
        """Take the order's lock and claim the send; tell whether the order is still ours.

        The claim succeeds only on the lease this request committed (or, when an earlier
        attempt's acknowledgement was lost, on the very values that attempt wrote), so a
        reconciler that took the order over in between wins and nothing is sent.

        Raises:
            DatabaseUnavailable: the database did not answer, or the lock stayed taken (only a
                reconciler looking at the order can hold it, for a moment), until ``deadline``.
        """
        started = clock.now()
        # The broker call starts before the deadline at the latest, so it can reach the broker
        # no later than this.
        until = started + dt.timedelta(seconds=_left(deadline)) + SEND_WINDOW
        values = {"key": self.key, "id": self.order_id, "lease": lease}
        values |= {"started": started, "until": until}

        def attempt() -> bool:
            connection = self._connect()
            try:
                # One statement is its own transaction: no BEGIN and COMMIT round trips.
                connection.execution_options(isolation_level="AUTOCOMMIT")
                row = connection.execute(_LOCK_AND_CLAIM, values).one()._asdict()
                connection.rollback()  # ends SQLAlchemy's bookkeeping; nothing is sent
                connection.execution_options(isolation_level=_DEFAULT_ISOLATION)
            except Exception:
                self.drop()
                raise
            if not row.pop("got"):
                raise _LockBusy(str(self.order_id))
            self.locked = True
            self.claimed = row if row["id"] is not None else None
            return self.claimed is not None

        try:
            return retry_unavailable(
                attempt,
                budget=_left(deadline),
                what=f"order {self.order_id}: lock and claim",
                retry_on=(_LockBusy,),
            )
        except _LockBusy:
            raise DatabaseUnavailable("The order could not be locked in time; retry.") from None

    def session(self, *, alone: bool = False) -> Session:
        """A session on the held connection (a new one if it was lost).

        ``alone``: outside any transaction, each statement its own (for reads, and for an
        intent that needs no other statement); otherwise in transactions, as the pool's are.
        """
        connection = self._connect()
        level = "AUTOCOMMIT" if alone else _DEFAULT_ISOLATION
        if connection.get_execution_options().get("isolation_level") != level:
            connection.execution_options(isolation_level=level)
        return Session(bind=connection, expire_on_commit=False)

    def release(self) -> None:
        """Release the lock (if held) and return the connection to the pool."""
        if self.connection is None:
            return
        try:
            if self.locked:
                # Outside any transaction: one round trip, nothing to commit.
                self.connection.execution_options(isolation_level="AUTOCOMMIT")
                self.connection.execute(_UNLOCK, {"key": self.key})
                self.connection.rollback()
                self.connection.execution_options(isolation_level=_DEFAULT_ISOLATION)
            self.connection.close()
            self.connection = None
        except Exception as exc:
            if not is_database_unavailable(exc):
                log.exception("order %s: releasing its lock failed", self.order_id)
            self.drop()  # the server releases the lock with the connection


def known_market(session: Session, market: tuple[int, str] | None) -> None:
    """Tell ``session`` a crypto order's market (id and symbol) without reading it.

    The order's event and its API view name the market's symbol (``lifecycle.symbol_of``,
    ``events._view``), which they look up by id; placement knows it already from its cached
    market rules, so the lookup is answered from the session instead of a query in each of the
    order's transactions. Only the id and the symbol are set; anything else would be read.
    """
    if market is None:
        return
    market_id, symbol = market
    if session.identity_map.get(identity_key(CryptoMarket, market_id)) is not None:
        return
    row = CryptoMarket(id=market_id, symbol=symbol)
    make_transient_to_detached(row)
    session.add(row)
    # The identity map holds clean objects weakly: the session keeps this one alive.
    session.info["gateway.known_market"] = row


def _finish(order_id: uuid.UUID, outcome: Outcome, held: Held | None = None) -> Order:
    """Record ``outcome`` (retrying a lost connection) and answer as placement does.

    Raises:
        BrokerUnavailable: the outcome was a refusal before the broker acted.
        DatabaseUnavailable: the same, caused by the database; or nothing could be recorded.
    """
    order = retry_unavailable(
        lambda: _record(order_id, outcome, held),
        budget=RECORD_BUDGET,
        what=f"order {order_id}: answer",
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


def _record(order_id: uuid.UUID, outcome: Outcome, held: Held | None) -> Order | None:
    """Write ``outcome`` on the order in one transaction; return it, or None if it is gone."""
    try:
        return _write(order_id, outcome, held)
    except IntegrityError:
        # The broker's number is already bound to another of our orders: only a wrong
        # reconciliation can do that. Leave this one UNKNOWN for the reconciler to settle.
        log.error("order %s: broker order number already recorded elsewhere", order_id)
        return _write(order_id, Outcome("unknown"), held)
    except Exception:
        if held is not None:
            held.drop()  # a lost connection, or one in an unknown state: the next try gets anew
        raise


@functools.cache
def _order_for_update() -> Any:
    """The answer's read of its order, row locked; built once (see placement._account_and_key)."""
    return select(Order).where(Order.id == bindparam("id")).with_for_update()


def _write(order_id: uuid.UUID, outcome: Outcome, held: Held | None) -> Order | None:
    now = clock.now()
    if (
        held is not None
        and held.locked
        and held.claimed is not None
        and outcome.kind == "answered"
        and answered.is_resting(outcome.answer)
    ):
        # The common case, in one statement without the ORM (answered.py).
        with held.session(alone=True) as alone:
            known_market(alone, held.market)
            resting = answered.record(alone, held.claimed, outcome.answer, now, unlock=held.key)
        if resting is not None:
            held.locked, held.claimed = False, None
            return resting
    session = held.session() if held is not None else Session(db.engine, expire_on_commit=False)
    with session, session.begin():
        if held is not None:
            known_market(session, held.market)  # (adding it begins no transaction here)
        order = session.scalars(_order_for_update(), {"id": order_id}).one_or_none()
        if order is None:
            return None  # forgotten by an earlier attempt whose acknowledgement was lost
        if outcome.kind == "withdrawn" and forget(session, order):
            return None
        intent_status = None
        if outcome.kind == "answered":
            assert outcome.answer is not None
            apply_answer(order, outcome.answer, now)
            intent_status = OrderStatus.SUBMITTED.value
        elif outcome.kind == "rejected":
            assert isinstance(outcome.error, BrokerRejected)
            advance(order, OrderStatus.REJECTED, now)
            if order.status == OrderStatus.REJECTED:
                order.reject_code = outcome.error.broker_code or outcome.error.code
                order.reject_message = broker_text(outcome.error)
                intent_status = OrderStatus.REJECTED.value
        elif outcome.kind == "unknown" and order.status == OrderStatus.PENDING_SUBMIT:
            error = outcome.error
            order.status = intent_status = OrderStatus.UNKNOWN.value
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
        # The intent by one statement, not an ORM object (its read and flush were measurable),
        # which also releases the order's lock: the order's row lock, taken above, keeps
        # everyone off until the commit, and its lease keeps the reconciler off after a lost
        # commit, as after a lost connection (one round trip fewer than unlocking afterwards).
        unlock = held is not None and held.locked
        values = {"id": order.intent_id, "status": intent_status, "now": now, "unlock": unlock}
        updated = session.execute(_UPDATE_INTENT, {**values, "key": held.key if held else 0})
        if unlock and updated.first() is not None:
            held.locked = False  # (the intent exists, so the statement unlocked)
    return order
