"""Session-level PostgreSQL advisory locks, held on a dedicated connection.

Used where one actor must own something across a broker call that no transaction should span:
an app key while its token is issued (``services/tokens.py``), an order while it is placed,
reconciled, polled or cancelled (``services/orders/lifecycle.py``). The lock lives as long as the
database session, so a process that dies releases it at once; a lock held when anything goes
wrong is released by discarding the connection, never by returning it to the pool still holding
the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError


class LockTimeout(Exception):
    """Waiting for the lock took longer than the timeout."""


def lock_key(namespace: str, name: str) -> int:
    """Return a stable 64-bit advisory-lock key for ``name`` within ``namespace``."""
    digest = hashlib.sha256(f"{namespace}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(engine: Engine, key: int, *, wait: bool, timeout: str = "30s") -> Iterator[bool]:
    """Hold advisory lock ``key`` for the block; yield whether it was obtained.

    ``wait=False`` tries once and yields False when another session holds the lock.

    Raises:
        LockTimeout: ``wait=True`` and the lock stayed taken for ``timeout``.
    """
    connection = engine.connect()
    got = False
    try:
        try:
            with connection.begin():
                if wait:
                    # Local to this transaction: the connection keeps no timeout afterwards.
                    connection.execute(
                        text("SELECT set_config('lock_timeout', :timeout, true)"),
                        {"timeout": timeout},
                    )
                    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                    got = True
                else:
                    got = bool(
                        connection.execute(
                            text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                        ).scalar_one()
                    )
        except OperationalError as exc:
            if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                raise LockTimeout(f"advisory lock {key} still taken after {timeout}") from None
            raise
        yield got
    except BaseException:
        connection.invalidate()
        raise
    else:
        if got:
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        connection.close()


def is_locked(engine: Engine, key: int) -> bool:
    """Tell whether another session holds advisory lock ``key`` right now."""
    with advisory_lock(engine, key, wait=False) as got:
        return not got
