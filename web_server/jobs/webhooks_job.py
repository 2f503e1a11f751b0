"""The webhook dispatcher on the scheduler's leader: woken by each new event, and every second.

A thread of the scheduler process waits on the process's order-event listener
(``services/event_hub.py``) and runs a dispatch as soon as an event commits; the interval job
catches retries as they fall due. Both go through :func:`guarded`, so one dispatch runs at a
time, and a wake-up that comes during a dispatch makes it go round once more instead of being
lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask

from web_server.extensions import db
from web_server.services import event_hub, webhooks

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 1


def dispatch_webhooks(app: Flask, *, wake: Callable[[], None]) -> None:
    """Fan new events out and send what is due (the job's body; a boundary wraps it).

    The first run on a leader also starts the thread that calls ``wake`` on each new event (only
    the leader listens: the others' runs return before this).
    """
    if "gateway.webhooks_waker" not in app.extensions:
        app.extensions["gateway.webhooks_waker"] = start_waker(app, wake)
    tally = webhooks.dispatch(db.engine)
    if tally["sent"]:
        log.debug("webhooks: %s", tally)


class Guarded:
    """Run a job one at a time; a call during a run makes the run go round once more."""

    def __init__(self, job: Callable[[], None]) -> None:
        self.job = job
        self._running = threading.Lock()
        self._again = threading.Event()
        self.__name__ = getattr(job, "__name__", "webhooks_dispatch")

    def __call__(self) -> None:
        """Run the job, or have the running one go round once more."""
        self._again.set()
        while self._again.is_set():
            if not self._running.acquire(blocking=False):
                return  # the running one sees the flag and goes round again
            try:
                self._again.clear()
                self.job()
            finally:
                self._running.release()


def start_waker(app: Flask, run: Callable[[], None]) -> threading.Thread:
    """Start the thread that runs ``run`` whenever an order event commits."""

    def wake() -> None:
        with app.app_context():
            engine = db.engine
        hub = event_hub.hub_of(app, engine)
        seen = hub.latest
        while True:
            if hub.wait_beyond(seen, 5.0):
                seen = hub.latest
                try:
                    run()
                except Exception:  # noqa: BLE001 - the waker must outlive one failed run
                    log.exception("webhooks: a dispatch failed")

    thread = threading.Thread(target=wake, name="webhooks-waker", daemon=True)
    thread.start()
    return thread
