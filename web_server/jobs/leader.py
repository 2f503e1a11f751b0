"""Leader election with a PostgreSQL advisory lock, recorded in ``system.process_locks``.

Every scheduler process (on any host) tries ``pg_try_advisory_lock`` on a dedicated connection.
The one that gets it is the leader and runs the jobs; the others are hot standbys that try again
every few seconds. The lock is tied to the leader's database session, so when the leader dies its
connection closes, PostgreSQL releases the lock at once, and a standby takes over on its next try.
The leader refreshes ``heartbeat_ts`` in ``system.process_locks`` (seed 004) so operators can see
who leads and spot a stale one (the seed's query: heartbeat older than 15 s).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from web_server.locks import lock_key

log = logging.getLogger(__name__)


class LeaderLock:
    """One process's claim on a named leadership, held on its own database connection."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        # Held for as long as this process leads, so not the context manager of web_server.locks.
        self.key = lock_key("leader", name)
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._connection: Connection | None = None
        self._mutex = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """Tell whether this process held the lock at its last check."""
        return self._connection is not None

    def tick(self) -> bool:
        """Take the lock if free, or prove we still hold it; return whether we lead.

        Called every few seconds. A lost connection means a lost lock (PostgreSQL released it),
        so leadership is dropped and must be won again.
        """
        with self._mutex:
            try:
                if self._connection is None:
                    return self._try_acquire()
                self._heartbeat()
                return True
            except SQLAlchemyError as exc:
                log.warning(
                    "leader %s: lost the database connection (%s)", self.name, type(exc).__name__
                )
                self._close()
                return False

    def _try_acquire(self) -> bool:
        connection = self.engine.connect()
        try:
            return self._acquire_on(connection)
        except BaseException:
            # Never hand a connection that may hold the lock back to the pool.
            connection.invalidate()
            connection.close()
            raise

    def _acquire_on(self, connection: Connection) -> bool:
        # If the leader's host vanishes without closing its TCP connection, PostgreSQL would keep
        # the session (and the lock) until keepalive gives up, about two hours by default. These
        # make the server drop a silent leader within about half a minute; a live leader talks
        # every 5 s. (Session settings: they apply to this connection only.)
        for setting, value in (
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
            ("idle_session_timeout", "30s"),
        ):
            connection.execute(
                text("SELECT set_config(:setting, :value, false)"),
                {"setting": setting, "value": value},
            )
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar_one()
        if not got:
            connection.rollback()
            connection.invalidate()  # it carries our session settings: not for the pool
            connection.close()
            return False
        connection.execute(
            text(
                "INSERT INTO system.process_locks"
                " (lock_name, instance_id, acquired_ts, heartbeat_ts, host, pid)"
                " VALUES (:name, :instance, now(), now(), :host, :pid)"
                " ON CONFLICT (lock_name) DO UPDATE SET instance_id = EXCLUDED.instance_id,"
                " acquired_ts = now(), heartbeat_ts = now(), host = EXCLUDED.host,"
                " pid = EXCLUDED.pid"
            ),
            {
                "name": self.name,
                "instance": self.instance_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        connection.commit()
        self._connection = connection
        log.info("leader %s: this process (%s) now leads", self.name, self.instance_id)
        return True

    def _heartbeat(self) -> None:
        assert self._connection is not None
        self._connection.execute(
            text(
                "UPDATE system.process_locks SET heartbeat_ts = now()"
                " WHERE lock_name = :name AND instance_id = :instance"
            ),
            {"name": self.name, "instance": self.instance_id},
        )
        self._connection.commit()

    def release(self) -> None:
        """Give up leadership (on shutdown) so a standby takes over at once."""
        with self._mutex:
            if self._connection is None:
                return
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                self._connection.commit()
            except SQLAlchemyError:
                pass
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None


STALE_LEADERS_SQL = text(
    # Seed 004's monitoring query: a leader whose heartbeat is older than 15 s.
    "SELECT lock_name, instance_id, host, pid, heartbeat_ts,"
    " EXTRACT(EPOCH FROM (NOW() - heartbeat_ts)) AS stale_seconds"
    " FROM system.process_locks WHERE EXTRACT(EPOCH FROM (NOW() - heartbeat_ts)) > 15"
)


def leaders(connection: Connection) -> list[dict[str, object]]:
    """Return every recorded leader with its heartbeat age and whether it is stale (> 15 s)."""
    stale = {row.lock_name for row in connection.execute(STALE_LEADERS_SQL)}
    rows = connection.execute(
        text(
            "SELECT lock_name, instance_id, host, pid, heartbeat_ts,"
            " EXTRACT(EPOCH FROM (NOW() - heartbeat_ts)) AS age FROM system.process_locks"
        )
    )
    return [{**row._asdict(), "stale": row.lock_name in stale} for row in rows]
