"""One listener per process that fans new order events out to every stream the process serves.

A process holds one PostgreSQL connection that ``LISTEN``s on ``order_events`` (never one per
stream). On each notification — and every :data:`SAFETY_POLL` seconds, in case one was missed
while the connection was being re-made — it reads the events after the last it has, once, into
a bounded in-memory window, and wakes the streams. Each stream then takes what it has not sent
from the window and filters it for its key; only a stream that has fallen behind the window
(a client resuming from long ago) reads the database itself, a page at a time.

Because event ids are gap-free and in commit order (:mod:`web_server.services.events`), the
window is always a contiguous run of ids, and "after id N" in the window or in the database is
the same answer.

The listener starts with the first stream of the process (after gunicorn forked it), not at
import or app creation.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from web_server.services.events import CHANNEL, Event, events_after, to_event

log = logging.getLogger(__name__)

#: Events kept in memory per process; a stream further behind reads the database.
WINDOW = 20_000
#: Seconds between reads that do not wait for a notification (a missed one costs at most this).
SAFETY_POLL = 5.0
#: Most events handed to a stream at once.
BATCH = 500

_SELECT = (
    "SELECT id, account_id, order_id, type, ts, payload FROM trade.order_events"
    " WHERE id > %s ORDER BY id LIMIT 5000"
)


class EventHub:
    """The process's listener, its window of recent events, and the streams' wake-up."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.latest = -1  # unknown until the listener has read the counter
        self._window: collections.deque[Event] = collections.deque(maxlen=WINDOW)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ready = threading.Event()

    # -- the streams' side

    def after(self, cursor: int) -> list[Event] | None:
        """Return the events after ``cursor`` held in the window (at most :data:`BATCH`).

        Returns None when the window does not reach back to ``cursor``: read the database.
        """
        with self._changed:
            if cursor >= self.latest:
                return []
            if not self._window or self._window[0].id > cursor + 1:
                return None
            start = cursor + 1 - self._window[0].id
            return list(itertools.islice(self._window, start, start + BATCH))

    def wait_beyond(self, cursor: int, timeout: float) -> bool:
        """Wait until an event after ``cursor`` is known, at most ``timeout`` s; tell whether."""
        with self._changed:
            return self._changed.wait_for(lambda: self.latest > cursor, timeout)

    # -- the listener's side

    def start(self) -> None:
        """Start the listener thread (once), and wait a little for it to listen."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="order-events", daemon=True)
            self._thread.start()
        self.ready.wait(10)

    def stop(self) -> None:
        """Stop the listener (tests)."""
        self._stopping.set()

    def _run(self) -> None:
        pause = 0.1
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self.latest < 0:
                        row = conn.execute(
                            "SELECT last_id FROM trade.order_event_counter"
                        ).fetchone()
                        self._publish([], int(row[0]) if row else 0)
                    self._catch_up(conn)  # what committed while we were not listening
                    self.ready.set()
                    pause = 0.1
                    while not self._stopping.is_set():
                        heard = False
                        for _ in conn.notifies(timeout=SAFETY_POLL, stop_after=1):
                            heard = True
                        # Drain whatever else arrived meanwhile: one read for a burst.
                        if heard:
                            for _ in conn.notifies(timeout=0.0):
                                pass
                        self._catch_up(conn)
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a database outage
                if self._stopping.is_set():
                    return
                log.warning("order events listener: %s; listening again shortly", exc)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        while True:
            rows = conn.execute(_SELECT, (max(self.latest, 0),)).fetchall()
            if not rows:
                return
            events = [to_event(_Row(*row)) for row in rows]
            self._publish(events, events[-1].id)
            if len(rows) < 5000:
                return

    def _publish(self, events: list[Event], latest: int) -> None:
        with self._changed:
            if self._window and events and events[0].id != self._window[-1].id + 1:
                self._window.clear()  # the log was emptied (tests truncate it); start anew
            self._window.extend(events)
            self.latest = max(latest, self.latest) if events else latest
            self._changed.notify_all()


class _Row:
    __slots__ = ("id", "account_id", "order_id", "type", "ts", "payload")

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)


_LOCK = threading.Lock()


def hub_of(app: Flask, engine: Any) -> EventHub:
    """Return the process's hub, starting its listener on first use."""
    hub = app.extensions.get("gateway.event_hub")
    if hub is None:
        with _LOCK:
            hub = app.extensions.get("gateway.event_hub")
            if hub is None:
                dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                hub = EventHub(dsn)
                app.extensions["gateway.event_hub"] = hub
    hub.start()
    return hub


# -- one stream ---------------------------------------------------------------------------------


def stream(
    hub: EventHub,
    engine: Any,
    *,
    key_id: int,
    account_ids: list[int] | None,
    after: int | None,
    heartbeat: float,
) -> Iterator[str]:
    """Yield a Server-Sent Events stream of the events after ``after`` the key may see.

    ``after=None`` starts at the latest event (only what happens from now on). A comment line
    is sent every ``heartbeat`` seconds without an event, which also re-checks that the key is
    still valid: a revoked key's stream ends at the next heartbeat.
    """
    allowed = None if account_ids is None else frozenset(account_ids)
    cursor = hub.latest if after is None else after
    # The client learns where it is even before the first event, and how long to wait before
    # reconnecting.
    yield f"retry: 1000\n: connected at {cursor}\n\n"
    last_beat = time.monotonic()
    while True:
        events = hub.after(cursor)
        if events is None:
            events = _read_page(engine, cursor)
        if events:
            chunk = []
            for event in events:
                if allowed is None or event.account_id in allowed:
                    chunk.append(f"id: {event.id}\nevent: {event.type}\ndata: {event.data}\n\n")
            cursor = events[-1].id
            if chunk:
                yield "".join(chunk)
                last_beat = time.monotonic()
            continue
        left = heartbeat - (time.monotonic() - last_beat)
        if left > 0 and hub.wait_beyond(cursor, left):
            continue
        if not _key_alive(engine, key_id):
            return
        yield ": heartbeat\n\n"
        last_beat = time.monotonic()


def _read_page(engine: Any, cursor: int) -> list[Event]:
    with Session(engine) as session:
        return events_after(session, cursor, limit=BATCH)


def _key_alive(engine: Any, key_id: int) -> bool:
    from web_server.models import ApiKey

    with Session(engine) as session:
        revoked = session.execute(
            select(ApiKey.revoked_at).where(ApiKey.id == key_id)
        ).one_or_none()
    return revoked is not None and revoked[0] is None
