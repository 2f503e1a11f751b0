"""The declarative base every model shares, and riding out a lost database connection.

The naming convention makes constraint names predictable, so migrations written by hand and the
models agree on them (``flask db check`` compares the two). Money and quantities map to
``NUMERIC``; every timestamp is ``timestamptz``.

:func:`retry_unavailable` runs a unit of database work again while the database is unreachable,
with a bounded, jittered back-off. It is for work whose result must not be lost with a connection
— an order's placement recording what the broker answered — and is safe only for work that can
run twice: each attempt is its own transaction, so an attempt either committed or did nothing, and
the work checks first whether an earlier attempt whose commit acknowledgement was lost already
did it. Everything else lets the error reach ``web_server.errors``, which answers 503 with
``Retry-After``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import select
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, Numeric, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, registry

from web_server.errors import DatabaseUnavailable, is_database_unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "chk_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The first pause after a failure, and the longest; pauses double in between, with jitter so
#: that a burst of requests cut at the same instant does not come back at the same instant.
FIRST_PAUSE = 0.05
LONGEST_PAUSE = 1.0
#: A pooled connection idle for longer than this is pinged before use whatever its socket says:
#: a firewall or NAT that drops idle connections silently leaves no trace on the socket.
PING_AFTER_IDLE = 30.0


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    # The type map lives on the registry (not the class) so Flask-SQLAlchemy's subclassing of
    # the base keeps it on SQLAlchemy 2.1.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            dt.datetime: DateTime(timezone=True),
            Decimal: Numeric(),
            dict[str, Any]: JSONB(),
        },
    )


def close_session(scoped: Any) -> None:
    """Remove a scoped session at the end of a request or job, whatever its connection's state.

    Closing rolls back what is open; on a connection the database has cut, that rollback raises.
    Nothing is left to undo there (the server ended the transaction with the connection), so the
    session is invalidated instead: its connections are discarded, not returned to the pool.
    """
    try:
        scoped.remove()
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.debug("closing a session on a lost connection: %r", exc)
        scoped.registry().invalidate()
        scoped.remove()


def install_liveness_check(engine: Engine) -> None:
    """Check a pooled connection before each use, with a round trip only when it is in doubt.

    Replaces ``pool_pre_ping``, which sends a ``SELECT 1`` at every checkout: a round trip for
    every request and two for an order (issue 12). A connection the server ended — its backend
    terminated, the server restarted — has a readable socket (the server's farewell, or its
    end of file), while a healthy idle one has nothing to read. So a connection is pinged only
    when its socket has something to read, or when it sat in the pool longer than
    :data:`PING_AFTER_IDLE`; a ping that fails discards it, and the pool opens another. A cut
    between this check and the first statement fails that statement, as it would after a ping.
    """

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None:
            return  # just opened
        if dbapi_connection.closed:
            raise DisconnectionError("the connection was closed")
        try:
            in_doubt = time.monotonic() - idle_since > PING_AFTER_IDLE or _has_input(
                dbapi_connection.fileno()
            )
        except Exception:  # noqa: BLE001 - a socket that cannot be asked is in doubt
            in_doubt = True
        if not in_doubt:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - whatever failed, this connection is done
            raise DisconnectionError(f"the connection failed its ping: {exc!r}") from exc


def _has_input(fd: int) -> bool:
    """Tell whether a socket has something to read (or an error) without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


@contextlib.contextmanager
def autocommit_session(engine: Engine) -> Iterator[Session]:
    """A session on a connection of its own where each statement is its own transaction.

    For reads that need no snapshot in common, on the hot paths (issue 12): no BEGIN and COMMIT
    round trips, and the connection goes back to the pool (its isolation level reset) as soon as
    the block ends, so the caller never holds it while it takes another. The rows loaded stay
    readable after the block (the session expires nothing).
    """
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        with Session(bind=connection, expire_on_commit=False) as session:
            yield session


def retry_unavailable(
    work: Callable[[], T],
    *,
    budget: float,
    what: str,
    on_failure: Callable[[], None] | None = None,
    retry_on: tuple[type[Exception], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Return ``work()``, calling it again while the database is unavailable, for ``budget`` s.

    Args:
        work: one transaction's worth of work that may run twice (see the module docstring).
        budget: seconds after which the last failure is given up on.
        what: what the work is, for the log.
        on_failure: called after each failed attempt (to roll a shared session back).
        retry_on: other exceptions that mean "not now, try again" (a lock someone else holds).
        sleep: how to pause (tests pass a fake).

    Raises:
        DatabaseUnavailable: the database still failed when the budget ran out.
        Exception: one of ``retry_on`` still happened when the budget ran out, or any other
            error at once.
    """
    deadline = time.monotonic() + budget
    pause = FIRST_PAUSE
    attempt = 0
    while True:
        attempt += 1
        try:
            return work()
        except Exception as exc:
            if not isinstance(exc, retry_on) and not is_database_unavailable(exc):
                raise
            if on_failure is not None:
                try:
                    on_failure()
                except Exception as cleanup:  # noqa: BLE001 - the connection is gone anyway
                    log.debug("%s: cleanup after a lost connection failed: %r", what, cleanup)
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: still failing after %d attempts; giving up", what, attempt)
                if is_database_unavailable(exc):
                    raise DatabaseUnavailable() from exc
                raise
            wait = min(random.uniform(pause / 2, pause), left)  # noqa: S311 - jitter, not crypto
            log.info(
                "%s: %s; attempt %d in %.2f s",
                what,
                type(exc).__name__,
                attempt + 1,
                wait,
            )
            sleep(wait)
            pause = min(pause * 2, LONGEST_PAUSE)
